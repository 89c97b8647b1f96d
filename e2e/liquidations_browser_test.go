package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// TestClientUnitLiquidations runs testdata/liquidations_test.js in Chromium
// against the real liqstream.js: applyDelta with and without
// data.liquidations (also through the client on delta encoding), the marks'
// keying and deduplication, markRadius (area ∝ notional, monotonic, bounded)
// and the bounded history of LiquidationMarks.
func TestClientUnitLiquidations(t *testing.T) {
	testenv.RunJSCases(t, testenv.Browser(t), "liquidations_test.js", "", 8)
}

// The page's constants the geometry checks recompute (app.js).
const (
	markRMin = 3.0
	markRMax = 16.0
	markRef  = 100e3
)

// TestBrowserLiquidations drives the page in Chromium against a real gateway
// fed by fakeSnapshotter, which publishes exactly the frames a subtest
// chooses: the demo simulator records no realised liquidation. The model
// accuracy endpoint is answered inside the browser (Fetch interception), per
// tab, so each subtest sets its own answer whatever the gateway relays.
func TestBrowserLiquidations(t *testing.T) {
	browser := testenv.Browser(t)
	src := newFakeSnapshotter(t, "BTCUSDT", "ETHUSDT")
	src.publish("BTCUSDT", btcData(candle0, nil))
	src.publish("ETHUSDT", ethData())
	gw := testenv.Start(t, "gateway", t.TempDir(), "--listen=127.0.0.1:0", "--snapshotter_url="+src.URL)
	base := "http://" + gw.Addr
	waitReady(t, base)
	// update_interval=1: every frame the test publishes goes out at once
	// (their producer timestamps are 5 s apart).
	page := base + "/?symbol=BTCUSDT&update_interval=1"

	t.Run("MarksDrawnKeptAndToggled", func(t *testing.T) {
		t.Parallel()
		tab := testenv.Tab(t, browser)
		interceptAccuracy(t, tab, func(int, string) cannedAnswer { return cannedAnswer{status: 404, body: "404 page not found\n"} })
		run(t, tab, chromedp.Navigate(page))
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.history === "ok" && __liqstream.drawnSeq === 1`, 30*time.Second)
		if m := readMarks(t, tab); m.Marks.Count != 0 || m.Marks.Kept != 0 || !m.Marks.Shown {
			t.Fatalf("before any liquidation: %+v", m.Marks)
		}

		// Two liquidations of the open 12:00 candle: two marks at the live
		// column, the largest at full size.
		src.publish("BTCUSDT", btcData(candle1, []protocol.Liquidation{liqL1, liqS2}))
		waitFor(t, tab, `__liqstream.drawnSeq === 2 && __liqstream.marks.count === 2`, 15*time.Second)
		checkMarks(t, tab, map[float64]string{95800: "12:00", 96500: "12:00"}, "12:00")

		// The next frame of the same candle repeats them and adds one: three
		// marks, not five.
		src.publish("BTCUSDT", btcData(candle2, []protocol.Liquidation{liqL1, liqS2, liqL3}))
		waitFor(t, tab, `__liqstream.drawnSeq === 3 && __liqstream.marks.kept === 3`, 15*time.Second)
		checkMarks(t, tab, map[float64]string{95800: "12:00", 96500: "12:00", 95100: "12:00"}, "12:00")

		// The 12:05 candle: its frame no longer carries 12:00's liquidations,
		// and the page keeps them (same 15m column).
		src.publish("BTCUSDT", btcData(candle3, []protocol.Liquidation{liqS4}))
		waitFor(t, tab, `__liqstream.drawnSeq === 4 && __liqstream.marks.kept === 4`, 15*time.Second)
		checkMarks(t, tab, map[float64]string{95800: "12:00", 96500: "12:00", 95100: "12:00", 95900: "12:00"}, "12:00")

		// The 12:15 candle, none yet: a delta without the field clears the
		// snapshot's liquidations; the marks stay where they happened, left of
		// the new live column.
		deltas := evalInt(t, tab, `__liqstream.client.deltas`)
		src.publish("BTCUSDT", btcData(candle4, nil))
		waitFor(t, tab, `__liqstream.drawnSeq === 5 && __liqstream.marks.count === 4`, 15*time.Second)
		if got := evalInt(t, tab, `__liqstream.client.deltas`); got != deltas+1 {
			t.Errorf("frame 5 did not come as a delta: deltas %d -> %d", deltas, got)
		}
		if has := evalBool(t, tab, `"liquidations" in __liqstream.latest.data`); has {
			t.Errorf("the snapshot after a delta without liquidations still has them")
		}
		checkMarks(t, tab, map[float64]string{95800: "12:00", 96500: "12:00", 95100: "12:00", 95900: "12:00"}, "12:15")

		// Hover: the tooltip names the liquidation under the pointer.
		m := readMarks(t, tab)
		big := m.find(95100)
		run(t, tab, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, m.Rect.Left+big.X/m.DPR, m.Rect.Top+big.Y/m.DPR))
		waitFor(t, tab, `!document.getElementById("tip").hidden && document.getElementById("tip").textContent.includes("liquidation")`, 5*time.Second)
		tip := text(t, tab, "#tip")
		for _, want := range []string{"Long liquidation", "Nov 30 12:03:10 UTC", "Price95,100.0", "Notional$2.00M", "Quantity21", "long position liquidated"} {
			if !strings.Contains(tip, want) {
				t.Errorf("tooltip %q lacks %q", tip, want)
			}
		}

		// The toggle hides them, and says so in the address bar.
		run(t, tab, chromedp.Click("#liq-toggle"))
		waitFor(t, tab, `!__liqstream.marks.shown && __liqstream.marks.count === 0 && __liqstream.marks.kept === 4 && new URLSearchParams(location.search).get("liquidations") === "0"`, 5*time.Second)
		// The canvas under each mark's centre changed: they are gone from the
		// picture, not only from the probe.
		for i, q := range pixelsAt(t, tab, m.Pixels) {
			if p := m.Pixels[i]; q.RGB == p.RGB {
				t.Errorf("pixel (%d,%d) still %v with the marks hidden", p.X, p.Y, p.RGB)
			}
		}

		// Reloaded, the page keeps the choice; marks of frames seen while
		// hidden are kept, and drawn once shown again.
		run(t, tab, chromedp.Reload())
		waitFor(t, tab, `__liqstream.history === "ok" && __liqstream.drawnSeq === 5`, 30*time.Second)
		if evalBool(t, tab, `document.getElementById("liq-toggle").checked || __liqstream.marks.shown`) {
			t.Fatal("after a reload with liquidations=0 the marks are shown")
		}
		src.publish("BTCUSDT", btcData(candle5, []protocol.Liquidation{liqL5}))
		waitFor(t, tab, `__liqstream.drawnSeq === 6 && __liqstream.marks.kept === 1 && __liqstream.marks.count === 0`, 15*time.Second)
		run(t, tab, chromedp.Click("#liq-toggle"))
		waitFor(t, tab, `__liqstream.marks.shown && __liqstream.marks.count === 1 && !new URLSearchParams(location.search).has("liquidations")`, 5*time.Second)
		checkMarks(t, tab, map[float64]string{95500: "12:15"}, "12:15")
	})

	t.Run("AccuracyPanelShowsScores", func(t *testing.T) {
		t.Parallel()
		tab := testenv.Tab(t, browser)
		reqs := interceptAccuracy(t, tab, func(_ int, u string) cannedAnswer {
			if strings.Contains(u, "symbol=ETHUSDT") {
				return cannedAnswer{status: 200, body: accuracyETH}
			}
			return cannedAnswer{status: 200, body: accuracyBTC}
		})
		run(t, tab, chromedp.Navigate(page))
		waitFor(t, tab, `__liqstream.accuracy.state === "ok" && __liqstream.accuracy.model === "classic"`, 30*time.Second)
		got := text(t, tab, "#accuracy")
		for _, want := range []string{"Model accuracy", "top 10% buckets", "2026-11-24 – 2026-12-01", "412 liquidations · $12.3M",
			"classic41.0%on heatmap", "binance47.0%", "baselines", "uniform9.8%", "distance33.0%"} {
			if !strings.Contains(got, want) {
				t.Errorf("panel %q lacks %q", got, want)
			}
		}
		// The heatmap's model (frames say "classic") is the one marked; the
		// day without scores is left out of the table.
		if cur := evalString(t, tab, `[...document.querySelectorAll(".acc-item.current")].map((e) => e.dataset.name).join()`); cur != "classic" {
			t.Errorf("marked as on the heatmap: %q, want classic", cur)
		}
		if rows := evalString(t, tab, `[...document.querySelectorAll("#acc-table tr")].map((r) => r.textContent).join("|")`); rows != "dayliq.notionalclassicbinanceuniformdistance|2026-11-30412$12.3M41.0%47.0%9.8%33.0%" {
			t.Errorf("by-day table %q", rows)
		}
		if u := reqs(); len(u) != 1 || !strings.Contains(u[0].url, "/data/model-accuracy?symbol=BTCUSDT") {
			t.Errorf("requests %+v, want one for BTCUSDT", u)
		}

		// Another symbol: asked again, for that symbol.
		evalBool(t, tab, `(() => { const s = document.getElementById("symbol"); s.value = "ETHUSDT"; s.dispatchEvent(new Event("change")); return true; })()`)
		waitFor(t, tab, `__liqstream.accuracy.symbol === "ETHUSDT" && __liqstream.accuracy.state === "ok"`, 15*time.Second)
		if got := text(t, tab, "#acc-scores"); !strings.Contains(got, "classic25.0%") || strings.Contains(got, "41.0%") {
			t.Errorf("ETHUSDT panel %q", got)
		}
		if u := reqs(); len(u) != 2 || !strings.Contains(u[1].url, "symbol=ETHUSDT") {
			t.Errorf("requests %+v, want a second one for ETHUSDT", u)
		}
	})

	t.Run("AccuracyPanelEmpty", func(t *testing.T) {
		t.Parallel()
		tab := testenv.Tab(t, browser)
		interceptAccuracy(t, tab, func(int, string) cannedAnswer { return cannedAnswer{status: 200, body: accuracyEmpty} })
		run(t, tab, chromedp.Navigate(page))
		waitFor(t, tab, `__liqstream.accuracy.state === "empty"`, 30*time.Second)
		if got := text(t, tab, "#accuracy"); !strings.Contains(got, "no realised liquidations recorded yet") || !strings.Contains(got, "heatmap: classic") || strings.Contains(got, "%") {
			t.Errorf("empty panel %q", got)
		}
		if n := evalInt(t, tab, `document.querySelectorAll(".acc-item").length`); n != 0 {
			t.Errorf("%d score items in the empty panel", n)
		}
	})

	t.Run("AccuracyPanelHonoursRetryAfter", func(t *testing.T) {
		t.Parallel()
		tab := testenv.Tab(t, browser)
		reqs := interceptAccuracy(t, tab, func(n int, _ string) cannedAnswer {
			if n == 1 {
				return cannedAnswer{status: 503, retryAfter: "1", body: `{"error":"accuracy is busy; retry after 1s"}`}
			}
			return cannedAnswer{status: 200, body: accuracyBTC}
		})
		run(t, tab, chromedp.Navigate(page))
		waitFor(t, tab, `__liqstream.accuracy.state === "ok" && __liqstream.accuracy.fetches === 2`, 30*time.Second)
		u := reqs()
		if len(u) != 2 {
			t.Fatalf("requests %+v, want 2", u)
		}
		if gap := u[1].at.Sub(u[0].at); gap < time.Second || gap > 5*time.Second {
			t.Errorf("retried %s after a 503 with Retry-After: 1", gap)
		}
		if states := evalString(t, tab, `__liqstream.accuracy.states.join()`); states != "loading,busy,loading,ok" {
			t.Errorf("states %q, want loading,busy,loading,ok", states)
		}
		if r := evalInt(t, tab, `__liqstream.accuracy.retryIn`); r < 1000 || r > 1500 {
			t.Errorf("retry delay %d ms for Retry-After: 1", r)
		}
	})

	for _, c := range []struct {
		name, state, note string
		answer            cannedAnswer
	}{
		{"AccuracyPanel404", "unavailable", "not available from this server", cannedAnswer{status: 404, body: "404 page not found\n"}},
		{"AccuracyPanel501", "unavailable", "not available from this server: model accuracy is not computed here", cannedAnswer{status: 501, body: `{"error":"model accuracy is not computed here"}`}},
		{"AccuracyPanelNetworkError", "error", "unavailable (Failed to fetch); retrying in", cannedAnswer{fail: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tab := testenv.Tab(t, browser)
			interceptAccuracy(t, tab, func(int, string) cannedAnswer { return c.answer })
			run(t, tab, chromedp.Navigate(page))
			waitFor(t, tab, `__liqstream.accuracy.state === `+jsString(c.state), 30*time.Second)
			if got := text(t, tab, "#acc-note"); !strings.Contains(got, c.note) {
				t.Errorf("note %q, want %q", got, c.note)
			}
			// The rest of the page does not care: live, history loaded, no
			// error shown, and the heatmap painted (history and live column
			// paint in separate frames, hence the wait).
			waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.history === "ok" && __liqstream.drawnSeq !== null && __liqstream.error === "" && `+pixelsJS+`.lit * 100 >= `+pixelsJS+`.total`, 30*time.Second)
		})
	}
}

