package metrics

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/buildinfo"
)

func TestBuildInfo(t *testing.T) {
	mfs, err := New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "build_info" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("build_info has %d series, want 1", len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		want := map[string]string{"service": "gateway", "version": buildinfo.Version, "revision": buildinfo.Rev(), "goversion": buildinfo.GoVersion()}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("build_info label %s = %q, want %q", k, labels[k], v)
			}
		}
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("build_info = %v, want 1", m.GetGauge().GetValue())
		}
		return
	}
	t.Fatal("the registry has no build_info")
}

// series returns the values of name's series in m's registry, keyed by the
// value of label (or "" for a series without labels).
func series(t *testing.T, m *Metrics, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			key := ""
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			switch {
			case s.Gauge != nil:
				out[key] = s.GetGauge().GetValue()
			case s.Counter != nil:
				out[key] = s.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestKnownLabelsStartAtZero(t *testing.T) {
	m := New()
	for _, tc := range []struct {
		name, label string
		values      []string
	}{
		{"ws_disconnects_total", "reason", DisconnectReasons},
		{"ws_frames_dropped_total", "reason", DropReasons},
		{"ws_connections_total", "result", ConnectResults},
		{"ws_client_errors_total", "code", ClientErrorCodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := series(t, m, tc.name, tc.label)
			if len(got) != len(tc.values) {
				t.Errorf("%s has %d series %v, want %d", tc.name, len(got), got, len(tc.values))
			}
			for _, v := range tc.values {
				if n, ok := got[v]; !ok || n != 0 {
					t.Errorf("%s{%s=%q} = %v (present %v), want 0", tc.name, tc.label, v, n, ok)
				}
			}
		})
	}
}

// TestKnownLabelsAreUsed keeps the pre-initialised lists equal to the label
// values the ws package passes, so a new reason is not left out of the
// lists (and the alerts), nor a stale one kept.
func TestKnownLabelsAreUsed(t *testing.T) {
	var src strings.Builder
	files, _ := filepath.Glob("../ws/*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	if src.Len() == 0 {
		t.Fatal("no ws sources found")
	}
	code := src.String()
	closeReason := code[strings.Index(code, "func closeReason("):]
	closeReason = closeReason[:strings.Index(closeReason, "\n}\n")]
	find := func(text string, patterns ...string) []string {
		var out []string
		for _, p := range patterns {
			for _, m := range regexp.MustCompile(p).FindAllStringSubmatch(text, -1) {
				out = append(out, m[1])
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	for _, tc := range []struct {
		name       string
		used, want []string
	}{
		{"disconnect reasons",
			append(find(code, `closeLocked\([^,]+, "([a-z_]+)"`), find(closeReason, `return "([a-z_]+)"`)...), DisconnectReasons},
		{"drop reasons", find(code, `FramesDropped\.WithLabelValues\("([a-z_]+)"\)`), DropReasons},
		{"connect results", find(code, `refuse\(w, ip, [^,]+, "([a-z_]+)"`, `Connects\.WithLabelValues\("([a-z_]+)"\)`), ConnectResults},
	} {
		used := sorted(tc.used)
		used = slices.Compact(used)
		if want := sorted(tc.want); !slices.Equal(used, want) {
			t.Errorf("%s: the ws package uses %v, the metrics package pre-initialises %v", tc.name, used, want)
		}
	}
}

type frame struct {
	sym   string
	stamp time.Time
}

func TestLastFrameTimestamp(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	unix := UnixSeconds
	for _, tc := range []struct {
		name     string
		frames   []frame
		want     map[string]float64
		received map[string]float64
	}{
		{"none yet", nil, map[string]float64{}, map[string]float64{}},
		{"newest per symbol", []frame{{"BTCUSDT", base}, {"ETHUSDT", base.Add(time.Second)}, {"BTCUSDT", base.Add(5 * time.Second)}},
			map[string]float64{"BTCUSDT": unix(base.Add(5 * time.Second)), "ETHUSDT": unix(base.Add(time.Second))},
			map[string]float64{"BTCUSDT": 2, "ETHUSDT": 1}},
		{"an older frame does not move it back", []frame{{"BTCUSDT", base}, {"BTCUSDT", base.Add(-5 * time.Second)}},
			map[string]float64{"BTCUSDT": unix(base)}, map[string]float64{"BTCUSDT": 2}},
		{"a frame without a timestamp only counts", []frame{{"BTCUSDT", time.Time{}}},
			map[string]float64{}, map[string]float64{"BTCUSDT": 1}},
		{"an unknown symbol gets no gauge", []frame{{"DOGEUSDT", base}},
			map[string]float64{}, map[string]float64{"other": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			m.SetSymbols([]string{"BTCUSDT", "ETHUSDT"})
			for _, f := range tc.frames {
				m.FrameReceived(f.sym, f.stamp)
			}
			if got := series(t, m, "gateway_last_frame_timestamp_seconds", "symbol"); !maps.Equal(got, tc.want) {
				t.Errorf("gateway_last_frame_timestamp_seconds = %v, want %v", got, tc.want)
			}
			if got := series(t, m, "gateway_frames_received_total", "symbol"); !maps.Equal(got, tc.received) {
				t.Errorf("gateway_frames_received_total = %v, want %v", got, tc.received)
			}
		})
	}
}

// A symbol the snapshotter stopped serving must not keep an ageing
// timestamp: it would read as a snapshotter that stopped publishing it.
func TestLastFrameForgetsRemovedSymbols(t *testing.T) {
	m := New()
	m.SetSymbols([]string{"BTCUSDT", "ETHUSDT"})
	now := time.Now()
	m.FrameReceived("BTCUSDT", now)
	m.FrameReceived("ETHUSDT", now)
	m.SetSymbols([]string{"BTCUSDT"})
	got := series(t, m, "gateway_last_frame_timestamp_seconds", "symbol")
	if _, ok := got["ETHUSDT"]; ok || len(got) != 1 {
		t.Fatalf("after ETHUSDT was removed: %v, want BTCUSDT only", got)
	}
	// Back again: a new frame sets it anew, even if older than the forgotten one.
	m.SetSymbols([]string{"BTCUSDT", "ETHUSDT"})
	m.FrameReceived("ETHUSDT", now.Add(-time.Minute))
	if got := series(t, m, "gateway_last_frame_timestamp_seconds", "symbol"); got["ETHUSDT"] != UnixSeconds(now.Add(-time.Minute)) {
		t.Fatalf("after ETHUSDT came back: %v", got)
	}
}

func TestMaxConnections(t *testing.T) {
	m := New()
	if got := series(t, m, "ws_max_connections", ""); got[""] != 0 || len(got) != 1 {
		t.Fatalf("ws_max_connections before Set = %v", got)
	}
	m.MaxConnections.Set(20000)
	if got := series(t, m, "ws_max_connections", ""); got[""] != 20000 {
		t.Fatalf("ws_max_connections = %v, want 20000", got)
	}
}
