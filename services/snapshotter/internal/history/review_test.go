package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// gatedStore holds every Candles call until the test releases it, so the
// test decides when a computation ends; ctx is honoured only after release,
// like a query that notices cancellation at its next step.
type gatedStore struct {
	*store.Store
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func newGatedStore(st *store.Store) *gatedStore {
	return &gatedStore{Store: st, entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gatedStore) Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error) {
	g.calls.Add(1)
	g.entered <- struct{}{}
	<-g.release
	return g.Store.Candles(ctx, symbol, interval, from, to)
}

// recv waits for one value of ch; the timeout only turns a hang into a failure.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

type getResult struct {
	body []byte
	hit  bool
	err  error
}

func goGet(h *Handler, ctx context.Context, q Query) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		b, hit, err := h.Get(ctx, q)
		ch <- getResult{b, hit, err}
	}()
	return ch
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustQuery(t *testing.T, raw string) Query {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseQuery(v, defaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestReview14AbortedCallerDoesNotFailOthers(t *testing.T) {
	gs := newGatedStore(seeded(t))
	h := New(gs, defaults(), func() time.Time { return now }, discard())
	joined := make(chan struct{}, 4)
	h.joined = func() { joined <- struct{}{} }
	q := mustQuery(t, "symbol=BTCUSDT&time_window=48h&interval=1h")

	// The first caller starts the shared computation, then hangs up.
	leaderCtx, abort := context.WithCancel(context.Background())
	leader := goGet(h, leaderCtx, q)
	recv(t, gs.entered, "the computation to start")
	recv(t, joined, "the first caller to wait")
	abort()

	// A second caller joins the same computation.
	follower := goGet(h, context.Background(), q)
	recv(t, joined, "the second caller to join")
	close(gs.release)

	f := recv(t, follower, "the second caller's answer")
	if f.err != nil || len(f.body) == 0 {
		t.Fatalf("the second caller got %v after the first hung up, want the body", f.err)
	}
	if l := recv(t, leader, "the first caller's answer"); !errors.Is(l.err, context.Canceled) {
		t.Fatalf("the caller that hung up got %v, want context.Canceled", l.err)
	}
	if n := gs.calls.Load(); n != 1 {
		t.Fatalf("%d computations, want the one shared", n)
	}
	if _, hit, err := h.Get(context.Background(), q); err != nil || !hit {
		t.Fatalf("after the shared computation: hit %v, err %v; want it cached", hit, err)
	}
}

func TestReview14WaiterLeavesOnItsOwn(t *testing.T) {
	gs := newGatedStore(seeded(t))
	h := New(gs, defaults(), func() time.Time { return now }, discard())
	q := mustQuery(t, "symbol=BTCUSDT&time_window=48h&interval=1h")

	ctx, abort := context.WithCancel(context.Background())
	only := goGet(h, ctx, q)
	recv(t, gs.entered, "the computation to start")
	abort()
	// The computation is still held: the caller must not wait for it.
	if r := recv(t, only, "the aborted caller to leave"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("aborted caller got %v, want context.Canceled", r.err)
	}
	close(gs.release)
	// The computation outlives its callers and lands in the cache: the next
	// caller joins it or hits its result, and nothing is computed twice.
	if _, _, err := h.Get(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if _, hit, err := h.Get(context.Background(), q); err != nil || !hit {
		t.Fatalf("hit %v err %v, want the detached computation's result cached", hit, err)
	}
	if n := gs.calls.Load(); n != 1 {
		t.Fatalf("%d computations, want 1", n)
	}
}

// stuckStore never answers before its context ends.
type stuckStore struct{ *store.Store }

func (s stuckStore) Candles(ctx context.Context, _, _ string, _, _ time.Time) ([]heatmap.Candle, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("stuck: %w", ctx.Err())
}

func TestReview14ComputationHasItsOwnTimeout(t *testing.T) {
	d := defaults()
	d.ComputeTimeout = 50 * time.Millisecond
	h := New(stuckStore{seeded(t)}, d, func() time.Time { return now }, discard())
	r := recv(t, goGet(h, context.Background(), mustQuery(t, "symbol=BTCUSDT")), "the computation to time out")
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the computation's own deadline", r.err)
	}
}

func TestReview15CacheIsBoundedByBytes(t *testing.T) {
	st := seeded(t)
	const (
		a   = "symbol=BTCUSDT&interval=5m&start_time=2025-12-28T00:00:00Z&end_time=2025-12-28T06:00:00Z"
		b   = "symbol=BTCUSDT&interval=5m&start_time=2025-12-28T06:00:00Z&end_time=2025-12-28T12:00:00Z"
		c   = "symbol=BTCUSDT&interval=5m&start_time=2025-12-28T12:00:00Z&end_time=2025-12-28T18:00:00Z"
		big = "symbol=BTCUSDT&interval=5m&start_time=2025-12-27T12:00:00Z&end_time=2025-12-29T00:00:00Z"
	)
	probe := New(st, defaults(), func() time.Time { return now }, discard())
	size := map[string]int64{}
	for _, raw := range []string{a, b, c, big} {
		body, _, err := probe.Get(context.Background(), mustQuery(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		size[raw] = int64(len(body))
	}
	if size[big] <= max(size[a], size[b], size[c]) {
		t.Fatalf("sizes %v: the big body is not the biggest", size)
	}

	// Room for any two of a, b and c, never all three; big is over the cap.
	d := defaults()
	d.CacheEntryBytes = max(size[a], size[b], size[c])
	d.CacheBytes = size[a] + size[b] + size[c] - min(size[a], size[b], size[c])
	srv := httptest.NewServer(New(st, d, func() time.Time { return now }, discard()))
	defer srv.Close()

	for i, step := range []struct{ q, want string }{
		{a, "miss"}, {a, "hit"},
		{b, "miss"}, {b, "hit"}, // a and b fit together
		{a, "hit"},  // a is now the most recently used
		{c, "miss"}, // evicts b, the least recently used
		{a, "hit"}, {c, "hit"},
		{b, "miss"},                  // b was evicted; caching it again evicts a
		{big, "miss"}, {big, "miss"}, // too big to cache at all
		{c, "hit"}, {b, "hit"}, // and caching nothing evicted nothing
	} {
		code, got, body := fetch(t, srv, step.q)
		if code != 200 || got != step.want {
			t.Fatalf("step %d (%s): %d X-Cache %s, want %s (%.200s)", i, step.q, code, got, step.want, body)
		}
	}
}

func TestReview16LeverageWeightsTierCap(t *testing.T) {
	tiers := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("%d:1", i+1)
		}
		return strings.Join(parts, ",")
	}
	srv := httptest.NewServer(New(seeded(t), defaults(), func() time.Time { return now }, discard()))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		n    int
		code int
	}{
		{"at the cap", heatmap.MaxTiers, 200},
		{"one over", heatmap.MaxTiers + 1, 400},
		{"thousands", 100000, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Leverages past 125 are invalid anyway; the cap must win first.
			code, _, body := fetch(t, srv, "symbol=BTCUSDT&interval=4h&leverage_weights="+tiers(tc.n))
			if code != tc.code {
				t.Fatalf("%d tiers: %d %.200s, want %d", tc.n, code, body, tc.code)
			}
			if code == 400 && (!strings.Contains(string(body), `"error":"leverage_weights:`) || !strings.Contains(string(body), fmt.Sprint(heatmap.MaxTiers))) {
				t.Fatalf("%d tiers: %s, want a message naming leverage_weights and the cap", tc.n, body)
			}
		})
	}
}