// ---- the liquidations and candles the page is fed ----

var (
	t1200 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

	candle0 = protocol.Candle{OpenTime: protocol.FormatTime(t1200), Open: 96000, High: 96100, Low: 95900, Close: 96000, Volume: 10}
	candle1 = protocol.Candle{OpenTime: protocol.FormatTime(t1200), Open: 96000, High: 96600, Low: 95600, Close: 95700, Volume: 40}
	candle2 = protocol.Candle{OpenTime: protocol.FormatTime(t1200), Open: 96000, High: 96600, Low: 95000, Close: 95200, Volume: 90}
	candle3 = protocol.Candle{OpenTime: protocol.FormatTime(t1200.Add(5 * time.Minute)), Open: 95200, High: 95950, Low: 95150, Close: 95900, Volume: 30}
	candle4 = protocol.Candle{OpenTime: protocol.FormatTime(t1200.Add(15 * time.Minute)), Open: 95900, High: 95950, Low: 95850, Close: 95900, Volume: 5}
	candle5 = protocol.Candle{OpenTime: protocol.FormatTime(t1200.Add(15 * time.Minute)), Open: 95900, High: 95950, Low: 95450, Close: 95600, Volume: 25}

	liqL1 = liquidation("12:01:00", "long", 95800, 2)
	liqS2 = liquidation("12:02:00", "short", 96500, 0.3)
	liqL3 = liquidation("12:03:10", "long", 95100, 21)
	liqS4 = liquidation("12:06:30", "short", 95900, 1)
	liqL5 = liquidation("12:16:00", "long", 95500, 0.5)
)

