//go:build screenshot

package e2e

// Built only with -tags screenshot (make screenshot): it writes a file rather
// than asserting, so it is no part of make test.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// TestScreenshot writes a screenshot of the page to $LIQSTREAM_SCREENSHOT
// (relative paths are from the repo root; `make screenshot` sets it to
// docs/screenshot.png) and, with $LIQSTREAM_SCREENSHOT_PHONE, one at phone
// size. $LIQSTREAM_BIN points it at prebuilt binaries.
func TestScreenshot(t *testing.T) {
	out := os.Getenv("LIQSTREAM_SCREENSHOT")
	if out == "" {
		t.Fatal("set LIQSTREAM_SCREENSHOT=docs/screenshot.png to write a screenshot (make screenshot)")
	}
	if dir := os.Getenv("LIQSTREAM_BIN"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		testenv.UseBinaries(abs)
	}
	browser := testenv.Browser(t)
	// Seven days of demo data, as `make run` has.
	s := testenv.StartStack(t, "--snapshot.interval=1s", "--simulator.tick=200ms", "--demo.days=7")
	waitReady(t, s.GatewayURL())
	shots := []struct {
		path          string
		width, height int64
	}{{out, 1280, 800}}
	if p := os.Getenv("LIQSTREAM_SCREENSHOT_PHONE"); p != "" {
		shots = append(shots, struct {
			path          string
			width, height int64
		}{p, 390, 844})
	}
	for _, sh := range shots {
		tab := testenv.Tab(t, browser)
		run(t, tab, chromedp.EmulateViewport(sh.width, sh.height))
		run(t, tab, chromedp.Navigate(s.GatewayURL()+"/?symbol=ETHUSDT&update_interval=1"))
		waitFor(t, tab, `__liqstream.status === "connected" && __liqstream.history === "ok" && __liqstream.frames >= 2 && __liqstream.drawnSeq === __liqstream.seq`, 60*time.Second)
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		path := sh.path
		if !filepath.IsAbs(path) {
			path = filepath.Join(testenv.RepoRoot(), path)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%dx%d)", path, sh.width, sh.height)
	}
}
