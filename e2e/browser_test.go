package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// TestClientUnit runs the unit tests of liqstream.js (testdata/client_test.js:
// backoff schedule, polling fallback, resubscribe, keepalive) in Chromium,
// against the real file the gateway embeds, and reports each case as a subtest.
func TestClientUnit(t *testing.T) {
	testenv.RunJSCases(t, testenv.Browser(t), "client_test.js", "", 15)
}

// pageState mirrors window.__liqstream, what app.js exposes for these tests.
type pageState struct {
	Status         string   `json:"status"`
	Statuses       []string `json:"statuses"`
	Badge          string   `json:"badge"`
	Connects       int      `json:"connects"`
	Symbol         string   `json:"symbol"`
	Seq            *int     `json:"seq"`
	Frames         int      `json:"frames"`
	WSFrames       int      `json:"wsFrames"`
	PollFrames     int      `json:"pollFrames"`
	History        string   `json:"history"`
	HistoryColumns int      `json:"historyColumns"`
	Columns        int      `json:"columns"`
	DrawCount      int      `json:"drawCount"`
	DrawnSeq       *int     `json:"drawnSeq"`
	Error          string   `json:"error"`
	Notice         string   `json:"notice"`
}

// TestBrowserPage drives the page in Chromium against a real snapshotter
// and gateways. One snapshotter serves every subtest; the subtests that
// stop a gateway or disable its WebSocket start their own, so all run in
// parallel, each in its own tab.
func TestBrowserPage(t *testing.T) {
	browser := testenv.Browser(t)
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())
	// update_interval=1 matches the test snapshotter's 1 s cadence.
	page := s.GatewayURL() + "/?update_interval=1"

	t.Run("HeatmapDrawnAndLive", func(t *testing.T) {
		t.Parallel()
		tab := open(t, browser, page)
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.history === "ok" && __liqstream.drawnSeq !== null`, 30*time.Second)
		st := state(t, tab)
		if st.Badge != "live" || text(t, tab, "#status") != "live" {
			t.Errorf("badge %q / %q, want live", st.Badge, text(t, tab, "#status"))
		}
		// Two days of demo data at 15m: 192 closed candles, plus the live one.
		if st.HistoryColumns < 150 || st.Columns < st.HistoryColumns {
			t.Errorf("history columns %d, columns %d", st.HistoryColumns, st.Columns)
		}
		// The first frame may be drawn a moment after drawnSeq is set (history
		// and the live column paint in separate animation frames): poll.
		px := pixels(t, tab)
		for deadline := time.Now().Add(10 * time.Second); px.Lit*100 < px.Total && time.Now().Before(deadline); px = pixels(t, tab) {
			time.Sleep(100 * time.Millisecond)
		}
		if px.Lit*100 < px.Total { // at least 1% of the plot is coloured cells or candles
			t.Errorf("heatmap looks blank: %d of %d plot pixels lit", px.Lit, px.Total)
		}
		if px.Colours < 20 {
			t.Errorf("heatmap has %d distinct colours, want a colour scale", px.Colours)
		}
		if got := text(t, tab, "#price"); got == "–" || got == "" {
			t.Errorf("price %q", got)
		}
	})

	t.Run("LiveSnapshotChangesPicture", func(t *testing.T) {
		t.Parallel()
		tab := open(t, browser, page)
		waitFor(t, tab, `__liqstream.history === "ok" && __liqstream.drawnSeq !== null && __liqstream.drawnSeq === __liqstream.seq`, 30*time.Second)
		before := state(t, tab)
		px0 := pixels(t, tab)
		// The simulator moves the open candle every 200 ms, so new snapshots
		// move the live column's candle, cells and the price line. One frame
		// may move them by less than a pixel, so allow a few.
		waitFor(t, tab, `__liqstream.drawnSeq > `+itoa(*before.DrawnSeq)+` && `+pixelsJS+`.hash !== `+itoa(int(px0.Hash)), 15*time.Second)
	})

	t.Run("HoverShowsCellValues", func(t *testing.T) {
		t.Parallel()
		tab := open(t, browser, page)
		waitFor(t, tab, `__liqstream.history === "ok" && __liqstream.drawnSeq !== null`, 30*time.Second)
		// Just inside the right edge of the plot: the live column.
		b, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](`(() => {
			const r = document.getElementById("heatmap").getBoundingClientRect(), p = __liqstream.plot, d = devicePixelRatio;
			return {x: r.left + (p.x + p.w) / d - 2, y: r.top + (p.y + p.h / 2) / d};
		})()`))
		var at struct{ X, Y float64 }
		if err == nil {
			err = json.Unmarshal(b, &at)
		}
		if err != nil {
			t.Fatal(err)
		}
		run(t, tab, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at.X, at.Y))
		waitFor(t, tab, `!document.getElementById("tip").hidden`, 5*time.Second)
		tip := text(t, tab, "#tip")
		for _, want := range []string{"live", "Price", "Long liq.$", "Short liq.$", "O / C"} {
			if !strings.Contains(tip, want) {
				t.Errorf("tooltip %q lacks %q", tip, want)
			}
		}
	})

	t.Run("UnknownSymbolShowsServerError", func(t *testing.T) {
		t.Parallel()
		tab := open(t, browser, s.GatewayURL()+"/?symbol=NOPE")
		const want = "unknown symbol(s) NOPE; valid symbols: BTCUSDT, ETHUSDT"
		waitFor(t, tab, `document.getElementById("error").textContent.includes(`+jsString(want)+`)`, 15*time.Second)
		run(t, tab, chromedp.WaitVisible("#error"))
		if got := text(t, tab, "#error"); !strings.Contains(got, "INVALID_SYMBOL") {
			t.Errorf("error box %q lacks the code", got)
		}
	})

	t.Run("PhoneWidthStacksMap", func(t *testing.T) {
		t.Parallel()
		tab := testenv.Tab(t, browser)
		run(t, tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		run(t, tab, chromedp.Navigate(page))
		waitFor(t, tab, `__liqstream.history === "ok" && __liqstream.drawnSeq !== null`, 30*time.Second)
		var geo struct {
			HeatBottom, MapTop, MapWidth, ScrollWidth float64
		}
		b, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](`(() => {
			const h = document.getElementById("heatmap").getBoundingClientRect();
			const m = document.getElementById("liqmap").getBoundingClientRect();
			return {HeatBottom: h.bottom, MapTop: m.top, MapWidth: m.width, ScrollWidth: document.documentElement.scrollWidth};
		})()`))
		if err == nil {
			err = json.Unmarshal(b, &geo)
		}
		if err != nil {
			t.Fatal(err)
		}
		if geo.MapTop < geo.HeatBottom || geo.MapWidth < 300 || geo.ScrollWidth > 390 {
			t.Errorf("at 390 px the map should sit under the heatmap, full width, no sideways scroll: %+v", geo)
		}
	})

	t.Run("PollsWhenWebSocketDisabled", func(t *testing.T) {
		t.Parallel()
		gw := testenv.Start(t, "gateway", s.Dir, "--listen=127.0.0.1:0", "--snapshotter_url=http://"+s.Snapshotter.Addr, "--ws_enabled=false")
		waitReady(t, "http://"+gw.Addr)
		tab := open(t, browser, "http://"+gw.Addr+"/?update_interval=1")
		waitFor(t, tab, `__liqstream.status === "polling" && __liqstream.pollFrames > 0 && __liqstream.drawnSeq !== null`, 30*time.Second)
		first := *state(t, tab).Seq
		waitFor(t, tab, `__liqstream.seq > `+itoa(first), 15*time.Second)
		st := state(t, tab)
		if st.WSFrames != 0 || st.Badge != "polling" || st.Status != "polling" {
			t.Errorf("state %+v: want polling only", st)
		}
		if px := pixels(t, tab); px.Lit*100 < px.Total {
			t.Errorf("heatmap blank while polling: %d of %d lit", px.Lit, px.Total)
		}
	})

	t.Run("ReconnectsAfterGatewayRestart", func(t *testing.T) {
		t.Parallel()
		args := []string{"--snapshotter_url=http://" + s.Snapshotter.Addr}
		gw := testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=127.0.0.1:0"}, args...)...)
		addr := gw.Addr
		waitReady(t, "http://"+addr)
		tab := open(t, browser, "http://"+addr+"/?update_interval=1")
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.wsFrames > 0`, 30*time.Second)

		if err := gw.Stop(t, 15*time.Second); err != nil {
			t.Fatalf("gateway exit: %v", err)
		}
		waitFor(t, tab, `__liqstream.status === "disconnected" || __liqstream.status === "polling"`, 15*time.Second)
		if got := text(t, tab, "#status"); got != "disconnected" && got != "polling" {
			t.Errorf("badge %q while the gateway is down", got)
		}
		down := state(t, tab)

		// Same address: the page knows only its own origin.
		testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=" + addr}, args...)...)
		// The client must come back and resubscribe by itself: new frames
		// arrive over a socket it opened without the page's help.
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.connects >= 2 && __liqstream.wsFrames > `+itoa(down.WSFrames+1), 40*time.Second)
		st := state(t, tab)
		if !slices.Contains(st.Statuses, "disconnected") {
			t.Errorf("statuses %v: never disconnected", st.Statuses)
		}
		if text(t, tab, "#status") != "live" {
			t.Errorf("badge %q after reconnecting", text(t, tab, "#status"))
		}
	})
}

func open(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	tab := testenv.Tab(t, browser)
	run(t, tab, chromedp.Navigate(url))
	return tab
}

func run(t *testing.T, tab context.Context, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a JS condition on the page; on timeout it fails with the
// page's state so the reason is in the log.
func waitFor(t *testing.T, tab context.Context, cond string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b, _ := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.__liqstream || null)`))
		t.Fatalf("waiting %s for %s: %v\npage state: %s", timeout, cond, err, b)
	}
}