func liquidation(hms, side string, price, qty float64) protocol.Liquidation {
	return protocol.Liquidation{Time: "2026-11-30T" + hms + ".000000000Z", Side: side, Price: price, Quantity: qty, Notional: price * qty}
}

// btcLevels spread density over 93,000–99,000, with a wall every 700 USD,
// so the heatmap has cells of every shade.
func btcLevels() []protocol.Level {
	var out []protocol.Level
	for p := 93000.0; p < 99000; p += 100 {
		v := 2e4 * (1 + math.Mod(p/100, 7))
		if math.Mod(p, 700) == 0 {
			v *= 40
		}
		l := protocol.Level{Price: p}
		if p < 96000 {
			l.LongDensity = v
		} else {
			l.ShortDensity = v
		}
		out = append(out, l)
	}
	return out
}

func btcData(c protocol.Candle, liqs []protocol.Liquidation) protocol.SnapshotData {
	return protocol.SnapshotData{
		Levels: btcLevels(), CurrentPrice: c.Close, PositionsCreated: 100, PositionsConsumed: 10,
		TotalLongVolume: 5e8, TotalShortVolume: 4e8, BinSize: 100, Model: "classic", Interval: "5m",
		WindowStart: protocol.FormatTime(t1200.Add(-7 * 24 * time.Hour)), Candle: c, Liquidations: liqs,
	}
}

