package ws

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// queued is the longest per-connection queue right now.
func queued(s *Server) int {
	n := 0
	for _, ss := range s.snapshot() {
		ss.mu.Lock()
		n = max(n, len(ss.queue))
		ss.mu.Unlock()
	}
	return n
}

// sessionsIdle reports whether every session has written all it accepted.
func sessionsIdle(s *Server) bool {
	for _, ss := range s.snapshot() {
		ss.mu.Lock()
		busy := ss.busy || len(ss.queue) > 0 || len(ss.replies) > 0
		ss.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// fastAndStalled dials a client that reads everything and one that stops
// reading after a frame, both subscribed to BTCUSDT at update_interval 1.
func fastAndStalled(t *testing.T, f *fixture) (fast, stalled *wsclient.Client) {
	t.Helper()
	fast = dial(t, f.url, wsclient.Options{})
	stalled = dial(t, f.url, wsclient.Options{Buffer: 1})
	for _, c := range []*wsclient.Client{fast, stalled} {
		mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1})
	}
	waitFor(t, "2 subscriptions", func() bool { return f.hub.Subscriptions()["BTCUSDT"] == 2 })
	return fast, stalled
}
