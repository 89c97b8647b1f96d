package demo

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

const week5m = 7 * 24 * 12 // 2,016 five-minute candles

var testEnd = time.Date(2025, 1, 20, 12, 3, 27, 0, time.UTC)

func TestGenerateDeterminism(t *testing.T) {
	tests := []struct {
		name          string
		symA, symB    string
		seedA, seedB  uint64
		wantIdentical bool
	}{
		{"same symbol and seed", "BTCUSDT", "BTCUSDT", 42, 42, true},
		{"different seed", "BTCUSDT", "BTCUSDT", 42, 43, false},
		{"different symbol same seed", "SOLUSDT", "XRPUSDT", 42, 42, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, oa := Generate(tt.symA, tt.seedA, testEnd, 5*time.Minute, 500)
			kb, ob := Generate(tt.symB, tt.seedB, testEnd, 5*time.Minute, 500)
			if got := reflect.DeepEqual(closes(ka), closes(kb)) && reflect.DeepEqual(oiValues(oa), oiValues(ob)); got != tt.wantIdentical {
				t.Fatalf("identical = %v, want %v", got, tt.wantIdentical)
			}
			if tt.wantIdentical && (!reflect.DeepEqual(ka, kb) || !reflect.DeepEqual(oa, ob)) {
				t.Fatal("same inputs produced different candles or OI")
			}
		})
	}
}

func TestGenerateInvariants(t *testing.T) {
	tests := []struct {
		symbol   string
		interval time.Duration
		n        int
		wantIv   string
	}{
		{"BTCUSDT", 5 * time.Minute, week5m, "5m"},
		{"ETHUSDT", 5 * time.Minute, week5m, "5m"},
		{"DOGEUSDT", 5 * time.Minute, week5m, "5m"},
		{"BTCUSDT", time.Hour, 24 * 30, "1h"},
	}
	for _, tt := range tests {
		t.Run(tt.symbol+"/"+tt.wantIv, func(t *testing.T) {
			ks, ois := Generate(tt.symbol, 7, testEnd, tt.interval, tt.n)
			if len(ks) != tt.n || len(ois) != tt.n {
				t.Fatalf("got %d klines, %d OI, want %d", len(ks), len(ois), tt.n)
			}
			wantLast := testEnd.Truncate(tt.interval).Add(-tt.interval)
			if !ks[len(ks)-1].OpenTime.Equal(wantLast) {
				t.Fatalf("last open %v, want %v (last closed candle before end)", ks[len(ks)-1].OpenTime, wantLast)
			}
			for i, k := range ks {
				if k.Symbol != tt.symbol || k.Interval != tt.wantIv {
					t.Fatalf("candle %d: symbol/interval %q/%q", i, k.Symbol, k.Interval)
				}
				if !k.OpenTime.Equal(k.OpenTime.Truncate(tt.interval)) {
					t.Fatalf("candle %d: open time %v not aligned to %v", i, k.OpenTime, tt.interval)
				}
				if k.Low <= 0 || k.Low > math.Min(k.Open, k.Close) || k.High < math.Max(k.Open, k.Close) {
					t.Fatalf("candle %d: bad OHLC %+v", i, k)
				}
				if k.Volume <= 0 || math.IsNaN(k.Volume) {
					t.Fatalf("candle %d: volume %v", i, k.Volume)
				}
				oi := ois[i]
				if oi.Symbol != tt.symbol || !oi.TS.Equal(k.OpenTime) {
					t.Fatalf("OI %d: %q at %v, want %q at %v", i, oi.Symbol, oi.TS, tt.symbol, k.OpenTime)
				}
				if oi.OpenInterestValue <= 0 || math.Abs(oi.OpenInterest*k.Close/oi.OpenInterestValue-1) > 1e-9 {
					t.Fatalf("OI %d: value %v contracts %v close %v", i, oi.OpenInterestValue, oi.OpenInterest, k.Close)
				}
				if i == 0 {
					continue
				}
				if d := k.OpenTime.Sub(ks[i-1].OpenTime); d != tt.interval {
					t.Fatalf("candle %d: step %v, want %v", i, d, tt.interval)
				}
				if k.Open != ks[i-1].Close {
					t.Fatalf("candle %d: open %v != previous close %v", i, k.Open, ks[i-1].Close)
				}
			}
		})
	}
}

