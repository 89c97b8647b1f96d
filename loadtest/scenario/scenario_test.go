package scenario

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/loadtest/wsload"
)

func TestScenariosOfEachLoad(t *testing.T) {
	for _, tc := range []struct {
		load  Load
		names string
	}{
		{Smoke, "smoke"},
		{Standard, "one-gateway defaults slow-readers 19k fleet deflate"},
		{Soak, "soak"},
		{Delta, "delta delta-5k"},
	} {
		ss, err := Scenarios(tc.load, 7*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range ss {
			names = append(names, s.Name)
			cfg := s.load([]string{"ws://127.0.0.1:1/ws/heatmap"}, "", false, "")
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s/%s: its load is invalid: %v", tc.load, s.Name, err)
			}
			if s.N > 19500 {
				t.Errorf("%s/%s: %d clients, more than one process can hold here", tc.load, s.Name, s.N)
			}
		}
		if got := strings.Join(names, " "); got != tc.names {
			t.Errorf("%s: scenarios %q, want %q", tc.load, got, tc.names)
		}
	}
	if ss, _ := Scenarios(Soak, 7*time.Minute); ss[0].Window != 7*time.Minute {
		t.Errorf("soak window %s, want the asked 7m", ss[0].Window)
	}
	if _, err := Scenarios("heavy", 0); err == nil || !strings.Contains(err.Error(), "smoke, standard, delta or soak") {
		t.Errorf("unknown load: %v", err)
	}
}

func TestSplice(t *testing.T) {
	begin, end := markers(Standard)
	doc := []byte("# Performance\n\nhand-written\n")
	once, err := Splice(doc, Standard, "table v1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Performance\n\nhand-written\n\n" + begin + "\ntable v1\n" + end + "\n"
	if string(once) != want {
		t.Fatalf("first splice:\n%s\nwant:\n%s", once, want)
	}
	twice, err := Splice(append(once, "\n## After\n"...), Standard, "table v2")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(twice); strings.Contains(s, "v1") || !strings.Contains(s, begin+"\ntable v2\n"+end) || !strings.HasSuffix(s, "\n## After\n") || !strings.Contains(s, "hand-written") {
		t.Errorf("second splice replaced more or less than its section:\n%s", s)
	}
	// Another load's section is left alone.
	soak, _ := Splice(twice, Soak, "slopes")
	if !strings.Contains(string(soak), "table v2") || !strings.Contains(string(soak), "slopes") {
		t.Errorf("soak splice touched the standard section:\n%s", soak)
	}
	if _, err := Splice([]byte(end+"\n"+begin), Standard, "x"); err == nil {
		t.Error("markers out of order: want an error, not a mangled doc")
	}
}

// run builds a Run that passed every correctness check, for the tests to spoil.
func goodRun(target string, p99, cpu, rss float64) *Run {
	return &Run{Target: target,
		Connect: wsload.Connect{Attempted: 100, Connected: 100},
		Window: wsload.Window{Seconds: 30, Fast: wsload.Class{Clients: 100, Frames: 4500, FramesExpected: 4500,
			Latency: wsload.Percentiles{Count: 4500, P50: p99 / 2, P99: p99}}},
		Server: ProcStats{CPUPct: cpu, RSSPerConnK: rss}}
}

func TestEvaluate(t *testing.T) {
	ss, _ := Scenarios(Standard, 0)
	one := &Result{Scenario: ss[0], Runs: []*Run{goodRun(Floor, 100, 40, 19), goodRun(Gateway, 105, 60, 15), goodRun(Floor, 100, 40, 19)}}
	lossy := goodRun(Gateway, 100, 40, 15)
	lossy.Window.Fast.Gaps = 3
	lossy.Connect.Connected = 99
	lossy.LifetimeFast.Closes = map[string]int64{"4008": 1}
	defaults := &Result{Scenario: ss[1], Runs: []*Run{goodRun(Floor, 50, 5, 19), lossy}}
	rep := &Report{Scenarios: []*Result{one, defaults}}
	evaluate(rep)

	if q := one.Ratios[Gateway]; q.P99 != 1.05 || q.CPU != 1.5 || q.RSSPerConn != 0.79 {
		t.Errorf("ratios = %+v, want p99 1.05, CPU 1.5, RSS 0.79", q)
	}
	met := map[string]bool{}
	for _, c := range one.Checks {
		if c.Target == Gateway {
			met[c.What] = c.Met
		}
	}
	for what, want := range map[string]bool{"p99 latency / floor's": true, "CPU / floor's": false, "RSS per connection": true, "seq gaps (fast clients)": true} {
		if got, ok := met[what]; !ok || got != want {
			t.Errorf("one-gateway check %q met = %v (present %v), want %v", what, got, ok, want)
		}
	}
	failed := strings.Join(rep.Failed(), "\n")
	for _, want := range []string{"defaults/gateway: connected: want 100 (100 %), got 99", "seq gaps (fast clients): want 0, got 3", "closed by the server: want none, got 4008×1"} {
		if !strings.Contains(failed, want) {
			t.Errorf("Failed() misses %q:\n%s", want, failed)
		}
	}
	if strings.Contains(failed, "one-gateway") {
		t.Errorf("a performance goal counted as a failure:\n%s", failed)
	}
	md := rep.Markdown()
	for _, want := range []string{"#### " + ss[0].Title, "| gateway | 1.05× | 1.05× | 1.50× |", "| CPU / floor's | gateway | ≤ 1.30× | 1.50× (60.0 / 40.0 %) | **no** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown misses %q:\n%s", want, md)
		}
	}
}

