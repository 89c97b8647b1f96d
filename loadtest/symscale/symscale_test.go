package symscale

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/loadtest/scenario"
	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/fakebinance"
)

const page = `# HELP snapshot_compute_duration_seconds Time to recompute.
# TYPE snapshot_compute_duration_seconds histogram
snapshot_compute_duration_seconds_bucket{symbol="BTCUSDT",le="0.001"} 1
snapshot_compute_duration_seconds_bucket{symbol="BTCUSDT",le="0.002"} 3
snapshot_compute_duration_seconds_bucket{symbol="BTCUSDT",le="+Inf"} 4
snapshot_compute_duration_seconds_sum{symbol="BTCUSDT"} 0.0075
snapshot_compute_duration_seconds_count{symbol="BTCUSDT"} 4
snapshot_compute_duration_seconds_bucket{symbol="ETHUSDT",le="0.001"} 1
snapshot_compute_duration_seconds_bucket{symbol="ETHUSDT",le="0.002"} 1
snapshot_compute_duration_seconds_bucket{symbol="ETHUSDT",le="+Inf"} 2
snapshot_compute_duration_seconds_sum{symbol="ETHUSDT"} 0.004
snapshot_published_total{symbol="BTCUSDT"} 60
snapshot_published_total{symbol="ETHUSDT"} 59
store_rows{table="klines"} 4034
binance_stream_connections{state="open"} 1
odd_label{path="a \"quoted\" \\ value, with {braces}",x="y"} 2 1700000000000
snapshot_interval_seconds 5
process_start_time_seconds 1.7e+09
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("snapshot_interval_seconds", nil); got != 5 {
		t.Errorf("interval = %v, want 5", got)
	}
	if got := m.Sum("process_start_time_seconds", nil); got != 1.7e9 {
		t.Errorf("start time = %v", got)
	}
	pub := m.By("snapshot_published_total", "symbol")
	if pub["BTCUSDT"] != 60 || pub["ETHUSDT"] != 59 || len(pub) != 2 {
		t.Errorf("published = %v", pub)
	}
	if got := m.Sum("binance_stream_connections", map[string]string{"state": "open"}); got != 1 {
		t.Errorf("open connections = %v", got)
	}
	if got := m.Sum("snapshot_compute_duration_seconds_sum", nil); math.Abs(got-0.0115) > 1e-12 {
		t.Errorf("compute sum = %v", got)
	}
	odd := m.By("odd_label", "path")
	if odd[`a "quoted" \ value, with {braces}`] != 2 {
		t.Errorf("escaped label: %v", odd)
	}
	if got := m.By("odd_label", "x"); got["y"] != 2 {
		t.Errorf("label after an escaped one: %v", got)
	}
	for _, bad := range []string{`x{a="b} 1`, `x{a=b} 1`, `x`, `x{a="b"} one`} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Histogram("snapshot_compute_duration_seconds")
	// Both symbols together: 2 at or below 1 ms, 4 at or below 2 ms, 6 in all.
	if h.Count() != 6 || h[0.001] != 2 || h[0.002] != 4 {
		t.Fatalf("buckets = %v", h)
	}
	if q := h.Quantile(0.5); math.Abs(q-0.0015) > 1e-12 { // rank 3: halfway through (1, 2] ms
		t.Errorf("p50 = %v, want 0.0015", q)
	}
	if q := h.Quantile(0.99); q != 0.002 { // in +Inf: the highest finite bound
		t.Errorf("p99 = %v, want 0.002", q)
	}
	then := scenario.Buckets{0.001: 2, 0.002: 3, math.Inf(1): 3}
	d := h.Since(then)
	// 0 at or below 1 ms, 1 at or below 2 ms, 3 in all: rank 0.9 lies 90 % into (1, 2] ms.
	if d.Count() != 3 || d[0.001] != 0 || math.Abs(d.Quantile(0.3)-0.0019) > 1e-12 {
		t.Errorf("since = %v, p30 %v", d, d.Quantile(0.3))
	}
	if (scenario.Buckets{}).Quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
}

