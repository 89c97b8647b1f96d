package store

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

// klineAt is a candle of interval iv opening at t whose prices encode t, so
// that an aggregate shows which rows it was built from.
func klineAt(iv string, t time.Time, base float64) Kline {
	return Kline{Symbol: "BTCUSDT", Interval: iv, OpenTime: t, Open: base, High: base + 10, Low: base - 10, Close: base + 1, Volume: 1}
}

// series5m writes 5m candles over [from, to).
func series5m(from, to time.Time) []Kline {
	var ks []Kline
	for t := from; t.Before(to); t = t.Add(5 * time.Minute) {
		ks = append(ks, klineAt("5m", t, 100))
	}
	return ks
}

func series1h(from, to time.Time) []Kline {
	var ks []Kline
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		ks = append(ks, klineAt("1h", t, 200))
	}
	return ks
}

func TestReview12CoarseSeriesOnlyWhereItCovers(t *testing.T) {
	ctx := context.Background()
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	yearAgo := t0.Add(-365 * 24 * time.Hour)
	tests := []struct {
		name string
		rows []Kline
		// want is, per 1h candle of [t0, t0+4h), the open: 100 when built
		// from the 5m series, 200 from the 1h one, 0 when missing.
		want []float64
	}{
		{"one 1h candle a year back", append(series5m(h(0), h(4)), klineAt("1h", yearAgo, 200)), []float64{100, 100, 100, 100}},
		{"1h covers part of the window", append(series5m(h(0), h(4)), series1h(h(0), h(1))...), []float64{100, 100, 100, 100}},
		{"1h fills where 5m is missing", append(series5m(h(2), h(4)), series1h(h(0), h(4))...), []float64{200, 200, 100, 100}},
		{"5m covers half an hour only", append(series5m(h(0).Add(30*time.Minute), h(2)), series1h(h(0), h(1))...), []float64{200, 100}},
		{"only 1h", series1h(h(0), h(4)), []float64{200, 200, 200, 200}},
		{"only 5m", series5m(h(0), h(4)), []float64{100, 100, 100, 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			if err := s.UpsertKlines(ctx, tc.rows); err != nil {
				t.Fatal(err)
			}
			cs, err := s.Candles(ctx, "BTCUSDT", "1h", h(0), h(4))
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, c := range cs {
				got = append(got, c.Open)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("opens %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] || !cs[i].OpenTime.Equal(h(i)) {
					t.Fatalf("candle %d opens %v at %s; opens %v, want %v", i, got[i], cs[i].OpenTime, got, tc.want)
				}
			}
		})
	}
}

func TestReview19NonFiniteValuesRejected(t *testing.T) {
	ctx := context.Background()
	nan, inf := math.NaN(), math.Inf(1)
	good := kl("BTCUSDT", 0, 100, 110, 90, 105)
	klines := []struct {
		name, field string
		set         func(*Kline)
	}{
		{"open NaN", "open", func(k *Kline) { k.Open = nan }},
		{"open +Inf", "open", func(k *Kline) { k.Open = inf }},
		{"high NaN", "high", func(k *Kline) { k.High = nan }},
		{"high +Inf", "high", func(k *Kline) { k.High = inf }},
		{"low -Inf", "low", func(k *Kline) { k.Low = math.Inf(-1) }},
		{"low +Inf", "low", func(k *Kline) { k.Low = inf }},
		{"close NaN", "close", func(k *Kline) { k.Close = nan }},
		{"close +Inf", "close", func(k *Kline) { k.Close = inf }},
		{"volume NaN", "volume", func(k *Kline) { k.Volume = nan }},
		{"volume +Inf", "volume", func(k *Kline) { k.Volume = inf }},
	}
	for _, tc := range klines {
		k := good
		tc.set(&k)
		t.Run("kline "+tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			if err := s.UpsertKlines(ctx, []Kline{k}); err == nil || !strings.Contains(err.Error(), tc.field+" ") {
				t.Errorf("upsert: got %v, want an error naming %s", err, tc.field)
			}
			if _, err := s.ImportKlines(ctx, rowsOf([]Kline{k}, nil)); err == nil || !strings.Contains(err.Error(), tc.field+" ") {
				t.Errorf("import: got %v, want an error naming %s", err, tc.field)
			}
			if c, err := s.Count(ctx); err != nil || c.Klines != 0 {
				t.Fatalf("count %+v %v: a non-finite candle was stored", c, err)
			}
		})
	}
	ois := []struct {
		name, field string
		o           OpenInterest
	}{
		{"value +Inf", "open_interest_value", OpenInterest{Symbol: "BTCUSDT", TS: t0, OpenInterest: 1, OpenInterestValue: inf}},
		{"value NaN", "open_interest_value", OpenInterest{Symbol: "BTCUSDT", TS: t0, OpenInterest: 1, OpenInterestValue: nan}},
		{"contracts +Inf", "open_interest", OpenInterest{Symbol: "BTCUSDT", TS: t0, OpenInterest: inf, OpenInterestValue: 1}},
		{"contracts negative", "open_interest", OpenInterest{Symbol: "BTCUSDT", TS: t0, OpenInterest: -1, OpenInterestValue: 1}},
	}
	for _, tc := range ois {
		t.Run("oi "+tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			if err := s.UpsertOpenInterest(ctx, []OpenInterest{tc.o}); err == nil || !strings.Contains(err.Error(), tc.field+" ") {
				t.Errorf("upsert: got %v, want an error naming %s", err, tc.field)
			}
			if _, err := s.ImportOpenInterest(ctx, rowsOf([]OpenInterest{tc.o}, nil)); err == nil || !strings.Contains(err.Error(), tc.field+" ") {
				t.Errorf("import: got %v, want an error naming %s", err, tc.field)
			}
			if c, err := s.Count(ctx); err != nil || c.OpenInterest != 0 {
				t.Fatalf("count %+v %v: a non-finite observation was stored", c, err)
			}
		})
	}
}

