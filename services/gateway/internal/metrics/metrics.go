// Package metrics holds the gateway's Prometheus collectors. Names the
// original specification's dashboards chart (ws_active_connections,
// ws_messages_sent_total, ws_slow_consumers_total,
// ws_broadcast_duration_seconds) are kept as they were.
package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/liqstream/liqstream/pkg/buildinfo"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// Metrics is every gateway collector.
type Metrics struct {
	Registry *prometheus.Registry

	ActiveConnections prometheus.Gauge
	Connects          *prometheus.CounterVec // result: accepted, refused_total_cap, refused_ip_cap, refused_origin, refused_draining, upgrade_failed
	Disconnects       *prometheus.CounterVec // reason: client, idle, slow_consumer, rate_limited, oversize, drain, error
	MessagesSent      *prometheus.CounterVec // symbol
	DeltasSent        prometheus.Counter     // of MessagesSent, those written as delta frames
	FramesDropped     *prometheus.CounterVec // reason: conflated, queue_full
	SlowConsumers     prometheus.Counter
	BroadcastDuration *prometheus.HistogramVec // symbol
	DeliveryLatency   prometheus.Histogram
	FrameBytes        prometheus.Histogram
	ClientErrors      *prometheus.CounterVec // code
	FramesReceived    *prometheus.CounterVec // symbol: frames the bus delivered
	LastFrame         *prometheus.GaugeVec   // symbol: producer timestamp of the newest frame from the bus
	MaxConnections    prometheus.Gauge       // the configured ws.max_connections

	mu        sync.Mutex
	symbols   map[string]bool
	lastStamp map[string]time.Time // LastFrame's values, to keep the newest
}

// Label values the gateway's code knows, set to 0 by New so rates and alerts
// see every series before its first event. The ws package uses exactly these
// (TestKnownLabelsAreUsed reads its source).
var (
	// DisconnectReasons label ws_disconnects_total.
	DisconnectReasons = []string{"client", "idle", "oversize", "error", "rate_limited", "slow_consumer", "drain", "rebalance"}
	// DropReasons label ws_frames_dropped_total.
	DropReasons = []string{"conflated", "queue_full"}
	// ConnectResults label ws_connections_total.
	ConnectResults = []string{"accepted", "upgrade_failed", "refused_origin", "refused_starting", "refused_draining", "refused_total_cap", "refused_ip_cap"}
	// ClientErrorCodes label ws_client_errors_total: the error codes of
	// pkg/protocol.
	ClientErrorCodes = []string{protocol.CodeInvalidSymbol, protocol.CodeInvalidAction, protocol.CodeInvalidMessage, protocol.CodeRateLimited, protocol.CodeServerError}
)

