package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// fleetClient is one browser stand-in behind nginx, pinned to a source address.
type fleetClient struct {
	src     string
	gateway string
	c       *wsclient.Client
}

func dialFrom(t *testing.T, url, src string) (*wsclient.Client, string) {
	t.Helper()
	c, resp, err := wsclient.Dial(url, wsclient.Options{LocalAddr: src})
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp.Header.Get("X-Liqstream-Gateway")
}

func subscribe(t *testing.T, c *wsclient.Client) map[string]any {
	t.Helper()
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1}); err != nil {
		t.Fatal(err)
	}
	m, err := c.NextOfType("snapshot", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func seq(m map[string]any) int { return int(m["seq"].(float64)) }

func readySource(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct{ Source string }
	json.Unmarshal(b, &r)
	return resp.StatusCode, r.Source
}

func awaitAll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling readiness probes, as an orchestrator does
	}
}

// TestFleet runs the split architecture for real: redis-server, a
// snapshotter, three gateways and nginx with ip_hash, then breaks it.
func TestFleet(t *testing.T) {
	// 2 s between snapshots and a 1 s client interval: no frame is ever held
	// back by the client's interval, so every client must see every seq.
	f := testenv.StartFleet(t, 3, "--snapshot.interval=2s", "--simulator.tick=200ms", "--demo.days=2")
	awaitAll(t, "every gateway ready on redis", func() bool {
		for _, g := range f.Gateways {
			if code, src := readySource(t, g.Addr); code != 200 || src != "redis" {
				return false
			}
		}
		return true
	})

	// ip_hash keys on the first three octets: spread clients over 127.X.0.1
	// until every gateway holds one.
	clients := map[string]*fleetClient{}
	for x := 1; x <= 64 && len(clients) < len(f.Gateways); x++ {
		src := fmt.Sprintf("127.%d.0.1", x)
		c, gw := dialFrom(t, f.EdgeURL(), src)
		if gw == "" {
			t.Fatal("upgrade response lacks X-Liqstream-Gateway")
		}
		if _, seen := clients[gw]; seen {
			c.Close()
			continue
		}
		clients[gw] = &fleetClient{src: src, gateway: gw, c: c}
	}
	if len(clients) != len(f.Gateways) {
		t.Fatalf("clients reached %d of %d gateways through nginx", len(clients), len(f.Gateways))
	}
	var list []*fleetClient
	for _, fc := range clients {
		subscribe(t, fc.c)
		list = append(list, fc)
	}

	// next returns a client's next snapshot and when it was read.
	next := func(fc *fleetClient) (map[string]any, time.Time) {
		t.Helper()
		for {
			fr, err := fc.c.Next(20 * time.Second)
			if err != nil {
				t.Fatalf("client on %s: %v", fc.gateway, err)
			}
			var m map[string]any
			json.Unmarshal(fr.Bytes, &m)
			if m["type"] == "snapshot" {
				return m, fr.Read
			}
		}
	}

	t.Run("every client gets every update", func(t *testing.T) {
		var want []int
		for i, fc := range list {
			var got []int
			for len(got) < 4 {
				m, _ := next(fc)
				got = append(got, seq(m))
			}
			if i == 0 {
				want = got
				// A later client may have read one more or one fewer frame
				// before this point; align on the first client's sequence.
				continue
			}
			for len(got) > 0 && got[0] < want[0] {
				m, _ := next(fc)
				got = append(got[1:], seq(m))
			}
			for len(got) > 0 && got[0] > want[0] {
				want = want[1:]
				m, _ := next(list[0])
				want = append(want, seq(m))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("client on %s saw seqs %v, client on %s saw %v", fc.gateway, got, list[0].gateway, want)
			}
			for j := 1; j < len(got); j++ {
				if got[j] != got[j-1]+1 {
					t.Fatalf("client on %s skipped an update: %v", fc.gateway, got)
				}
			}
		}
	})

	t.Run("a gateway started late serves the latest snapshot at once", func(t *testing.T) {
		late := f.StartGateway(t)
		awaitAll(t, "late gateway ready", func() bool { code, _ := readySource(t, late.Addr); return code == 200 })
		latest, _ := next(list[0])
		c, _ := dialFrom(t, "ws://"+late.Addr+"/ws/heatmap", "127.0.0.1")
		start := time.Now()
		m := subscribe(t, c)
		t.Logf("late gateway: first snapshot %s after subscribe", time.Since(start))
		if seq(m) < seq(latest) {
			t.Fatalf("late gateway served seq %d, older than the latest %d", seq(m), seq(latest))
		}
	})

	t.Run("a redis outage loses no client and updates keep coming", func(t *testing.T) {
		last := map[*fleetClient]time.Time{}
		for _, fc := range list {
			_, at := next(fc)
			last[fc] = at
		}
		f.Redis.Stop()
		awaitAll(t, "every gateway in fallback", func() bool {
			for _, g := range f.Gateways {
				if code, src := readySource(t, g.Addr); code != 200 || !strings.Contains(src, "fallback") {
					return false
				}
			}
			return true
		})
		var worst time.Duration
		for _, fc := range list {
			prev := last[fc]
			for i := 0; i < 3; i++ {
				_, at := next(fc)
				worst = max(worst, at.Sub(prev))
				prev = at
			}
		}
		t.Logf("redis down: largest gap between two snapshots on any client %s (snapshot interval 2s)", worst)
		f.Redis.Restart()
		awaitAll(t, "every gateway back on redis", func() bool {
			for _, g := range f.Gateways {
				if code, src := readySource(t, g.Addr); code != 200 || src != "redis" {
					return false
				}
			}
			return true
		})
		for _, fc := range list {
			a, _ := next(fc)
			b, _ := next(fc)
			if seq(b) <= seq(a) {
				t.Fatalf("after redis returned, client on %s got seq %d then %d", fc.gateway, seq(a), seq(b))
			}
		}
	})

	t.Run("killing a gateway moves its clients to the others", func(t *testing.T) {
		victim := list[0]
		var proc *testenv.Proc
		for _, g := range f.Gateways {
			resp, err := http.Get("http://" + g.Addr + "/ws/stats")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if strings.Contains(g.Logs(), `"instance":"`+victim.gateway+`"`) {
				proc = g
			}
		}
		if proc == nil {
			t.Fatalf("no gateway process logs instance %s", victim.gateway)
		}
		killed := time.Now()
		proc.Signal(syscall.SIGKILL)
		select {
		case <-victim.c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the killed gateway's client never saw its connection drop")
		}
		c, gw := dialFrom(t, f.EdgeURL(), victim.src)
		if gw == victim.gateway || gw == "" {
			t.Fatalf("reconnect from %s landed on %q, want another gateway than %s", victim.src, gw, victim.gateway)
		}
		m := subscribe(t, c)
		t.Logf("gateway killed: client back on %s with snapshot seq %d %s after the kill", gw, seq(m), time.Since(killed))
		// The survivors' clients never noticed.
		for _, fc := range list[1:] {
			next(fc)
		}
	})
}
