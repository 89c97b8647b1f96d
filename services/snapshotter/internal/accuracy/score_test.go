package accuracy

import (
	"context"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

func TestUniverse(t *testing.T) {
	for _, tc := range []struct {
		name           string
		price, bin     float64
		lo, hi         int64
		n, k           int
		nearLo, nearHi int64
	}{
		// [90000, 110000) in 100 USD buckets: 200 of them, the nearest 20
		// split evenly around the price, which sits on a bucket edge.
		{"aligned", 100000, 100, 900, 1099, 200, 20, 990, 1009},
		// [88605, 108295): the buckets meeting it; k rounds 19.7 to 20.
		{"unaligned", 98450, 100, 886, 1082, 197, 20, 974, 993},
		{"coarse", 100, 2, 45, 54, 10, 1, 50, 50},
		{"a bucket wider than the universe", 100, 1000, 0, 0, 1, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := newUniverse(tc.price, tc.bin)
			if !ok || u.lo != tc.lo || u.hi != tc.hi || u.n != tc.n || u.k != tc.k {
				t.Fatalf("universe %+v (ok %v), want buckets %d..%d, n %d, k %d", u, ok, tc.lo, tc.hi, tc.n, tc.k)
			}
			if lo, hi := u.nearest(); lo != tc.nearLo || hi != tc.nearHi {
				t.Fatalf("nearest %d..%d, want %d..%d", lo, hi, tc.nearLo, tc.nearHi)
			}
		})
	}
	if _, ok := newUniverse(0, 100); ok {
		t.Fatal("a universe around price 0")
	}
}

func TestTopRanksDensityThenNearnessThenPrice(t *testing.T) {
	// Price 100 in 2 USD buckets: buckets 45..54, k = 1.
	u, _ := newUniverse(100, 2)
	for _, tc := range []struct {
		name   string
		levels []heatmap.Level
		side   heatmap.Side
		want   []int64
	}{
		{"densest", []heatmap.Level{{Price: 92, LongDensity: 5}, {Price: 98, LongDensity: 9}, {Price: 104, ShortDensity: 50}}, heatmap.Long, []int64{49}},
		{"the other side is not looked at", []heatmap.Level{{Price: 92, LongDensity: 5}, {Price: 104, ShortDensity: 50}}, heatmap.Short, []int64{52}},
		{"a tie goes to the nearer bucket", []heatmap.Level{{Price: 92, LongDensity: 5}, {Price: 98, LongDensity: 5}}, heatmap.Long, []int64{49}},
		// Buckets 46 and 53 have their middles (93, 107) 7 from the price.
		{"then to the lower one", []heatmap.Level{{Price: 92, LongDensity: 5}, {Price: 106, LongDensity: 5}}, heatmap.Long, []int64{46}},
		{"outside the universe never", []heatmap.Level{{Price: 80, LongDensity: 99}, {Price: 92, LongDensity: 1}}, heatmap.Long, []int64{46}},
		{"empty buckets never fill the top", []heatmap.Level{{Price: 92, ShortDensity: 5}}, heatmap.Long, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(u.top(tc.levels, tc.side)))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("top %v, want %v", got, tc.want)
			}
		})
	}
	// With k above the buckets that have density, the top is only those.
	w, _ := newUniverse(100000, 100)
	if got := w.top([]heatmap.Level{{Price: 90000, LongDensity: 1}, {Price: 95000, LongDensity: 2}}, heatmap.Long); len(got) != 2 {
		t.Fatalf("top %v, want the 2 buckets with density of k = %d", got, w.k)
	}
}

// scoreDay scores each liquidation against the engine after the last candle
// that closed at or before it, never one still open.
func TestScoreDayUsesTheLastClosedCandle(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	step := 5 * time.Minute
	flat := func(at time.Time, oi float64) heatmap.Candle {
		return heatmap.Candle{OpenTime: at, Open: 100000, High: 100000, Low: 100000, Close: 100000, Volume: 1, OIValue: oi, HasOI: true}
	}
	c2 := flat(t0.Add(2*step), 12e6)
	c2.High, c2.Close = 102000, 102000
	// c1's OI rise opens longs at 100000 (the 10x one at 90040, the
	// densest); c2's bigger rise opens longs at 102000 (10x at 91840.8).
	candles := []heatmap.Candle{flat(t0, 1e6), flat(t0.Add(step), 2e6), c2}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	liq := func(d time.Duration, side string, price, notional float64) store.Liquidation {
		return store.Liquidation{Symbol: "BTCUSDT", Time: at(d), Side: side, Price: price, Quantity: notional / price, Notional: notional}
	}
	// Notionals are powers of two: a sum names exactly who hit.
	liqs := []store.Liquidation{
		liq(time.Minute, store.SideLong, 100000, 1),         // before any candle closed: no price, no universe
		liq(step+time.Minute, store.SideLong, 90050, 2),     // c1 still open: no positions yet
		liq(2*step, store.SideLong, 90050, 4),               // c1 closed this instant: hit
		liq(3*step-time.Second, store.SideLong, 91850, 8),   // c2 still open: its bucket is not the top yet
		liq(3*step-time.Second, store.SideShort, 90050, 16), // a short is not scored by long density
		liq(3*step, store.SideLong, 91850, 32),              // c2 closed: hit
		liq(3*step+time.Hour, store.SideLong, 91850, 64),    // after the last candle: the model as it stands
		liq(3*step+time.Hour, store.SideLong, 102010, 128),  // at the price: only the distance baseline
	}
	p := heatmap.DefaultParams()
	got, err := scoreDay(context.Background(), p, step, candles, liqs)
	if err != nil {
		t.Fatal(err)
	}
	u0, _ := newUniverse(100000, 100)
	u2, _ := newUniverse(102000, 100)
	inside0 := 2.0 + 4 + 8 + 16 // after c0 and c1, at 100000
	inside2 := 32.0 + 64 + 128  // after c2, at 102000
	want := Tally{Count: 8, Notional: 255, Model: 4 + 32 + 64, Distance: 128,
		Uniform: inside0*float64(u0.k)/float64(u0.n) + inside2*float64(u2.k)/float64(u2.n)}
	if got.Count != want.Count || got.Notional != want.Notional || got.Model != want.Model || got.Distance != want.Distance || math.Abs(got.Uniform-want.Uniform) > 1e-9 {
		t.Fatalf("tally %+v, want %+v", got, want)
	}

	// Without liquidations nothing is replayed, and an error in the
	// parameters is not reached.
	if got, err := scoreDay(context.Background(), heatmap.Params{}, step, candles, nil); err != nil || got != (Tally{}) {
		t.Fatalf("no liquidations: %+v %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scoreDay(ctx, p, step, candles, liqs); err == nil {
		t.Fatal("a cancelled replay went on")
	}
}
