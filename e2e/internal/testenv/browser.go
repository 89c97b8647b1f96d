package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pkgenv "github.com/liqstream/liqstream/pkg/testenv"
)

// ChromiumPath is where Debian's chromium package puts the browser; .ci/run
// installs it there.
const ChromiumPath = "/usr/bin/chromium"

// UseBinaries makes Start run the binaries in dir (e.g. the repo's bin/ from
// `make build`) instead of building its own. It must be called before the
// first Start or Binaries of the test binary, and has no effect after.
func UseBinaries(dir string) {
	buildOnce.Do(func() { binDir = dir })
}

// Browser starts one headless Chromium for the calling test and its subtests
// and returns its context; tabs are opened with Tab. It skips the test, loudly,
// when Chromium is not installed (fails it under CI).
func Browser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		pkgenv.Missing(t, fmt.Sprintf("browser test: %s not found (%v); install the chromium package (.ci/run does) to run it", ChromiumPath, err))
	}
	// Not t.TempDir: Chromium may still be writing into its profile while
	// the test's cleanup removes the dir, which would fail the test.
	profile, err := os.MkdirTemp("", "liqstream-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		// Without these Chromium keeps calling home, which on a closed
		// network means a flood of failing connections and slow starts.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	// The first Run starts the browser; it must not carry a timeout, which
	// would end the browser with it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", ChromiumPath, err)
	}
	return bctx
}

// Tab opens a new tab in the browser of Browser and closes it when t ends.
// The page's console output and uncaught exceptions are logged if t fails.
func Tab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab: %v", err)
	}
	var (
		mu    sync.Mutex
		lines []string
		done  = make(chan struct{})
	)
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" {
				line += " (" + m.URL + ")"
			}
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(lines, "\n"))
		}
	})
	return ctx
}

// ClientTab opens a tab on base (a gateway or the edge, "http://host:port"),
// on a page that is not the app, so that no other client runs in it, and
// imports base's /liqstream.js as window.LiqstreamClient. Tests then build
// their own client in the page with chromedp.Evaluate.
func ClientTab(t testing.TB, browser context.Context, base string) context.Context {
	t.Helper()
	tab := Tab(t, browser)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	// /healthz is a same-origin document without scripts of its own.
	if _, err := chromedp.Run(ctx, chromedp.Navigate(base+"/healthz")); err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`import("/liqstream.js").then((m) => { Object.assign(window, m); return typeof LiqstreamClient === "function"; })`,
		chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("import %s/liqstream.js: %v", base, err)
	}
	return tab
}

// StartClient builds a LiqstreamClient in a tab of ClientTab, with options
// (a JS object literal, e.g. `{updateInterval: 1}`), and records what it does
// in window.__c: statuses, opens (sockets that opened), sockets (sockets
// constructed), errors ("CODE message"), ws (symbol → the open during which
// its latest WebSocket frame came), wsFrames and polled (frames that came
// over the socket and by polling) and polls (snapshot requests made).
// The client itself is window.__c.client. It does not connect.
func StartClient(t testing.TB, tab context.Context, options string) {
	t.Helper()
	js := `(() => {
		const rec = {statuses: [], opens: 0, sockets: 0, errors: [], ws: {}, wsFrames: 0, polled: 0, polls: 0};
		class CountingSocket extends WebSocket {
			constructor(url) { super(url); rec.sockets++; }
		}
		const countingFetch = (url, init) => {
			if (String(url).includes("/api/v1/snapshot/")) rec.polls++;
			return fetch(url, init);
		};
		const c = new LiqstreamClient({WebSocket: CountingSocket, fetch: countingFetch, ...(` + options + `)});
		Object.defineProperty(rec, "client", {value: c, enumerable: false});
		c.addEventListener("status", (e) => {
			// slow -> connected is the same socket recovering.
			if (e.detail === "connected" && rec.statuses.at(-1) !== "slow") rec.opens++;
			rec.statuses.push(e.detail);
		});
		c.addEventListener("error", (e) => rec.errors.push(e.detail.code + " " + e.detail.message));
		c.addEventListener("snapshot", (e) => {
			if (c.transport === "ws") {
				rec.ws[e.detail.symbol] = rec.opens;
				rec.wsFrames++;
			} else {
				rec.polled++;
			}
		});
		window.__c = rec;
		return true;
	})()`
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatalf("start client: %v", err)
	}
}

// WaitClient polls cond, a JS expression over window.__c of StartClient,
// and on timeout fails with the client's record and status.
func WaitClient(t testing.TB, tab context.Context, cond string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b, _ := chromedp.Run(tab, chromedp.Evaluate[string](
			`JSON.stringify({...window.__c, status: __c.client.status, attempt: __c.client.attempt, failures: __c.client.failures, nextRetryAt: __c.client.nextRetryAt, now: Date.now(), subscriptions: __c.client.subscriptions})`))
		t.Fatalf("waiting %s for %s: %v\nclient: %s", timeout, cond, err, b)
	}
}