func ethData() protocol.SnapshotData {
	c := protocol.Candle{OpenTime: protocol.FormatTime(t1200), Open: 3500, High: 3510, Low: 3490, Close: 3505, Volume: 100}
	return protocol.SnapshotData{
		Levels: []protocol.Level{{Price: 3400, LongDensity: 1e6}, {Price: 3600, ShortDensity: 1e6}}, CurrentPrice: c.Close,
		BinSize: 10, Model: "classic", Interval: "5m", WindowStart: protocol.FormatTime(t1200.Add(-7 * 24 * time.Hour)), Candle: c,
	}
}

// The page's default view asks for 48h of 15m candles; sixteen closed ones,
// 08:00 to 11:45, make the history, so the live column is 12:00.
func historyJSON(sym string) []byte {
	type entry struct {
		Timestamp string           `json:"timestamp"`
		Symbol    string           `json:"symbol"`
		Levels    []protocol.Level `json:"levels"`
		Meta      map[string]any   `json:"meta"`
		Candle    map[string]any   `json:"candle"`
	}
	var data []entry
	var levels []protocol.Level
	open, step, bin := 96000.0, 50.0, 100.0
	if sym == "BTCUSDT" {
		levels = btcLevels()
	} else {
		levels = ethData().Levels
		open, step, bin = 3500, 2, 10
	}
	for i := range 16 {
		ts := t1200.Add(time.Duration(i-16) * 15 * time.Minute)
		o := open + step*float64(i%5-2)
		data = append(data, entry{Timestamp: protocol.FormatTime(ts), Symbol: sym, Levels: levels,
			Meta:   map[string]any{"total_long_volume": 5e8, "total_short_volume": 4e8, "positions_created": 5, "positions_consumed": 1},
			Candle: map[string]any{"open": o, "high": o + 3*step, "low": o - 3*step, "close": o + step, "volume": 10}})
	}
	b, _ := json.Marshal(map[string]any{"data": data, "meta": map[string]any{"symbol": sym, "interval": "15m", "total_snapshots": len(data), "price_bin_size": bin, "model": "classic"}})
	return b
}

