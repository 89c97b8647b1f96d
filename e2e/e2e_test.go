// Package e2e runs liqstream's real binaries together: a snapshotter on a
// DuckDB file in a temp dir and a gateway reading from it, over real sockets.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

func dial(t *testing.T, url string) *wsclient.Client {
	t.Helper()
	c, _, err := wsclient.Dial(url, wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/readyz never turned ready", base)
		case <-time.After(100 * time.Millisecond): // polling a readiness probe, as an orchestrator does
		}
	}
}

func TestSubscribeOverRealStack(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	s.Snapshotter.WaitLog(t, `"symbol":"ETHUSDT","candles":`, 60*time.Second) // the demo seed of ETHUSDT
	waitReady(t, s.GatewayURL())

	c := dial(t, s.WSURL())
	// update_interval 1 matches the test snapshotter's 1 s cadence; the
	// default 5 s would hold frames back on purpose.
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1}); err != nil {
		t.Fatal(err)
	}
	first, err := c.NextJSON(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, first, "BTCUSDT")

	// The simulator moves the open candle every 200 ms and the snapshotter
	// recomputes every second: a newer frame must follow within two intervals
	// (plus slack for a loaded machine; the bound is on arrival, not speed).
	next, err := c.NextJSON(2*time.Second + 3*time.Second)
	if err != nil {
		t.Fatalf("no newer snapshot: %v", err)
	}
	checkSnapshot(t, next, "BTCUSDT")
	if next["seq"].(float64) <= first["seq"].(float64) {
		t.Fatalf("seq did not advance: %v then %v", first["seq"], next["seq"])
	}
	ts1, _ := time.Parse(time.RFC3339Nano, first["timestamp"].(string))
	ts2, _ := time.Parse(time.RFC3339Nano, next["timestamp"].(string))
	if !ts2.After(ts1) {
		t.Fatalf("timestamp did not advance: %v then %v", ts1, ts2)
	}
}

// checkSnapshot asserts the fields DESIGN.md §5 promises existing clients.
func checkSnapshot(t *testing.T, m map[string]any, sym string) {
	t.Helper()
	if m["type"] != "snapshot" || m["symbol"] != sym {
		t.Fatalf("not a %s snapshot: %v", sym, m)
	}
	ts, ok := m["timestamp"].(string)
	if !ok || !strings.HasSuffix(ts, "Z") || !strings.Contains(ts, ".") {
		t.Fatalf("timestamp %v: want RFC 3339 UTC with sub-second digits", m["timestamp"])
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Fatalf("timestamp %q: %v", ts, err)
	}
	if _, ok := m["seq"].(float64); !ok {
		t.Fatalf("no seq: %v", m)
	}
	data, ok := m["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data: %v", m)
	}
	levels, ok := data["levels"].([]any)
	if !ok || len(levels) == 0 {
		t.Fatalf("data.levels empty or missing: %v", data["levels"])
	}
	prev := -1.0
	for _, l := range levels {
		lv := l.(map[string]any)
		p, ok1 := lv["price"].(float64)
		ld, ok2 := lv["long_density"].(float64)
		sd, ok3 := lv["short_density"].(float64)
		if !ok1 || !ok2 || !ok3 || p <= prev || ld < 0 || sd < 0 || ld+sd == 0 {
			t.Fatalf("bad level %v (after price %v)", lv, prev)
		}
		prev = p
	}
	for _, k := range []string{"current_price", "positions_created", "positions_consumed"} {
		if _, ok := data[k].(float64); !ok {
			t.Fatalf("data.%s missing or not a number: %v", k, data)
		}
	}
	if data["current_price"].(float64) <= 0 {
		t.Fatalf("current_price %v", data["current_price"])
	}
}

