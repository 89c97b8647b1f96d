package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liqstream/liqstream/services/snapshotter/internal/history"
)

// watchHistory exports the history endpoint's admission: what runs, what
// waits, and how many requests were refused for want of a worker.
func (m *metrics) watchHistory(h *history.Handler) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "history_computations_running", Help: "History time-series computations running now (at most history.workers)."},
			func() float64 { return float64(h.Stats().Running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "history_computations_queued", Help: "History computations waiting for a worker (at most history.queue)."},
			func() float64 { return float64(h.Stats().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "history_rejected_total", Help: "History requests refused with 503 because every worker was busy and the queue full."},
			func() float64 { return float64(h.Stats().Refused) }),
	)
}
