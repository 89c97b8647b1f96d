package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/logging"
)

// summaryParts are the collectors a summary reads, shaped as the
// snapshotter's: frames published and compute time, by symbol.
type summaryParts struct {
	published *prometheus.CounterVec
	compute   *prometheus.HistogramVec
	redis     *bus.RedisPublisher
}

func newSummaryParts(redis bool) summaryParts {
	p := summaryParts{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "p"}, []string{"symbol"}),
		compute:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "c"}, []string{"symbol"}),
	}
	if redis {
		p.redis = &bus.RedisPublisher{}
	}
	return p
}

// fields renders a summary line's attributes as the JSON handler writes them.
func fields(t *testing.T, args []any) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("summary", args...)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSummaryCountsTheMinute(t *testing.T) {
	tests := []struct {
		name  string
		redis bool
		move  func(p summaryParts)
		want  map[string]string // "<nil>": absent
	}{
		{"quiet minute without redis", false, func(summaryParts) {}, map[string]string{
			"frames_published": "0", "frames_by_symbol": "map[]", "computes": "0", "compute_ms": "0", "compute_avg_ms": "0",
			"redis_failures": "<nil>", logging.KeyDurationMS: "60000"}},
		{"frames and compute time", false, func(p summaryParts) {
			p.published.WithLabelValues("BTCUSDT").Add(2)
			p.published.WithLabelValues("ETHUSDT").Inc()
			p.compute.WithLabelValues("BTCUSDT").Observe(0.010)
			p.compute.WithLabelValues("BTCUSDT").Observe(0.020)
			p.compute.WithLabelValues("ETHUSDT").Observe(0.003)
		}, map[string]string{"frames_published": "3", "frames_by_symbol": "map[BTCUSDT:2 ETHUSDT:1]",
			"computes": "3", "compute_ms": "33", "compute_avg_ms": "11"}},
		{"redis failing", true, func(p summaryParts) { p.redis.Failures.Add(4) },
			map[string]string{"redis_published": "0", "redis_failures": "4", "redis_up": "false"}},
		{"redis writing", true, func(p summaryParts) { p.redis.Published.Add(2) },
			map[string]string{"redis_published": "2", "redis_failures": "0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newSummaryParts(tc.redis)
			// Counts before the summary starts are not the minute's.
			p.published.WithLabelValues("BTCUSDT").Add(100)
			p.compute.WithLabelValues("BTCUSDT").Observe(5)
			if p.redis != nil {
				p.redis.Failures.Add(10)
				p.redis.Published.Add(10)
			}
			clock := time.Unix(1_700_000_000, 0)
			s := newSummary(p.published, p.compute, p.redis, func() time.Time { return clock })
			tc.move(p)
			clock = clock.Add(time.Minute)
			got := fields(t, s.line())
			for k, v := range tc.want {
				g := "<nil>"
				if x, ok := got[k]; ok {
					g = fmt.Sprint(x)
				}
				if g != v {
					t.Errorf("%s = %s, want %s (line %v)", k, g, v, got)
				}
			}
		})
	}
}

// The line itself: JSON, at info, with instance and service, and a last one
// on the way out.
func TestSummaryLine(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "info", "snapshotter", "snap-1")
	if err != nil {
		t.Fatal(err)
	}
	p := newSummaryParts(false)
	s := newSummary(p.published, p.compute, nil, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	runSummary(ctx, log, s, time.Minute)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if m["msg"] != "summary" || m["level"] != "INFO" || m[logging.KeyService] != "snapshotter" || m[logging.KeyInstance] != "snap-1" {
		t.Fatalf("summary line %v", m)
	}
	for _, k := range []string{"frames_published", "frames_by_symbol", "computes", "compute_ms", logging.KeyDurationMS} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in %v", k, m)
		}
	}
}
