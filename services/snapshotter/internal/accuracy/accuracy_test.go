package accuracy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/services/snapshotter/internal/history"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// The fixture: BTCUSDT flat at price from 2026-11-29 to now, open interest
// rising once, at built, from 1e6 to 2e6 USDT. The classic model reads that
// flat (doji) candle as longs opened at 100000: 10x, the heaviest tier
// (30 %), liquidates at 90040, so bucket 90000 is its strongest long bucket,
// with 96000 (25x), 98000 (50x) and 99000 (100x) below it and 80000 (5x)
// outside the ±10 % universe [90000, 110000) of 200 buckets.
var (
	now   = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	day   = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	built = time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
)

const price = 100000.0

func config() Config {
	params := map[string]heatmap.Params{}
	for _, s := range []string{"BTCUSDT", "ETHUSDT"} {
		p := heatmap.DefaultParams()
		p.Brackets = heatmap.BracketsFor(s)
		params[s] = p
	}
	return Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Params: params, Interval: "5m", Lookback: 12 * time.Hour}
}

func fixture(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "a.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ks []store.Kline
	var ois []store.OpenInterest
	for at := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC); at.Before(now); at = at.Add(5 * time.Minute) {
		ks = append(ks, store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: at, Open: price, High: price, Low: price, Close: price, Volume: 1})
		oi := 1e6
		if !at.Before(built) {
			oi = 2e6
		}
		ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: at, OpenInterest: oi / price, OpenInterestValue: oi})
	}
	if err := st.Upsert(context.Background(), ks, ois); err != nil {
		t.Fatal(err)
	}
	return st
}

func liq(at time.Time, side string, p, notional float64) store.Liquidation {
	return store.Liquidation{Symbol: "BTCUSDT", Time: at, Side: side, Price: p, Quantity: notional / p, Notional: notional}
}

// strongestLong is the oracle for a model's strongest long bucket inside the
// universe at the start of day: the engine replayed directly over the
// candles of the live window before it.
func strongestLong(t *testing.T, st *store.Store, p heatmap.Params) float64 {
	t.Helper()
	cs, err := st.Candles(context.Background(), "BTCUSDT", "5m", day.Add(-12*time.Hour), day)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := heatmap.NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if _, err := eng.ApplyNoLevels(c); err != nil {
			t.Fatal(err)
		}
	}
	best := heatmap.Level{}
	for _, l := range eng.Levels() {
		if l.Price >= 0.9*price && l.Price < 1.1*price && l.LongDensity > best.LongDensity {
			best = l
		}
	}
	if best.LongDensity == 0 {
		t.Fatalf("the %s model has no long density in the universe", p.Model)
	}
	return best.Price
}

type fakeGate struct {
	admitted atomic.Int32
	err      error
}

func (g *fakeGate) Admit(context.Context) (func(), error) {
	if g.err != nil {
		return nil, g.err
	}
	g.admitted.Add(1)
	return func() {}, nil
}