func TestTargetKinds(t *testing.T) {
	for _, tc := range []struct {
		target, kind, floor string
		deflate             bool
	}{
		{"gateway", Gateway, Floor, false},
		{"gateway+deflate", Gateway, "floor+deflate", true},
		{"floor+deflate", Floor, "floor+deflate", true},
		{"fleet", Fleet, Floor, false},
		{"gateway+delta", Gateway, Floor, false},
		{"gateway+delta+deflate", Gateway, "floor+deflate", true},
	} {
		k, d := kind(tc.target)
		if k != tc.kind || d != tc.deflate || floorOf(tc.target) != tc.floor {
			t.Errorf("%s: kind %q deflate %v floor %q; want %q %v %q", tc.target, k, d, floorOf(tc.target), tc.kind, tc.deflate, tc.floor)
		}
	}
	for target, want := range map[string]string{"gateway": "", "gateway+deflate": "", "gateway+delta": "delta", "gateway+delta+deflate": "delta"} {
		if got := encodingOf(target); got != want {
			t.Errorf("encodingOf(%s) = %q, want %q", target, got, want)
		}
	}
	for target, want := range map[string]string{"gateway": "full", "gateway+deflate": "full + deflate", "gateway+delta": "delta", "gateway+delta+deflate": "delta + deflate"} {
		if got := configName(target); got != want {
			t.Errorf("configName(%s) = %q, want %q", target, got, want)
		}
	}
}

func TestEvaluateDelta(t *testing.T) {
	ss, _ := Scenarios(Delta, 0)
	s := ss[0]
	if got := strings.Join(s.Targets, " "); got != "gateway gateway+deflate gateway+delta gateway+delta+deflate gateway" {
		t.Fatalf("delta targets %q", got)
	}
	if cfg := s.load([]string{"ws://127.0.0.1:1/ws/heatmap"}, "", true, encodingOf(Gateway+WithDelta+WithDeflate)); cfg.Encoding != "delta" || !cfg.Deflate || cfg.N != 10000 {
		t.Errorf("delta+deflate load: %+v", cfg)
	}
	run := func(target string, kbps, cpu, p99 float64, deltas, breaks int64) *Run {
		r := goodRun(target, p99, cpu, 15)
		r.Window.Fast.BytesPerClientPerS, r.Window.Fast.PayloadBytesPerClientPerS = kbps*1024, kbps*1024
		r.Window.Fast.Deltas, r.Window.Fast.ChainBreaks = deltas, breaks
		return r
	}
	res := &Result{Scenario: s, Runs: []*Run{
		run(Gateway, 26, 50, 400, 0, 0),
		run(Gateway+WithDeflate, 8, 60, 500, 0, 0),
		run(Gateway+WithDelta, 1.82, 10, 100, 4400, 0),
		// (its gateway-side latency is set below)
		run(Gateway+WithDelta+WithDeflate, 0.78, 12, 120, 4400, 3),
		run(Gateway, 26, 30, 400, 0, 0),
	}}
	res.Runs[2].GatewayLatency = &BucketLatency{Count: 4400, P50: 2, P99: 9}
	rep := &Report{Load: Delta, Machine: procstat.Machine{Cores: 2}, Scenarios: []*Result{res}}
	evaluate(rep)
	if q := res.ToFull[Gateway+WithDelta]; q.WireBytes != 0.07 || q.CPU != 0.25 || q.P99 != 0.25 {
		t.Errorf("delta ÷ full = %+v, want bytes 0.07, CPU 0.25 (of the mean 40), p99 0.25", q)
	}
	if _, ok := res.ToFull[Gateway]; ok {
		t.Error("the full runs have a ratio to themselves")
	}
	failed := strings.Join(rep.Failed(), "\n")
	if !strings.Contains(failed, "delta/gateway+delta+deflate: delta chain violations (fast clients): want 0, got 3 of 4400 deltas") || strings.Count(failed, "\n") != 0 {
		t.Errorf("Failed() = %q, want only the chain violations of delta+deflate", failed)
	}
	md := rep.Markdown()
	for _, want := range []string{
		"| delta | gateway+delta | 100 | 1.82 | 1.82 | 0.00 | 0.10 | 50.0 / 100.0 | 2.0 / 9.0 | 0 | 4400 (97.8 %) | 0 | 0.070× | 0.25× | 0.25× |",
		"| full | gateway | 100 | 26.00 | 26.00 | 0.00 | 0.50 | 200.0 / 400.0 | n/a | 0 | 0 (0.0 %) | 0 | 1.000× | 1.25× | 1.00× |",
		"cores of this machine's 2",
		"| frames sent as deltas | gateway+delta | ≥ 90 % | 97.8 % | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown misses %q:\n%s", want, md)
		}
	}
	// A full-frame client that is sent a delta is a failure.
	res.Runs[0].Window.Fast.Deltas = 1
	res.Checks = nil
	evaluate(rep)
	if !strings.Contains(strings.Join(rep.Failed(), "\n"), "delta/gateway: delta frames to clients that asked for full frames: want 0, got 1") {
		t.Errorf("a delta to a full-frame client passed: %v", rep.Failed())
	}
}

