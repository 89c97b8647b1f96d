package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func decode(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, instance string
		wantErr               bool
		wantInstance          string
		debugShown            bool
	}{
		{"named instance at info", "info", "gw-1", false, "gw-1", false},
		{"debug, spaces trimmed", " debug ", "gw-2", false, "gw-2", true},
		{"default instance is host:pid", "warn", "", false, DefaultInstance(), false},
		{"bad level", "verbose", "x", true, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, tc.level, "gateway", tc.instance)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "log_level") {
					t.Fatalf("err %v, want one naming log_level", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d", KeySymbol, "BTCUSDT")
			log.Error("e", KeyErr, errors.New("boom"), DurationMS(1500*time.Microsecond))
			lines := decode(t, &buf)
			if want := map[bool]int{true: 2, false: 1}[tc.debugShown]; len(lines) != want {
				t.Fatalf("%d lines, want %d: %v", len(lines), want, lines)
			}
			last := lines[len(lines)-1]
			if last[KeyService] != "gateway" || last[KeyInstance] != tc.wantInstance || last[KeyErr] != "boom" || last[KeyDurationMS] != 1.5 {
				t.Fatalf("line %v", last)
			}
			// instance first, then service: a line reads "service":…, then the event's keys.
			if raw := buf.String(); !strings.Contains(raw, `"service":"gateway","err":"boom"`) {
				t.Fatalf("key order: %s", raw)
			}
		})
	}
}

func TestDefaultInstanceIsHostColonPid(t *testing.T) {
	host, pid, ok := strings.Cut(DefaultInstance(), ":")
	if !ok || host == "" || pid == "" {
		t.Fatalf("DefaultInstance() = %q, want host:pid", DefaultInstance())
	}
}

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "debug", "gateway", "gw")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	th := NewThrottle(10*time.Second, 2)
	th.now = func() time.Time { return now }
	steps := []struct {
		kind      string
		advance   time.Duration
		wantLevel string
		wantSupp  float64 // 0: no suppressed key
	}{
		{"refused_ip_cap", 0, "WARN", 0},
		{"refused_ip_cap", time.Second, "WARN", 0},
		{"refused_ip_cap", time.Second, "DEBUG", 0}, // over the burst
		{"refused_ip_cap", time.Second, "DEBUG", 0},
		{"refused_origin", 0, "WARN", 0}, // another kind has its own bound
		{"refused_ip_cap", 10 * time.Second, "WARN", 2},
		{"refused_ip_cap", 0, "WARN", 0},
		{"refused_ip_cap", 0, "DEBUG", 0},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		buf.Reset()
		th.Warn(log, st.kind, "upgrade refused", KeyReason, st.kind)
		lines := decode(t, &buf)
		if len(lines) != 1 {
			t.Fatalf("step %d: %d lines, want one per event", i, len(lines))
		}
		m := lines[0]
		if m["level"] != st.wantLevel || m[KeyReason] != st.kind {
			t.Errorf("step %d: %v, want level %s", i, m, st.wantLevel)
		}
		if got, ok := m[KeySuppressed]; (st.wantSupp == 0) == ok || (ok && got != st.wantSupp) {
			t.Errorf("step %d: suppressed %v, want %v", i, got, st.wantSupp)
		}
	}
	// At info, what the throttle holds back is not written at all.
	buf.Reset()
	quiet, _ := New(&buf, "info", "gateway", "gw")
	th.Warn(quiet, "refused_ip_cap", "upgrade refused")
	if buf.Len() != 0 {
		t.Fatalf("over the bound at info: %s", buf.String())
	}
}
