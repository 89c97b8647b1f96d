package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/liqstream/liqstream/pkg/logging"
)

// logLines captures a store's log as decoded JSON lines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// with returns the lines whose msg starts with prefix.
func (l *logLines) with(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// observe makes s log at debug into the returned lines and record the waits
// between tries instead of sleeping them.
func observe(t *testing.T, s *Store) (*logLines, *[]time.Duration) {
	t.Helper()
	lines := &logLines{}
	log, err := logging.New(lines, "debug", "snapshotter", "test")
	if err != nil {
		t.Fatal(err)
	}
	s.log = log
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return lines, &waits
}

func counts(t *testing.T, s *Store) Counts {
	t.Helper()
	c, err := s.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// diskFull is what a full disk looks like to the store in the tests that
// cannot fill one: the errno, worded as DuckDB words it.
var diskFull = fmt.Errorf(`IO Error: Could not write file "x.duckdb.wal": No space left on device: %w`, syscall.ENOSPC)

// A write that fails is retried after 200 ms and 400 ms; each failure is
// counted and logged at warn with its cause; the batch lands once and whole,
// although the failed tries had already merged its candles.
func TestWriteRetriedUntilItSucceeds(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	lines, waits := observe(t, s)
	ks, ois := seedRows("BTCUSDT", 50)
	tries := 0
	setHook(t, func(step string) error {
		if step != "open_interest" {
			return nil
		}
		if tries++; tries <= 2 {
			return diskFull
		}
		return nil
	})
	if err := s.Upsert(ctx, ks, ois); err != nil {
		t.Fatalf("Upsert = %v, want success on the third try", err)
	}
	if want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(*waits, want) {
		t.Errorf("waited %v, want %v", *waits, want)
	}
	if n := s.WriteErrors(OpUpsert); n != 2 {
		t.Errorf("WriteErrors(upsert) = %d, want 2", n)
	}
	if n := s.WriteErrors(OpReplace); n != 0 {
		t.Errorf("WriteErrors(replace) = %d, want 0", n)
	}
	if c := counts(t, s); c.Klines != 50 || c.OpenInterest != 50 {
		t.Errorf("store holds %+v, want the batch once: 50 and 50", c)
	}
	if v := s.Version("BTCUSDT"); v != 1 {
		t.Errorf("version %d, want 1: one write landed", v)
	}
	warns := lines.with(t, "store write failed")
	if len(warns) != 2 {
		t.Fatalf("%d failure lines, want 2: %v", len(warns), warns)
	}
	for i, w := range warns {
		want := map[string]any{"level": "WARN", "msg": "store write failed; retrying", "db": path, "op": "upsert",
			"reason": "no_space", "attempt": float64(i + 1), "retry_in": (*waits)[i].String()}
		for k, v := range want {
			if w[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, w[k], v, w)
			}
		}
		if !strings.Contains(fmt.Sprint(w["err"]), "No space left on device") {
			t.Errorf("line %d: err %v lacks the cause", i, w["err"])
		}
	}
	if ok := lines.with(t, "store write succeeded after retrying"); len(ok) != 1 || ok[0]["attempt"] != float64(3) {
		t.Errorf("recovery lines %v, want one at attempt 3", ok)
	}
}

// A write that keeps failing gives up after 4 tries (waits 200, 400 and
// 800 ms) with an error naming the file and the cause, and leaves nothing of
// its batch; a flood of failures is logged at warn 5 times per op and 10 s,
// the rest at debug; once the fault clears, the next write lands.
func TestWriteGivesUpLeavingNothing(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	lines, waits := observe(t, s)
	old, oldOI := seedRows("ETHUSDT", 7)
	if err := s.Upsert(ctx, old, oldOI); err != nil {
		t.Fatal(err)
	}
	ks, ois := seedRows("BTCUSDT", 50)
	setHook(t, func(step string) error {
		if step == "klines" || step == "delete" {
			return diskFull
		}
		return nil
	})
	err := s.Upsert(ctx, ks, ois)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Fault != FaultNoSpace || fe.Path != path || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Upsert = %v, want a no-space *FileError of %s", err, path)
	}
	for _, w := range []string{"write to store " + path + ": the disk is full (no space left on device): gave up after 4 tries: "} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(*waits, want) {
		t.Errorf("waited %v, want %v", *waits, want)
	}
	if n := s.WriteErrors(OpUpsert); n != 4 {
		t.Errorf("WriteErrors(upsert) = %d, want 4", n)
	}
	if c := counts(t, s); c.Klines != 7 || c.OpenInterest != 7 {
		t.Errorf("store holds %+v, want only the 7 and 7 written before", c)
	}
	if v := s.Version("BTCUSDT"); v != 0 {
		t.Errorf("change log recorded a write that did not land: version %d", v)
	}
	if gave := lines.with(t, "store write failed; giving up"); len(gave) != 1 || gave[0]["attempt"] != float64(4) {
		t.Errorf("give-up lines %v, want one at attempt 4", gave)
	}

	// ReplaceKlines is counted as its own op; together with the upsert
	// above that is 8 failures, over the warn bound of the upsert op alone.
	if err := s.ReplaceKlines(ctx, "ETHUSDT", "5m", old, nil); err == nil {
		t.Fatal("ReplaceKlines succeeded through a failing disk")
	}
	if n := s.WriteErrors(OpReplace); n != 4 {
		t.Errorf("WriteErrors(replace) = %d, want 4", n)
	}
	if err := s.Upsert(ctx, ks, ois); err == nil {
		t.Fatal("second Upsert succeeded through a failing disk")
	}
	byLevel := map[string]map[string]int{}
	for _, l := range lines.with(t, "store write failed") {
		op := fmt.Sprint(l["op"])
		if byLevel[op] == nil {
			byLevel[op] = map[string]int{}
		}
		byLevel[op][fmt.Sprint(l["level"])]++
	}
	if got := byLevel["upsert"]; got["WARN"] != writeLogBurst || got["DEBUG"] != 8-writeLogBurst {
		t.Errorf("upsert failure lines by level %v, want %d WARN and the other %d at DEBUG", got, writeLogBurst, 8-writeLogBurst)
	}
	if got := byLevel["replace"]; got["WARN"] != 4 {
		t.Errorf("replace failure lines by level %v, want its own 4 WARN", got)
	}
	if _, _, n, _ := s.DateRange(ctx, "ETHUSDT", "5m"); n != 7 {
		t.Errorf("a failed replace left %d ETHUSDT candles, want the old 7", n)
	}

	testHook = nil
	if err := s.Upsert(ctx, ks, ois); err != nil {
		t.Fatalf("after the fault cleared: %v", err)
	}
	if c := counts(t, s); c.Klines != 57 || c.OpenInterest != 57 {
		t.Errorf("after the fault cleared: %+v, want 57 and 57", c)
	}
}

