package store

import (
	"context"
	"testing"
	"time"
)

// seedSeries writes n 5m candles of sym from t0 and an open-interest
// observation one minute into every candle i for which hasOI(i) holds.
func seedSeries(t *testing.T, s *Store, sym string, n int, hasOI func(i int) bool) {
	t.Helper()
	ctx := context.Background()
	var ks []Kline
	var ois []OpenInterest
	for i := range n {
		ks = append(ks, kl(sym, i, 100, 101, 99, 100))
		if hasOI != nil && hasOI(i) {
			ois = append(ois, OpenInterest{Symbol: sym, TS: t0.Add(time.Duration(i)*5*time.Minute + time.Minute), OpenInterest: 1, OpenInterestValue: 100})
		}
	}
	if err := s.UpsertKlines(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertOpenInterest(ctx, ois); err != nil {
		t.Fatal(err)
	}
}

func TestDataGaps(t *testing.T) {
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 5 * time.Minute) }
	oiAt := func(i int) time.Time { return at(i).Add(time.Minute) }
	all := func(int) bool { return true }
	tests := []struct {
		name string
		seed func(t *testing.T, s *Store)
		from time.Time
		max  int
		want []DataGap
	}{
		{"empty store", func(*testing.T, *Store) {}, time.Time{}, 0, nil},
		{"complete data", func(t *testing.T, s *Store) { seedSeries(t, s, "BTCUSDT", 100, all) }, time.Time{}, 0, nil},
		{"candles and no open interest (the interrupted demo seed)", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 2016, nil)
			seedSeries(t, s, "ETHUSDT", 50, all)
		}, time.Time{}, 0, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapNoOpenInterest, Since: at(0), Until: at(2015), Candles: 2016},
		}},
		{"open interest stops: stale", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 60 })
		}, time.Time{}, 12, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestStale, Since: oiAt(59), Until: at(99), Candles: 40},
		}},
		{"exactly the allowed candles behind: no gap", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 88 })
		}, time.Time{}, 12, nil},
		{"one more than allowed: stale", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 87 })
		}, time.Time{}, 12, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestStale, Since: oiAt(86), Until: at(99), Candles: 13},
		}},
		{"hole inside the window", func(t *testing.T, s *Store) {
			// 20..39 missing (20 candles), 70..75 missing (6: tolerated).
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return (i < 20 || i >= 40) && (i < 70 || i > 75) })
		}, time.Time{}, 12, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestHole, Since: at(20), Until: at(39), Candles: 20},
		}},
		{"hole before the window is not reported", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 20 || i >= 40 })
		}, at(40), 12, nil},
		{"hole cut by the window start counts from it", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 20 || i >= 40 })
		}, at(25), 12, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestHole, Since: at(25), Until: at(39), Candles: 15},
		}},
		{"hole and stale tail: the tail once, as stale", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 100, func(i int) bool { return i < 20 || (i >= 40 && i < 60) })
		}, time.Time{}, 12, []DataGap{
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestHole, Since: at(20), Until: at(39), Candles: 20},
			{Symbol: "BTCUSDT", Table: "open_interest", Kind: GapOpenInterestStale, Since: oiAt(59), Until: at(99), Candles: 40},
		}},
		{"other intervals are not read", func(t *testing.T, s *Store) {
			seedSeries(t, s, "BTCUSDT", 10, all)
			k := kl("BTCUSDT", 500, 100, 101, 99, 100)
			k.Interval = "1h"
			if err := s.UpsertKlines(context.Background(), []Kline{k}); err != nil {
				t.Fatal(err)
			}
		}, time.Time{}, 12, nil},
		{"several symbols, sorted", func(t *testing.T, s *Store) {
			seedSeries(t, s, "SOLUSDT", 30, nil)
			seedSeries(t, s, "ADAUSDT", 30, func(i int) bool { return i < 5 })
			seedSeries(t, s, "ETHUSDT", 30, all)
		}, time.Time{}, 12, []DataGap{
			{Symbol: "ADAUSDT", Table: "open_interest", Kind: GapOpenInterestStale, Since: oiAt(4), Until: at(29), Candles: 25},
			{Symbol: "SOLUSDT", Table: "open_interest", Kind: GapNoOpenInterest, Since: at(0), Until: at(29), Candles: 30},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			tc.seed(t, s)
			got, err := s.DataGaps(context.Background(), "5m", tc.from, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d gaps %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Symbol != w.Symbol || g.Table != w.Table || g.Kind != w.Kind || !g.Since.Equal(w.Since) || !g.Until.Equal(w.Until) || g.Candles != w.Candles {
					t.Errorf("gap %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
	t.Run("bad interval", func(t *testing.T) {
		s, _ := openTemp(t)
		if _, err := s.DataGaps(context.Background(), "7q", time.Time{}, 12); err == nil {
			t.Fatal("no error for an unknown interval")
		}
	})
}
