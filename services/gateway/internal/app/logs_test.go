package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
)

const logWait = 10 * time.Second

// logLines collects a logger's output, one JSON line per Write (slog's
// JSON handler writes each record whole), and wakes whoever awaits a line.
type logLines struct {
	mu    sync.Mutex
	lines []string
	grew  chan struct{}
}

func newLogLines() *logLines { return &logLines{grew: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSuffix(string(p), "\n"))
	close(l.grew)
	l.grew = make(chan struct{})
	return len(p), nil
}

// all decodes every line so far; a line that is not a JSON object fails the test.
func (l *logLines) all(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	lines := append([]string(nil), l.lines...)
	l.mu.Unlock()
	out := make([]map[string]any, 0, len(lines))
	for _, s := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line is not one JSON object: %v: %s", err, s)
		}
		out = append(out, m)
	}
	return out
}

// await returns the first line match accepts, waiting for it to be written.
func (l *logLines) await(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(logWait)
	for {
		l.mu.Lock()
		grew := l.grew
		l.mu.Unlock()
		for _, m := range l.all(t) {
			if match(m) {
				return m
			}
		}
		select {
		case <-grew:
		case <-deadline:
			l.mu.Lock()
			all := strings.Join(l.lines, "\n")
			l.mu.Unlock()
			t.Fatalf("no log line %s within %s; lines:\n%s", what, logWait, all)
		}
	}
}

func msgIs(msg string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["msg"] == msg }
}

func connLine(msg string, id float64) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["msg"] == msg && m[logging.KeyConnID] == id }
}

// nonCanonical are spellings of the fixed keys that must never appear.
var nonCanonical = []string{"error", "error_msg", "took", "elapsed", "duration", "latency", "seconds",
	"sym", "conn", "connection", "connection_id", "connid", "id", "cause", "why", "svc", "host", "pid"}

// checkLines asserts what every line of a gateway must satisfy.
func checkLines(t *testing.T, lines []map[string]any, instance string) {
	t.Helper()
	for _, m := range lines {
		if m[logging.KeyService] != "gateway" || m[logging.KeyInstance] != instance {
			t.Errorf("line without service=gateway and instance=%s: %v", instance, m)
		}
		for _, k := range nonCanonical {
			if _, ok := m[k]; ok {
				t.Errorf("line uses %q, not a fixed key: %v", k, m)
			}
		}
		if v, ok := m[logging.KeyConnID]; ok {
			if f, isNum := v.(float64); !isNum || f < 1 {
				t.Errorf("conn_id %v is not a positive integer: %v", v, m)
			}
		}
		if v, ok := m[logging.KeyDurationMS]; ok {
			if f, isNum := v.(float64); !isNum || f < 0 {
				t.Errorf("duration_ms %v is not a non-negative number: %v", v, m)
			}
		}
		if v, ok := m[logging.KeyErr]; ok {
			if s, isStr := v.(string); !isStr || s == "" {
				t.Errorf("err %v is not the error's text: %v", v, m)
			}
		}
	}
}

// loggedGateway is a gateway serving BTCUSDT and ETHUSDT over httptest,
// logging at debug into lines; its summary's clock moves only when told.
type loggedGateway struct {
	g     *Gateway
	lines *logLines
	url   string
	sum   *summary
	clock time.Time
}

