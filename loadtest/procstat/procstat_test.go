package procstat

import (
	"math"
	"os"
	"testing"
)

func TestParseStatTicks(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{"42 (gateway) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0", 325, true},
		// A command name with spaces and parentheses: fields count from the last ')'.
		{"7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0", 7, true},
		{"7 no-parens", 0, false},
		{"7 (x) R 1 2", 0, false},
	} {
		got, err := parseStatTicks([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatTicks(%q) = %d, %v; want %d, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestReadSelf(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSK <= 0 || s.HWMK < s.RSSK || s.FDs < 3 {
		t.Errorf("sample of this test process = %+v; want RSS, a peak at least as high, and stdio fds", s)
	}
	if _, err := Read(-1); err == nil {
		t.Error("Read(-1): want an error")
	}
}

func TestSlope(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	for _, tc := range []struct {
		y    []float64
		want float64
	}{
		{[]float64{10, 12, 14, 16, 18}, 2},
		{[]float64{5, 5, 5, 5, 5}, 0},
		{[]float64{10, 11, 9, 10, 10}, -0.1},
	} {
		if got := Slope(x, tc.y); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Slope(%v) = %g, want %g", tc.y, got, tc.want)
		}
	}
	if Slope([]float64{1}, []float64{2}) != 0 || Slope([]float64{1, 1}, []float64{1, 2}) != 0 {
		t.Error("degenerate inputs should give 0")
	}
}

func TestBusyPercent(t *testing.T) {
	if got := BusyPercent(MachineTicks{100, 50}, MachineTicks{300, 100}); got != 75 {
		t.Errorf("BusyPercent = %g, want 75", got)
	}
}

func TestParseWChar(t *testing.T) {
	io := "rchar: 1234\nwchar: 987654321\nsyscr: 5\nsyscw: 6\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n"
	if got := parseWChar([]byte(io)); got != 987654321 {
		t.Errorf("wchar = %d, want 987654321 (not write_bytes, which counts only storage)", got)
	}
	if got := parseWChar([]byte("rchar: 1\n")); got != 0 {
		t.Errorf("no wchar line: %d, want 0", got)
	}
}
