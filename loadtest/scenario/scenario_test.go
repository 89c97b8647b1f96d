package scenario

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	} {
		ss, err := Scenarios(tc.load, 7*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range ss {
			names = append(names, s.Name)
			cfg := s.load([]string{"ws://127.0.0.1:1/ws/heatmap"}, "", false)
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
	if _, err := Scenarios("heavy", 0); err == nil || !strings.Contains(err.Error(), "smoke, standard or soak") {
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
	} {
		k, d := kind(tc.target)
		if k != tc.kind || d != tc.deflate || floorOf(tc.target) != tc.floor {
			t.Errorf("%s: kind %q deflate %v floor %q; want %q %v %q", tc.target, k, d, floorOf(tc.target), tc.kind, tc.deflate, tc.floor)
		}
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
