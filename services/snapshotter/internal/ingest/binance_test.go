package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// fakeBinance serves /fapi/v1/klines and /futures/data/openInterestHist from
// an in-memory market in Binance's response format, with Binance's paging
// rules and limits, and fails requests on demand.
type fakeBinance struct {
	mu       sync.Mutex
	klines   map[string][]store.Kline
	oi       map[string][]store.OpenInterest
	failures []failure
	requests []string
	// raw, when set for a path, is served instead of the market.
	raw map[string][]byte
	// oiHorizon, when set, is the oldest startTime openInterestHist accepts;
	// Binance answers an older one with a 400.
	oiHorizon func() time.Time
}

// failure is one scripted error answer; status 0 drops the connection.
type failure struct {
	status     int
	retryAfter string
}

func newFakeBinance() *fakeBinance {
	return &fakeBinance{klines: map[string][]store.Kline{}, oi: map[string][]store.OpenInterest{}, raw: map[string][]byte{}}
}

func (f *fakeBinance) fail(fs ...failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fs...)
}

func (f *fakeBinance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.RequestURI())
	if len(f.failures) > 0 {
		fl := f.failures[0]
		f.failures = f.failures[1:]
		if fl.status == 0 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		if fl.retryAfter != "" {
			w.Header().Set("Retry-After", fl.retryAfter)
		}
		w.WriteHeader(fl.status)
		fmt.Fprintf(w, `{"code":-1003,"msg":"scripted failure %d"}`, fl.status)
		return
	}
	if raw, ok := f.raw[r.URL.Path]; ok {
		w.Write(raw)
		return
	}
	q := r.URL.Query()
	num := func(name string, def int64) int64 {
		if q.Get(name) == "" {
			return def
		}
		n, _ := strconv.ParseInt(q.Get(name), 10, 64)
		return n
	}
	badRequest := func(msg string) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"code":-1100,"msg":%q}`, msg)
	}
	sym := q.Get("symbol")
	switch r.URL.Path {
	case "/fapi/v1/klines":
		limit := num("limit", 500)
		if limit > MaxKlineLimit || q.Get("interval") != "5m" || q.Get("startTime") == "" {
			badRequest("bad klines request")
			return
		}
		ks, ok := f.klines[sym]
		if !ok {
			badRequest("Invalid symbol.")
			return
		}
		start := num("startTime", 0)
		rows := [][]any{}
		for _, k := range ks {
			if k.OpenTime.UnixMilli() >= start && int64(len(rows)) < limit {
				rows = append(rows, []any{k.OpenTime.UnixMilli(), fmtF(k.Open), fmtF(k.High), fmtF(k.Low), fmtF(k.Close), fmtF(k.Volume),
					k.OpenTime.Add(5*time.Minute).UnixMilli() - 1, "1000.5", 42, "0.5", "500.25", "0"})
			}
		}
		json.NewEncoder(w).Encode(rows)
	case "/futures/data/openInterestHist":
		limit := num("limit", 30)
		if limit > MaxOILimit || q.Get("period") != "5m" {
			badRequest("bad openInterestHist request")
			return
		}
		start, end := num("startTime", 0), num("endTime", 1<<62)
		if f.oiHorizon != nil && start < f.oiHorizon().UnixMilli() {
			badRequest("parameter 'startTime' is invalid.")
			return
		}
		rows := []map[string]any{}
		for _, o := range f.oi[sym] {
			if ts := o.TS.UnixMilli(); ts >= start && ts <= end && int64(len(rows)) < limit {
				rows = append(rows, map[string]any{"symbol": sym, "sumOpenInterest": fmtF(o.OpenInterest),
					"sumOpenInterestValue": fmtF(o.OpenInterestValue), "CMCCirculatingSupply": "19590000.0", "timestamp": ts})
			}
		}
		json.NewEncoder(w).Encode(rows)
	default:
		http.NotFound(w, r)
	}
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// market fills the fake with 5m candles and OI for sym over [from, to].
func (f *fakeBinance) market(sym string, from, to time.Time, base float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t, i := from, 0; !t.After(to); t, i = t.Add(5*time.Minute), i+1 {
		p := base + float64(i%50)
		f.klines[sym] = append(f.klines[sym], store.Kline{Symbol: sym, Interval: "5m", OpenTime: t, Open: p, High: p + 5, Low: p - 5, Close: p + 1, Volume: 2})
		f.oi[sym] = append(f.oi[sym], store.OpenInterest{Symbol: sym, TS: t, OpenInterest: 1000 + float64(i), OpenInterestValue: 1e6 + float64(i)})
	}
}

// setLast replaces the newest candle of sym, as trading moves the open one.
func (f *fakeBinance) setLast(sym string, k store.Kline) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ks := f.klines[sym]
	if ks[len(ks)-1].OpenTime.Equal(k.OpenTime) {
		ks[len(ks)-1] = k
	} else {
		f.klines[sym] = append(ks, k)
	}
}

func (f *fakeBinance) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// fakeClock hands the poller's waits to the test: After blocks until the test
// takes the wait, so the test knows a poll has finished, and the wait ends
// when the test fires it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
	stop  chan struct{}
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock(t *testing.T, now time.Time) *fakeClock {
	c := &fakeClock{now: now, waits: make(chan fakeWait), stop: make(chan struct{})}
	t.Cleanup(func() { close(c.stop) })
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	select {
	case c.waits <- w:
	case <-c.stop:
	}
	return w.fire
}

// next waits until the poller finished a poll and asked to wait.
func (c *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(30 * time.Second):
		t.Fatal("the poller never finished its poll")
		return fakeWait{}
	}
}

// advance moves the clock by d and ends the wait w.
func (c *fakeClock) advance(w fakeWait, d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	w.fire <- now
}

func lastKline(t *testing.T, st *store.Store, sym string) store.Kline {
	t.Helper()
	k, ok, err := st.LastKline(context.Background(), sym, "5m")
	if err != nil || !ok {
		t.Fatalf("last kline %s: %v %v", sym, ok, err)
	}
	return k
}

func countRows(t *testing.T, st *store.Store, sym string) (klines, oi int) {
	t.Helper()
	cs, err := st.Candles(context.Background(), sym, "5m", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.HasOI {
			oi++
		}
	}
	return len(cs), oi
}

func TestBinanceFillsGapAndSurvivesErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Date(2025, 1, 10, 12, 2, 30, 0, time.UTC)
	open := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	fake := newFakeBinance()
	fake.market("BTCUSDT", open.Add(-8*24*time.Hour), open, 90000)
	fake.market("ETHUSDT", open.Add(-8*24*time.Hour), open, 3000)
	srv := httptest.NewServer(fake)
	defer srv.Close()

	st, _ := openStore(t)
	// BTCUSDT stops two days ago; ETHUSDT is empty and gets the lookback.
	seedEnd := open.Add(-48 * time.Hour)
	var seedK []store.Kline
	var seedOI []store.OpenInterest
	for i, k := range fake.klines["BTCUSDT"] {
		if !k.OpenTime.After(seedEnd) {
			seedK = append(seedK, k)
			seedOI = append(seedOI, fake.oi["BTCUSDT"][i])
		}
	}
	if err := st.UpsertKlines(ctx, seedK); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertOpenInterest(ctx, seedOI); err != nil {
		t.Fatal(err)
	}

	clk := newFakeClock(t, now)
	b, err := NewBinance(BinanceConfig{
		BaseURL: srv.URL + "/", Symbols: []string{"BTCUSDT", "ETHUSDT"}, Lookback: 24 * time.Hour,
		KlineLimit: 200, OILimit: 100, MinBackoff: time.Second, MaxBackoff: time.Minute, Clock: clk,
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	// Poll 1 fills the gap page by page, and the lookback of the empty symbol.
	w := clk.next(t)
	if w.d != 10*time.Second {
		t.Fatalf("after a good poll the poller waits %v, want the 10s default", w.d)
	}
	wantBTC := len(seedK) + 576 // two days of 5m candles after the seed's last
	if k, oi := countRows(t, st, "BTCUSDT"); k != wantBTC || oi != wantBTC {
		t.Fatalf("BTCUSDT: %d candles, %d with OI; want %d both", k, oi, wantBTC)
	}
	// ETH: from 12:00 yesterday (now - 24h, aligned down) to the open candle;
	// OI from the first observation after now - 24h.
	if k, oi := countRows(t, st, "ETHUSDT"); k != 289 || oi != 288 {
		t.Fatalf("ETHUSDT: %d candles, %d with OI; want 289 and 288", k, oi)
	}
	if k := lastKline(t, st, "BTCUSDT"); !k.OpenTime.Equal(open) {
		t.Fatalf("newest BTCUSDT candle %v, want the open one at %v", k.OpenTime, open)
	}
	s := b.Stats()
	if s.KlinesWritten != 577+289 || s.OpenInterestWritten != 576+288 || len(s.Errors) != 0 ||
		!s.LastSuccess["BTCUSDT"].Equal(now) || !s.NewestCandle["ETHUSDT"].Equal(open) {
		t.Fatalf("stats after the first poll: %+v", s)
	}
	var pages int
	for _, r := range fake.requestLog() {
		if strings.HasPrefix(r, "/fapi/v1/klines?") && strings.Contains(r, "symbol=BTCUSDT") {
			pages++
		}
	}
	if pages != 3 { // 577 candles at 200 a page
		t.Fatalf("BTCUSDT backfill took %d klines requests, want 3", pages)
	}

	// Poll 2 meets a 500: the poller backs off for MinBackoff and keeps going.
	fake.fail(failure{status: 500})
	moved := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: open, Open: 90010, High: 90400, Low: 89900, Close: 90350, Volume: 9}
	fake.setLast("BTCUSDT", moved)
	clk.advance(w, w.d)
	if w = clk.next(t); w.d != time.Second {
		t.Fatalf("after a 500 the poller waits %v, want 1s", w.d)
	}
	// Poll 3 meets a 429 with Retry-After: 7 and waits exactly that.
	fake.fail(failure{status: 429, retryAfter: "7"})
	clk.advance(w, w.d)
	if w = clk.next(t); w.d != 7*time.Second {
		t.Fatalf("after a 429 with Retry-After: 7 the poller waits %v", w.d)
	}
	if s := b.Stats(); s.Errors[ErrServer] != 1 || s.Errors[ErrRateLimited] != 1 {
		t.Fatalf("errors %v, want one server and one rate_limited", s.Errors)
	}
	// Poll 4 succeeds and refreshes the still-open candle.
	clk.advance(w, w.d)
	if w = clk.next(t); w.d != 10*time.Second {
		t.Fatalf("after recovering the poller waits %v, want 10s", w.d)
	}
	if k := lastKline(t, st, "BTCUSDT"); k != moved {
		t.Fatalf("open candle %+v, want the moved %+v", k, moved)
	}
	if s := b.Stats(); !s.LastSuccess["ETHUSDT"].Equal(clk.Now()) {
		t.Fatalf("last success %v, want %v", s.LastSuccess, clk.Now())
	}

	// The candle closes and the next one opens: poll 5 stores both, and the
	// OI observation that is now due.
	closed := moved
	closed.Close = 90300
	fake.setLast("BTCUSDT", closed)
	next := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: open.Add(5 * time.Minute), Open: 90300, High: 90310, Low: 90290, Close: 90305, Volume: 1}
	fake.setLast("BTCUSDT", next)
	fake.mu.Lock()
	fake.oi["BTCUSDT"] = append(fake.oi["BTCUSDT"], store.OpenInterest{Symbol: "BTCUSDT", TS: next.OpenTime, OpenInterest: 5, OpenInterestValue: 5e6})
	fake.mu.Unlock()
	clk.advance(w, 3*time.Minute)
	w = clk.next(t)
	if k := lastKline(t, st, "BTCUSDT"); k != next {
		t.Fatalf("newest candle %+v, want %+v", k, next)
	}
	cs, err := st.Candles(ctx, "BTCUSDT", "5m", open, time.Time{})
	if err != nil || len(cs) != 2 || cs[0].Close != 90300 || !cs[1].HasOI || cs[1].OIValue != 5e6 {
		t.Fatalf("closed candle and new OI: %+v %v", cs, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
}

func TestBinanceBackoff(t *testing.T) {
	type step struct {
		fail []failure // scripted answers for the first requests of the poll
		want time.Duration
		kind string // error kind counted by this step, "" for none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"5xx backs off exponentially up to the cap, success resets", []step{
			{fail: []failure{{status: 503}}, want: time.Second, kind: ErrServer},
			{fail: []failure{{status: 502}}, want: 2 * time.Second, kind: ErrServer},
			{fail: []failure{{status: 500}}, want: 4 * time.Second, kind: ErrServer},
			{fail: []failure{{status: 500}}, want: 5 * time.Second, kind: ErrServer},
			{want: 10 * time.Second},
			{fail: []failure{{status: 500}}, want: time.Second, kind: ErrServer},
		}},
		{"Retry-After is honoured, in seconds or as a date", []step{
			{fail: []failure{{status: 429, retryAfter: "3"}}, want: 3 * time.Second, kind: ErrRateLimited},
			{fail: []failure{{status: 418, retryAfter: "120"}}, want: 2 * time.Minute, kind: ErrBanned},
			{fail: []failure{{status: 503, retryAfter: "Fri, 10 Jan 2025 12:03:00 GMT"}}, want: 30 * time.Second, kind: ErrServer},
			{fail: []failure{{status: 429}}, want: 5 * time.Second, kind: ErrRateLimited}, // 4th failure: 8s, capped
		}},
		{"a dropped connection is retried like a 5xx", []step{
			{fail: []failure{{status: 0}}, want: time.Second, kind: ErrNetwork},
			{want: 10 * time.Second},
		}},
		{"a 4xx is logged and counted without backing off", []step{
			{fail: []failure{{status: 400}}, want: 10 * time.Second, kind: ErrClient},
		}},
	}
	now := time.Date(2025, 1, 10, 12, 2, 30, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fake := newFakeBinance()
			fake.market("BTCUSDT", now.Add(-time.Hour).Truncate(5*time.Minute), now.Truncate(5*time.Minute), 100)
			srv := httptest.NewServer(fake)
			defer srv.Close()
			st, _ := openStore(t)
			clk := newFakeClock(t, now)
			b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"BTCUSDT"}, Lookback: time.Hour,
				MaxBackoff: 5 * time.Second, Clock: clk}, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]uint64{}
			for i, s := range tc.steps {
				fake.fail(s.fail...)
				if got := b.poll(ctx); got != s.want {
					t.Fatalf("step %d: wait %v, want %v", i, got, s.want)
				}
				if s.kind != "" {
					counts[s.kind]++
				}
				if got := b.Stats().Errors; !mapsEqual(got, counts) {
					t.Fatalf("step %d: errors %v, want %v", i, got, counts)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBinanceUnknownSymbolDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 1, 10, 12, 2, 30, 0, time.UTC)
	fake := newFakeBinance()
	fake.market("ETHUSDT", now.Add(-time.Hour).Truncate(5*time.Minute), now.Truncate(5*time.Minute), 3000)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	st, _ := openStore(t)
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"NOPEUSDT", "ETHUSDT"}, Lookback: time.Hour,
		Clock: newFakeClock(t, now)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wait := b.poll(ctx); wait != 10*time.Second {
		t.Fatalf("wait %v, want the poll interval", wait)
	}
	s := b.Stats()
	if s.Errors[ErrClient] != 1 || s.KlinesWritten != 13 || !s.LastSuccess["NOPEUSDT"].IsZero() || s.LastSuccess["ETHUSDT"].IsZero() {
		t.Fatalf("stats %+v", s)
	}
}

// TestBinanceDecodesRecordedResponses feeds responses in the exact shape
// Binance sends (testdata/binance), including the string timestamp that
// Binance's own documentation shows for openInterestHist.
func TestBinanceDecodesRecordedResponses(t *testing.T) {
	ctx := context.Background()
	fake := newFakeBinance()
	for path, file := range map[string]string{"/fapi/v1/klines": "klines.json", "/futures/data/openInterestHist": "openInterestHist.json"} {
		b, err := os.ReadFile("testdata/binance/" + file)
		if err != nil {
			t.Fatal(err)
		}
		fake.raw[path] = b
	}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	st, _ := openStore(t)
	now := time.Date(2024, 1, 1, 0, 12, 0, 0, time.UTC)
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"BTCUSDT"}, Lookback: time.Hour, Clock: newFakeClock(t, now)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wait := b.poll(ctx); wait != 10*time.Second {
		t.Fatalf("wait %v, errors %v", wait, b.Stats().Errors)
	}
	k := lastKline(t, st, "BTCUSDT")
	want := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: time.UnixMilli(1704067800000).UTC(), Open: 42398.10, High: 42400, Low: 42301.70, Close: 42310.20, Volume: 987.442}
	if k != want {
		t.Fatalf("last kline %+v, want %+v", k, want)
	}
	o, ok, err := st.LastOpenInterest(ctx, "BTCUSDT")
	if err != nil || !ok || !o.TS.Equal(time.UnixMilli(1704067500000)) || o.OpenInterest != 81250.111 || o.OpenInterestValue != 3440485411.3184 {
		t.Fatalf("last OI %+v %v %v", o, ok, err)
	}

	// A response that breaks the documented shape is a decode error, and
	// nothing of it is written.
	fake.raw["/fapi/v1/klines"] = []byte(`[[1704068100000,"42310.2","42300.0","42350.0","42320.0","1",1704068399999]]`)
	if wait := b.poll(ctx); wait != 10*time.Second || b.Stats().Errors[ErrDecode] != 1 {
		t.Fatalf("wait %v errors %v, want one decode error and no backoff", wait, b.Stats().Errors)
	}
	if k := lastKline(t, st, "BTCUSDT"); k != want {
		t.Fatalf("a rejected response was written: %+v", k)
	}
}

func TestNewBinanceRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  BinanceConfig
		want string
	}{
		{"no symbols", BinanceConfig{}, "no symbols"},
		{"bad interval", BinanceConfig{Symbols: []string{"BTCUSDT"}, Interval: "7m"}, `unknown candle interval "7m"`},
		{"bad oi period", BinanceConfig{Symbols: []string{"BTCUSDT"}, OIPeriod: "1m"}, `oi period "1m"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewBinance(tc.cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReview18OpenInterestResumesAfterLongPause(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 1, 10, 12, 2, 30, 0, time.UTC)
	open := now.Truncate(5 * time.Minute)
	const pause = 35 * 24 * time.Hour
	fake := newFakeBinance()
	fake.market("BTCUSDT", open.Add(-time.Hour), open.Add(pause), 100)
	clk := newFakeClock(t, now)
	// Binance keeps 30 days of open interest, counted from its own now.
	fake.oiHorizon = func() time.Time { return clk.Now().Add(-30 * 24 * time.Hour) }
	srv := httptest.NewServer(fake)
	defer srv.Close()
	st, _ := openStore(t)
	var logs strings.Builder
	b, err := NewBinance(BinanceConfig{BaseURL: srv.URL, Symbols: []string{"BTCUSDT"}, Lookback: time.Hour, Clock: clk},
		st, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if wait := b.poll(ctx); wait != 10*time.Second || len(b.Stats().Errors) != 0 {
		t.Fatalf("first poll: wait %v, errors %v", wait, b.Stats().Errors)
	}
	before, _, err := st.LastOpenInterest(ctx, "BTCUSDT")
	if err != nil || !before.TS.Equal(open) {
		t.Fatalf("open interest before the pause ends at %v (%v), want %v", before.TS, err, open)
	}

	// The process sleeps through the pause (a suspended VM), then polls on.
	clk.mu.Lock()
	clk.now = clk.now.Add(pause)
	resumed := clk.now
	clk.mu.Unlock()
	for i := range 2 {
		if wait := b.poll(ctx); wait != 10*time.Second || len(b.Stats().Errors) != 0 {
			t.Fatalf("poll %d after the pause: wait %v, errors %v", i, wait, b.Stats().Errors)
		}
	}
	last, _, err := st.LastOpenInterest(ctx, "BTCUSDT")
	if err != nil || !last.TS.Equal(open.Add(pause)) {
		t.Fatalf("open interest after the pause ends at %v (%v), want %v", last.TS, err, open.Add(pause))
	}
	// What Binance no longer serves is skipped, and the log says how much.
	skipped := resumed.Add(-oiHistory).Sub(before.TS.Add(time.Millisecond))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "skipped="+skipped.String()) {
		t.Fatalf("logs do not warn of the %s skipped:\n%s", skipped, logs.String())
	}
}
