package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liqstream/liqstream/pkg/buildinfo"
	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/services/snapshotter/internal/ingest"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// metrics is the snapshotter's /metrics. Values are read from the parts at
// scrape time, so the hot paths carry no instrumentation of their own.
type metrics struct {
	reg *prometheus.Registry
}

func newMetrics(st *store.Store, pub *bus.RedisPublisher) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), storeCollector{st},
		buildinfo.Collector("snapshotter"))
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
)

var descStoreRows = prometheus.NewDesc("store_rows", "Rows in the DuckDB store.", []string{"table"}, nil)

// storeCollector counts the store's rows at scrape time.
type storeCollector struct{ st *store.Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descStoreRows }

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.st.Count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descStoreRows, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreRows, prometheus.GaugeValue, float64(n.Klines), "klines")
	ch <- prometheus.MustNewConstMetric(descStoreRows, prometheus.GaugeValue, float64(n.OpenInterest), "open_interest")
}

type binanceCollector struct{ src *ingest.Binance }

func (c binanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRows
	ch <- descErrs
	ch <- descPolls
	ch <- descLag
}

func (c binanceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.KlinesWritten), "klines")
	ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.OpenInterestWritten), "open_interest")
	ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(s.Polls))
	for kind, n := range s.Errors {
		ch <- prometheus.MustNewConstMetric(descErrs, prometheus.CounterValue, float64(n), kind)
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