func TestReview17UnalignedEndReturnsOnlyWholeCandles(t *testing.T) {
	st := seeded(t)
	q := mustQuery(t, "symbol=BTCUSDT&interval=1h&start_time=2025-12-28T00:30:00Z&end_time=2025-12-28T05:10:00Z")
	end := time.Date(2025, 12, 28, 5, 0, 0, 0, time.UTC)
	if !q.End.Equal(end) {
		t.Fatalf("end %v, want it aligned down to %v", q.End, end)
	}
	if aligned := mustQuery(t, "symbol=BTCUSDT&interval=1h&start_time=2025-12-28T00:00:00Z&end_time=2025-12-28T05:00:00Z"); q.Key() != aligned.Key() {
		t.Fatalf("key %s, want the aligned query's %s", q.Key(), aligned.Key())
	}

	srv := httptest.NewServer(New(st, defaults(), func() time.Time { return now }, discard()))
	defer srv.Close()
	code, _, body := fetch(t, srv, "symbol=BTCUSDT&interval=1h&start_time=2025-12-28T00:30:00Z&end_time=2025-12-28T05:10:00Z")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	whole, err := st.Candles(context.Background(), "BTCUSDT", "1h", time.Date(2025, 12, 28, 0, 0, 0, 0, time.UTC), end)
	if err != nil || len(whole) != 5 {
		t.Fatalf("whole candles: %d %v", len(whole), err)
	}
	if len(resp.Data) != len(whole) || resp.Meta.EndTime != protocol.FormatTime(end) {
		t.Fatalf("%d entries ending %s, want the %d whole candles ending %s", len(resp.Data), resp.Meta.EndTime, len(whole), protocol.FormatTime(end))
	}
	for i, w := range whole {
		e := resp.Data[i]
		want := Candle{Open: w.Open, High: w.High, Low: w.Low, Close: w.Close, Volume: w.Volume}
		if e.Timestamp != protocol.FormatTime(w.OpenTime) || e.Candle != want {
			t.Fatalf("entry %d %s %+v, want the whole candle %s %+v", i, e.Timestamp, e.Candle, protocol.FormatTime(w.OpenTime), want)
		}
	}
	// Another end inside the same hour is the same answer, from the cache.
	if _, cache, again := fetch(t, srv, "symbol=BTCUSDT&interval=1h&start_time=2025-12-28T00:10:00Z&end_time=2025-12-28T05:50:00Z"); cache != "hit" || string(again) != string(body) {
		t.Fatalf("the same aligned window was not served from the cache (X-Cache %s)", cache)
	}
}

