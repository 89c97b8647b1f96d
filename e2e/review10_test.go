package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// Regression tests of review issue 10. The client-side rules run as JS cases
// (testdata/review10_test.js) against the real liqstream.js with fakes; the
// rest against real binaries, nginx and Chromium.

// Item 6: an INVALID_SYMBOL with an empty valid list (a gateway that does not
// know its symbols yet) must not cost the page its symbols; the symbols field
// of the error names exactly the symbols to drop.
func TestReview6EmptyValidListKeepsSymbols(t *testing.T) {
	testenv.RunJSCases(t, testenv.Browser(t), "review10_test.js", "review6 ", 4)
}

// Item 8: the clients of a draining gateway (close 1012) come back spread
// over drainJitter, not all in the same instant.
func TestReview8DrainReconnectJitter(t *testing.T) {
	testenv.RunJSCases(t, testenv.Browser(t), "review10_test.js", "review8 ", 3)
}

// Item 9: no subscribe or unsubscribe carries more than 10 symbols.
func TestReview9ResubscribeSplitsOverTen(t *testing.T) {
	testenv.RunJSCases(t, testenv.Browser(t), "review10_test.js", "review9 ", 3)
}

// Item 9 against a real gateway: a client holding 12 symbols gets all of them
// streamed, on its first socket and again after the gateway restarted.
func TestReview9TwelveSymbolsAcrossGatewayRestart(t *testing.T) {
	browser := testenv.Browser(t)
	var syms []string
	for i := 1; i <= 12; i++ {
		syms = append(syms, fmt.Sprintf("S%02dUSDT", i))
	}
	s := testenv.StartStack(t, "--snapshot.interval=1s", "--simulator.tick=200ms", "--demo.days=1",
		"--symbols="+strings.Join(syms, ","))
	// A connection may hold up to 100 symbols (ws.max_symbols, default 10);
	// one message never more than 10.
	args := []string{"--snapshotter_url=http://" + s.Snapshotter.Addr, "--ws.max_symbols=20"}
	gw := testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=127.0.0.1:0"}, args...)...)
	base := "http://" + gw.Addr
	waitReady(t, base)

	tab := testenv.ClientTab(t, browser, base)
	// A short drain jitter and backoff keep the restart quick; the rules
	// themselves are the JS cases'.
	testenv.StartClient(t, tab, `{updateInterval: 1, drainJitter: 200, reconnectBase: 200, reconnectMax: 400}`)
	symsJS := jsString(strings.Join(syms, ","))
	// Subscribed before connect: the symbols go out in the subscribe on open,
	// the same path as every resubscribe after a reconnect.
	run(t, tab, chromedp.Evaluate[chromedp.Void](`__c.client.subscribe(`+symsJS+`.split(",")); __c.client.connect()`))
	allOn := func(open int) string {
		return symsJS + `.split(",").every((s) => __c.ws[s] >= ` + itoa(open) + `)`
	}
	testenv.WaitClient(t, tab, allOn(1), 60*time.Second)

	if err := gw.Stop(t, 15*time.Second); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=" + gw.Addr}, args...)...)
	testenv.WaitClient(t, tab, `__c.opens >= 2 && `+allOn(2), 60*time.Second)

	errs, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`__c.errors`))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 0 {
		t.Errorf("server errors: %q", errs)
	}
}