// New registers every collector on a fresh registry, with Go and process
// collectors and build_info{service="gateway"}.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ActiveConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ws_active_connections", Help: "Open WebSocket connections."}),
		Connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ws_connections_total", Help: "WebSocket upgrade attempts by result."}, []string{"result"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ws_disconnects_total", Help: "Closed WebSocket connections by reason."}, []string{"reason"}),
		DeltasSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ws_delta_frames_sent_total", Help: "Snapshot frames written as delta frames (clients that subscribed with encoding delta, chain unbroken); also counted in ws_messages_sent_total."}),
		MessagesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ws_messages_sent_total", Help: "Snapshot frames written to clients."}, []string{"symbol"}),
		FramesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ws_frames_dropped_total", Help: "Snapshot frames dropped for slow clients by reason."}, []string{"reason"}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ws_slow_consumers_total", Help: "Times a client missed the write deadline."}),
		BroadcastDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ws_broadcast_duration_seconds", Help: "Time to hand one frame to every local subscriber (enqueue, not write).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)}, []string{"symbol"}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ws_delivery_latency_seconds", Help: "Producer timestamp to the moment a frame's write to a client completed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		FrameBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ws_frame_bytes", Help: "Size of published snapshot frames.",
			Buckets: prometheus.ExponentialBuckets(256, 2, 12)}),
		ClientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ws_client_errors_total", Help: "Error frames sent to clients by code."}, []string{"code"}),
		FramesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_frames_received_total", Help: "Snapshot frames received from the bus."}, []string{"symbol"}),
		LastFrame: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_last_frame_timestamp_seconds", Help: "Producer timestamp (unix seconds) of the newest frame received from the bus, by symbol."}, []string{"symbol"}),
		MaxConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ws_max_connections", Help: "The configured ws.max_connections: upgrades beyond it are refused with 503."}),
		symbols:   map[string]bool{},
		lastStamp: map[string]time.Time{},
	}
	r.MustRegister(m.ActiveConnections, m.Connects, m.Disconnects, m.MessagesSent, m.DeltasSent, m.FramesDropped,
		m.SlowConsumers, m.BroadcastDuration, m.DeliveryLatency, m.FrameBytes, m.ClientErrors, m.FramesReceived,
		m.LastFrame, m.MaxConnections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector("gateway"))
	for _, known := range []struct {
		vec    *prometheus.CounterVec
		values []string
	}{{m.Disconnects, DisconnectReasons}, {m.FramesDropped, DropReasons}, {m.Connects, ConnectResults}, {m.ClientErrors, ClientErrorCodes}} {
		for _, v := range known.values {
			known.vec.WithLabelValues(v)
		}
	}
	return m
}

// FrameReceived records a frame of sym from the bus stamped stamp (the
// producer's timestamp, zero if the frame has none): the gauge keeps the
// newest stamp, so a late frame (a failover replaying one) does not move it
// back. Symbols outside the list set by SetSymbols are not recorded: an
// "other" series would only ever go stale.
func (m *Metrics) FrameReceived(sym string, stamp time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.symbols[sym] {
		m.FramesReceived.WithLabelValues("other").Inc()
		return
	}
	m.FramesReceived.WithLabelValues(sym).Inc()
	if stamp.IsZero() || !stamp.After(m.lastStamp[sym]) {
		return
	}
	m.lastStamp[sym] = stamp
	m.LastFrame.WithLabelValues(sym).Set(UnixSeconds(stamp))
}

// SetSymbols fixes the symbol label values; anything else is labelled "other"
// so a client cannot grow the metric set.
func (m *Metrics) SetSymbols(syms []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.symbols = make(map[string]bool, len(syms))
	for _, s := range syms {
		m.symbols[s] = true
	}
	// A removed symbol's last frame would age forever and page as a
	// snapshotter that stopped publishing it.
	for s := range m.lastStamp {
		if !slices.Contains(syms, s) {
			delete(m.lastStamp, s)
			m.LastFrame.DeleteLabelValues(s)
		}
	}
}

// Symbol returns the label value for sym.
func (m *Metrics) Symbol(sym string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.symbols[sym] {
		return sym
	}
	return "other"
}

// Window counts events over the last minute in one-second buckets, for
// /ws/stats. It is lock-free: every snapshot write adds to it, from many
// goroutines at once. A count racing a bucket's reset may be lost; the
// result is a statistic, not a ledger.
type Window struct {
	buckets [60]atomic.Int64
	stamps  [60]atomic.Int64
}

// Add counts n events now.
func (w *Window) Add(now time.Time, n int64) {
	sec := now.Unix()
	i := sec % 60
	if w.stamps[i].Load() != sec && w.stamps[i].Swap(sec) != sec {
		w.buckets[i].Store(0)
	}
	w.buckets[i].Add(n)
}

// Sum returns the events of the last 60 seconds.
func (w *Window) Sum(now time.Time) int64 {
	sec := now.Unix()
	var n int64
	for i := range w.buckets {
		if sec-w.stamps[i].Load() < 60 {
			n += w.buckets[i].Load()
		}
	}
	return n
}

// UnixSeconds is t as Prometheus timestamps are: unix seconds with the
// fraction, exact to the microsecond at today's dates.
func UnixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