func TestReview19TimeValidation(t *testing.T) {
	srv := httptest.NewServer(New(seeded(t), defaults(), func() time.Time { return now }, discard()))
	defer srv.Close()
	for _, tc := range []struct {
		name, q, param string
	}{
		{"start beyond any timestamp", "start_time=9000000000000000000&end_time=9000000000000001000", "start_time"},
		{"start far before 1970", "start_time=-9000000000000000000&end_time=-8999999999999000000", "start_time"},
		{"end beyond any timestamp", "start_time=2025-12-29T00:00:00Z&end_time=9000000000000000000", "end_time"},
		{"start in the future", "start_time=2026-06-01T00:00:00Z&end_time=2026-06-02T00:00:00Z", "start_time"},
		{"start at the open candle", "interval=5m&start_time=2025-12-29T10:05:00Z&end_time=2025-12-29T11:00:00Z", "start_time"},
		{"no whole candle in the range", "interval=1h&start_time=2025-12-28T05:10:00Z&end_time=2025-12-28T05:50:00Z", "end_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := fetch(t, srv, "symbol=BTCUSDT&"+tc.q)
			if code != 400 || !strings.Contains(string(body), `"error":"`+tc.param+`:`) {
				t.Fatalf("got %d %.300s, want 400 naming %s", code, body, tc.param)
			}
		})
	}
}

func TestReview19InputsTrimSymbolsAndCheckTimes(t *testing.T) {
	mux := http.NewServeMux()
	NewInputs(seeded(t), []string{"BTCUSDT", "ETHUSDT"}, "5m", func() time.Time { return now }).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/prices/klines?symbol=%20btcusdt%20", 200, `"symbol":"BTCUSDT"`},
		{"/data/open-interest?symbol=+BTCUSDT", 200, `"symbol":"BTCUSDT"`},
		{"/data/date-range?symbol=btcusdt%09", 200, `"candles":864`},
		{"/prices/klines?symbol=BTCUSDT&start_time=-9000000000000000000&end_time=-8999999999999000000", 400, `"error":"start_time:`},
		{"/data/open-interest?symbol=BTCUSDT&start_time=2025-12-29T00:00:00Z&end_time=9000000000000000000", 400, `"error":"end_time:`},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %.200s, want %d containing %s", tc.path, resp.StatusCode, b, tc.code, tc.want)
		}
	}
}

func TestReview15CacheLimitDefaults(t *testing.T) {
	for _, tc := range []struct {
		name                string
		bytes, entry        int64
		wantBytes, wantEach int64
	}{
		{"zero means the defaults", 0, 0, DefaultCacheBytes, DefaultCacheBytes / 8},
		{"the entry cap follows the budget", 1 << 20, 0, 1 << 20, 128 << 10},
		{"both set", 1 << 20, 4096, 1 << 20, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := defaults()
			d.CacheBytes, d.CacheEntryBytes = tc.bytes, tc.entry
			h := New(nil, d, time.Now, discard())
			if h.budget != tc.wantBytes || h.entryCap != tc.wantEach || h.timeout != DefaultComputeTimeout {
				t.Fatalf("budget %d, entry cap %d, timeout %v; want %d, %d, %v", h.budget, h.entryCap, h.timeout, tc.wantBytes, tc.wantEach, DefaultComputeTimeout)
			}
		})
	}
}