func TestGenerateLastClosedCandle(t *testing.T) {
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		end      time.Time
		wantLast time.Time
	}{
		{"end on boundary", base, base.Add(-5 * time.Minute)},
		{"end mid candle", base.Add(4*time.Minute + 59*time.Second), base.Add(-5 * time.Minute)},
		{"end just after boundary", base.Add(time.Nanosecond), base.Add(-5 * time.Minute)},
		{"non-UTC end", base.Add(7 * time.Minute).In(time.FixedZone("X", 5*3600+1800)), base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, _ := Generate("BTCUSDT", 1, tt.end, 5*time.Minute, 3)
			if got := ks[2].OpenTime; !got.Equal(tt.wantLast) {
				t.Fatalf("last open %v, want %v", got, tt.wantLast)
			}
			if ks[2].OpenTime.Add(5 * time.Minute).After(tt.end) {
				t.Fatal("last candle is not closed at end")
			}
		})
	}
}

func TestGenerateEmpty(t *testing.T) {
	for _, n := range []int{0, -1} {
		if ks, ois := Generate("BTCUSDT", 1, testEnd, 5*time.Minute, n); ks != nil || ois != nil {
			t.Fatalf("n=%d: got %d klines", n, len(ks))
		}
	}
}

// The heatmap is only interesting when bands are built in one direction and
// then run over, so several seeds must each show both kinds of swings.
func TestGenerateTrendsBothWays(t *testing.T) {
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", sym, seed), func(t *testing.T) {
				ks, ois := Generate(sym, seed, testEnd, 5*time.Minute, week5m)
				dd, ru := swings(closes(ks))
				if dd <= 0.01 || ru <= 0.01 {
					t.Errorf("seed %d: price max drawdown %.2f%%, run-up %.2f%%, want both > 1%%", seed, dd*100, ru*100)
				}
				odd, oru := swings(oiValues(ois))
				if odd <= 0.02 || oru <= 0.02 {
					t.Errorf("seed %d: OI max fall %.2f%%, rise %.2f%%, want both > 2%%", seed, odd*100, oru*100)
				}
			})
		}
	}
}

func TestGenerateMagnitudes(t *testing.T) {
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
		t.Run(sym, func(t *testing.T) {
			ks, ois := Generate(sym, 3, testEnd, 5*time.Minute, week5m)
			var rets, dois []float64
			for i := 1; i < len(ks); i++ {
				rets = append(rets, math.Abs(math.Log(ks[i].Close/ks[i].Open)))
				dois = append(dois, math.Abs(ois[i].OpenInterestValue/ois[i-1].OpenInterestValue-1))
			}
			// Median |N(0,σ)| ≈ 0.67σ, so calm σ of 0.1–0.2% gives a median near 0.07–0.13%.
			if m := median(rets); m < 0.0005 || m > 0.002 {
				t.Errorf("median |return| %.3f%%, want 0.05–0.2%%", m*100)
			}
			if m := median(dois); m < 0.0005 || m > 0.005 {
				t.Errorf("median |ΔOI| %.3f%%, want 0.05–0.5%%", m*100)
			}
			if mx := slices.Max(dois); mx < 0.01 {
				t.Errorf("largest OI change %.2f%%, want an occasional drop above 1%%", mx*100)
			}
			// Volume must follow the size of the move.
			var small, big []float64
			for i := 1; i < len(ks); i++ {
				if rets[i-1] < 0.0005 {
					small = append(small, ks[i].Volume)
				} else if rets[i-1] > 0.004 {
					big = append(big, ks[i].Volume)
				}
			}
			if len(big) == 0 || median(big) < 2*median(small) {
				t.Errorf("volume on big candles (median %v of %d) not well above small ones (median %v)", median(big), len(big), median(small))
			}
		})
	}
}

