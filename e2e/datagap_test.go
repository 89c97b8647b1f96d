package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// TestBrowserDataGap is issue 15's store: BTCUSDT with candles and no open
// interest (an interrupted demo seed). The snapshotter warns at start, lists
// the warning in /readyz (still ready) and the page says why the map is
// empty instead of showing an empty map.
func TestBrowserDataGap(t *testing.T) {
	bin := filepath.Join(testenv.Binaries(t), "snapshotter")
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "liqstream.duckdb")
	// Two days of 5m candles ending at the last closed one, no metrics file.
	step := 5 * time.Minute
	end := time.Now().UTC().Truncate(step).Add(-step)
	var csv strings.Builder
	csv.WriteString("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n")
	for i := 576 - 1; i >= 0; i-- {
		ot := end.Add(-time.Duration(i) * step).UnixMilli()
		p := 60000 + float64(i%50)*10
		fmt.Fprintf(&csv, "%d,%g,%g,%g,%g,10,%d,600000,100,5,300000,0\n", ot, p, p+50, p-50, p+10, ot+step.Milliseconds()-1)
	}
	file := filepath.Join(dir, "BTCUSDT-5m-"+end.Format("2006-01-02")+".csv") // the name only says what it holds
	if err := os.WriteFile(file, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "import", "--db", db, file).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}

	snap := testenv.Start(t, "snapshotter", dir, "--listen=127.0.0.1:0", "--db="+db, "--symbols=BTCUSDT",
		"--demo.enabled=false", "--simulator.enabled=false", "--snapshot.interval=1s")
	line := snap.WaitLog(t, `"msg":"data gap`, 30*time.Second)
	for _, want := range []string{`"symbol":"BTCUSDT"`, `"reason":"no_open_interest"`, `"since":"`} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %s lacks %s", line, want)
		}
	}
	waitReady(t, "http://"+snap.Addr)
	resp, err := http.Get("http://" + snap.Addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "BTCUSDT has candles but no open-interest data") {
		t.Fatalf("snapshotter /readyz: %d %s", resp.StatusCode, body)
	}

	gw := testenv.Start(t, "gateway", dir, "--listen=127.0.0.1:0", "--snapshotter_url=http://"+snap.Addr)
	waitReady(t, "http://"+gw.Addr)
	browser := testenv.Browser(t)
	tab := open(t, browser, "http://"+gw.Addr+"/?symbol=BTCUSDT")
	waitFor(t, tab, `__liqstream.dataGap.includes("BTCUSDT has candles but no open-interest data") && __liqstream.history === "ok"`, 30*time.Second)
	if got := text(t, tab, "#data-gap"); !strings.Contains(got, "BTCUSDT has candles but no open-interest data") {
		t.Errorf("#data-gap shows %q", got)
	}
	if hidden, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("data-gap").hidden`)); err != nil || hidden {
		t.Errorf("#data-gap hidden=%v err=%v", hidden, err)
	}
}
