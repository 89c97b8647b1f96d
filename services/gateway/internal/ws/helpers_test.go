package ws

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
