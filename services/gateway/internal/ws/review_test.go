package ws

// Regression tests for the review of issue 10; each is named after its item.

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
	dto "github.com/prometheus/client_model/go"
)

// A connection whose snapshots are rare (update_interval 60) must survive
// every later write: the page's own pings, the answers to them and the
// server's pings. Time runs 100 times faster than the page's defaults: a
// client ping every 300 ms stands for 30 s, 3 s for 5 minutes.
func TestReview1QuietConnectionSurvivesLaterWrites(t *testing.T) {
	cfg := DefaultConfig()
	// A snapshot write arms a 40 ms socket deadline; the old code left it armed.
	cfg.WriteTimeout, cfg.SlowMaxMisses = 20*time.Millisecond, 1
	cfg.PingInterval, cfg.IdleTimeout = 300*time.Millisecond, 900*time.Millisecond
	f := start(t, cfg)
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 1, 0))
	c := dial(t, f.url, wsclient.Options{})
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 60})
	if m := next(t, c); m["type"] != "snapshot" {
		t.Fatalf("first frame %v, want the latest snapshot", m)
	}
	start := time.Now()
	for i := 2; time.Since(start) < 3*time.Second; i++ {
		// The passing time between client pings is what this test is about.
		select {
		case <-c.Done():
			t.Fatalf("connection closed %s after the last snapshot write: %v", time.Since(start).Round(time.Millisecond), c.Err())
		case <-time.After(300 * time.Millisecond):
		}
		// The producer keeps publishing; the client's interval holds them back.
		f.hub.Publish("BTCUSDT", frame("BTCUSDT", i, 0))
		if err := c.Send(map[string]string{"action": "ping"}); err != nil {
			t.Fatalf("ping %s after the last snapshot write: %v", time.Since(start).Round(time.Millisecond), err)
		}
		if _, err := c.NextOfType("pong", wait); err != nil {
			t.Fatalf("%s after the last snapshot write: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	if c.Pings() < 3 {
		t.Fatalf("the server sent %d pings in 3 s at a 300 ms ping interval: its own pings were not exercised", c.Pings())
	}
	if n := counter(f.m.Disconnects.WithLabelValues("idle")); n != 0 {
		t.Fatalf("%v idle disconnects", n)
	}
}

// An upgrade admitted just before a drain starts must still be closed with
// 1012, and Drain must wait for it.
func TestReview2UpgradeOverlappingDrainIsClosed(t *testing.T) {
	f := start(t, DefaultConfig())
	admitted, release := make(chan struct{}), make(chan struct{})
	f.srv.admitted = func() {
		close(admitted)
		<-release
	}
	type dialed struct {
		c   *wsclient.Client
		err error
	}
	got := make(chan dialed, 1)
	go func() {
		c, _, err := wsclient.Dial(f.url, wsclient.Options{})
		got <- dialed{c, err}
	}()
	<-admitted
	drained := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	go func() { drained <- f.srv.Drain(ctx) }()
	waitFor(t, "the drain to start", func() bool { return f.srv.Stats().Draining })
	close(release)
	d := <-got
	if d.err != nil {
		t.Fatalf("the upgrade admitted before the drain failed: %v", d.err)
	}
	defer d.c.Close()
	awaitClose(t, d.c)
	if code := closeCode(d.c); code != CloseServiceRestart {
		t.Fatalf("close %v, want 1012", d.c.Err())
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Active(); n != 0 {
		t.Fatalf("drain returned with %d connections open", n)
	}
}

func TestReview3ClientAddressBehindProxies(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
	f := start(t, cfg)
	tests := []struct {
		name, peer string
		xff        []string
		realIP     string
		want       string
	}{
		{"no proxy headers", "10.0.0.5:4000", nil, "", "10.0.0.5"},
		{"untrusted peer: headers ignored", "198.51.100.1:4000", []string{"203.0.113.7"}, "203.0.113.9", "198.51.100.1"},
		{"one trusted hop", "10.0.0.5:4000", []string{"203.0.113.7"}, "", "203.0.113.7"},
		{"two trusted hops", "10.0.0.5:4000", []string{"203.0.113.7, 10.0.0.9"}, "", "203.0.113.7"},
		{"hops over two headers", "10.0.0.5:4000", []string{"203.0.113.7", "10.0.0.9"}, "", "203.0.113.7"},
		{"client-set entry left of the real one", "10.0.0.5:4000", []string{"198.51.100.66, 203.0.113.7"}, "", "203.0.113.7"},
		{"port is stripped", "10.0.0.5:4000", []string{"203.0.113.7:5555"}, "", "203.0.113.7"},
		{"bracketed IPv6 with port", "10.0.0.5:4000", []string{"[2001:db8::1]:443"}, "", "2001:db8::1"},
		{"IPv4-mapped IPv6", "10.0.0.5:4000", []string{"::ffff:203.0.113.7"}, "", "203.0.113.7"},
		{"junk cannot become its own key", "10.0.0.5:4000", []string{"junk"}, "", "10.0.0.5"},
		{"junk behind a trusted hop stops the walk there", "10.0.0.5:4000", []string{"junk, 10.0.0.9"}, "", "10.0.0.9"},
		{"all hops trusted: the first", "10.0.0.5:4000", []string{"10.0.0.7, 10.0.0.9"}, "", "10.0.0.7"},
		{"X-Real-IP cannot override the forwarded chain", "10.0.0.5:4000", []string{"203.0.113.7"}, "198.51.100.9", "203.0.113.7"},
		{"X-Real-IP alone is not trusted", "10.0.0.5:4000", nil, "198.51.100.9", "10.0.0.5"},
		{"IPv6 trusted peer", "[fd00::2]:4000", []string{"2001:db8::7"}, "", "2001:db8::7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/ws/heatmap", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := f.srv.ClientIP(r); got != tc.want {
				t.Fatalf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

// A publish that lands between a subscribe's latest-frame read and its send
// must not make the client see the newer frame and then the older one. The
// interleaving is replayed step by step on the session the server made.
func TestReview4SubscriberNeverGetsAnOlderFrame(t *testing.T) {
	f := start(t, DefaultConfig())
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 1, 0))
	c := dial(t, f.url, wsclient.Options{})
	waitFor(t, "the session", func() bool { return f.srv.Active() == 1 })
	ss := f.srv.snapshot()[0]

	ss.track([]string{"BTCUSDT"}, false)
	latest, err := f.hub.Subscribe(ss, []string{"BTCUSDT"}, 10)
	if err != nil || len(latest) != 1 {
		t.Fatalf("subscribe: %v, %d latest frames", err, len(latest))
	}
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 2, 0)) // the publish in the window
	for _, fr := range latest {
		ss.sendNow(fr)
		fr.Release()
	}
	// A pong is written after whatever the session queued before it.
	mustSend(t, c, map[string]string{"action": "ping"})
	var seqs []float64
	for {
		m := next(t, c)
		if m["type"] == "pong" {
			break
		}
		seqs = append(seqs, m["seq"].(float64))
	}
	if len(seqs) != 1 || seqs[0] != 2 {
		t.Fatalf("client got seqs %v, want [2]: never anything older than what it already has", seqs)
	}
}

// A client that sends many small requests and never reads their answers must
// be closed, not buffered without bound.
func TestReview5UnreadRepliesAreBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ActionsPerSecond, cfg.ActionBurst = 1e9, 1<<30 // within the rate limit by construction
	f := start(t, cfg)
	c := dial(t, f.url, wsclient.Options{Buffer: 1}) // stops reading after a frame
	ping := []byte(`{"action":"ping"}`)
	for i := 0; i < 400_000 && f.srv.Active() == 1; i++ {
		if c.SendRaw(ping) != nil {
			break // the server has closed the socket
		}
	}
	waitFor(t, "the non-reading client to be closed", func() bool { return f.srv.Active() == 0 })
	if n := counter(f.m.Disconnects.WithLabelValues("slow_consumer")); n != 1 {
		t.Fatalf("slow_consumer disconnects %v, want 1 (idle %v, error %v, client %v)", n, counter(f.m.Disconnects.WithLabelValues("idle")), counter(f.m.Disconnects.WithLabelValues("error")), counter(f.m.Disconnects.WithLabelValues("client")))
	}
}

// A subscribe refused for an unknown symbol must not change the interval of
// the subscriptions the connection already has.
func TestReview11RefusedSubscribeKeepsInterval(t *testing.T) {
	clk := newFakeClock()
	f := startClock(t, DefaultConfig(), clk)
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 1, 0))
	c := dial(t, f.url, wsclient.Options{})
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1})
	if m := next(t, c); m["seq"] != 1.0 {
		t.Fatalf("first frame %v", m)
	}
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"DOGEUSDT"}, "update_interval": 60})
	if m := next(t, c); m["code"] != "INVALID_SYMBOL" {
		t.Fatalf("got %v, want INVALID_SYMBOL", m)
	}
	clk.advance(1100 * time.Millisecond) // past the 1 s interval, far inside 60 s
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 2, 0))
	if m := next(t, c); m["seq"] != 2.0 {
		t.Fatalf("got %v, want seq 2 at once: the refused subscribe changed the interval", m)
	}
}

