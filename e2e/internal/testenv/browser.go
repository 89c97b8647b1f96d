package testenv

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
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
// when Chromium is not installed.
func Browser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("SKIPPING BROWSER TEST: %s not found (%v); install the chromium package (.ci/run does) to run it", ChromiumPath, err)
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