func TestReview20CandlesMarkGaps(t *testing.T) {
	ctx := context.Background()
	// 5m candles 0 1 2 _ _ 5 6 _ _ _ 10.
	var ks []Kline
	for _, i := range []int{0, 1, 2, 5, 6, 10} {
		ks = append(ks, kl("BTCUSDT", i, 100, 110, 90, 105))
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 5 * time.Minute) }
	tests := []struct {
		name     string
		opts     []Option
		interval string
		from     time.Time
		want     []bool
	}{
		{"default is reset", nil, "5m", at(0), []bool{false, false, false, true, false, true}},
		{"reset", []Option{WithOIGap(heatmap.OIGapReset)}, "5m", at(0), []bool{false, false, false, true, false, true}},
		// A query starting at a candle marks it as the whole series does.
		{"from the candle after a gap", nil, "5m", at(5), []bool{true, false, true}},
		{"from the candle after it", nil, "5m", at(6), []bool{false, true}},
		{"from before the first", nil, "5m", at(-3), []bool{false, false, false, true, false, true}},
		// Partial 15m candles are not missing ones.
		{"15m buckets all present", nil, "15m", at(0), []bool{false, false, false, false}},
		{"reference", []Option{WithOIGap(heatmap.OIGapReference)}, "5m", at(0), []bool{false, false, false, false, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, filepath.Join(t.TempDir(), "gaps.duckdb"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.UpsertKlines(ctx, ks); err != nil {
				t.Fatal(err)
			}
			cs, err := s.Candles(ctx, "BTCUSDT", tc.interval, tc.from, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var got []bool
			for _, c := range cs {
				got = append(got, c.AfterGap)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("AfterGap %v, want %v", got, tc.want)
			}
		})
	}
}

// Pins the rule docs/ARCHITECTURE.md states: an observation stamped T counts
// in the candle opening at T, including one stamped at the previous candle's
// close.
func TestReview20OIStampJoinsCandleOpeningThen(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105), kl("BTCUSDT", 1, 100, 110, 90, 105)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertOpenInterest(ctx, []OpenInterest{
		{Symbol: "BTCUSDT", TS: t0.Add(5 * time.Minute), OpenInterest: 1, OpenInterestValue: 7},
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Candles(ctx, "BTCUSDT", "5m", t0, time.Time{})
	if err != nil || len(cs) != 2 {
		t.Fatalf("%d candles, %v", len(cs), err)
	}
	if cs[0].HasOI || !cs[1].HasOI || cs[1].OIValue != 7 {
		t.Fatalf("candles %+v; want the row stamped at 10:05 in the candle opening at 10:05", cs)
	}
}
