package app

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liqstream/liqstream/pkg/buildinfo"
	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/services/snapshotter/internal/ingest"
	"github.com/liqstream/liqstream/services/snapshotter/internal/snapshot"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// metrics is the snapshotter's /metrics. Most values are read from the parts
// at scrape time, so the hot paths carry no instrumentation of their own; the
// compute loop reports its frames (metrics is one of its publishers) and how
// long each recomputation took (observeCompute).
type metrics struct {
	reg *prometheus.Registry

	compute       *prometheus.HistogramVec // symbol
	published     *prometheus.CounterVec   // symbol
	lastPublished *prometheus.GaugeVec     // symbol
}

// newMetrics registers the snapshotter's collectors. symbols are the
// configured ones (the only symbol label values, fixed by the config) and
// interval is snapshot.interval; pub is nil without redis_url.
func newMetrics(st *store.Store, pub *bus.RedisPublisher, symbols []string, interval time.Duration) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		compute: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "snapshot_compute_duration_seconds", Help: "Time to recompute a symbol's heatmap frame after its data moved (read, apply, encode).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"symbol"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snapshot_published_total", Help: "Frames the compute loop published (content changed), by symbol."}, []string{"symbol"}),
		lastPublished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "snapshot_last_published_timestamp_seconds", Help: "Producer timestamp (unix seconds) of the newest published frame, by symbol."}, []string{"symbol"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), storeCollector{st},
		buildinfo.Collector("snapshotter"), m.compute, m.published, m.lastPublished,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "snapshot_interval_seconds", Help: "The configured snapshot.interval: how often changed symbols are recomputed."},
			func() float64 { return interval.Seconds() }))
	for _, sym := range symbols {
		// Zero from the start, so a rate sees a symbol before its first
		// frame. The timestamp is not: 0 would read as 1970.
		m.published.WithLabelValues(sym)
		m.compute.WithLabelValues(sym)
	}
	if pub != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "snapshotter_redis_up", Help: "1 while the last Redis write round succeeded."},
				func() float64 { return b2f(pub.Up()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "snapshotter_redis_published_total", Help: "Frames written to Redis."},
				func() float64 { return float64(pub.Published.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "snapshotter_redis_failures_total", Help: "Failed Redis write rounds (retried)."},
				func() float64 { return float64(pub.Failures.Load()) }),
		)
	}
	return m
}

// Publish counts f and records its producer timestamp: metrics is one of the
// compute loop's publishers.
func (m *metrics) Publish(_ context.Context, f snapshot.Frame) error {
	m.published.WithLabelValues(f.Symbol).Inc()
	m.lastPublished.WithLabelValues(f.Symbol).Set(float64(f.Produced.Unix()) + float64(f.Produced.Nanosecond())/1e9)
	return nil
}

// observeCompute is the compute loop's OnCompute.
func (m *metrics) observeCompute(sym string, took time.Duration) {
	m.compute.WithLabelValues(sym).Observe(took.Seconds())
}

// watchBinance exports the live source's counters and per-symbol ingest lag.
func (m *metrics) watchBinance(src *ingest.Binance) {
	m.reg.MustRegister(binanceCollector{src})
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	descRows  = prometheus.NewDesc("ingest_rows_written_total", "Rows written by the live source.", []string{"table"}, nil)
	descErrs  = prometheus.NewDesc("ingest_errors_total", "Live source errors by kind.", []string{"kind"}, nil)
	descPolls = prometheus.NewDesc("ingest_polls_total", "Live source polls.", nil, nil)
	descLag   = prometheus.NewDesc("ingest_lag_seconds", "Time since a symbol was last brought up to date.", []string{"symbol"}, nil)
	descPaced = prometheus.NewDesc("ingest_paced_seconds_total",
		"Time REST requests waited for the source's share of Binance's limits (binance.weight_per_minute, binance.oi_requests_per_5m).", nil, nil)
)

// ingestErrorKinds are the kind label values of ingest_errors_total.
var ingestErrorKinds = []string{ingest.ErrRateLimited, ingest.ErrBanned, ingest.ErrForbidden, ingest.ErrServer,
	ingest.ErrClient, ingest.ErrNetwork, ingest.ErrDecode, ingest.ErrStore}

var (
	descStoreRows        = prometheus.NewDesc("store_rows", "Rows in the DuckDB store.", []string{"table"}, nil)
	descStoreWriteErrors = prometheus.NewDesc("store_write_errors_total",
		"Failed write attempts to the DuckDB store (a full disk, an I/O error), retried ones included, by op.", []string{"op"}, nil)
)

// storeCollector counts the store's rows and failed writes at scrape time.
type storeCollector struct{ st *store.Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStoreRows
	ch <- descStoreWriteErrors
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	// Every op from the start, at 0, and before the row count: when writes
	// fail the count may fail too, and the errors must still be exported.
	for _, op := range store.WriteOps {
		ch <- prometheus.MustNewConstMetric(descStoreWriteErrors, prometheus.CounterValue, float64(c.st.WriteErrors(op)), op)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.st.Count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descStoreRows, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreRows, prometheus.GaugeValue, float64(n.Klines), "klines")
	ch <- prometheus.MustNewConstMetric(descStoreRows, prometheus.GaugeValue, float64(n.OpenInterest), "open_interest")
	ch <- prometheus.MustNewConstMetric(descStoreRows, prometheus.GaugeValue, float64(n.Liquidations), "liquidations")
}

type binanceCollector struct{ src *ingest.Binance }

func (c binanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRows
	ch <- descErrs
	ch <- descPolls
	ch <- descLag
	ch <- descPaced
}

func (c binanceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.KlinesWritten), "klines")
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.OpenInterestWritten), "open_interest")
	ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(s.Polls))
	ch <- prometheus.MustNewConstMetric(descPaced, prometheus.CounterValue, s.Paced.Seconds())
	// Every known kind from the start, at 0, so rates and alerts see it
	// before the first error; a kind not in the list is still exported.
	for _, kind := range ingestErrorKinds {
		ch <- prometheus.MustNewConstMetric(descErrs, prometheus.CounterValue, float64(s.Errors[kind]), kind)
	}
	for kind, n := range s.Errors {
		if !slices.Contains(ingestErrorKinds, kind) {
			ch <- prometheus.MustNewConstMetric(descErrs, prometheus.CounterValue, float64(n), kind)
		}
	}
	now := time.Now()
	for sym, t := range s.LastSuccess {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, now.Sub(t).Seconds(), sym)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// watchGaps exports store_gaps.
func (m *metrics) watchGaps(w *gapWatch) {
	m.reg.MustRegister(w.gauge)
}