// A context that ends while a write waits to retry ends the wait at once:
// shutdown is not held up by a failing disk.
func TestWriteRetryStopsWithContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	s.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleepCtx(ctx, time.Hour)
	}
	setHook(t, func(string) error { return diskFull })
	ks, ois := seedRows("BTCUSDT", 5)
	err := s.Upsert(ctx, ks, ois)
	if err == nil || !strings.Contains(err.Error(), "stopped retrying after 1 tries (context canceled)") {
		t.Fatalf("Upsert = %v, want it stopped by the context", err)
	}
	if c := counts(t, s); c.Klines != 0 || c.OpenInterest != 0 {
		t.Errorf("store holds %+v, want nothing", c)
	}
	if n := s.WriteErrors(OpUpsert); n != 1 {
		t.Errorf("WriteErrors = %d, want 1", n)
	}
}

// diskStore opens a store on an 8 MiB tmpfs (a temp dir where none can be
// mounted: real is false) holding 10 ETHUSDT rows, watched by observe.
func diskStore(t *testing.T) (dir, path string, real bool, s *Store, lines *logLines, waits *[]time.Duration) {
	t.Helper()
	ctx := context.Background()
	dir, real = tmpfs(t, 8<<20)
	if !real {
		dir = t.TempDir()
	}
	path = filepath.Join(dir, "store.duckdb")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	lines, waits = observe(t, s)
	old, oldOI := seedRows("ETHUSDT", 10)
	if err := s.Upsert(ctx, old, oldOI); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return dir, path, real, s, lines, waits
}

