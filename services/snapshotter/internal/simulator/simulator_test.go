package simulator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/demo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

const iv = 5 * time.Minute

// open of the current candle in most tests; now is a little after it.
var t0 = time.Date(2025, 1, 20, 12, 0, 0, 0, time.UTC)

var errBoom = errors.New("boom")

// memStore is an in-memory Writer; the DuckDB store has its own tests.
type memStore struct {
	mu     sync.Mutex
	klines map[klineKey]store.Kline
	ois    map[oiKey]store.OpenInterest
	// fail, when set, decides whether an operation ("last", "klines", "oi") for sym fails.
	fail func(op, sym string) error
}

type klineKey struct {
	sym, iv string
	open    time.Time
}

type oiKey struct {
	sym string
	ts  time.Time
}

func newMemStore() *memStore {
	return &memStore{klines: map[klineKey]store.Kline{}, ois: map[oiKey]store.OpenInterest{}}
}

func (m *memStore) failing(op, sym string) error {
	if m.fail == nil {
		return nil
	}
	return m.fail(op, sym)
}

func (m *memStore) setFail(f func(op, sym string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

func (m *memStore) LastKline(_ context.Context, sym, interval string) (store.Kline, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing("last", sym); err != nil {
		return store.Kline{}, false, err
	}
	var last store.Kline
	ok := false
	for k, v := range m.klines {
		if k.sym == sym && k.iv == interval && (!ok || v.OpenTime.After(last.OpenTime)) {
			last, ok = v, true
		}
	}
	return last, ok, nil
}

func (m *memStore) LastOpenInterest(_ context.Context, sym string) (store.OpenInterest, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing("lastoi", sym); err != nil {
		return store.OpenInterest{}, false, err
	}
	var last store.OpenInterest
	ok := false
	for k, v := range m.ois {
		if k.sym == sym && (!ok || v.TS.After(last.TS)) {
			last, ok = v, true
		}
	}
	return last, ok, nil
}

func (m *memStore) UpsertKlines(_ context.Context, ks []store.Kline) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range ks {
		if err := m.failing("klines", k.Symbol); err != nil {
			return err
		}
	}
	for _, k := range ks {
		m.klines[klineKey{k.Symbol, k.Interval, k.OpenTime.UTC()}] = k
	}
	return nil
}

// Upsert writes both or, when either side fails, neither: as the store's
// one transaction does.
func (m *memStore) Upsert(_ context.Context, ks []store.Kline, ois []store.OpenInterest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range ks {
		if err := m.failing("klines", k.Symbol); err != nil {
			return err
		}
	}
	for _, o := range ois {
		if err := m.failing("oi", o.Symbol); err != nil {
			return err
		}
	}
	for _, k := range ks {
		m.klines[klineKey{k.Symbol, k.Interval, k.OpenTime.UTC()}] = k
	}
	for _, o := range ois {
		m.ois[oiKey{o.Symbol, o.TS.UTC()}] = o
	}
	return nil
}

func (m *memStore) UpsertOpenInterest(_ context.Context, ois []store.OpenInterest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range ois {
		if err := m.failing("oi", o.Symbol); err != nil {
			return err
		}
	}
	for _, o := range ois {
		m.ois[oiKey{o.Symbol, o.TS.UTC()}] = o
	}
	return nil
}

// series returns sym's 5m candles oldest first.
func (m *memStore) series(sym string) []store.Kline {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Kline
	for k, v := range m.klines {
		if k.sym == sym && k.iv == "5m" {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b store.Kline) int { return a.OpenTime.Compare(b.OpenTime) })
	return out
}

func (m *memStore) kline(sym string, open time.Time) (store.Kline, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.klines[klineKey{sym, "5m", open}]
	return k, ok
}

func (m *memStore) oi(sym string, ts time.Time) (store.OpenInterest, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.ois[oiKey{sym, ts}]
	return o, ok
}

// seed stores n demo candles whose last one opens at lastOpen.
func (m *memStore) seed(t *testing.T, sym string, lastOpen time.Time, n int) {
	t.Helper()
	ks, ois := demo.Generate(sym, 1, lastOpen.Add(iv), iv, n)
	if err := m.UpsertKlines(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	if err := m.UpsertOpenInterest(context.Background(), ois); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is a Clock whose time and ticks the test controls.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	ticks   chan time.Time
	stopped bool
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, ticks: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) NewTicker(time.Duration) Ticker { return fakeTicker{c} }

// fire delivers one tick; because the channel is unbuffered it returns only
// once Run is back in its select, i.e. after the previous Step finished.
func (c *fakeClock) fire(t *testing.T) {
	t.Helper()
	select {
	case c.ticks <- c.Now():
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not take the tick")
	}
}

type fakeTicker struct{ c *fakeClock }

func (t fakeTicker) C() <-chan time.Time { return t.c.ticks }

func (t fakeTicker) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.stopped = true
}

func newSim(t *testing.T, w Writer, clk Clock, symbols ...string) *Simulator {
	return New(Config{Symbols: symbols, Interval: iv, Tick: 2 * time.Second, Seed: 7}, w, clk, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// checkContinuous verifies candles are back to back in time and price.
func checkContinuous(t *testing.T, ks []store.Kline) {
	t.Helper()
	for i, k := range ks {
		if k.Low <= 0 || k.Low > math.Min(k.Open, k.Close) || k.High < math.Max(k.Open, k.Close) {
			t.Fatalf("candle %d (%v): bad OHLC %+v", i, k.OpenTime, k)
		}
		if i == 0 {
			continue
		}
		if d := k.OpenTime.Sub(ks[i-1].OpenTime); d != iv {
			t.Fatalf("candle %d: %v after previous, want %v", i, d, iv)
		}
		if k.Open != ks[i-1].Close {
			t.Fatalf("candle %d (%v): open %v != previous close %v", i, k.OpenTime, k.Open, ks[i-1].Close)
		}
	}
}

func TestStepBackfillsGap(t *testing.T) {
	tests := []struct {
		name    string
		missing int // whole closed candles absent between the stored history and now
	}{
		{"previous candle stored", 0},
		{"one missing", 1},
		{"three missing", 3},
		{"a day missing", 288},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const history = 12
			ms := newMemStore()
			lastOpen := t0.Add(-time.Duration(tt.missing+1) * iv)
			ms.seed(t, "BTCUSDT", lastOpen, history)
			sim := newSim(t, ms, newFakeClock(t0.Add(90*time.Second)), "BTCUSDT")

			if err := sim.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			ks := ms.series("BTCUSDT")
			if want := history + tt.missing + 1; len(ks) != want {
				t.Fatalf("got %d candles, want %d", len(ks), want)
			}
			if !ks[len(ks)-1].OpenTime.Equal(t0) {
				t.Fatalf("newest candle opens at %v, want current %v", ks[len(ks)-1].OpenTime, t0)
			}
			checkContinuous(t, ks)
			for _, k := range ks[history-1:] {
				o, ok := ms.oi("BTCUSDT", k.OpenTime)
				if !ok || o.OpenInterestValue <= 0 {
					t.Fatalf("no OI at %v", k.OpenTime)
				}
			}
		})
	}
}

func TestStepCapsBackfillAt30Days(t *testing.T) {
	ms := newMemStore()
	stale := t0.Add(-45 * 24 * time.Hour)
	ms.seed(t, "ETHUSDT", stale, 5)
	staleClose := ms.series("ETHUSDT")[4].Close
	var logs bytes.Buffer
	sim := New(Config{Symbols: []string{"ETHUSDT"}, Interval: iv}, ms, newFakeClock(t0.Add(time.Minute)), slog.New(slog.NewTextHandler(&logs, nil)))

	if err := sim.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	ks := ms.series("ETHUSDT")
	fresh := ks[5:]
	if want := 30*24*12 + 1; len(fresh) != want {
		t.Fatalf("got %d new candles, want %d (30 days + current)", len(fresh), want)
	}
	if !fresh[0].OpenTime.Equal(t0.Add(-30 * 24 * time.Hour)) {
		t.Fatalf("backfill starts at %v, want 30 days before %v", fresh[0].OpenTime, t0)
	}
	if fresh[0].Open != staleClose {
		t.Fatalf("backfill opens at %v, want the stale close %v", fresh[0].Open, staleClose)
	}
	checkContinuous(t, fresh)
	if !strings.Contains(logs.String(), "backfill cap") {
		t.Fatalf("capped backfill not logged:\n%s", logs.String())
	}
}

func TestStepStartsFromStore(t *testing.T) {
	tests := []struct {
		name      string
		stored    *store.Kline
		wantOpen  func(float64) bool
		wantCount int
	}{
		{
			name:      "empty store starts at the symbol's typical price",
			wantOpen:  func(p float64) bool { return p > 90_000 && p < 100_000 },
			wantCount: 1,
		},
		{
			name:      "restart mid candle keeps the stored open candle",
			stored:    &store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: t0, Open: 60_000, High: 60_500, Low: 59_800, Close: 60_100, Volume: 12},
			wantOpen:  func(p float64) bool { return p == 60_000 },
			wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := newMemStore()
			if tt.stored != nil {
				if err := ms.UpsertKlines(context.Background(), []store.Kline{*tt.stored}); err != nil {
					t.Fatal(err)
				}
			}
			sim := newSim(t, ms, newFakeClock(t0.Add(2*time.Minute)), "BTCUSDT")
			if err := sim.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			ks := ms.series("BTCUSDT")
			if len(ks) != tt.wantCount {
				t.Fatalf("got %d candles, want %d", len(ks), tt.wantCount)
			}
			k := ks[0]
			if !k.OpenTime.Equal(t0) || !tt.wantOpen(k.Open) {
				t.Fatalf("unexpected candle %+v", k)
			}
			if s := tt.stored; s != nil {
				if k.High < s.High || k.Low > s.Low || k.Volume <= s.Volume {
					t.Fatalf("stored extremes/volume not kept: %+v -> %+v", *s, k)
				}
				// The walk continues from the stored close, so one 2s step stays close to it.
				if math.Abs(k.Close/s.Close-1) > 0.01 {
					t.Fatalf("close %v jumped away from stored close %v", k.Close, s.Close)
				}
			}
		})
	}
}

