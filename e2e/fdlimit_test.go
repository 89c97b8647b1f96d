package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// A gateway that runs out of file descriptors keeps serving the connections
// it has, logs the condition as JSON warn lines at most once a second, and
// accepts again once descriptors free up.
func TestGatewayOutOfFileDescriptors(t *testing.T) {
	dir := t.TempDir()
	snap := testenv.Start(t, "snapshotter", dir, append([]string{"--listen=127.0.0.1:0", "--db=" + dir + "/x.duckdb"}, testenv.FastSnapshotterArgs...)...)
	gw := testenv.StartWithFDLimit(t, 64, "gateway", dir, "--listen=127.0.0.1:0", "--snapshotter_url=http://"+snap.Addr,
		"--ws.max_connections_per_ip=1000")
	waitReady(t, "http://"+gw.Addr)
	url := "ws://" + gw.Addr + "/ws/heatmap"

	// Far more clients than 64 descriptors hold: the rest wait in the
	// listen backlog and give up.
	started := time.Now()
	var (
		mu        sync.Mutex
		connected []*wsclient.Client
		wg        sync.WaitGroup
	)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := wsclient.Dial(url, wsclient.Options{HandshakeTimeout: 3 * time.Second})
			if err == nil {
				mu.Lock()
				connected = append(connected, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range connected {
			c.Close()
		}
	})
	if len(connected) == 0 || len(connected) >= 100 {
		t.Fatalf("%d of 100 clients connected under a 64-descriptor limit", len(connected))
	}
	gw.WaitLog(t, "out of file descriptors", 10*time.Second)

	// The connections it has are served.
	c := connected[0]
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NextOfType("snapshot", 15*time.Second); err != nil {
		t.Fatalf("a connected client got no snapshot while the gateway is out of descriptors: %v", err)
	}

	// Free descriptors: a new client gets in.
	for _, c := range connected[1:21] {
		c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, _, err := wsclient.Dial(url, wsclient.Options{HandshakeTimeout: 3 * time.Second})
		if err == nil {
			nc.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new connection accepted after 20 clients left: %v", err)
		}
	}
	elapsed := time.Since(started)

	var lines int
	for _, line := range strings.Split(gw.Logs(), "\n") {
		if !strings.Contains(line, "too many open files") {
			continue
		}
		lines++
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != "WARN" {
			t.Fatalf("out-of-descriptors line is not a JSON warn: %q", line)
		}
	}
	if max := int(elapsed/time.Second) + 2; lines > max {
		t.Fatalf("%d out-of-descriptors lines in %s: want at most one a second", lines, elapsed.Round(time.Second))
	}
	t.Logf("%d of 100 clients connected; %d warn lines in %s; accepting again after 20 left", len(connected), lines, elapsed.Round(time.Millisecond))
}