// ---- a frame source: the snapshotter's internal API over chosen frames ----

// fakeSnapshotter answers what a gateway asks a snapshotter (docs/API.md,
// "Snapshotter (internal)"): the symbols, the long-polled latest frame of
// each (with the delta from the frame before, as ?delta=1 asks), the history
// and the data gaps, for frames the test publishes.
type fakeSnapshotter struct {
	URL string

	mu      sync.Mutex
	symbols []string
	latest  map[string]*fakeFrame
	changed chan struct{} // closed and replaced on every publish
}

type fakeFrame struct {
	seq         uint64
	data        protocol.SnapshotData
	full, delta []byte
}

const fakeEpoch = 1

func newFakeSnapshotter(t *testing.T, symbols ...string) *fakeSnapshotter {
	t.Helper()
	f := &fakeSnapshotter{symbols: symbols, latest: map[string]*fakeFrame{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/symbols", func(w http.ResponseWriter, _ *http.Request) {
		fakeJSON(w, http.StatusOK, map[string]any{"symbols": symbols})
	})
	mux.HandleFunc("GET /v1/snapshots/{symbol}", f.snapshot)
	mux.HandleFunc("GET /liquidations/heatmap-timeseries", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(historyJSON(strings.ToUpper(r.URL.Query().Get("symbol"))))
	})
	mux.HandleFunc("GET /data/gaps", func(w http.ResponseWriter, _ *http.Request) {
		fakeJSON(w, http.StatusOK, map[string]any{"gaps": []any{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// publish makes data the symbol's next frame, produced 5 s after the last
// one by the producer's clock, so the gateway's pacing never holds it.
func (f *fakeSnapshotter) publish(sym string, data protocol.SnapshotData) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.latest[sym]
	next := &fakeFrame{seq: 1, data: data}
	if prev != nil {
		next.seq = prev.seq + 1
	}
	ts := t1200.Add(time.Duration(next.seq) * 5 * time.Second)
	if c, err := time.Parse(time.RFC3339Nano, data.Candle.OpenTime); err == nil {
		ts = c.Add(time.Duration(next.seq) * 5 * time.Second)
	}
	enc, err := protocol.EncodeSnapshotData(data)
	if err != nil {
		panic(err)
	}
	next.full = protocol.SnapshotFrameEpoch(sym, fakeEpoch, next.seq, ts, enc)
	if prev != nil {
		d, err := protocol.EncodeDeltaData(protocol.Diff(prev.data, data))
		if err != nil {
			panic(err)
		}
		next.delta = protocol.DeltaFrame(sym, fakeEpoch, next.seq, prev.seq, ts, d)
	}
	f.latest[sym] = next
	close(f.changed)
	f.changed = make(chan struct{})
	return next.seq
}

func (f *fakeSnapshotter) snapshot(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(r.PathValue("symbol"))
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		f.mu.Lock()
		cur, changed := f.latest[sym], f.changed
		f.mu.Unlock()
		if cur == nil {
			fakeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no snapshot of " + sym + " yet"})
			return
		}
		etag := fmt.Sprintf(`"%d-%d"`, fakeEpoch, cur.seq)
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") != etag {
			if r.URL.Query().Get("delta") == "1" && cur.delta != nil {
				w.Header().Set("Content-Type", bus.NDJSON)
				w.Write(bus.JoinPair(cur.delta, cur.full))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(cur.full)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
}

func fakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ---- the accuracy endpoint, answered in the browser ----

const accuracyBTC = `{"symbol":"BTCUSDT","from":"2026-11-24","to":"2026-12-01","top_share":0.1,
 "models":["classic","binance"],
 "days":[{"date":"2026-11-29","liquidations":0,"notional":0},
         {"date":"2026-11-30","liquidations":412,"notional":12345678.9,
          "scores":{"classic":0.41,"binance":0.47,"uniform":0.098,"distance":0.33}}],
 "total":{"liquidations":412,"notional":12345678.9,"scores":{"classic":0.41,"binance":0.47,"uniform":0.098,"distance":0.33}}}`

const accuracyETH = `{"symbol":"ETHUSDT","from":"2026-11-24","to":"2026-12-01","top_share":0.1,
 "models":["classic","binance"],
 "days":[{"date":"2026-11-30","liquidations":50,"notional":800000,"scores":{"classic":0.25,"binance":0.3,"uniform":0.1,"distance":0.2}}],
 "total":{"liquidations":50,"notional":800000,"scores":{"classic":0.25,"binance":0.3,"uniform":0.1,"distance":0.2}}}`

const accuracyEmpty = `{"symbol":"BTCUSDT","from":"2026-11-24","to":"2026-12-01","top_share":0.1,
 "models":["classic","binance"],"days":[],"total":{"liquidations":0,"notional":0}}`

type cannedAnswer struct {
	status     int
	retryAfter string
	body       string
	fail       bool // the request fails as a network error
}

type seenRequest struct {
	url string
	at  time.Time
}

// interceptAccuracy answers the tab's requests for data/model-accuracy with
// answer(n, url), n counting from 1, before they leave the browser, and
// returns a func listing the requests seen. Call it before navigating.
func interceptAccuracy(t *testing.T, tab context.Context, answer func(n int, url string) cannedAnswer) func() []seenRequest {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []seenRequest
	)
	events := chromedp.Events(tab, fetch.RequestPaused)
	if _, err := chromedp.Call(tab, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/data/model-accuracy*"}}}); err != nil {
		t.Fatalf("enable interception: %v", err)
	}
	go func() {
		for ev, err := range events {
			if err != nil {
				return // the tab is gone
			}
			mu.Lock()
			seen = append(seen, seenRequest{url: ev.Request.URL, at: time.Now()})
			n := len(seen)
			mu.Unlock()
			a := answer(n, ev.Request.URL)
			if a.fail {
				chromedp.Call(tab, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionFailed})
				continue
			}
			headers := []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}}
			if !strings.HasPrefix(a.body, "{") {
				headers[0].Value = "text/plain; charset=utf-8"
			}
			if a.retryAfter != "" {
				headers = append(headers, &fetch.HeaderEntry{Name: "Retry-After", Value: a.retryAfter})
			}
			chromedp.Call(tab, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: int64(a.status), ResponseHeaders: headers, Body: []byte(a.body)})
		}
	}()
	return func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

// ---- reading the marks ----

type drawnMark struct {
	X, Y, R  float64
	Side     string
	Price    float64
	Notional float64
	Time     string
	Column   string
}

type pixel struct {
	X, Y int
	RGB  [3]int
}

// marksView is one draw's worth of the page's probe, read at once: the plot,
// the price and time ranges, the marks and the canvas pixel under each mark's
// centre.
type marksView struct {
	Plot      struct{ X, Y, W, H float64 }
	View      struct{ Lo, Hi float64 }
	TimeRange struct{ T0, T1, Iv float64 }
	Marks     struct {
		Shown       bool
		Kept, Count int
		List        []drawnMark
	}
	Pixels []pixel
	DPR    float64
	Rect   struct{ Left, Top float64 }
}

func (m marksView) find(price float64) drawnMark {
	for _, k := range m.Marks.List {
		if k.Price == price {
			return k
		}
	}
	return drawnMark{}
}

func readMarks(t *testing.T, tab context.Context) marksView {
	t.Helper()
	b, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](`(() => {
		const p = __liqstream, c = document.getElementById("heatmap"), g = c.getContext("2d");
		const pixels = p.marks.list.map((m) => {
			const x = Math.round(m.x), y = Math.round(m.y), d = g.getImageData(x, y, 1, 1).data;
			return {X: x, Y: y, RGB: [d[0], d[1], d[2]]};
		});
		const r = c.getBoundingClientRect();
		return {Plot: {X: p.plot.x, Y: p.plot.y, W: p.plot.w, H: p.plot.h}, View: {Lo: p.view.lo, Hi: p.view.hi},
			TimeRange: {T0: p.timeRange.t0, T1: p.timeRange.t1, Iv: p.timeRange.iv},
			Marks: {Shown: p.marks.shown, Kept: p.marks.kept, Count: p.marks.count, List: p.marks.list.map((m) => ({X: m.x, Y: m.y, R: m.r, Side: m.side, Price: m.price, Notional: m.notional, Time: m.time, Column: m.column}))},
			Pixels: pixels, DPR: devicePixelRatio, Rect: {Left: r.left, Top: r.top}};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	var m marksView
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkMarks checks the drawn marks against the liquidations held: one per
// price in want, in the column starting at want[price] (HH:MM on 30 Nov), at
// that column's centre and the price's row, sized by notional relative to
// the largest, coloured by side on the canvas. live is the live column's
// start: marks of the open candle sit there, at the right edge of the plot.
func checkMarks(t *testing.T, tab context.Context, want map[float64]string, live string) {
	t.Helper()
	m := readMarks(t, tab)
	if m.Marks.Count != len(want) || len(m.Marks.List) != len(want) {
		t.Fatalf("%d marks drawn, want %d: %+v", m.Marks.Count, len(want), m.Marks.List)
	}
	ref := markRef
	for _, k := range m.Marks.List {
		ref = math.Max(ref, k.Notional)
	}
	liveT := float64(mustTime(t, "2026-11-30T"+live+":00Z").UnixMilli())
	if m.TimeRange.T1 != liveT+m.TimeRange.Iv {
		t.Errorf("the time axis ends at %s, want after the live column %s", time.UnixMilli(int64(m.TimeRange.T1)).UTC(), live)
	}
	colW := m.Plot.W * m.TimeRange.Iv / (m.TimeRange.T1 - m.TimeRange.T0)
	prevNotional, prevR := -1.0, -1.0
	for i, k := range m.Marks.List {
		col, ok := want[k.Price]
		if !ok {
			t.Errorf("a mark at %v: no such liquidation", k.Price)
			continue
		}
		if k.Column != "2026-11-30T"+col+":00.000Z" {
			t.Errorf("mark at %v in column %s, want %s", k.Price, k.Column, col)
		}
		colT := float64(mustTime(t, k.Column).UnixMilli())
		x := m.Plot.X + (colT-m.TimeRange.T0)/(m.TimeRange.T1-m.TimeRange.T0)*m.Plot.W + colW/2
		y := m.Plot.Y + (1-(k.Price-m.View.Lo)/(m.View.Hi-m.View.Lo))*m.Plot.H
		if math.Abs(k.X-x) > 1.5 || math.Abs(k.Y-y) > 1.5 {
			t.Errorf("mark at %v drawn at (%.1f, %.1f), want (%.1f, %.1f)", k.Price, k.X, k.Y, x, y)
		}
		if col == live && k.X < m.Plot.X+m.Plot.W-colW {
			t.Errorf("mark at %v of the open candle at x %.1f, left of the live column (plot ends at %.0f)", k.Price, k.X, m.Plot.X+m.Plot.W)
		}
		r := math.Min(markRMax, math.Max(markRMin, markRMax*math.Sqrt(k.Notional/ref))) * m.DPR
		if math.Abs(k.R-r) > 0.02 {
			t.Errorf("mark at %v (notional %.0f of %.0f) radius %.2f, want %.2f", k.Price, k.Notional, ref, k.R, r)
		}
		// Drawn largest first.
		if prevNotional >= 0 && (k.Notional > prevNotional || k.R > prevR) {
			t.Errorf("mark %d (notional %.0f, r %.2f) drawn after a smaller one (%.0f, %.2f)", i, k.Notional, k.R, prevNotional, prevR)
		}
		prevNotional, prevR = k.Notional, k.R
		// The side's colour at the centre: green for longs, red for shorts,
		// whatever cell or candle is under it.
		px := m.Pixels[i].RGB
		green := px[1] - px[0]
		if (k.Side == "long" && green < 40) || (k.Side == "short" && green > -40) {
			t.Errorf("%s mark at %v: pixel %v at its centre", k.Side, k.Price, px)
		}
	}
}

// pixelsAt reads the heatmap canvas at the given points.
func pixelsAt(t *testing.T, tab context.Context, at []pixel) []pixel {
	t.Helper()
	pts, _ := json.Marshal(at)
	b, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](`(() => {
		const g = document.getElementById("heatmap").getContext("2d");
		return `+string(pts)+`.map((p) => { const d = g.getImageData(p.X, p.Y, 1, 1).data; return {X: p.X, Y: p.Y, RGB: [d[0], d[1], d[2]]}; });
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	var out []pixel
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(at) {
		t.Fatalf("read %d pixels, asked for %d", len(out), len(at))
	}
	return out
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func evalInt(t *testing.T, tab context.Context, js string) int {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[int](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func evalBool(t *testing.T, tab context.Context, js string) bool {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[bool](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func evalString(t *testing.T, tab context.Context, js string) string {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}
