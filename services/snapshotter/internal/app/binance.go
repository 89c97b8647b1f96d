package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
	"github.com/liqstream/liqstream/services/snapshotter/internal/ingest"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// startBinance starts the live Binance source in g: the REST poller, and
// the market streams unless binance.stream is off. The poller reads where
// each symbol resumes before the streams write anything, so the first
// streamed candle is not taken for the end of the stored history.
func startBinance(ctx context.Context, g *errgroup.Group, cfg conf.Config, st *store.Store, m *metrics, log *slog.Logger) error {
	src, err := ingest.NewBinance(ingest.BinanceConfig{
		BaseURL: cfg.Binance.BaseURL, Symbols: cfg.Symbols, Interval: cfg.Snapshot.CandleInterval,
		PollInterval: cfg.Binance.PollInterval, Lookback: cfg.Binance.Lookback,
		WeightPerMinute: cfg.Binance.WeightPerMin, OIPer5Minutes: cfg.Binance.OIPer5Min,
	}, st, log.With("source", "binance"))
	if err != nil {
		return fmt.Errorf("binance: %w", err)
	}
	m.watchBinance(src)
	if !cfg.Binance.Stream {
		g.Go(func() error { return src.Run(ctx) })
		return nil
	}
	if err := src.Prepare(ctx); err != nil {
		return err
	}
	stream, err := ingest.NewStream(ingest.StreamConfig{
		URL: cfg.Binance.StreamURL, Symbols: cfg.Symbols, Interval: cfg.Snapshot.CandleInterval,
	}, st, src, log.With("source", "binance-stream"))
	if err != nil {
		return fmt.Errorf("binance: %w", err)
	}
	m.reg.MustRegister(streamCollector{stream})
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return stream.Run(ctx) })
	return nil
}

var (
	descStreamConns = prometheus.NewDesc("binance_stream_connections",
		"Binance market stream connections open, and wanted (state=wanted).", []string{"state"}, nil)
	descStreamDials = prometheus.NewDesc("binance_stream_dials_total",
		"Connection attempts to Binance's market streams, by result.", []string{"result"}, nil)
	descStreamRotations = prometheus.NewDesc("binance_stream_rotations_total",
		"Connections replaced before Binance's 24 h limit.", nil, nil)
	descStreamMessages = prometheus.NewDesc("binance_stream_messages_total",
		"Stream messages read, by kind (kline, forceOrder).", []string{"kind"}, nil)
	descStreamDropped = prometheus.NewDesc("binance_stream_dropped_total",
		"Stream updates not stored: duplicate, stale (older than one stored), after_final (for a closed candle), liquidation_overflow.", []string{"reason"}, nil)
	descStreamDecode = prometheus.NewDesc("binance_stream_decode_errors_total",
		"Stream messages refused as malformed.", nil, nil)
	descStreamLiqs = prometheus.NewDesc("binance_stream_liquidations_total",
		"Liquidations of the served symbols stored from the stream, replays included.", nil, nil)
	descStreamFlushErrs = prometheus.NewDesc("binance_stream_write_errors_total",
		"Failed writes of stream data to the store (kept and retried at the next flush).", nil, nil)
	descStreamDown = prometheus.NewDesc("binance_stream_disconnected_seconds_total",
		"Time connections were down between losing and regaining them; liquidations in these windows are not recorded (Binance offers no backfill of them).", nil, nil)
	descStreamAge = prometheus.NewDesc("binance_stream_last_message_age_seconds",
		"Seconds since the streams last delivered a message (since the source started, before the first).", nil, nil)
)

// streamDropReasons are the reason label values exported from the start.
var streamDropReasons = []string{"duplicate", "stale", "after_final", "liquidation_overflow"}

type streamCollector struct{ s *ingest.Stream }

func (c streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreamConns, descStreamDials, descStreamRotations, descStreamMessages,
		descStreamDropped, descStreamDecode, descStreamLiqs, descStreamFlushErrs, descStreamDown, descStreamAge} {
		ch <- d
	}
}

func (c streamCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descStreamConns, float64(s.Connected), "open")
	gauge(descStreamConns, float64(s.Connections), "wanted")
	counter(descStreamDials, float64(s.Dials-s.DialErrors), "ok")
	counter(descStreamDials, float64(s.DialErrors), "failed")
	counter(descStreamRotations, float64(s.Rotations))
	for _, kind := range []string{"kline", "forceOrder"} {
		counter(descStreamMessages, float64(s.Messages[kind]), kind)
	}
	for _, r := range streamDropReasons {
		counter(descStreamDropped, float64(s.Dropped[r]), r)
	}
	counter(descStreamDecode, float64(s.DecodeErrors))
	counter(descStreamLiqs, float64(s.Liquidations))
	counter(descStreamFlushErrs, float64(s.FlushErrors))
	counter(descStreamDown, s.Disconnected.Seconds())
	if !s.LastMessageAt.IsZero() {
		gauge(descStreamAge, time.Since(s.LastMessageAt).Seconds())
	}
}
