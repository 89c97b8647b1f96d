package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/fakebinance"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// marketClock reads the fake market's clock; waits are real, so the poller
// runs as fast as the test lets it.
type marketClock struct{ fx *fakebinance.Server }

func (c marketClock) Now() time.Time                         { return c.fx.Now() }
func (c marketClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// liveRig is a fake Binance, a real store, the poller and the streams.
type liveRig struct {
	fx     *fakebinance.Server
	st     *store.Store
	db     *sql.DB
	poller *Binance
	stream *Stream
	syms   []string
	stop   func()
}

func startLiveRig(t *testing.T, syms []string, maxStreams int, tune func(*StreamConfig)) *liveRig {
	t.Helper()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	fx := fakebinance.New(fakebinance.Config{Symbols: syms, Start: now.Add(-2 * 24 * time.Hour), Now: now, Seed: 7,
		LiquidationsPerMinute: 20, MaxStreams: maxStreams})
	srv := httptest.NewServer(fx)
	t.Cleanup(srv.Close)
	st, db := openStore(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	poller, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: syms, Interval: "5m", PollInterval: 50 * time.Millisecond,
		Lookback: 3 * 24 * time.Hour, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Clock: marketClock{fx}}, st, log.With("source", "rest"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := StreamConfig{URL: "ws://" + strings.TrimPrefix(srv.URL, "http://"), Symbols: syms, Interval: "5m",
		MaxStreams: maxStreams, PingEvery: 150 * time.Millisecond, Silence: 600 * time.Millisecond, MaxAge: time.Hour,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Flush: 20 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	stream, err := NewStream(cfg, st, poller, log.With("source", "stream"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := poller.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { poller.Run(ctx) })
	wg.Go(func() { stream.Run(ctx) })
	r := &liveRig{fx: fx, st: st, db: db, poller: poller, stream: stream, syms: syms, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(r.stop)
	return r
}

// await polls cond until it holds; what it last reported is the failure.
func await(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, state)
		}
		time.Sleep(10 * time.Millisecond) // polling an outside condition, not synchronising
	}
}

// connected waits until every shard is connected and nothing is left to
// backfill.
func (r *liveRig) connected(t *testing.T, dialsAtLeast uint64) {
	t.Helper()
	await(t, "streams connected", 10*time.Second, func() (bool, string) {
		s := r.stream.Stats()
		return s.Connected == s.Connections && s.Dials >= dialsAtLeast && r.caughtUp(), ""
	})
}

// caughtUp reports whether the poller has no backfill pending.
func (r *liveRig) caughtUp() bool {
	r.poller.mu.Lock()
	defer r.poller.mu.Unlock()
	for _, st := range r.poller.streams {
		if !st.up || st.pending {
			return false
		}
	}
	return true
}

// advance moves the market by d in steps of a second of market time,
// a minute at a time.
func (r *liveRig) advance(d time.Duration) {
	to := r.fx.Now().Add(d)
	for t := r.fx.Now(); t.Before(to); {
		t = t.Add(time.Minute)
		if t.After(to) {
			t = to
		}
		r.fx.Advance(t)
	}
}

// matchesTruth compares the store with the fake market: every candle,
// closed and open, every open-interest row, and the liquidations delivered
// on some connection.
func (r *liveRig) matchesTruth(t *testing.T) (bool, string) {
	t.Helper()
	ctx := context.Background()
	for _, sym := range r.syms {
		want := r.fx.Klines(sym)
		got, err := r.st.Klines(ctx, sym, "5m")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			return false, fmt.Sprintf("%s: %d candles stored, the market made %d", sym, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if !g.OpenTime.Equal(w.Open) || g.Open != w.O || g.High != w.H || g.Low != w.L || g.Close != w.C || g.Volume != w.V {
				return false, fmt.Sprintf("%s candle %s: stored %+v, market %+v", sym, w.Open.Format(time.RFC3339), g, w)
			}
		}
		wantOI := r.fx.OpenInterest(sym)
		rows, err := r.db.Query(`SELECT ts, open_interest, open_interest_value FROM open_interest WHERE symbol = ? ORDER BY ts`, sym)
		if err != nil {
			t.Fatal(err)
		}
		var gotOI []fakebinance.OI
		for rows.Next() {
			var o fakebinance.OI
			if err := rows.Scan(&o.TS, &o.OI, &o.Value); err != nil {
				t.Fatal(err)
			}
			gotOI = append(gotOI, o)
		}
		rows.Close()
		if len(gotOI) != len(wantOI) {
			return false, fmt.Sprintf("%s: %d open interest rows stored, the market published %d", sym, len(gotOI), len(wantOI))
		}
		for i, w := range wantOI {
			if g := gotOI[i]; !g.TS.Equal(w.TS) || g.OI != w.OI || g.Value != w.Value {
				return false, fmt.Sprintf("%s open interest %d: stored %+v, market %+v", sym, i, g, w)
			}
		}
	}
	all, delivered := r.fx.Liquidations()
	want := map[string]bool{}
	for i, l := range all {
		if delivered[i] {
			want[liqKey(l.Symbol, l.Time, l.Price, l.Quantity)] = true
		}
	}
	got := 0
	for _, sym := range r.syms {
		ls, err := r.st.Liquidations(ctx, store.LiquidationQuery{Symbol: sym, From: time.Unix(0, 0), To: time.Now().AddDate(10, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if !want[liqKey(l.Symbol, l.Time, l.Price, l.Quantity)] {
				t.Fatalf("stored liquidation %+v was never delivered", l)
			}
			got++
		}
	}
	if got != len(want) {
		return false, fmt.Sprintf("%d liquidations stored, %d delivered", got, len(want))
	}
	return true, ""
}

func liqKey(sym string, at time.Time, price, qty float64) string {
	return fmt.Sprintf("%s|%d|%g|%g", sym, at.UnixMilli(), price, qty)
}

// TestStreamsStoreWhatAnUninterruptedFeedWould runs the poller and the
// streams against a fake Binance that drops connections, sends duplicates
// and out-of-order updates, goes silent, refuses requests with 429 and 418,
// and moves on while nobody is connected: what is stored must equal the
// market, candle for candle, and the backfill after each gap must ask for
// exactly the candles not stored closed.
func TestStreamsStoreWhatAnUninterruptedFeedWould(t *testing.T) {
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	// Two streams per connection: the liquidations and BTC, then ETH and
	// SOL. The fake refuses a connection asking for more.
	r := startLiveRig(t, syms, 2, nil)
	r.connected(t, 2)
	if got := r.fx.Stats().MaxConnStream; got != 2 {
		t.Fatalf("largest connection asked for %d streams, want 2", got)
	}
	await(t, "initial history stored", 20*time.Second, func() (bool, string) { return r.matchesTruth(t) })

	settle := func(name string) {
		t.Helper()
		await(t, name, 20*time.Second, func() (bool, string) { return r.matchesTruth(t) })
		t.Logf("%s: store matches the market at %s", name, r.fx.Now().Format(time.TimeOnly))
	}
	step := func(name string, d time.Duration) {
		t.Helper()
		r.advance(d)
		settle(name)
	}
	step("streaming", 7*time.Minute)

	r.fx.Duplicate(true)
	step("duplicates", 6*time.Minute)
	r.fx.Duplicate(false)
	if d := r.stream.Stats().Dropped["duplicate"]; d == 0 {
		t.Fatal("no duplicate was dropped while the fake sent every message twice")
	}

	r.fx.Reorder(true)
	r.advance(6 * time.Minute)
	r.fx.Reorder(false) // sends the update it held back last
	settle("out of order")
	if d := r.stream.Stats().Dropped; d["stale"]+d["after_final"] == 0 {
		t.Fatalf("no late update was dropped while the fake sent them out of order: %v", d)
	}

	// A gap: the connections drop and handshakes are refused (429, then a
	// ban) while the market moves 12 minutes; the backfill must fetch from
	// the first candle not stored closed, and REST is refused too for a
	// while.
	before := r.fx.Stats()
	dials0 := r.stream.Stats().Dials
	firstOpen := map[string]time.Time{}
	for _, sym := range syms {
		ks := r.fx.Klines(sym)
		firstOpen[sym] = ks[len(ks)-1].Open // the open one: stored, not closed
	}
	r.fx.RejectConnections(2, 429, 1)
	r.fx.RejectConnections(1, 418, 1)
	r.fx.FailREST(2, 429, 1)
	if n := r.fx.DropConnections(); n != 2 {
		t.Fatalf("dropped %d connections, want 2", n)
	}
	r.advance(12 * time.Minute)
	r.connected(t, dials0+2)
	step("after a 12-minute gap", 30*time.Second)
	after := r.fx.Stats()
	if after.Rejected-before.Rejected < 3 || after.Refused-before.Refused < 2 {
		t.Fatalf("refused %d handshakes and %d requests, want 3 and 2", after.Rejected-before.Rejected, after.Refused-before.Refused)
	}
	for _, sym := range syms {
		var starts []time.Time
		for _, q := range after.KlineRequests[len(before.KlineRequests):] {
			if q.Symbol == sym {
				starts = append(starts, q.Start)
			}
		}
		if len(starts) == 0 || !starts[0].Equal(firstOpen[sym]) {
			t.Fatalf("%s: backfill requests started at %v, want the first at %s, the candle open when the connection dropped", sym, starts, firstOpen[sym])
		}
	}

	// A half-dead link: no messages, no pongs. The client must notice
	// within Silence and reconnect; the candles it missed are backfilled.
	dials := r.stream.Stats().Dials
	r.fx.Silence()
	r.advance(2 * time.Minute)
	r.connected(t, dials+2)
	step("after silence", 30*time.Second)

	all, delivered := r.fx.Liquidations()
	missed := 0
	for _, d := range delivered {
		if !d {
			missed++
		}
	}
	st := r.stream.Stats()
	t.Logf("liquidations: %d happened, %d delivered and stored, %d happened while no connection carried them; stream %+v",
		len(all), len(all)-missed, missed, st)
	if missed == 0 || missed == len(all) {
		t.Fatalf("%d of %d liquidations missed: the gaps should have lost some, the streams kept most", missed, len(all))
	}
}

// TestStreamConnectionsAreReplacedWithoutAGap replaces connections at
// MaxAge (Binance cuts them at 24 h) while the market moves: the next
// connection opens before the old one closes, so no liquidation is missed
// and no backfill is needed.
func TestStreamConnectionsAreReplacedWithoutAGap(t *testing.T) {
	r := startLiveRig(t, []string{"BTCUSDT"}, 0, func(c *StreamConfig) {
		c.MaxAge, c.Overlap = 150*time.Millisecond, 50*time.Millisecond
	})
	r.connected(t, 1)
	await(t, "initial history stored", 20*time.Second, func() (bool, string) { return r.matchesTruth(t) })
	klineRequests := len(r.fx.Stats().KlineRequests)
	// Market time moves 10 s per 5 ms of real time until 5 rotations passed.
	for r.stream.Stats().Rotations < 5 {
		r.fx.Advance(r.fx.Now().Add(10 * time.Second))
		time.Sleep(5 * time.Millisecond) // pacing the market, not synchronising
	}
	await(t, "store matches after rotations", 20*time.Second, func() (bool, string) { return r.matchesTruth(t) })
	all, delivered := r.fx.Liquidations()
	for i, d := range delivered {
		if !d {
			t.Fatalf("liquidation %+v was sent on no connection during a replacement", all[i])
		}
	}
	st := r.stream.Stats()
	if st.Disconnected != 0 {
		t.Fatalf("down for %s across replacements, want 0", st.Disconnected)
	}
	if n := len(r.fx.Stats().KlineRequests) - klineRequests; n != 0 {
		t.Fatalf("%d klines requests during replacements, want none (no backfill)", n)
	}
	t.Logf("%d replacements, %d liquidations all delivered and stored", st.Rotations, len(all))
}