func TestNewWalkerStartLevels(t *testing.T) {
	tests := []struct {
		symbol           string
		priceLo, priceHi float64
		oi               float64
	}{
		{"BTCUSDT", 90_000, 100_000, 8e9},
		{"ETHUSDT", 3_200, 3_600, 4e9},
		{"SOMEUSDT", 10, 1000, 1e8},
	}
	for _, tt := range tests {
		t.Run(tt.symbol, func(t *testing.T) {
			for seed := uint64(0); seed < 20; seed++ {
				w := NewWalker(tt.symbol, seed)
				if p := w.Price(); p < tt.priceLo || p > tt.priceHi {
					t.Fatalf("seed %d: price %v, want %v..%v", seed, p, tt.priceLo, tt.priceHi)
				}
				if v := w.OIValue(); math.Abs(v/tt.oi-1) > 0.1 {
					t.Fatalf("seed %d: OI value %v, want ~%v", seed, v, tt.oi)
				}
			}
		})
	}
}

func TestWalkerResumeContinuesFromPrice(t *testing.T) {
	w := NewWalker("BTCUSDT", 1)
	w.Resume(61_234.5)
	k, _ := w.Next(testEnd.Truncate(time.Minute), time.Minute)
	if k.Open != 61_234.5 || k.Interval != "1m" {
		t.Fatalf("got open %v interval %q, want 61234.5 1m", k.Open, k.Interval)
	}
	if w.Price() != k.Close {
		t.Fatalf("walker price %v != close %v", w.Price(), k.Close)
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		w.Resume(bad)
		if w.Price() != k.Close {
			t.Fatalf("Resume(%v) changed price to %v", bad, w.Price())
		}
	}
}

func TestWalkerAdvance(t *testing.T) {
	w := NewWalker("ETHUSDT", 9)
	if m := w.Advance(0); m.Price != w.Price() || m.Volume != 0 {
		t.Fatalf("zero step moved the walk: %+v", m)
	}
	// Thousands of 2s steps should wander like candles do: neither frozen nor exploding.
	start := w.Price()
	var sumSq float64
	prev := start
	for range 150 * 288 {
		m := w.Advance(2 * time.Second)
		if m.Price <= 0 || m.OIValue <= 0 || m.Volume < 0 || math.IsNaN(m.Price) {
			t.Fatalf("bad move %+v", m)
		}
		r := math.Log(m.Price / prev)
		sumSq += r * r
		prev = m.Price
	}
	daily := math.Sqrt(sumSq)
	if daily < 0.01 || daily > 0.15 {
		t.Fatalf("realised daily volatility %.2f%%, want 1–15%%", daily*100)
	}
}

func TestIntervalName(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{time.Minute, "1m"},
		{5 * time.Minute, "5m"},
		{15 * time.Minute, "15m"},
		{time.Hour, "1h"},
		{4 * time.Hour, "4h"},
		{24 * time.Hour, "1d"},
		{7 * 24 * time.Hour, "1w"},
		{time.Second, "1s"},
		{0, ""},
	}
	for _, tt := range tests {
		if got := IntervalName(tt.d); got != tt.want {
			t.Errorf("IntervalName(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// swings returns the largest peak-to-trough fall and trough-to-peak rise, as fractions.
func swings(xs []float64) (drawdown, runup float64) {
	hi, lo := xs[0], xs[0]
	for _, x := range xs {
		hi, lo = math.Max(hi, x), math.Min(lo, x)
		drawdown = math.Max(drawdown, 1-x/hi)
		runup = math.Max(runup, x/lo-1)
	}
	return drawdown, runup
}

func closes(ks []store.Kline) []float64 {
	out := make([]float64, len(ks))
	for i, k := range ks {
		out[i] = k.Close
	}
	return out
}

func oiValues(ois []store.OpenInterest) []float64 {
	out := make([]float64, len(ois))
	for i, o := range ois {
		out[i] = o.OpenInterestValue
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