func newHandler(t *testing.T, st Store, gate Gate, cfg Config) *Handler {
	t.Helper()
	h, err := New(st, gate, cfg, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

func TestScoresOfPlantedLiquidations(t *testing.T) {
	at := day.Add(6 * time.Hour)
	binanceTop := 0.0 // filled per store below: the oracle needs the fixture
	tests := []struct {
		name string
		liqs func() []store.Liquidation
		// want: classic, binance and distance scores; a negative binance is
		// not checked
		classic, binance, distance float64
		inside                     float64 // share of the notional inside the universe
	}{
		{"at classic's strongest long bucket", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideLong, 90050, 1e5), liq(at.Add(time.Hour), store.SideLong, 90010, 5e4)}
		}, 1, 0, 0, 1},
		{"at binance's strongest long bucket", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideLong, binanceTop+50, 2e5)}
		}, 0, 1, 0, 1},
		{"far from any density and from the price", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideLong, 105050, 1e5), liq(at, store.SideShort, 130000, 3e5)}
		}, 0, 0, 0, 0.25},
		{"a mix: 3 of 5 at the top, 1 inside elsewhere, 1 outside", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideLong, 90050, 3e5), liq(at, store.SideLong, 105050, 1e5), liq(at, store.SideShort, 130000, 1e5)}
		}, 0.6, 0, 0, 0.8},
		{"a short is compared with short density", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideShort, 90050, 1e5)}
		}, 0, 0, 0, 1},
		{"at the price: the distance baseline's", func() []store.Liquidation {
			return []store.Liquidation{liq(at, store.SideLong, 100010, 1e5)}
		}, 0, -1, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fixture(t)
			p := config().Params["BTCUSDT"]
			p.Model = heatmap.ModelBinance
			binanceTop = strongestLong(t, st, p)
			if got := strongestLong(t, st, config().Params["BTCUSDT"]); got != 90000 {
				t.Fatalf("the fixture's classic strongest long bucket is %g, want 90000", got)
			}
			ls := tc.liqs()
			if err := st.UpsertLiquidations(context.Background(), ls); err != nil {
				t.Fatal(err)
			}
			h := newHandler(t, st, &fakeGate{}, config())
			resp, err := h.Get(context.Background(), Query{Symbol: "BTCUSDT", Models: Models, From: day, To: day})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Days) != 1 || resp.Days[0].Scores == nil {
				t.Fatalf("days %+v, want one with scores", resp.Days)
			}
			d := resp.Days[0]
			notional := 0.0
			for _, l := range ls {
				notional += l.Notional
			}
			s := d.Scores
			if d.Liquidations != len(ls) || d.Notional != notional || s.Classic == nil || s.Binance == nil {
				t.Fatalf("day %+v, scores %+v: want %d liquidations of %g and both models", d, s, len(ls), notional)
			}
			if !near(*s.Classic, tc.classic) || (tc.binance >= 0 && !near(*s.Binance, tc.binance)) || !near(s.Distance, tc.distance) {
				t.Fatalf("classic %g, binance %g, distance %g; want %g, %g, %g", *s.Classic, *s.Binance, s.Distance, tc.classic, tc.binance, tc.distance)
			}
			// 200 buckets, a top of 20: uniform is exactly the top share of
			// what fell inside.
			if !near(s.Uniform, TopShare*tc.inside) {
				t.Fatalf("uniform %g, want %g × %g", s.Uniform, TopShare, tc.inside)
			}
			if resp.Total.Scores == nil || *resp.Total.Scores.Classic != *s.Classic || resp.Total.Notional != notional {
				t.Fatalf("total %+v of one day differs from the day", resp.Total)
			}
		})
	}
}