func newLoggedGateway(t *testing.T, edit func(*conf.Config)) *loggedGateway {
	t.Helper()
	lines := newLogLines()
	log, err := logging.New(lines, "debug", "gateway", "gw-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := conf.Default()
	cfg.SnapshotterURL = "http://127.0.0.1:1"
	cfg.InstanceID = "gw-test"
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	g.hub.SetSymbols([]string{"BTCUSDT", "ETHUSDT"})
	srv := httptest.NewServer(g.Routes())
	t.Cleanup(srv.Close)
	lg := &loggedGateway{g: g, lines: lines, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/heatmap", clock: time.Unix(1_700_000_000, 0)}
	lg.sum = newSummary(g.metrics, func() time.Time { return lg.clock })
	return lg
}

// tick is one summary tick a minute after the previous one.
func (lg *loggedGateway) tick(t *testing.T) map[string]any {
	t.Helper()
	lg.clock = lg.clock.Add(time.Minute)
	lg.g.logSummary(lg.sum)
	all := lg.lines.all(t)
	last := all[len(all)-1]
	if last["msg"] != "summary" {
		t.Fatalf("last line after a summary tick: %v", last)
	}
	return last
}

func (lg *loggedGateway) dial(t *testing.T, header http.Header) *wsclient.Client {
	t.Helper()
	c, _, err := wsclient.Dial(lg.url, wsclient.Options{Header: header})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// awaitCounter polls a counter the server moves on its own goroutines after
// the event the client saw (a frame's write completing): there is no event
// to await for it.
func awaitCounter(t *testing.T, what string, c prometheus.Collector, want float64) {
	t.Helper()
	deadline := time.Now().Add(logWait)
	for sum(byLabel(c, "")) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", what, sum(byLabel(c, "")), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A connection's life is logged at debug, each line with its conn_id; the
// summary tick reports what the connections did in the minute; and every
// line is JSON with the fixed keys spelt one way.
func TestLogsLifecycleAndSummary(t *testing.T) {
	lg := newLoggedGateway(t, nil)
	lg.g.publish(bus.Frame{Symbol: "BTCUSDT", Bytes: []byte(`{"type":"snapshot","symbol":"BTCUSDT","seq":1}`)})

	a := lg.dial(t, nil)
	accepted := lg.lines.await(t, "accepting a", msgIs("connection accepted"))
	idA := accepted[logging.KeyConnID].(float64)
	if err := a.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.NextOfType("snapshot", logWait); err != nil {
		t.Fatal(err)
	}
	awaitCounter(t, "frames sent", lg.g.metrics.MessagesSent, 1)

	b := lg.dial(t, nil)
	if err := b.Send(map[string]any{"action": "subscribe", "symbols": []string{"ETHUSDT"}}); err != nil {
		t.Fatal(err)
	}
	subB := lg.lines.await(t, "b subscribing", func(m map[string]any) bool {
		return m["msg"] == "subscribed" && m[logging.KeyConnID] != idA
	})
	idB := subB[logging.KeyConnID].(float64)

	if _, resp, err := wsclient.Dial(lg.url, wsclient.Options{Header: http.Header{"Origin": {"https://elsewhere.example"}}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want 403", resp, err)
	}

	a.Close()
	lg.lines.await(t, "a closing", connLine("connection closed", idA))
	sum := lg.tick(t)

	tests := []struct {
		name  string
		match func(map[string]any) bool
		level string
		want  map[string]any
	}{
		{"accepted", connLine("connection accepted", idA), "DEBUG", map[string]any{"remote": "127.0.0.1"}},
		{"subscribed", connLine("subscribed", idA), "DEBUG", map[string]any{"symbols": []any{"BTCUSDT"}}},
		{"other connection", connLine("subscribed", idB), "DEBUG", map[string]any{"symbols": []any{"ETHUSDT"}}},
		{"closed by the client", connLine("connection closed", idA), "DEBUG", map[string]any{logging.KeyReason: "client", "close_code": float64(1000)}},
		{"refused upgrade is an anomaly", msgIs("upgrade refused"), "WARN", map[string]any{logging.KeyReason: "refused_origin", "status": float64(403)}},
		{"summary", msgIs("summary"), "INFO", map[string]any{
			"connections": float64(1), "accepted": float64(2), "refused": float64(1),
			"frames_received": float64(1), "frames_sent": float64(1),
			"drops": float64(0), "slow_consumers": float64(0), "write_deadline_misses": float64(0),
			"drops_by_reason": map[string]any{}, "disconnects": map[string]any{"client": float64(1)},
			"refused_by_reason":   map[string]any{"refused_origin": float64(1)},
			logging.KeyDurationMS: float64(60000),
		}},
	}
	lines := lg.lines.all(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			for _, m := range lines {
				if tc.match(m) {
					got = m
					break
				}
			}
			if got == nil {
				t.Fatalf("no such line in:\n%v", lines)
			}
			if got["level"] != tc.level {
				t.Errorf("level %v, want %s: %v", got["level"], tc.level, got)
			}
			for k, v := range tc.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v: %v", k, got[k], v, got)
				}
			}
		})
	}
	if _, ok := sum[logging.KeyConnID]; ok {
		t.Errorf("the summary names a connection: %v", sum)
	}
	checkLines(t, lines, "gw-test")

	// The next minute counts only what happened in it.
	sum = lg.tick(t)
	for k, want := range map[string]float64{"connections": 1, "accepted": 0, "frames_sent": 0, "frames_received": 0, "refused": 0} {
		if sum[k] != want {
			t.Errorf("second summary %s = %v, want %v: %v", k, sum[k], want, sum)
		}
	}
	b.Close()
	lg.lines.await(t, "b closing", connLine("connection closed", idB))
	checkLines(t, lg.lines.all(t), "gw-test")
}

// A client closed for flooding is an anomaly: its close line is a warning,
// as is the rate limit that came first.
func TestLogsRateLimitedCloseIsAWarning(t *testing.T) {
	lg := newLoggedGateway(t, func(c *conf.Config) {
		c.WS.ActionsPerSecond, c.WS.ActionBurst, c.WS.MaxRateViolations = 1, 1, 3
	})
	c := lg.dial(t, nil)
	for range 10 {
		if err := c.Send(map[string]any{"action": "ping"}); err != nil {
			break // closed meanwhile
		}
	}
	closed := lg.lines.await(t, "the close", msgIs("connection closed"))
	limited := lg.lines.await(t, "the rate limit", msgIs("client rate limited"))
	for _, m := range []map[string]any{closed, limited} {
		if m["level"] != "WARN" || m[logging.KeyReason] != "rate_limited" || m[logging.KeyConnID] != closed[logging.KeyConnID] {
			t.Errorf("want a warning with reason rate_limited and the connection's conn_id: %v", m)
		}
	}
	if sum := lg.tick(t); fmt.Sprint(sum["disconnects"]) != "map[rate_limited:1]" {
		t.Errorf("summary disconnects %v, want rate_limited:1", sum["disconnects"])
	}
	checkLines(t, lg.lines.all(t), "gw-test")
}

// The summary's counts are the minute's changes of the Prometheus counters.
func TestSummaryCountsTheMinute(t *testing.T) {
	tests := []struct {
		name string
		move func(m *metrics.Metrics)
		want map[string]string
	}{
		{"nothing happened", func(*metrics.Metrics) {},
			map[string]string{"connections": "0", "frames_sent": "0", "drops": "0", "slow_consumers": "0", "disconnects": "map[]", "drops_by_reason": "map[]"}},
		{"slow consumers closed", func(m *metrics.Metrics) {
			m.Disconnects.WithLabelValues("slow_consumer").Add(2)
			m.Disconnects.WithLabelValues("idle").Inc()
			m.SlowConsumers.Add(7)
		}, map[string]string{"slow_consumers": "2", "write_deadline_misses": "7", "disconnects": "map[idle:1 slow_consumer:2]"}},
		{"drops by reason", func(m *metrics.Metrics) {
			m.FramesDropped.WithLabelValues("conflated").Add(3)
			m.FramesDropped.WithLabelValues("queue_full").Add(1)
		}, map[string]string{"drops": "4", "drops_by_reason": "map[conflated:3 queue_full:1]"}},
		{"frames sent over every symbol", func(m *metrics.Metrics) {
			m.MessagesSent.WithLabelValues("BTCUSDT").Add(5)
			m.MessagesSent.WithLabelValues("other").Add(2)
			m.ActiveConnections.Add(4)
		}, map[string]string{"frames_sent": "7", "connections": "4"}},
		{"refusals apart from accepts", func(m *metrics.Metrics) {
			m.Connects.WithLabelValues("accepted").Add(9)
			m.Connects.WithLabelValues("refused_ip_cap").Add(2)
			m.Connects.WithLabelValues("upgrade_failed").Add(1)
		}, map[string]string{"accepted": "9", "refused": "3", "refused_by_reason": "map[refused_ip_cap:2 upgrade_failed:1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			// Counts before the summary starts are not the minute's.
			m.Disconnects.WithLabelValues("slow_consumer").Add(100)
			m.MessagesSent.WithLabelValues("BTCUSDT").Add(100)
			s := newSummary(m, time.Now)
			tc.move(m)
			args := s.line()
			got := map[string]string{}
			for i := 0; i+1 < len(args); i += 2 {
				got[args[i].(string)] = fmt.Sprint(args[i+1])
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %s, want %s (line %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// Run logs a summary every log_summary_interval, and a last one on the way out.
func TestSummaryLinesFollowTheInterval(t *testing.T) {
	lines := newLogLines()
	log, err := logging.New(lines, "info", "gateway", "gw-tick")
	if err != nil {
		t.Fatal(err)
	}
	cfg := conf.Default()
	cfg.SnapshotterURL = "http://127.0.0.1:1"
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.InstanceID = "gw-tick"
	cfg.LogSummary = 20 * time.Millisecond
	g, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	count := func() int {
		n := 0
		for _, m := range lines.all(t) {
			if m["msg"] == "summary" {
				n++
			}
		}
		return n
	}
	lines.await(t, "a third summary", func(map[string]any) bool { return count() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all := lines.all(t)
	drained, last := -1, -1
	for i, m := range all {
		switch m["msg"] {
		case "drained":
			drained = i
		case "summary":
			last = i
		}
	}
	if drained < 0 || last < drained {
		t.Errorf("no summary after the drain (drained at line %d, last summary at %d)", drained, last)
	}
	checkLines(t, all, "gw-tick")
}