func TestStepUpdatesOpenCandle(t *testing.T) {
	ms := newMemStore()
	ms.seed(t, "BTCUSDT", t0.Add(-iv), 10)
	clk := newFakeClock(t0.Add(time.Second))
	sim := newSim(t, ms, clk, "BTCUSDT")

	var prev store.Kline
	closes := map[float64]bool{}
	for i := range 140 { // 140 ticks of 2s stay inside the 5m candle
		clk.set(t0.Add(time.Second + time.Duration(i)*2*time.Second))
		if err := sim.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		k, ok := ms.kline("BTCUSDT", t0)
		if !ok {
			t.Fatalf("step %d: no open candle", i)
		}
		if n := len(ms.series("BTCUSDT")); n != 11 {
			t.Fatalf("step %d: %d candles, want the open one updated in place", i, n)
		}
		if k.Low > math.Min(k.Open, k.Close) || k.High < math.Max(k.Open, k.Close) {
			t.Fatalf("step %d: bad OHLC %+v", i, k)
		}
		if i > 0 {
			if k.Open != prev.Open {
				t.Fatalf("step %d: open changed %v -> %v", i, prev.Open, k.Open)
			}
			if k.High < prev.High || k.Low > prev.Low || k.Volume < prev.Volume {
				t.Fatalf("step %d: extremes or volume went backwards: %+v -> %+v", i, prev, k)
			}
		}
		o, ok := ms.oi("BTCUSDT", t0)
		if !ok || o.OpenInterestValue <= 0 || math.Abs(o.OpenInterest*k.Close/o.OpenInterestValue-1) > 1e-9 {
			t.Fatalf("step %d: OI at open time %+v (ok=%v), close %v", i, o, ok, k.Close)
		}
		closes[k.Close] = true
		prev = k
	}
	if len(closes) < 100 {
		t.Fatalf("price barely moved: %d distinct closes in 140 ticks", len(closes))
	}
	if prev.High == prev.Low {
		t.Fatal("open candle has no range after a whole interval of ticks")
	}
}