// The warm-up is the live loop's window: with a lookback that ends after
// the positions were built, the model holds none on the day.
func TestWarmupIsTheLiveWindow(t *testing.T) {
	st := fixture(t)
	if err := st.UpsertLiquidations(context.Background(), []store.Liquidation{liq(day.Add(time.Hour), store.SideLong, 90050, 1e5)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lookback time.Duration
		want     float64
	}{{12 * time.Hour, 1}, {5 * time.Hour, 0}} {
		cfg := config()
		cfg.Lookback = tc.lookback
		resp, err := newHandler(t, st, &fakeGate{}, cfg).Get(context.Background(), Query{Symbol: "BTCUSDT", Models: Models[:1], From: day, To: day})
		if err != nil {
			t.Fatal(err)
		}
		if s := resp.Days[0].Scores; s == nil || *s.Classic != tc.want {
			t.Fatalf("lookback %s: scores %+v, want classic %g", tc.lookback, s, tc.want)
		}
	}
}

func get(t *testing.T, srv *httptest.Server, query string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/data/model-accuracy?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func serve(t *testing.T, h *Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestEndpoint(t *testing.T) {
	st := fixture(t)
	day1 := day.AddDate(0, 0, -1) // positions built at 18:00 of it
	if err := st.UpsertLiquidations(context.Background(), []store.Liquidation{
		liq(day1.Add(20*time.Hour), store.SideLong, 90050, 2e5), // after the positions: a classic hit
		liq(day.Add(time.Hour), store.SideLong, 90050, 3e5),
		liq(day.Add(2*time.Hour), store.SideLong, 105050, 2e5),
		liq(now.Add(-time.Hour), store.SideLong, 90050, 1e5), // today so far
	}); err != nil {
		t.Fatal(err)
	}
	// The real gate: the time series' own, as app.go wires it.
	hist := history.New(nil, history.Defaults{}, time.Now, slog.New(slog.DiscardHandler))
	srv := serve(t, newHandler(t, st, hist, config()))

	code, _, body := get(t, srv, "symbol=%20btcusdt")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	// The exact shape another page builds on.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if got := keys(raw); !slices.Equal(got, []string{"days", "from", "models", "symbol", "to", "top_share", "total"}) {
		t.Fatalf("top-level keys %v", got)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Symbol != "BTCUSDT" || resp.From != "2026-11-24" || resp.To != "2026-12-01" || resp.TopShare != 0.1 || !slices.Equal(resp.Models, []string{"classic", "binance"}) || len(resp.Days) != 8 {
		t.Fatalf("default range: %s", body)
	}
	for i, d := range resp.Days {
		if want := day.AddDate(0, 0, i-6).Format(dateLayout); d.Date != want {
			t.Fatalf("day %d is %s, want %s", i, d.Date, want)
		}
		if (d.Liquidations == 0) != (d.Scores == nil) {
			t.Fatalf("day %s: %d liquidations, scores %+v: scores only with liquidations", d.Date, d.Liquidations, d.Scores)
		}
	}
	var days []map[string]json.RawMessage
	json.Unmarshal(raw["days"], &days)
	var scores map[string]json.RawMessage
	json.Unmarshal(days[6]["scores"], &scores)
	if got := keys(days[6]); !slices.Equal(got, []string{"date", "liquidations", "notional", "scores"}) {
		t.Fatalf("day keys %v", got)
	}
	if got := keys(scores); !slices.Equal(got, []string{"binance", "classic", "distance", "uniform"}) {
		t.Fatalf("score keys %v", got)
	}
	if _, ok := days[0]["scores"]; ok {
		t.Fatal("a day without liquidations has scores")
	}
	// Day by day and notional-weighted in total: 2e5 hit of 2e5, 3e5 of
	// 5e5, none of today's 1e5: today's window (12 h) no longer reaches
	// back to the positions.
	for _, tc := range []struct {
		got       *Scores
		n         int
		classic   float64
		inside    float64
		notional  float64
		wantTotal bool
	}{
		{resp.Days[5].Scores, resp.Days[5].Liquidations, 1, 1, resp.Days[5].Notional, false},
		{resp.Days[6].Scores, resp.Days[6].Liquidations, 0.6, 1, resp.Days[6].Notional, false},
		{resp.Days[7].Scores, resp.Days[7].Liquidations, 0, 1, resp.Days[7].Notional, false},
		{resp.Total.Scores, resp.Total.Liquidations, 5.0 / 8, 1, resp.Total.Notional, true},
	} {
		if tc.got == nil || tc.got.Classic == nil || tc.got.Binance == nil || !near(*tc.got.Classic, tc.classic) || !near(tc.got.Uniform, 0.1*tc.inside) {
			t.Fatalf("scores %+v (classic %v), want classic %g, both models, uniform %g", tc.got, tc.got.Classic, tc.classic, 0.1*tc.inside)
		}
	}
	if resp.Total.Liquidations != 4 || resp.Total.Notional != 8e5 {
		t.Fatalf("total %+v", resp.Total)
	}

	// One model, an explicit range.
	code, _, body = get(t, srv, "symbol=BTCUSDT&model=Binance&from=2026-11-30&to=2026-11-30")
	json.Unmarshal(body, &resp)
	if code != 200 || !slices.Equal(resp.Models, []string{"binance"}) || len(resp.Days) != 1 || resp.Days[0].Scores.Classic != nil || resp.Days[0].Scores.Binance == nil {
		t.Fatalf("model=binance: %d %s", code, body)
	}
	// A to after today is today.
	if code, _, body = get(t, srv, "symbol=BTCUSDT&from=2026-11-30&to=2027-01-01"); code != 200 || !strings.Contains(string(body), `"to":"2026-12-01"`) {
		t.Fatalf("to after today: %d %s", code, body)
	}
	// Only to: the week before it.
	if code, _, body = get(t, srv, "symbol=BTCUSDT&to=2026-11-10"); code != 200 || !strings.Contains(string(body), `"from":"2026-11-03","to":"2026-11-10"`) {
		t.Fatalf("only to: %d %s", code, body)
	}
}

func TestEndpointErrors(t *testing.T) {
	cfg := config()
	// Classic runs with these; binance's brackets refuse every tier at a
	// position of 400M USDT.
	p := cfg.Params["BTCUSDT"]
	p.PositionNotional = 4e8
	cfg.Symbols = append(cfg.Symbols, "SOLUSDT")
	cfg.Params["SOLUSDT"] = p
	srv := serve(t, newHandler(t, fixture(t), &fakeGate{}, cfg))
	for _, tc := range []struct {
		name, query, want string
	}{
		{"missing symbol", "", "symbol: required"},
		{"unknown symbol", "symbol=DOGEUSDT", `symbol: unknown symbol "DOGEUSDT"; valid symbols: BTCUSDT, ETHUSDT, SOLUSDT`},
		{"unknown model", "symbol=BTCUSDT&model=magic", `model: "magic" is not one of classic, binance`},
		{"a model the symbol's parameters cannot run", "symbol=SOLUSDT&model=binance", "model: binance cannot run with SOLUSDT's configured parameters"},
		{"bad from", "symbol=BTCUSDT&from=2026/11/30", `from: want a UTC date YYYY-MM-DD, got "2026/11/30"`},
		{"a time is not a date", "symbol=BTCUSDT&from=2026-11-30T00:00:00Z", "from: want a UTC date"},
		{"bad to", "symbol=BTCUSDT&to=yesterday", "to: want a UTC date"},
		{"from after today", "symbol=BTCUSDT&from=2026-12-02", "from: 2026-12-02 is after today (2026-12-01 UTC)"},
		{"to before from", "symbol=BTCUSDT&from=2026-11-30&to=2026-11-29", "to: 2026-11-29 is before from (2026-11-30)"},
		{"range too long", "symbol=BTCUSDT&from=2026-10-01&to=2026-11-30", "from: the range holds 61 days, at most 31"},
		{"32 days", "symbol=BTCUSDT&from=2026-10-30&to=2026-11-30", "from: the range holds 32 days, at most 31"},
		{"unknown parameter", "symbol=BTCUSDT&interval=1h", "interval: unknown parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := get(t, srv, tc.query)
			var e struct{ Error string }
			json.Unmarshal(body, &e)
			if code != 400 || !strings.HasPrefix(e.Error, tc.want) {
				t.Fatalf("%d %s, want 400 starting %q", code, body, tc.want)
			}
		})
	}
	// 31 days is allowed; a symbol whose parameters only run classic is
	// scored with classic alone.
	if code, _, body := get(t, srv, "symbol=SOLUSDT&from=2026-11-01&to=2026-12-01"); code != 200 || !strings.Contains(string(body), `"models":["classic"]`) {
		t.Fatalf("31 days of SOLUSDT: %d %s", code, body)
	}
}

func TestBusyIs503WithRetryAfter(t *testing.T) {
	gate := &fakeGate{err: &history.BusyError{Running: 1, Queued: 8, RetryAfter: 2500 * time.Millisecond}}
	srv := serve(t, newHandler(t, fixture(t), gate, config()))
	code, hdr, body := get(t, srv, "symbol=BTCUSDT")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "3" || !strings.Contains(string(body), "history is busy") {
		t.Fatalf("%d Retry-After %q %s", code, hdr.Get("Retry-After"), body)
	}
}

// countingStore counts the candle reads: each is a replay about to happen.
type countingStore struct {
	*store.Store
	reads atomic.Int32
}

func (c *countingStore) Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error) {
	c.reads.Add(1)
	return c.Store.Candles(ctx, symbol, interval, from, to)
}

func TestFinishedDaysAreCachedUntilTheirDataChanges(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: fixture(t)}
	if err := st.UpsertLiquidations(ctx, []store.Liquidation{liq(day.Add(time.Hour), store.SideLong, 90050, 1e5)}); err != nil {
		t.Fatal(err)
	}
	gate := &fakeGate{}
	srv := serve(t, newHandler(t, st, gate, config()))
	const q = "symbol=BTCUSDT&from=2026-11-29&to=2026-11-30"
	fetch := func() string {
		t.Helper()
		code, _, body := get(t, srv, q)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		return string(body)
	}
	first := fetch()
	steps := []struct {
		name      string
		write     func() error
		reads     int32 // candle reads so far
		admitted  int32 // computations admitted so far
		sameAsRef bool
	}{
		{"computed once", func() error { return nil }, 1, 1, true},
		{"then answered from the cache alone", func() error { return nil }, 1, 1, true},
		{"a liquidation of another day: checked, not replayed", func() error {
			return st.UpsertLiquidations(ctx, []store.Liquidation{liq(now.Add(-time.Hour), store.SideLong, 90050, 1e5)})
		}, 1, 2, true},
		{"the same liquidation again: nothing changed", func() error {
			return st.UpsertLiquidations(ctx, []store.Liquidation{liq(day.Add(time.Hour), store.SideLong, 90050, 1e5)})
		}, 1, 3, true},
		{"a candle after the day: kept, from the cache alone", func() error {
			return st.UpsertKlines(ctx, []store.Kline{{Symbol: "BTCUSDT", Interval: "5m", OpenTime: now, Open: price, High: price, Low: price, Close: price, Volume: 1}})
		}, 1, 3, true},
		{"a liquidation of the day: recomputed", func() error {
			return st.UpsertLiquidations(ctx, []store.Liquidation{liq(day.Add(2*time.Hour), store.SideLong, 105050, 1e5)})
		}, 2, 4, false},
	}
	// The first fetch already ran step 0.
	for i, s := range steps {
		if i > 0 {
			if err := s.write(); err != nil {
				t.Fatal(err)
			}
		}
		body := first
		if i > 0 {
			body = fetch()
		}
		if st.reads.Load() != s.reads || gate.admitted.Load() != s.admitted || (body == first) != s.sameAsRef {
			t.Fatalf("%s: %d candle reads, %d admitted, same body %v; want %d, %d, %v", s.name, st.reads.Load(), gate.admitted.Load(), body == first, s.reads, s.admitted, s.sameAsRef)
		}
	}
	changed := fetch()
	if !strings.Contains(changed, `"liquidations":2`) || !strings.Contains(changed, `"classic":0.5`) {
		t.Fatalf("after the new liquidation: %s", changed)
	}
	// A candle in the day's warm-up (the live window before it) moves the
	// model: recomputed, to the same scores since the candle is the same.
	reads := st.reads.Load()
	if err := st.UpsertKlines(ctx, []store.Kline{{Symbol: "BTCUSDT", Interval: "5m", OpenTime: day.Add(-3 * time.Hour), Open: price, High: price, Low: price, Close: price, Volume: 1}}); err != nil {
		t.Fatal(err)
	}
	if again := fetch(); st.reads.Load() != reads+1 || again != changed {
		t.Fatalf("after a warm-up candle write: %d reads (want %d), same body %v", st.reads.Load(), reads+1, again == changed)
	}
	// Today is never cached: every request with liquidations today replays.
	reads = st.reads.Load()
	for range 2 {
		if code, _, body := get(t, srv, "symbol=BTCUSDT&from=2026-12-01"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	if st.reads.Load() != reads+2 {
		t.Fatalf("today was replayed %d times for 2 requests", st.reads.Load()-reads)
	}
}

// A computation that fails answers 500 with the cause, and is not cached.
func TestStoreFailureIs500(t *testing.T) {
	st := &failingStore{Store: fixture(t)}
	if err := st.UpsertLiquidations(context.Background(), []store.Liquidation{liq(day.Add(time.Hour), store.SideLong, 90050, 1e5)}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, newHandler(t, st, &fakeGate{}, config()))
	code, _, body := get(t, srv, "symbol=BTCUSDT&from=2026-11-30&to=2026-11-30")
	if code != 500 || !strings.Contains(string(body), "computing the model accuracy failed") || !strings.Contains(string(body), "disk on fire") {
		t.Fatalf("%d %s", code, body)
	}
}

type failingStore struct{ *store.Store }

func (failingStore) Candles(context.Context, string, string, time.Time, time.Time) ([]heatmap.Candle, error) {
	return nil, errors.New("disk on fire")
}