// The total cap counts upgrades still in progress.
func TestReview11MaxConnectionsCountsUpgradesInProgress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConns = 1
	f := start(t, cfg)
	admitted, release := make(chan struct{}), make(chan struct{})
	var n atomic.Int32
	f.srv.admitted = func() {
		if n.Add(1) == 1 {
			close(admitted)
			<-release
		}
	}
	first := make(chan error, 1)
	go func() {
		c, _, err := wsclient.Dial(f.url, wsclient.Options{})
		if err == nil {
			c.Close()
		}
		first <- err
	}()
	<-admitted
	c, resp, err := wsclient.Dial(f.url, wsclient.Options{})
	close(release)
	if err == nil {
		c.Close()
		t.Fatal("a second connection was admitted while the first upgrade was in progress: max_connections 1")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second upgrade: %v %v, want 503", resp, err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first upgrade: %v", err)
	}
}

// Drain returns when the last session is gone; by then every count of it must
// be gone too. CI once saw Drain return with Active() still 1: the session
// left the set and woke Drain before its counters were updated. Repeated
// because the window is a few instructions wide.
func TestDrainReturnsWithEveryCountSettled(t *testing.T) {
	for i := 0; i < 200; i++ {
		// A round of its own, so each server is gone before the next starts.
		ok := t.Run("", func(t *testing.T) {
			cfg := DefaultConfig()
			// Compression's pools cost 100 ms a server under -race; not what this is about.
			cfg.Compression = false
			f := start(t, cfg)
			for j := 0; j < 3; j++ {
				dial(t, f.url, wsclient.Options{})
			}
			waitFor(t, "3 connections", func() bool { return f.srv.Active() == 3 })
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := f.srv.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			active, drained := f.srv.Active(), counter(f.m.Disconnects.WithLabelValues("drain"))
			var g dto.Metric
			if err := f.m.ActiveConnections.Write(&g); err != nil {
				t.Fatal(err)
			}
			if active != 0 || g.GetGauge().GetValue() != 0 || drained != 3 {
				t.Fatalf("round %d: drain returned with %d active, gauge %v, %v drain disconnects (want 0, 0, 3)",
					i, active, g.GetGauge().GetValue(), drained)
			}
		})
		if !ok {
			return
		}
	}
}
