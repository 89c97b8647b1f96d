package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// TestBrowserDeltaMatchesFull: the page on delta encoding (its default)
// builds the same snapshot from deltas as a page on full frames receives
// whole, after many updates.
func TestBrowserDeltaMatchesFull(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())
	browser := testenv.Browser(t)
	delta := open(t, browser, s.GatewayURL()+"/?symbol=BTCUSDT&update_interval=1")
	full := open(t, browser, s.GatewayURL()+"/?symbol=BTCUSDT&update_interval=1&encoding=full")
	waitFor(t, delta, `__liqstream.client.encoding === "delta" && __liqstream.client.deltas >= 8`, 60*time.Second)

	type latest struct {
		Seq    int            `json:"seq"`
		Epoch  int            `json:"epoch"`
		Data   map[string]any `json:"data"`
		Deltas int            `json:"deltas"`
	}
	read := func(tab context.Context) latest {
		t.Helper()
		var l latest
		b, err := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify({...__liqstream.latest, deltas: __liqstream.client.deltas})`))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(b), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	// The tabs read the same frames a few ms apart: compare when both show
	// the same one (nothing to await across two tabs, so poll).
	deadline := time.Now().Add(30 * time.Second)
	matched := 0
	for matched < 3 {
		d, f := read(delta), read(full)
		if d.Seq == f.Seq && d.Epoch == f.Epoch && d.Seq > 0 {
			if !reflect.DeepEqual(d.Data, f.Data) {
				db, _ := json.Marshal(d.Data)
				fb, _ := json.Marshal(f.Data)
				t.Fatalf("seq %d: the delta page holds\n%s\nthe full page\n%s", d.Seq, db, fb)
			}
			if f.Deltas != 0 {
				t.Fatalf("the full-encoding page applied %d deltas", f.Deltas)
			}
			t.Logf("seq %d: same snapshot on both pages (%d levels); the delta page applied %d deltas", d.Seq, len(d.Data["levels"].([]any)), d.Deltas)
			matched++
			waitFor(t, delta, `__liqstream.latest.seq > `+itoa(d.Seq), 15*time.Second)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pages never showed the same frame at once (matched %d): delta at %d, full at %d", matched, d.Seq, f.Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
