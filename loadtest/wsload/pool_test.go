package wsload

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// scripted is a WebSocket server that answers a subscribe, once go is
// closed, with a fixed script: snapshots 1, 2, 4, 3 of BTCUSDT, a
// SLOW_CONSUMER warning, an error, a pong, and a close — 4008 for clients
// that subscribed to ETHUSDT too, 1001 for the others.
type scripted struct {
	gws.BuiltinEventHandler
	start chan struct{}
}

func (s *scripted) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	both := strings.Contains(string(m.Bytes()), "ETHUSDT")
	go func() {
		<-s.start
		for _, seq := range []uint64{1, 2, 4, 3} {
			c.WriteMessage(gws.OpcodeText, protocol.SnapshotFrame("BTCUSDT", seq, time.Now(), []byte(`{"levels":[]}`)))
		}
		c.WriteMessage(gws.OpcodeText, protocol.EncodeWarning(protocol.WarnSlowConsumer, "behind", 1))
		c.WriteMessage(gws.OpcodeText, protocol.EncodeError(protocol.CodeInvalidSymbol, "no"))
		c.WriteMessage(gws.OpcodeText, protocol.EncodePong(time.Now()))
		code := uint16(1001)
		if both {
			code = closeSlowConsumer
		}
		c.WriteClose(code, nil)
	}()
}

func TestPoolCountsWhatTheServerSends(t *testing.T) {
	h := &scripted{start: make(chan struct{})}
	up := gws.NewUpgrader(h, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := up.Upgrade(w, r); err == nil {
			go c.ReadLoop()
		}
	}))
	defer srv.Close()
	target := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/heatmap"
	// Clients 1 and 3 are the slow readers (at a rate that never holds them
	// back here) and the ones on ETHUSDT too.
	cfg := Config{Targets: []string{target}, N: 4, Ramp: 100, Sources: 4, Mix: DefaultMix, UpdateInterval: 1,
		Interval: time.Second, SlowFraction: 0.5, SlowRate: 1 << 20}
	pool, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if c := pool.ConnectResult(); c.Connected != 4 || c.Failed != 0 || c.ByGateway[strings.TrimPrefix(srv.URL, "http://")] != 4 || c.TimeMs.Count != 4 {
		t.Fatalf("connect = %+v, want 4 of 4 on %s", c, srv.URL)
	}
	pool.Begin()
	close(h.start)
	for _, c := range pool.clients {
		select {
		case <-c.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d never saw the server's close", c.idx)
		}
	}
	w := pool.End()
	for _, tc := range []struct {
		name  string
		class Class
		close string
	}{{"fast", w.Fast, "1001"}, {"slow", w.Slow, "4008"}} {
		c := tc.class
		if c.Clients != 2 || c.Open != 0 || c.Frames != 8 || c.Gaps != 2 || c.OutOfOrder != 2 || c.Other != 2 {
			t.Errorf("%s: %+v; want 2 clients, none open, 8 frames, 2 gaps, 2 out of order, 2 other", tc.name, c)
		}
		if c.Closes[tc.close] != 2 || len(c.Closes) != 1 || c.Warnings[protocol.WarnSlowConsumer] != 2 || c.Errors[protocol.CodeInvalidSymbol] != 2 {
			t.Errorf("%s: closes %v warnings %v errors %v", tc.name, c.Closes, c.Warnings, c.Errors)
		}
		if c.Latency.Count != 8 || c.Latency.Max <= 0 || c.BytesPerClientPerS <= 0 {
			t.Errorf("%s: latency %+v, %g B/s; want 8 samples and bytes", tc.name, c.Latency, c.BytesPerClientPerS)
		}
	}
	if pool.Flagged(true) != 2 || pool.Flagged(false) != 2 {
		t.Errorf("flagged slow %d fast %d, want 2 and 2 (all got SLOW_CONSUMER)", pool.Flagged(true), pool.Flagged(false))
	}
	if w.Fast.FramesExpected != 2*int64(w.Seconds) {
		t.Errorf("frames expected %d for %.2fs, want one per second per fast subscription", w.Fast.FramesExpected, w.Seconds)
	}
}

func TestDialCountsRefusedClients(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "full", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := Config{Targets: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, N: 3, Ramp: 100, Sources: 1, Mix: DefaultMix,
		UpdateInterval: 1, Interval: time.Second}
	pool, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c := pool.ConnectResult()
	if c.Connected != 0 || c.Failed != 3 || !strings.Contains(c.FirstError, "503") {
		t.Errorf("connect = %+v; want 3 failures naming the 503", c)
	}
}
