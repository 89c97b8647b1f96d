package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
)

const wait = 10 * time.Second

type fixture struct {
	hub *hub.Hub
	srv *Server
	m   *metrics.Metrics
	url string
}

func start(t *testing.T, cfg Config) *fixture { return startClock(t, cfg, nil) }

// fakeClock stands still until advanced, so a test decides when a client's
// update interval has passed and when a write has missed its deadline. Its
// timers fire, in order and on the advancing goroutine, when advanced past.
type fakeClock struct {
	ns     atomic.Int64
	mu     sync.Mutex
	timers []*fakeTimer
	fired  []time.Time
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped atomic.Bool
}

func (t *fakeTimer) Stop() bool { return !t.stopped.Swap(true) }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *fakeClock) afterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now().Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// advance moves the clock by d, stopping at each timer due on the way to fire it.
func (c *fakeClock) advance(d time.Duration) {
	end := c.now().Add(d)
	for {
		c.mu.Lock()
		var next *fakeTimer
		idx := -1
		for i, t := range c.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next, idx = t, i
			}
		}
		if next == nil {
			c.mu.Unlock()
			c.ns.Store(end.UnixNano())
			return
		}
		c.timers = append(c.timers[:idx], c.timers[idx+1:]...)
		c.mu.Unlock()
		if next.at.After(c.now()) {
			c.ns.Store(next.at.UnixNano())
		}
		if !next.stopped.Swap(true) {
			c.mu.Lock()
			c.fired = append(c.fired, next.at)
			c.mu.Unlock()
			next.f()
		}
	}
}

// firedAt lists when each timer fired.
func (c *fakeClock) firedAt() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.fired...)
}

// pending is how many timers wait to fire.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped.Load() {
			n++
		}
	}
	return n
}

// startClock starts a server on clk, or on the real clock when clk is nil.
func startClock(t *testing.T, cfg Config, clk *fakeClock) *fixture {
	t.Helper()
	h := hub.New([]string{"BTCUSDT", "ETHUSDT", "SOLUSDT"})
	m := metrics.New()
	s, err := New(cfg, h, m, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		s.now, s.afterFunc = clk.now, clk.afterFunc
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		cancel()
		<-done
		hs.CloseClientConnections()
		hs.Close()
	})
	return &fixture{hub: h, srv: s, m: m, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

func dial(t *testing.T, url string, opt wsclient.Options) *wsclient.Client {
	t.Helper()
	c, _, err := wsclient.Dial(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSend(t *testing.T, c *wsclient.Client, v any) {
	t.Helper()
	if err := c.Send(v); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, c *wsclient.Client) map[string]any {
	t.Helper()
	m, err := c.NextJSON(wait)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond: the server updates counters on its own goroutines, and
// there is no event to await for "a connection was forgotten".
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextSnapshot skips warnings: the fake clock jumps past the write timeout
// while a fast client's write may still be finishing, which the watchdog
// rightly reads as a miss.
func nextSnapshot(t *testing.T, c *wsclient.Client) map[string]any {
	t.Helper()
	m, err := c.NextOfType("snapshot", wait)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func closeCode(c *wsclient.Client) uint16 {
	var ce *wsclient.CloseError
	if errors.As(c.Err(), &ce) {
		return ce.Code
	}
	return 0
}

func awaitClose(t *testing.T, c *wsclient.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("connection was not closed")
	}
}

func frame(sym string, seq int, pad int) []byte {
	return []byte(fmt.Sprintf(`{"type":"snapshot","symbol":%q,"seq":%d,"pad":"%s"}`, sym, seq, strings.Repeat("x", pad)))
}

func TestSubscribeGetsLatestAtOnceThenUpdates(t *testing.T) {
	f := start(t, DefaultConfig())
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 1, 0))
	c := dial(t, f.url, wsclient.Options{})
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"btcusdt"}, "update_interval": 1})
	fr, err := c.Next(wait)
	if err != nil || string(fr.Bytes) != string(frame("BTCUSDT", 1, 0)) {
		t.Fatalf("first frame %q %v: want the latest snapshot relayed byte for byte", fr.Bytes, err)
	}
	f.hub.Publish("ETHUSDT", frame("ETHUSDT", 1, 0)) // not subscribed
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 2, 0))
	if m := next(t, c); m["symbol"] != "BTCUSDT" || m["seq"] != 2.0 {
		t.Fatalf("update %v", m)
	}
	if f.srv.Active() != 1 {
		t.Fatalf("active %d, want 1", f.srv.Active())
	}
}