func state(t *testing.T, tab context.Context) pageState {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.__liqstream)`))
	if err != nil {
		t.Fatal(err)
	}
	var st pageState
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector(`+jsString(sel)+`).textContent.trim()`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type plotPixels struct {
	Hash    uint32 `json:"hash"`
	Lit     int    `json:"lit"`
	Total   int    `json:"total"`
	Colours int    `json:"colours"`
}

// pixels reads the heatmap's plot area straight from the canvas: a hash to
// tell frames apart, how many pixels are clearly brighter than the
// background, and how many distinct colours there are.
func pixels(t *testing.T, tab context.Context) plotPixels {
	t.Helper()
	b, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](pixelsJS))
	if err != nil {
		t.Fatal(err)
	}
	var px plotPixels
	if err := json.Unmarshal(b, &px); err != nil {
		t.Fatal(err)
	}
	return px
}

const pixelsJS = `(() => {
	const c = document.getElementById("heatmap"), p = window.__liqstream.plot;
	const d = c.getContext("2d").getImageData(p.x, p.y, p.w, p.h).data;
	let hash = 2166136261, lit = 0;
	const colours = new Set();
	for (let i = 0; i < d.length; i += 4) {
		if (d[i] + d[i + 1] + d[i + 2] > 150) lit++;
		colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
		hash = Math.imul(hash ^ d[i] ^ (d[i + 1] << 8) ^ (d[i + 2] << 16), 16777619) >>> 0;
	}
	return {hash, lit, total: d.length / 4, colours: colours.size};
})()`

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