func TestStepCrossesIntervalBoundary(t *testing.T) {
	ms := newMemStore()
	ms.seed(t, "BTCUSDT", t0.Add(-iv), 10)
	clk := newFakeClock(t0.Add(iv - 3*time.Second))
	sim := newSim(t, ms, clk, "BTCUSDT")
	for _, at := range []time.Duration{iv - 3*time.Second, iv - time.Second, iv + time.Second, iv + 3*time.Second} {
		clk.set(t0.Add(at))
		if err := sim.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ks := ms.series("BTCUSDT")
	if len(ks) != 12 {
		t.Fatalf("got %d candles, want 10 stored + the one that closed + the new one", len(ks))
	}
	next := ks[11]
	if !next.OpenTime.Equal(t0.Add(iv)) {
		t.Fatalf("new candle opens at %v, want %v", next.OpenTime, t0.Add(iv))
	}
	checkContinuous(t, ks)
	if _, ok := ms.oi("BTCUSDT", t0.Add(iv)); !ok {
		t.Fatal("no OI for the new candle")
	}
}

func TestStepWriterErrors(t *testing.T) {
	tests := []struct {
		name     string
		op       string
		seedGap  bool // store a candle 3 intervals old so the step has to backfill
		wantText string
	}{
		{"last kline", "last", false, "simulator BTCUSDT: last kline: boom"},
		{"upsert kline", "klines", false, "simulator BTCUSDT: upsert candle and open interest: boom"},
		{"upsert open interest", "oi", false, "simulator BTCUSDT: upsert candle and open interest: boom"},
		{"backfill klines", "klines", true, "simulator BTCUSDT: backfill 3 candles and open interest: boom"},
		{"backfill open interest", "oi", true, "simulator BTCUSDT: backfill 3 candles and open interest: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := newMemStore()
			lastOpen := t0.Add(-iv)
			if tt.seedGap {
				lastOpen = t0.Add(-4 * iv)
			}
			ms.seed(t, "BTCUSDT", lastOpen, 5)
			ms.seed(t, "ETHUSDT", t0.Add(-iv), 5)
			ms.setFail(func(op, sym string) error {
				if op == tt.op && sym == "BTCUSDT" {
					return errBoom
				}
				return nil
			})
			sim := newSim(t, ms, newFakeClock(t0.Add(time.Minute)), "BTCUSDT", "ETHUSDT")

			err := sim.Step(context.Background())
			if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Step error = %v, want %q wrapping errBoom", err, tt.wantText)
			}
			if strings.Contains(err.Error(), "ETHUSDT") {
				t.Fatalf("healthy symbol reported: %v", err)
			}
			if _, ok := ms.kline("ETHUSDT", t0); !ok {
				t.Fatal("a failing symbol stopped the others from updating")
			}
			// Candles and their open interest land together or not at all:
			// a failed open-interest write leaves no candle of the step.
			if _, ok := ms.kline("BTCUSDT", t0); ok {
				t.Fatal("a candle was written without its open interest")
			}
			if _, ok := ms.kline("BTCUSDT", lastOpen.Add(iv)); ok && tt.seedGap {
				t.Fatal("a backfilled candle was written without its open interest")
			}

			// Once the store recovers the series must still be continuous.
			ms.setFail(nil)
			if err := sim.Step(context.Background()); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			checkContinuous(t, ms.series("BTCUSDT"))
		})
	}
}