func TestSymbolsAndBins(t *testing.T) {
	s := Symbols(4)
	if strings.Join(s, ",") != "BTCUSDT,ETHUSDT,S001USDT,S002USDT" {
		t.Errorf("symbols = %v", s)
	}
	if len(Symbols(100)) != 100 || Symbols(100)[99] != "S098USDT" {
		t.Errorf("100 symbols end with %s", Symbols(100)[99])
	}
	for price, want := range map[float64]int{90000: 90, 3000: 3, 200: 1, 499: 1, 1500: 2, 20000: 20, 5e6: 1000} {
		if got := BinSize(price); got != want {
			t.Errorf("BinSize(%v) = %d, want %d", price, got, want)
		}
	}
	got := BinSizes([]string{"BTCUSDT", "X"}, func(s string) float64 { return map[string]float64{"BTCUSDT": 90000, "X": 250}[s] })
	if got != "BTCUSDT:90,X:1" {
		t.Errorf("BinSizes = %q", got)
	}
}

func TestPeakIn(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(s int, v float64) Point { return Point{t0.Add(time.Duration(s) * time.Second), v} }
	// 30 at 0..10 s, then nothing, then 50 more between 70 and 100 s.
	pts := []Point{at(0, 0), at(10, 30), at(40, 30), at(70, 30), at(100, 80), at(200, 80)}
	if got := PeakIn(pts, time.Minute); got != 50 {
		t.Errorf("peak = %v, want 50", got)
	}
	if got := PeakIn(pts, 2*time.Minute); got != 80 {
		t.Errorf("peak over 2 min = %v", got)
	}
	if PeakIn(nil, time.Minute) != 0 {
		t.Error("peak of nothing")
	}
}

func TestFrameSizes(t *testing.T) {
	frame := []byte(`{"type":"snapshot","symbol":"BTCUSDT","seq":2,"data":{"levels":[{"price":1},{"price":2},{"price":3}],"current_price":2}}`)
	delta := []byte(`{"type":"delta","symbol":"BTCUSDT","seq":2,"base_seq":1,"data":{}}`)
	full, d, n, err := FrameSizes("application/json", frame)
	if err != nil || full != len(frame) || d != 0 || n != 3 {
		t.Errorf("plain frame: %d %d %d %v", full, d, n, err)
	}
	full, d, n, err = FrameSizes(bus.NDJSON, bus.JoinPair(delta, frame))
	if err != nil || full != len(frame) || d != len(delta) || n != 3 {
		t.Errorf("pair: %d %d %d %v", full, d, n, err)
	}
	if _, _, _, err := FrameSizes("application/json", delta); err == nil {
		t.Error("a delta taken for a frame")
	}
}

func TestMidTick(t *testing.T) {
	iv := 5 * time.Second
	pub := 1000.25 // a tick at ~1000.2, the first frame out at 1000.25
	at := func(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }
	for _, tc := range []struct{ now, want float64 }{
		{1001, 1002.75},
		{1002.75, 1007.75},
		{1003, 1007.75},
		{1016, 1017.75},
		{999, 1002.75}, // a clock read just before the frame's stamp
	} {
		if got := MidTick(pub, iv, at(tc.now)); !got.Equal(at(tc.want)) {
			t.Errorf("MidTick(now %v) = %v, want %v", tc.now, float64(got.UnixNano())/1e9, tc.want)
		}
	}
}

func TestLookbackSkipped(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 10, 0, 0, time.UTC)
	week := now.Add(-7 * 24 * time.Hour)
	reqs := []fakebinance.KlineRequest{
		{Symbol: "A", Start: week, Limit: 1500, Rows: 1500},
		{Symbol: "A", Start: week.Add(1500 * 5 * time.Minute), Limit: 518, Rows: 517},
		{Symbol: "B", Start: now.Add(-5 * time.Minute), Limit: 3, Rows: 2}, // only the newest candles
		{Symbol: "C", Limit: 500}, // no startTime: not a backfill
	}
	got := LookbackSkipped(reqs, []string{"A", "B", "C", "D"}, now.Add(-84*time.Hour))
	if strings.Join(got, ",") != "B,C,D" {
		t.Errorf("skipped = %v, want B, C, D", got)
	}
}

func TestCountLog(t *testing.T) {
	log := `{"time":"t","level":"INFO","msg":"store opened"}
{"time":"t","level":"WARN","msg":"store write failed; retrying","err":"Conflict on update!"}
{"time":"t","level":"WARN","msg":"store write failed; retrying"}
not json
{"time":"t","level":"ERROR","msg":"snapshot failed"}
{"time":"t","level":"WARN","msg":"binance stream write failed; kept for the next flush"}
`
	c := CountLog(strings.NewReader(log))
	if c.Warn != 3 || c.Error != 1 {
		t.Errorf("warn %d error %d, want 3 and 1", c.Warn, c.Error)
	}
	top := c.Top(2)
	if len(top) != 2 || top[0] != "2× store write failed; retrying" {
		t.Errorf("top = %q", top)
	}
}