func TestBadInputGetsErrorAndConnectionLives(t *testing.T) {
	f := start(t, DefaultConfig())
	c := dial(t, f.url, wsclient.Options{})
	tests := []struct {
		name, send, code, text string
	}{
		{"not json", `subscribe me`, "INVALID_MESSAGE", "not a JSON object"},
		{"unknown action", `{"action":"dance"}`, "INVALID_ACTION", `"dance"`},
		{"unknown symbol names valid ones", `{"action":"subscribe","symbols":["DOGEUSDT"]}`, "INVALID_SYMBOL", "DOGEUSDT; valid symbols: BTCUSDT, ETHUSDT, SOLUSDT"},
		{"no symbols", `{"action":"subscribe"}`, "INVALID_MESSAGE", "symbols"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.SendRaw([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			m := next(t, c)
			if m["type"] != "error" || m["code"] != tc.code || !strings.Contains(m["message"].(string), tc.text) {
				t.Fatalf("got %v, want error %s containing %q", m, tc.code, tc.text)
			}
		})
	}
	mustSend(t, c, map[string]string{"action": "ping"})
	m := next(t, c)
	if m["type"] != "pong" {
		t.Fatalf("after bad input: %v, want pong", m)
	}
	if _, err := time.Parse(time.RFC3339Nano, m["timestamp"].(string)); err != nil {
		t.Fatalf("pong timestamp: %v", err)
	}
}

func TestUpdateIntervalIsHonoured(t *testing.T) {
	f := start(t, DefaultConfig())
	c := dial(t, f.url, wsclient.Options{})
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 0, 0))
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1})
	first, err := c.NextJSON(wait)
	if err != nil || first["seq"] != 0.0 {
		t.Fatalf("first frame %v %v", first, err)
	}
	// Ten frames inside one second: the client asked for one a second, so it
	// gets exactly one more, the newest, no sooner than a second after the first.
	for i := 1; i <= 10; i++ {
		f.hub.Publish("BTCUSDT", frame("BTCUSDT", i, 0))
	}
	fr, err := c.Next(wait)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fr.Bytes), `"seq":10,`) {
		t.Fatalf("held frame %s, want the newest (seq 10)", fr.Bytes)
	}
	if _, err := c.Next(1500 * time.Millisecond); err == nil {
		t.Fatal("got a third frame: the interval let more than one through")
	}
}