// A real full disk (a tmpfs filled to the last byte): the commit cannot
// write DuckDB's WAL, every try fails, nothing of the batch is stored, and
// with space freed the same write lands and survives a reopen. Where no
// tmpfs can be mounted the fault is injected at the commit instead.
func TestWriteDiskFull(t *testing.T) {
	ctx := context.Background()
	dir, path, real, s, lines, _ := diskStore(t)
	defer func() { s.Close() }()
	var err error
	ks, ois := seedRows("BTCUSDT", 2000)
	free := func() {}
	if real {
		free = fill(t, dir, 0)
	} else {
		t.Log("no tmpfs: injecting the no-space error after the open interest merged")
		setHook(t, func(step string) error {
			if step == "open_interest" {
				return diskFull
			}
			return nil
		})
		free = func() { testHook = nil }
	}
	err = s.Upsert(ctx, ks, ois)
	t.Log(err)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Fault != FaultNoSpace {
		t.Fatalf("Upsert on a full disk = %v, want a no-space *FileError", err)
	}
	for _, w := range []string{"write to store " + path + ": the disk is full (no space left on device): gave up after 4 tries", "No space left on device"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if n := s.WriteErrors(OpUpsert); n != 4 {
		t.Errorf("WriteErrors = %d, want 4", n)
	}
	if n := len(lines.with(t, "store write failed")); n != 4 {
		t.Errorf("%d failure lines, want 4", n)
	}
	if c := counts(t, s); c.Klines != 10 || c.OpenInterest != 10 {
		t.Fatalf("on a full disk the store holds %+v, want the 10 and 10 from before", c)
	}
	if s.InvalidatedErr() != nil {
		t.Fatalf("a failed WAL write invalidated the store: %v", s.InvalidatedErr())
	}

	free()
	if err := s.Upsert(ctx, ks, ois); err != nil {
		t.Fatalf("with space again: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts(t, s); c.Klines != 2010 || c.OpenInterest != 2010 {
		t.Fatalf("after reopening: %+v, want 2010 and 2010", c)
	}
}

// A checkpoint that fails on a full disk makes DuckDB invalidate the whole
// database: every query fails until the file is opened again. The write is
// not retried (it cannot succeed), Invalidated fires so the process can stop
// and be restarted, and the batch, whose commit DuckDB reports durable, is
// there whole after a reopen.
func TestWriteInvalidatedStopsRetrying(t *testing.T) {
	ctx := context.Background()
	dir, path, real, s, lines, waits := diskStore(t)
	defer func() { s.Close() }()
	var err error
	ks, ois := seedRows("BTCUSDT", 20)
	free := func() {}
	if real {
		// Every commit checkpoints; the little space left takes the WAL's
		// few KiB but not the checkpoint's new 256 KiB block.
		if _, err := s.db.ExecContext(ctx, "SET checkpoint_threshold = '1B'"); err != nil {
			t.Fatal(err)
		}
		free = fill(t, dir, 64<<10)
	} else {
		t.Log("no tmpfs: injecting DuckDB's fatal error after the batch merged")
		setHook(t, func(step string) error {
			if step == "open_interest" {
				return &duckdb.Error{Type: duckdb.ErrorTypeFatal, Msg: "FATAL Error: Failed to create checkpoint because of error: Could not write file: No space left on device"}
			}
			return nil
		})
		free = func() { testHook = nil }
	}
	select {
	case <-s.Invalidated():
		t.Fatal("Invalidated fired before any fault")
	default:
	}
	err = s.Upsert(ctx, ks, ois)
	t.Log(err)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Fault != FaultInvalidated {
		t.Fatalf("Upsert = %v, want an invalidated *FileError", err)
	}
	want := "write to store " + path + ": the disk is full (no space left on device), and DuckDB invalidated the database after the fatal error; the snapshotter must restart to reopen the file"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if len(*waits) != 0 || s.WriteErrors(OpUpsert) != 1 {
		t.Errorf("waited %v and counted %d failures: want no retry and 1", *waits, s.WriteErrors(OpUpsert))
	}
	select {
	case <-s.Invalidated():
	default:
		t.Fatal("Invalidated did not fire")
	}
	if s.InvalidatedErr() != err {
		t.Errorf("InvalidatedErr = %v, want the write's error", s.InvalidatedErr())
	}
	if l := lines.with(t, "store invalidated"); len(l) != 1 || l[0]["level"] != "ERROR" || l[0]["reason"] != "invalidated" {
		t.Errorf("invalidation lines %v, want one at ERROR", l)
	}

	s.Close()
	free()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// All or nothing, but which one is DuckDB's: a commit it checkpoints
	// instead of logging is lost whole ("Failed to create checkpoint"), one
	// it logged first is there whole ("COMMIT succeeded and is durable, but
	// the autocheckpoint failed").
	c := counts(t, s)
	if c != (Counts{Klines: 10, OpenInterest: 10}) && c != (Counts{Klines: 30, OpenInterest: 30}) {
		t.Fatalf("after reopening: %+v, want all of the batch (30 and 30) or none (10 and 10)", c)
	}
	t.Logf("after reopening the store holds %+v", c)
}

func TestSleepCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleepCtx on an ended context = %v, want context.Canceled at once", err)
	}
	if err := sleepCtx(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("sleepCtx = %v", err)
	}
}