func TestBadInputKeepsConnection(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())
	c := dial(t, s.WSURL())
	tests := []struct {
		send, code, text string
	}{
		{`this is not json`, "INVALID_MESSAGE", "JSON"},
		{`{"action":"explode"}`, "INVALID_ACTION", "explode"},
		{`{"action":"subscribe","symbols":["NOPEUSDT"]}`, "INVALID_SYMBOL", "valid symbols: BTCUSDT, ETHUSDT"},
	}
	for _, tc := range tests {
		if err := c.SendRaw([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		m, err := c.NextJSON(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m["type"] != "error" || m["code"] != tc.code || !strings.Contains(m["message"].(string), tc.text) {
			t.Fatalf("sent %s: got %v, want %s containing %q", tc.send, m, tc.code, tc.text)
		}
	}
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"ETHUSDT"}}); err != nil {
		t.Fatal(err)
	}
	m, err := c.NextJSON(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, m, "ETHUSDT")
}

func TestPageAndHTTPSurface(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())
	tests := []struct {
		path, want string
		code       int
	}{
		{"/", "<canvas", 200},
		{"/liqstream.js", "export class LiqstreamClient", 200},
		{"/api/v1/snapshot/BTCUSDT", `"type":"snapshot"`, 200},
		{"/api/v1/snapshot/NOPE", "valid symbols: BTCUSDT, ETHUSDT", 404},
		{"/api/v1/symbols", `["BTCUSDT","ETHUSDT"]`, 200},
		{"/healthz", "ok", 200},
		{"/ws/stats", `"subscriptions_by_symbol":{}`, 200},
		{"/metrics", "ws_active_connections 0", 200},
		// Two days of demo data: 48 hourly snapshots of closed candles.
		{"/liquidations/heatmap-timeseries?symbol=BTCUSDT&time_window=48h&interval=1h", `"total_snapshots":48`, 200},
		{"/liquidations/heatmap-timeseries?symbol=BTCUSDT&interval=7m", `interval:`, 400},
		{"/prices/klines?symbol=ETHUSDT&interval=1h", `"interval":"1h"`, 200},
		{"/data/open-interest?symbol=ETHUSDT", `"open_interest_value":`, 200},
		{"/data/date-range?symbol=BTCUSDT", `"interval":"5m"`, 200},
	}
	for _, tc := range tests {
		resp, err := http.Get(s.GatewayURL() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %.200q, want %d containing %q", tc.path, resp.StatusCode, b, tc.code, tc.want)
		}
	}
}

// TestRestartReusesDuckDBFile stops the stack with SIGINT (Ctrl-C) and starts
// a snapshotter on the same file: it must not seed again and must keep every row.
func TestRestartReusesDuckDBFile(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())
	if err := s.Gateway.Stop(t, 15*time.Second); err != nil {
		t.Fatalf("gateway exit after SIGINT: %v", err)
	}
	if err := s.Snapshotter.Stop(t, 15*time.Second); err != nil {
		t.Fatalf("snapshotter exit after SIGINT: %v", err)
	}
	if n := storeKlines(t, s.Snapshotter); n != 0 {
		t.Fatalf("first start found %d klines in a fresh temp dir", n)
	}
	snap := testenv.Start(t, "snapshotter", s.Dir, append([]string{"--listen=127.0.0.1:0", "--db=" + s.DB}, testenv.FastSnapshotterArgs...)...)
	// Two days of demo candles for two symbols, plus what the simulator added.
	if n := storeKlines(t, snap); n < 2*2*288 {
		t.Fatalf("second start found %d klines, want at least %d: the file was not reused", n, 2*2*288)
	}
	if err := snap.Stop(t, 15*time.Second); err != nil {
		t.Fatalf("second snapshotter exit: %v", err)
	}
	if strings.Contains(snap.Logs(), "seeded demo data") {
		t.Fatal("second start seeded demo data into a store that had data")
	}
}

// storeKlines reads the kline count the snapshotter logs when it opens its store.
func storeKlines(t *testing.T, p *testenv.Proc) int {
	t.Helper()
	line := p.WaitLog(t, `"msg":"store opened"`, 30*time.Second)
	var rec struct {
		Klines int `json:"klines"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("store opened line %q: %v", line, err)
	}
	return rec.Klines
}
