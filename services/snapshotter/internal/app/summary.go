package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/logging"
)

// summary is the snapshotter's info line every log_summary_interval: the
// frames the compute loop published, the time it spent computing and, with
// Redis, what reached it. It reads the Prometheus collectors (and the Redis
// publisher's counters, which /metrics reads too), the one record of these
// counts, and logs their change since its previous line.
type summary struct {
	published, compute prometheus.Collector // by symbol: a counter, a histogram in seconds
	redis              *bus.RedisPublisher  // nil without redis_url
	now                func() time.Time

	last time.Time
	prev summaryCounts
}

type summaryCounts struct {
	published            map[string]float64 // symbol
	computes, computeSec float64
	redisPub, redisFail  int64
}

func newSummary(published, compute prometheus.Collector, redis *bus.RedisPublisher, now func() time.Time) *summary {
	s := &summary{published: published, compute: compute, redis: redis, now: now}
	s.last, s.prev = now(), s.read()
	return s
}

func (s *summary) read() summaryCounts {
	c := summaryCounts{published: map[string]float64{}}
	collect(s.published, func(d *dto.Metric) { c.published[symbolOf(d)] += d.GetCounter().GetValue() })
	collect(s.compute, func(d *dto.Metric) {
		c.computes += float64(d.GetHistogram().GetSampleCount())
		c.computeSec += d.GetHistogram().GetSampleSum()
	})
	if s.redis != nil {
		c.redisPub, c.redisFail = s.redis.Published.Load(), s.redis.Failures.Load()
	}
	return c
}

// line returns the next summary line's attributes and starts the next period.
func (s *summary) line() []any {
	now, cur := s.now(), s.read()
	prev := s.prev
	bySym, frames := map[string]int64{}, int64(0)
	for sym, v := range cur.published {
		if d := int64(v - prev.published[sym]); d != 0 {
			bySym[sym] = d
			frames += d
		}
	}
	computes, ms := int64(cur.computes-prev.computes), (cur.computeSec-prev.computeSec)*1000
	avg := 0.0
	if computes > 0 {
		avg = ms / float64(computes)
	}
	args := []any{
		"frames_published", frames,
		"frames_by_symbol", bySym, // an object, {} when none
		"computes", computes,
		"compute_ms", round3(ms),
		"compute_avg_ms", round3(avg),
	}
	if s.redis != nil {
		args = append(args, "redis_published", cur.redisPub-prev.redisPub, "redis_failures", cur.redisFail-prev.redisFail, "redis_up", s.redis.Up())
	}
	args = append(args, logging.DurationMS(now.Sub(s.last)))
	s.last, s.prev = now, cur
	return args
}

// runSummary logs a summary line every interval until ctx ends, and a last
// one then, so the final part of a period is not lost.
func runSummary(ctx context.Context, log *slog.Logger, s *summary, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	logging.Every(ctx, interval, func() { log.Info("summary", s.line()...) })
}

// collect hands each series of c to f.
func collect(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			f(&d)
		}
	}
}

func symbolOf(d *dto.Metric) string {
	for _, lp := range d.GetLabel() {
		if lp.GetName() == "symbol" {
			return lp.GetValue()
		}
	}
	return ""
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