func TestDeliveryHistogramQuantiles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# TYPE ws_delivery_latency_seconds histogram\n" +
			"ws_delivery_latency_seconds_bucket{le=\"0.001\"} 0\nws_delivery_latency_seconds_bucket{le=\"0.002\"} 50\n" +
			"ws_delivery_latency_seconds_bucket{le=\"0.004\"} 90\nws_delivery_latency_seconds_bucket{le=\"0.008\"} 100\n" +
			"ws_delivery_latency_seconds_bucket{le=\"+Inf\"} 100\nws_delivery_latency_seconds_sum 0.3\nws_delivery_latency_seconds_count 100\n" +
			"ws_delivery_latency_seconds_other_bucket{le=\"0.001\"} 7\n"))
	}))
	defer srv.Close()
	h := histogram(srv.URL, "ws_delivery_latency_seconds")
	if len(h) != 5 || h[math.Inf(1)] != 100 {
		t.Fatalf("buckets = %v", h)
	}
	// The 50th observation closes the 1–2 ms bucket; the 99th is 90 % into 4–8 ms.
	if p50, p99 := h.Quantile(0.5), h.Quantile(0.99); math.Abs(p50-0.002) > 1e-12 || math.Abs(p99-0.0076) > 1e-12 {
		t.Errorf("p50 %g p99 %g, want 0.002 and 0.0076", p50, p99)
	}
	later := Buckets{0.001: 0, 0.002: 50, 0.004: 190, 0.008: 200, math.Inf(1): 200}
	if d := later.Since(h); d[0.004] != 100 || d[0.002] != 0 || d.Quantile(0.5) != 0.003 {
		t.Errorf("window = %v (p50 %g), want 100 new writes in 2–4 ms, p50 3 ms", d, d.Quantile(0.5))
	}
	if (Buckets{}).Quantile(0.99) != 0 || histogram("http://127.0.0.1:1/metrics", "x") != nil {
		t.Error("no observations / an unreachable gateway: want 0 and nil")
	}
}

func TestDisconnectsFromMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# HELP ws_disconnects_total x\n# TYPE ws_disconnects_total counter\n" +
			"ws_disconnects_total{reason=\"slow_consumer\"} 100\nws_disconnects_total{reason=\"idle\"} 3\nws_disconnects_total{reason=\"drain\"} 0\n" +
			"ws_disconnects_total_other{reason=\"x\"} 9\nws_active_connections 5\n"))
	}))
	defer srv.Close()
	got := disconnects(srv.URL)
	if len(got) != 2 || got["slow_consumer"] != 100 || got["idle"] != 3 {
		t.Errorf("disconnects = %v, want slow_consumer 100 and idle 3", got)
	}
	if disconnects("http://127.0.0.1:1/metrics") != nil {
		t.Error("an unreachable gateway should give nil")
	}
}