func TestRunKeepsGoingAfterErrorsAndStopsOnCancel(t *testing.T) {
	ms := newMemStore()
	ms.seed(t, "BTCUSDT", t0.Add(-iv), 5)
	ms.setFail(func(op, sym string) error {
		if op == "klines" {
			return errBoom
		}
		return nil
	})
	clk := newFakeClock(t0.Add(time.Minute))
	var logs bytes.Buffer // written only by Run's goroutine, read after it returned
	sim := New(Config{Symbols: []string{"BTCUSDT"}, Interval: iv, Tick: time.Second}, ms, clk, slog.New(slog.NewTextHandler(&logs, nil)))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()

	clk.fire(t) // taken only after the start-up Step failed
	clk.fire(t) // ... and the first tick's Step failed too
	ms.setFail(nil)
	clk.fire(t)
	clk.fire(t) // the Step for the previous tick ran with a healthy store
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil on cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	if _, ok := ms.kline("BTCUSDT", t0); !ok {
		t.Fatal("Run gave up after store errors: no open candle written")
	}
	if n := strings.Count(logs.String(), "simulator BTCUSDT: upsert candle and open interest: boom"); n < 2 {
		t.Fatalf("want the failing steps logged, got %d:\n%s", n, logs.String())
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if !clk.stopped {
		t.Fatal("ticker not stopped")
	}
}

func TestRealClock(t *testing.T) {
	clk := RealClock()
	if d := time.Since(clk.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Now is %v off", d)
	}
	tk := clk.NewTicker(time.Millisecond)
	defer tk.Stop()
	select {
	case <-tk.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real ticker never fired")
	}
}

func TestNewDefaults(t *testing.T) {
	sim := New(Config{Symbols: []string{"BTCUSDT"}}, newMemStore(), nil, nil)
	if sim.cfg.Interval != 5*time.Minute || sim.cfg.Tick != 2*time.Second || sim.interval != "5m" {
		t.Fatalf("defaults: interval %v (%q), tick %v", sim.cfg.Interval, sim.interval, sim.cfg.Tick)
	}
}

// A restarted simulator must continue the stored OI: a jump would read as
// billions of USDT opened or closed in one candle and wipe or flood the heatmap.
func TestStepContinuesStoredOpenInterest(t *testing.T) {
	ms := newMemStore()
	ctx := context.Background()
	stored := store.OpenInterest{Symbol: "BTCUSDT", TS: t0.Add(-iv), OpenInterest: 1000, OpenInterestValue: 1.234e9}
	if err := ms.UpsertKlines(ctx, []store.Kline{{Symbol: "BTCUSDT", Interval: "5m", OpenTime: t0.Add(-iv), Open: 95_000, High: 95_100, Low: 94_900, Close: 95_000, Volume: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := ms.UpsertOpenInterest(ctx, []store.OpenInterest{stored}); err != nil {
		t.Fatal(err)
	}
	sim := newSim(t, ms, newFakeClock(t0.Add(2*time.Second)), "BTCUSDT")
	if err := sim.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ms.LastOpenInterest(ctx, "BTCUSDT")
	if err != nil || !ok || !got.TS.Equal(t0) {
		t.Fatalf("no OI written for the open candle: %+v %v %v", got, ok, err)
	}
	// The walker's own BTC level is ~8e9; one 2 s step from 1.234e9 moves well under 1 %.
	if r := got.OpenInterestValue/stored.OpenInterestValue - 1; math.Abs(r) > 0.01 {
		t.Fatalf("OI jumped from %v to %v (%.1f%%) at resume", stored.OpenInterestValue, got.OpenInterestValue, 100*r)
	}
	ms.setFail(func(op, sym string) error {
		if op == "lastoi" {
			return errBoom
		}
		return nil
	})
	if err := sim.Step(ctx); err == nil || !strings.Contains(err.Error(), "simulator BTCUSDT: last open interest") {
		t.Fatalf("a failing LastOpenInterest gave %v", err)
	}
}