// Item 10: the shipped nginx edge must let a browser's WebSocket through.
// The browser's Origin carries the edge's port; the gateway compares it with
// the Host nginx passes on, so that Host must keep the port.
func TestReview10BrowserThroughNginxEdge(t *testing.T) {
	browser := testenv.Browser(t)
	f := testenv.StartFleet(t, 2, "--snapshot.interval=1s", "--simulator.tick=200ms", "--demo.days=2")
	for _, g := range f.Gateways {
		waitReady(t, "http://"+g.Addr)
	}
	edge := "http://" + f.Nginx.Addr

	t.Run("UpgradeWithBrowserOriginGets101", func(t *testing.T) {
		c, resp, err := wsclient.Dial(f.EdgeURL(), wsclient.Options{Header: http.Header{"Origin": {edge}}})
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("upgrade through nginx with Origin %s: HTTP %d: %v", edge, code, err)
		}
		defer c.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade answered %d, want 101", resp.StatusCode)
		}
		subscribe(t, c)
	})

	// The origin check is still on: the fix is the Host nginx passes, not
	// a gateway that accepts anyone.
	t.Run("ForeignOriginStillRefused", func(t *testing.T) {
		c, resp, err := wsclient.Dial(f.EdgeURL(), wsclient.Options{Header: http.Header{"Origin": {"http://evil.example:" + strings.Split(f.Nginx.Addr, ":")[1]}}})
		if err == nil {
			c.Close()
			t.Fatal("upgrade with a foreign Origin succeeded")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("upgrade with a foreign Origin: %v (response %v), want 403", err, resp)
		}
	})

	t.Run("PageStreamsOverWebSocket", func(t *testing.T) {
		tab := open(t, browser, edge+"/?update_interval=1")
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.wsFrames >= 2 && __liqstream.drawnSeq !== null`, 30*time.Second)
		st := state(t, tab)
		if slices.Contains(st.Statuses, "polling") || st.PollFrames != 0 {
			t.Errorf("page polled through the edge: statuses %v, %d polled frames", st.Statuses, st.PollFrames)
		}
		transport, err := chromedp.Run(tab, chromedp.Evaluate[string](`__liqstream.client.transport`))
		if err != nil {
			t.Fatal(err)
		}
		if transport != "ws" || st.Badge != "live" {
			t.Errorf("transport %q, badge %q: want ws, live", transport, st.Badge)
		}
	})
}

// Item 11: a client that gave up the socket and polls must take the socket
// again once the server offers it. The client's rules run as JS cases; here
// a real gateway with WebSocket disabled is replaced, on the same address,
// by one with WebSocket enabled.
func TestReview11PollingRetriesWebSocket(t *testing.T) {
	browser := testenv.Browser(t)
	t.Run("Unit", func(t *testing.T) {
		testenv.RunJSCases(t, browser, "review10_test.js", "review11 ", 2)
	})

	t.Run("GatewayTurnsWebSocketOn", func(t *testing.T) {
		s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
		args := []string{"--snapshotter_url=http://" + s.Snapshotter.Addr}
		gw := testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=127.0.0.1:0", "--ws_enabled=false"}, args...)...)
		addr := gw.Addr
		waitReady(t, "http://"+addr)

		tab := testenv.ClientTab(t, browser, "http://"+addr)
		testenv.StartClient(t, tab, `{updateInterval: 1, reconnectBase: 100, reconnectMax: 200, wsRetryInterval: 1000}`)
		run(t, tab, chromedp.Evaluate[chromedp.Void](`__c.client.subscribe("BTCUSDT"); __c.client.connect()`))
		// The first socket and the 5 reconnect attempts are spent.
		testenv.WaitClient(t, tab, `__c.sockets >= 6 && __c.client.status === "polling" && __c.polled > 0`, 30*time.Second)

		if err := gw.Stop(t, 15*time.Second); err != nil {
			t.Fatalf("gateway exit: %v", err)
		}
		testenv.Start(t, "gateway", s.Dir, append([]string{"--listen=" + addr}, args...)...)
		testenv.WaitClient(t, tab, `__c.client.status === "connected" && __c.ws.BTCUSDT >= 1`, 30*time.Second)
		// Polling stops with the socket open: over the next two WebSocket
		// frames (two update intervals, so two poll rounds had it gone on)
		// no snapshot is requested.
		type counts struct{ Polls, WSFrames int }
		at, err := chromedp.Run(tab, chromedp.Evaluate[counts](`({Polls: __c.polls, WSFrames: __c.wsFrames})`))
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitClient(t, tab, `__c.wsFrames >= `+itoa(at.WSFrames+2), 15*time.Second)
		if polls, _ := chromedp.Run(tab, chromedp.Evaluate[int](`__c.polls`)); polls != at.Polls {
			t.Errorf("snapshot polls went from %d to %d with the socket open", at.Polls, polls)
		}
	})
}
