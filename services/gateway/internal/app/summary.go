package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
)

// summary is the gateway's info line every log_summary_interval: what the
// connections did in that time. It reads the Prometheus collectors, the one
// record of these counts, and logs their change since its previous line.
type summary struct {
	m    *metrics.Metrics
	now  func() time.Time
	last time.Time
	prev counts
}

// counts is the running totals a summary line differences.
type counts struct {
	sent, received, misses float64
	drops                  map[string]float64 // reason
	disconnects            map[string]float64 // reason
	connects               map[string]float64 // result: accepted, refused_*, upgrade_failed
}

func newSummary(m *metrics.Metrics, now func() time.Time) *summary {
	s := &summary{m: m, now: now}
	s.last, s.prev = now(), s.read()
	return s
}

func (s *summary) read() counts {
	return counts{
		sent:        sum(byLabel(s.m.MessagesSent, "")),
		received:    sum(byLabel(s.m.FramesReceived, "")),
		misses:      sum(byLabel(s.m.SlowConsumers, "")),
		drops:       byLabel(s.m.FramesDropped, "reason"),
		disconnects: byLabel(s.m.Disconnects, "reason"),
		connects:    byLabel(s.m.Connects, "result"),
	}
}

// line returns the attributes of the next summary line and starts the next period.
func (s *summary) line() []any {
	now, cur := s.now(), s.read()
	prev := s.prev
	s.last, s.prev = now, cur
	drops := delta(cur.drops, prev.drops)
	disconnects := delta(cur.disconnects, prev.disconnects)
	connects := delta(cur.connects, prev.connects)
	refused := map[string]int64{}
	for k, v := range connects {
		if k != "accepted" {
			refused[k] = v
		}
	}
	return []any{
		"connections", int64(sum(byLabel(s.m.ActiveConnections, ""))),
		"accepted", connects["accepted"],
		"refused", sum(refused),
		"frames_received", int64(cur.received - prev.received),
		"frames_sent", int64(cur.sent - prev.sent),
		"drops", sum(drops),
		"slow_consumers", disconnects["slow_consumer"],
		"write_deadline_misses", int64(cur.misses - prev.misses),
		// Objects, keys sorted, {} when nothing happened.
		"drops_by_reason", drops,
		"disconnects", disconnects,
		"refused_by_reason", refused,
	}
}

// runSummary logs a summary line every interval until ctx ends, and a last
// one then, so the final part of a period is not lost.
func (g *Gateway) runSummary(ctx context.Context, s *summary, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	logging.Every(ctx, interval, func() { g.logSummary(s) })
}

func (g *Gateway) logSummary(s *summary) {
	start := s.last
	args := s.line()
	args = append(args, logging.DurationMS(s.last.Sub(start)))
	g.log.Info("summary", args...)
}

// byLabel reads a collector's series, summed by the value of label ("" sums
// them all under ""). Counters and gauges only.
func byLabel(c prometheus.Collector, label string) map[string]float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		key := ""
		for _, lp := range d.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		out[key] += d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	return out
}

// sum adds up m's values.
func sum[V int64 | float64](m map[string]V) V {
	var n V
	for _, v := range m {
		n += v
	}
	return n
}

// delta is cur - prev per key, leaving out keys that did not move.
func delta(cur, prev map[string]float64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range cur {
		if d := int64(v - prev[k]); d != 0 {
			out[k] = d
		}
	}
	return out
}