func TestLimits(t *testing.T) {
	t.Run("oversize frame closes with 1009", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.MaxFrameBytes = 256
		f := start(t, cfg)
		c := dial(t, f.url, wsclient.Options{})
		if err := c.SendRaw([]byte(`{"action":"ping","pad":"` + strings.Repeat("x", 1000) + `"}`)); err != nil {
			t.Fatal(err)
		}
		awaitClose(t, c)
		if code := closeCode(c); code != CloseTooBig {
			t.Fatalf("close %v, want 1009", c.Err())
		}
	})
	t.Run("flood gets RATE_LIMITED then a policy close", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.ActionsPerSecond, cfg.ActionBurst, cfg.MaxRateViolations = 1, 2, 5
		f := start(t, cfg)
		c := dial(t, f.url, wsclient.Options{})
		for i := 0; i < 10; i++ {
			// The server may close mid-flood; that is the outcome under test.
			if c.Send(map[string]string{"action": "ping"}) != nil {
				break
			}
		}
		var sawLimited bool
		for !sawLimited {
			m, err := c.NextJSON(wait)
			if err != nil {
				t.Fatalf("before RATE_LIMITED: %v", err)
			}
			sawLimited = m["type"] == "error" && m["code"] == "RATE_LIMITED"
		}
		awaitClose(t, c)
		if code := closeCode(c); code != ClosePolicy {
			t.Fatalf("close %v, want 1008", c.Err())
		}
		waitFor(t, "rate_limited disconnect counted", func() bool { return counter(f.m.Disconnects.WithLabelValues("rate_limited")) == 1 })
	})
	t.Run("symbols per connection", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.MaxSymbols = 2
		f := start(t, cfg)
		c := dial(t, f.url, wsclient.Options{})
		mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}})
		if m := next(t, c); m["code"] != "INVALID_MESSAGE" || !strings.Contains(m["message"].(string), "at most 2 symbols") {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("connections per IP and in total are refused with 503", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.MaxConnsPerIP, cfg.MaxConns = 2, 3
		f := start(t, cfg)
		dial(t, f.url, wsclient.Options{})
		dial(t, f.url, wsclient.Options{})
		_, resp, err := wsclient.Dial(f.url, wsclient.Options{})
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("third connection from one IP: %v %v, want 503", resp, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "too many connections from 127.0.0.1 (limit 2)") {
			t.Fatalf("refusal body %q", b)
		}
		// A trusted proxy's forwarded address counts separately; the total cap still holds.
		f.srv.trusted = append(f.srv.trusted, mustPrefix("127.0.0.0/8"))
		dial(t, f.url, wsclient.Options{Header: http.Header{"X-Forwarded-For": {"10.1.1.1"}}})
		_, resp, err = wsclient.Dial(f.url, wsclient.Options{Header: http.Header{"X-Forwarded-For": {"10.1.1.2"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("fourth connection: %v %v, want 503 for the total cap", resp, err)
		}
		b, _ = io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "limit of 3 connections") {
			t.Fatalf("refusal body %q", b)
		}
	})
	t.Run("origin allowlist refuses with 403", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.AllowedOrigins = []string{"https://liqstream.example"}
		f := start(t, cfg)
		_, resp, err := wsclient.Dial(f.url, wsclient.Options{Header: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: %v %v, want 403", resp, err)
		}
		dial(t, f.url, wsclient.Options{Header: http.Header{"Origin": {"https://liqstream.example"}}})
	})
	t.Run("default origin policy is same host", func(t *testing.T) {
		f := start(t, DefaultConfig())
		_, resp, err := wsclient.Dial(f.url, wsclient.Options{Header: http.Header{"Origin": {"http://elsewhere.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site origin with no allowlist: %v %v, want 403", resp, err)
		}
		host := strings.TrimPrefix(f.url, "ws://")
		dial(t, f.url, wsclient.Options{Header: http.Header{"Origin": {"http://" + host}}})
	})
}

func TestIdlePeerIsClosed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout, cfg.PingInterval = 300*time.Millisecond, time.Hour
	f := start(t, cfg)
	c := dial(t, f.url, wsclient.Options{})
	awaitClose(t, c)
	waitFor(t, "the idle connection to be forgotten", func() bool { return f.srv.Active() == 0 })
}

func TestDrainClosesEveryoneWith1012(t *testing.T) {
	f := start(t, DefaultConfig())
	var cs []*wsclient.Client
	for i := 0; i < 5; i++ {
		cs = append(cs, dial(t, f.url, wsclient.Options{}))
	}
	waitFor(t, "5 connections", func() bool { return f.srv.Active() == 5 })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := f.srv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		awaitClose(t, c)
		if code := closeCode(c); code != CloseServiceRestart {
			t.Fatalf("close %v, want 1012", c.Err())
		}
	}
	_, resp, err := wsclient.Dial(f.url, wsclient.Options{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %v %v, want 503", resp, err)
	}
	if n := counter(f.m.Disconnects.WithLabelValues("drain")); n != 5 {
		t.Fatalf("drain disconnects %v, want 5", n)
	}
}

// A client that stops reading must not slow anyone else or grow the
// gateway's memory: its frames are conflated (newest kept), it is warned with
// the number dropped, and when it reads again the newest frame is there.
func TestStalledReaderIsConflatedAndWarned(t *testing.T) {
	cfg := DefaultConfig()
	// The fake clock jumps past every interval at once, so the stalled write
	// counts many misses per publish; this test is about conflation, not the close.
	cfg.WriteTimeout, cfg.SlowMaxMisses, cfg.WarnInterval = 50*time.Millisecond, 1<<30, 0
	clk := newFakeClock()
	f := startClock(t, cfg, clk)
	fast := []*wsclient.Client{dial(t, f.url, wsclient.Options{}), dial(t, f.url, wsclient.Options{})}
	slow := dial(t, f.url, wsclient.Options{Buffer: 1})
	for _, c := range append(fast, slow) {
		mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1})
	}
	waitFor(t, "3 subscriptions", func() bool { return f.hub.Subscriptions()["BTCUSDT"] == 3 })
	const n = 60
	for i := 1; i <= n; i++ {
		// Past every client's 1 s update interval, so each frame is due at once.
		clk.advance(1100 * time.Millisecond)
		f.hub.Publish("BTCUSDT", frame("BTCUSDT", i, 256<<10))
		for _, c := range fast {
			m := nextSnapshot(t, c)
			if m["seq"] != float64(i) {
				t.Fatalf("fast client got seq %v, want %d: a stalled peer delayed or reordered it", m["seq"], i)
			}
		}
		if q := queued(f.srv); q > cfg.QueueSize {
			t.Fatalf("a connection queues %d frames, more than queue_size %d", q, cfg.QueueSize)
		}
	}
	if counter(f.m.FramesDropped.WithLabelValues("conflated"))+counter(f.m.FramesDropped.WithLabelValues("queue_full")) == 0 {
		t.Fatal("the stalled client dropped nothing: it was not stalled, the test proves nothing")
	}
	// Now the slow client reads everything it was sent.
	var got []map[string]any
	var warned bool
	for {
		m, err := slow.NextJSON(2 * time.Second)
		if err != nil {
			break
		}
		if m["type"] == "warning" && m["code"] == "SLOW_CONSUMER" && m["dropped_messages"].(float64) > 0 {
			warned = true
		}
		if m["type"] == "snapshot" {
			got = append(got, m)
		}
	}
	if !warned {
		t.Fatal("the slow client got no SLOW_CONSUMER warning with dropped_messages")
	}
	if len(got) == 0 || len(got) >= n || got[len(got)-1]["seq"] != float64(n) {
		t.Fatalf("slow client got %d snapshots ending at seq %v; want fewer than %d ending with the newest (%d)", len(got), got[len(got)-1]["seq"], n, n)
	}
}

