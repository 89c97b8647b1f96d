package ingest

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/fakebinance"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// instantClock ends every wait at once, moving its time by the wait: the
// waits are what the test reads.
type instantClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *instantClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestBudgetPaces(t *testing.T) {
	clk := &instantClock{now: time.Unix(1_700_000_000, 0)}
	b := newBudget(clk, time.Minute, 60) // 1 a second, 60 at once
	for _, tc := range []struct {
		name    string
		advance time.Duration // before taking
		take    int
		wait    time.Duration
	}{
		{"a full bucket pays at once", 0, 60, 0},
		{"an empty one waits for the refill", 0, 10, 10 * time.Second},
		{"time refills it", 30 * time.Second, 30, 0},
		{"a reservation past the bucket waits its share", 0, 5, 5 * time.Second},
		{"never more than the burst is saved", time.Hour, 61, time.Second},
	} {
		clk.mu.Lock()
		clk.now = clk.now.Add(tc.advance)
		clk.mu.Unlock()
		got, err := b.take(context.Background(), tc.take)
		if err != nil || got != tc.wait {
			t.Fatalf("%s: waited %s (%v), want %s", tc.name, got, err, tc.wait)
		}
	}
}

// TestBackfillStaysWithinItsShareOfBinancesLimits backfills a week of 3
// symbols with a budget of 20 weight a minute and 10 openInterestHist
// requests per 5 minutes: the requests wait for their share, and everything
// is still stored.
func TestBackfillStaysWithinItsShareOfBinancesLimits(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	fx := fakebinance.New(fakebinance.Config{Symbols: syms, Start: now.Add(-7 * 24 * time.Hour), Now: now})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	st, _ := openStore(t)
	clk := &instantClock{now: now}
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: syms, Lookback: 7 * 24 * time.Hour,
		WeightPerMinute: 20, OIPer5Minutes: 10, Clock: clk}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.poll(context.Background())
	s := b.Stats()
	for _, sym := range syms {
		if got, want := len(mustKlines(t, st, sym)), len(fx.Klines(sym)); got != want {
			t.Fatalf("%s: %d candles stored, want %d", sym, got, want)
		}
	}
	// 3 symbols × (1000 + 1000 + 17 candles): weight 5 + 5 + 1 each, 33 in
	// all, of which 20 the full bucket pays; the rest at 20 a minute is 39 s.
	// Open interest: 3 × 5 windows of 500 periods, 15 requests, 10 at once,
	// 5 at 2 a minute: 150 s. They share the clock, so the poll waited at
	// least the longer of the two (less the bucket's float rounding).
	if s.Paced < 150*time.Second-time.Millisecond {
		t.Fatalf("the backfill waited %s for its budget, want at least 150 s (33 weight and 15 openInterestHist requests against 20/min and 10/5min)", s.Paced)
	}
	t.Logf("backfill paced for %s of the source's clock; %d requests", s.Paced, len(fx.Stats().KlineRequests))
}

func mustKlines(t *testing.T, st *store.Store, sym string) []store.Kline {
	t.Helper()
	ks, err := st.Klines(context.Background(), sym, "5m")
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestStreamClosesBeforeTheFirstBackfillKeepsHistory: the stream comes up
// and stores a closed candle before the poller has backfilled the symbol
// (100 symbols take a while); the backfill must still fetch the whole
// lookback, not start after the candle the stream closed.
func TestStreamClosesBeforeTheFirstBackfillKeepsHistory(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	fx := fakebinance.New(fakebinance.Config{Symbols: []string{"BTCUSDT"}, Start: now.Add(-24 * time.Hour), Now: now})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	st, _ := openStore(t)
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"BTCUSDT"}, Lookback: 24 * time.Hour,
		Clock: &instantClock{now: now}}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.StreamUp([]string{"BTCUSDT"})
	// The stream's writer stored the candle that just closed.
	ks := fx.Klines("BTCUSDT")
	closed := ks[len(ks)-2]
	if err := st.UpsertKlines(context.Background(), []store.Kline{{Symbol: "BTCUSDT", Interval: "5m", OpenTime: closed.Open,
		Open: closed.O, High: closed.H, Low: closed.L, Close: closed.C, Volume: closed.V}}); err != nil {
		t.Fatal(err)
	}
	b.MarkFinal("BTCUSDT", closed.Open)
	b.poll(context.Background())
	if got, want := len(mustKlines(t, st, "BTCUSDT")), len(ks); got != want {
		t.Fatalf("%d candles stored after the first backfill, want the whole day's %d", got, want)
	}
	// Once backfilled, a closed candle the stream stores moves the next
	// backfill's start: a reconnect fetches from the candle after it.
	b.MarkFinal("BTCUSDT", ks[len(ks)-1].Open)
	b.StreamDown([]string{"BTCUSDT"})
	b.StreamUp([]string{"BTCUSDT"})
	fetch, from, backfill, _ := b.klinePlan("BTCUSDT", b.symbols["BTCUSDT"])
	if want := ks[len(ks)-1].Open.Add(5 * time.Minute); !fetch || !backfill || !from.Equal(want) {
		t.Fatalf("after a reconnect: fetch %t backfill %t from %s, want a backfill from %s", fetch, backfill, from, want)
	}
}

// Binance weighs a klines request by its limit: 5 up to 1000 rows, 10 above,
// so pages of 1000 get 200 candles per weight and pages of 1500 only 150. A
// week's backfill of one symbol (2,017 candles) must cost 5 + 5 + 1, not
// 10 + 5.
func TestBackfillPagesAreTheCheapestPerCandle(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	fx := fakebinance.New(fakebinance.Config{Symbols: []string{"BTCUSDT"}, Start: now.Add(-7 * 24 * time.Hour), Now: now})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	st, _ := openStore(t)
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"BTCUSDT"}, Lookback: 7 * 24 * time.Hour,
		Clock: &instantClock{now: now}}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.poll(context.Background())
	if got, want := len(mustKlines(t, st, "BTCUSDT")), len(fx.Klines("BTCUSDT")); got != want {
		t.Fatalf("%d candles stored, want %d", got, want)
	}
	var weight int
	for _, r := range fx.Stats().KlineRequests {
		weight += klineWeight(r.Limit)
	}
	if weight != 11 {
		t.Fatalf("klines requests %+v weigh %d, want 11 (pages of 1000)", fx.Stats().KlineRequests, weight)
	}
}