func TestStalledReaderIsClosedAndOthersUnaffected(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout, cfg.SlowMaxMisses = 50*time.Millisecond, 3
	clk := newFakeClock()
	f := startClock(t, cfg, clk)
	fast, _ := fastAndStalled(t, f)
	for i := 1; f.srv.Active() == 2; i++ {
		if i > 2000 {
			t.Fatal("the stalled client was never closed")
		}
		clk.advance(1100 * time.Millisecond)
		f.hub.Publish("BTCUSDT", frame("BTCUSDT", i, 256<<10))
		if m := nextSnapshot(t, fast); m["seq"] != float64(i) {
			t.Fatalf("fast client got seq %v, want %d: %v", m["seq"], i, m)
		}
	}
	waitFor(t, "slow_consumer disconnect counted", func() bool { return counter(f.m.Disconnects.WithLabelValues("slow_consumer")) == 1 })
	if counter(f.m.SlowConsumers) < float64(cfg.SlowMaxMisses) {
		t.Fatalf("ws_slow_consumers_total %v, want at least %d misses", counter(f.m.SlowConsumers), cfg.SlowMaxMisses)
	}
}

func TestCompressionNegotiatedWhenOffered(t *testing.T) {
	tests := []struct {
		name        string
		server, cli bool
		want        bool
	}{
		{"offered and enabled", true, true, true},
		{"not offered", true, false, false},
		{"disabled on the server", false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Compression = tc.server
			f := start(t, cfg)
			c, resp, err := wsclient.Dial(f.url, wsclient.Options{Compression: tc.cli})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
			if got != tc.want {
				t.Fatalf("negotiated %v (%q), want %v", got, resp.Header.Get("Sec-WebSocket-Extensions"), tc.want)
			}
			// A frame above the threshold arrives intact either way.
			big := frame("BTCUSDT", 1, 64<<10)
			f.hub.Publish("BTCUSDT", big)
			mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}})
			fr, err := c.Next(wait)
			if err != nil || string(fr.Bytes) != string(big) {
				t.Fatalf("frame %d bytes, err %v; want the %d bytes published", len(fr.Bytes), err, len(big))
			}
		})
	}
}
