package heatmap_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

// The tests are black-box on purpose: the incremental rewrite must pass them
// unchanged. Expected numbers are worked out by hand in the comments; most
// scenarios use leverage 4 (or 2) and mmr 0 so that the liquidation prices are
// exact in binary floating point: long entry·0.75, short entry·1.25.

const relTol = 1e-9

var t0 = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)

// k builds the i-th 5-minute candle with an OI observation.
func k(i int, open, high, low, close, oi float64) heatmap.Candle {
	return heatmap.Candle{
		OpenTime: t0.Add(time.Duration(i) * 5 * time.Minute),
		Open:     open, High: high, Low: low, Close: close,
		Volume:  1,
		OIValue: oi,
		HasOI:   true,
	}
}

// flat is a doji at 100 whose range (99–101) reaches none of the liquidation
// prices the scenarios open; with rising OI it would open longs.
func flat(i int, oi float64) heatmap.Candle { return k(i, 100, 101, 99, 100, oi) }

// up and down open interest at close 100 on the long and the short side.
func up(i int, oi float64) heatmap.Candle   { return k(i, 99, 101, 99, 100, oi) }
func down(i int, oi float64) heatmap.Candle { return k(i, 101, 101, 99, 100, oi) }

func noOI(c heatmap.Candle) heatmap.Candle { c.HasOI = false; return c }

func params(tiers []heatmap.Tier, mmr, bin float64) heatmap.Params {
	return heatmap.Params{Tiers: tiers, MMR: mmr, BinSize: bin}
}

// x4 is a single 4x tier with mmr 0 and bin 1: liq long = 0.75·entry, short = 1.25·entry.
var x4 = params([]heatmap.Tier{{Leverage: 4, Weight: 1}}, 0, 1)

func near(got, want float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= relTol*math.Max(math.Abs(got), math.Abs(want))
}

// step is one candle and what the snapshot after it must say.
type step struct {
	k                          heatmap.Candle
	created, consumed, dropped int
	long, short                float64
	levels                     []heatmap.Level
}

type scenario struct {
	name        string
	p           heatmap.Params
	steps       []step
	long, short *heatmap.SideTotals // final totals, when the case is about them
}

func run(t *testing.T, sc scenario) {
	t.Helper()
	c, err := heatmap.NewClassic(sc.p)
	if err != nil {
		t.Fatalf("NewClassic: %v", err)
	}
	for i, st := range sc.steps {
		s := c.Apply(st.k)
		checkSnapshotShape(t, i, s, sc.p.BinSize)
		if s.PositionsCreated != st.created || s.PositionsConsumed != st.consumed || s.PositionsDropped != st.dropped {
			t.Errorf("candle %d: created/consumed/dropped = %d/%d/%d, want %d/%d/%d",
				i, s.PositionsCreated, s.PositionsConsumed, s.PositionsDropped, st.created, st.consumed, st.dropped)
		}
		if !near(s.TotalLongVolume, st.long) || !near(s.TotalShortVolume, st.short) {
			t.Errorf("candle %d: long/short volume = %v/%v, want %v/%v", i, s.TotalLongVolume, s.TotalShortVolume, st.long, st.short)
		}
		if s.CurrentPrice != st.k.Close || s.Candle != st.k {
			t.Errorf("candle %d: snapshot candle/current price do not echo the input", i)
		}
		if !levelsNear(s.Levels, st.levels) {
			t.Errorf("candle %d: levels\n got %v\nwant %v", i, s.Levels, st.levels)
		}
	}
	long, short := c.Totals()
	if sc.long != nil && !totalsNear(long, *sc.long) {
		t.Errorf("long totals\n got %+v\nwant %+v", long, *sc.long)
	}
	if sc.short != nil && !totalsNear(short, *sc.short) {
		t.Errorf("short totals\n got %+v\nwant %+v", short, *sc.short)
	}
	if got := c.Levels(); !levelsNear(got, sc.steps[len(sc.steps)-1].levels) {
		t.Errorf("Levels() = %v, want the last snapshot's", got)
	}
}

// checkSnapshotShape checks what holds for every snapshot, whatever the input.
func checkSnapshotShape(t *testing.T, i int, s heatmap.Snapshot, bin float64) {
	t.Helper()
	for j, l := range s.Levels {
		if l.Price < 0 || math.Signbit(l.Price) {
			t.Errorf("candle %d: level %d has negative price %v", i, j, l.Price)
		}
		if l.LongDensity == 0 && l.ShortDensity == 0 {
			t.Errorf("candle %d: level %d (%v) is empty", i, j, l.Price)
		}
		if l.LongDensity < 0 || l.ShortDensity < 0 {
			t.Errorf("candle %d: level %d has negative density %+v", i, j, l)
		}
		if q := l.Price / bin; q != math.Trunc(q) {
			t.Errorf("candle %d: level price %v is not a multiple of bin %v", i, l.Price, bin)
		}
		if j > 0 && !(s.Levels[j-1].Price < l.Price) {
			t.Errorf("candle %d: levels not strictly ascending at %d: %v then %v", i, j, s.Levels[j-1].Price, l.Price)
		}
	}
}

func levelsNear(got, want []heatmap.Level) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Price != want[i].Price || !near(got[i].LongDensity, want[i].LongDensity) || !near(got[i].ShortDensity, want[i].ShortDensity) {
			return false
		}
	}
	return true
}

func totalsNear(got, want heatmap.SideTotals) bool {
	return near(got.Opened, want.Opened) && near(got.Remaining, want.Remaining) &&
		near(got.Liquidated, want.Liquidated) && near(got.Closed, want.Closed) &&
		got.Created == want.Created && got.Consumed == want.Consumed &&
		got.Dropped == want.Dropped && got.Live == want.Live
}

func TestConsumeBeforeCreate(t *testing.T) {
	for _, sc := range []scenario{
		{
			// Candle 1 closes up at 101 with ΔOI = 2000 − 1000 = 1000: one long,
			// liq 101·0.75 = 75.75. Its own low (50) is below that but it was
			// created after the consume step. Candle 2 then reaches 75.75.
			name: "long survives its own candle",
			p:    x4,
			steps: []step{
				{k: k(0, 100, 100, 100, 100, 1000)},
				{k: k(1, 100, 101, 50, 101, 2000), created: 1, long: 1000, levels: []heatmap.Level{{Price: 75, LongDensity: 1000}}},
				{k: k(2, 101, 101, 75.75, 80, 2000), consumed: 1},
			},
			long: &heatmap.SideTotals{Opened: 1000, Liquidated: 1000, Created: 1, Consumed: 1},
		},
		{
			// Candle 1 closes down at 99: one short, liq 99·1.25 = 123.75; its own
			// high (200) does not count. Candle 2's high 123.75 does.
			name: "short survives its own candle",
			p:    x4,
			steps: []step{
				{k: k(0, 100, 100, 100, 100, 1000)},
				{k: k(1, 100, 200, 99, 99, 2000), created: 1, short: 1000, levels: []heatmap.Level{{Price: 123, ShortDensity: 1000}}},
				{k: k(2, 99, 123.75, 99, 120, 2000), consumed: 1},
			},
			short: &heatmap.SideTotals{Opened: 1000, Liquidated: 1000, Created: 1, Consumed: 1},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func TestInclusiveBoundaries(t *testing.T) {
	// Candle 1 opens 1000 at entry 100: long liq 75, short liq 125 (both exact).
	longAt := []heatmap.Level{{Price: 75, LongDensity: 1000}}
	shortAt := []heatmap.Level{{Price: 125, ShortDensity: 1000}}
	for _, tc := range []struct {
		name   string
		open   heatmap.Candle
		probe  heatmap.Candle // candle 2, ΔOI 0
		before []heatmap.Level
		after  step
	}{
		{"long: low == liq liquidates", up(1, 2000), k(2, 100, 100, 75, 100, 2000), longAt,
			step{consumed: 1}},
		{"long: low one cent above liq survives", up(1, 2000), k(2, 100, 100, 75.01, 100, 2000), longAt,
			step{long: 1000, levels: longAt}},
		{"long: low below liq liquidates", up(1, 2000), k(2, 100, 100, 10, 100, 2000), longAt,
			step{consumed: 1}},
		{"short: high == liq liquidates", down(1, 2000), k(2, 100, 125, 100, 100, 2000), shortAt,
			step{consumed: 1}},
		{"short: high one cent below liq survives", down(1, 2000), k(2, 100, 124.99, 100, 100, 2000), shortAt,
			step{short: 1000, levels: shortAt}},
		{"short: high above liq liquidates", down(1, 2000), k(2, 100, 1000, 100, 100, 2000), shortAt,
			step{consumed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1 := step{k: tc.open, created: 1, levels: tc.before}
			if tc.before[0].LongDensity != 0 {
				s1.long = 1000
			} else {
				s1.short = 1000
			}
			after := tc.after
			after.k = tc.probe
			run(t, scenario{name: tc.name, p: x4, steps: []step{{k: flat(0, 1000)}, s1, after}})
		})
	}
}

func TestDirection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		open, close float64
		want        step
	}{
		// ΔOI = 1000 at close 100: long liq 75, short liq 125.
		{"close > open goes long", 99, 100, step{created: 1, long: 1000, levels: []heatmap.Level{{Price: 75, LongDensity: 1000}}}},
		{"doji goes long", 100, 100, step{created: 1, long: 1000, levels: []heatmap.Level{{Price: 75, LongDensity: 1000}}}},
		{"close < open goes short", 101, 100, step{created: 1, short: 1000, levels: []heatmap.Level{{Price: 125, ShortDensity: 1000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.want
			st.k = k(1, tc.open, 101, 99, tc.close, 2000)
			run(t, scenario{p: x4, steps: []step{{k: flat(0, 1000)}, st}})
		})
	}
}

func TestMissingOI(t *testing.T) {
	oneLong := []heatmap.Level{{Price: 75, LongDensity: 1000}}
	for _, sc := range []scenario{
		{
			name:  "first candle changes nothing",
			p:     x4,
			steps: []step{{k: up(0, 1000)}},
		},
		{
			name: "previous candle without OI: no create",
			p:    x4,
			steps: []step{
				{k: flat(0, 1000)},
				{k: noOI(flat(1, 0))},
				{k: up(2, 2000)}, // would be +1000 from candle 0, but candle 1 broke the series
				{k: up(3, 3000), created: 1, long: 1000, levels: oneLong}, // series resumed: +1000
			},
		},
		{
			name: "current candle without OI: no create, OIValue ignored",
			p:    x4,
			steps: []step{
				{k: flat(0, 1000)},
				{k: noOI(up(1, 5000))},
			},
		},
		{
			// Candle 1 opens a long of 1000. Candles 2–3 cannot close it because
			// of the gap; candle 4 (500 → 0, ΔOI −500) closes half: 1000·0.5 = 500.
			name: "gap blocks a close",
			p:    x4,
			steps: []step{
				{k: flat(0, 1000)},
				{k: up(1, 2000), created: 1, long: 1000, levels: oneLong},
				{k: noOI(flat(2, 0)), long: 1000, levels: oneLong},
				{k: flat(3, 500), long: 1000, levels: oneLong},
				{k: flat(4, 0), long: 500, levels: []heatmap.Level{{Price: 75, LongDensity: 500}}},
			},
			long: &heatmap.SideTotals{Opened: 1000, Remaining: 500, Closed: 500, Created: 1, Live: 1},
		},
		{
			name: "current candle without OI: no close",
			p:    x4,
			steps: []step{
				{k: flat(0, 1000)},
				{k: up(1, 2000), created: 1, long: 1000, levels: oneLong},
				{k: noOI(flat(2, 0)), long: 1000, levels: oneLong},
			},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func TestProRataClose(t *testing.T) {
	// Common start: long 600 (liq 75) from 1000 → 1600, short 400 (liq 125)
	// from 1600 → 2000.
	start := []step{
		{k: flat(0, 1000)},
		{k: up(1, 1600), created: 1, long: 600, levels: []heatmap.Level{{Price: 75, LongDensity: 600}}},
		{k: down(2, 2000), created: 1, long: 600, short: 400, levels: []heatmap.Level{{Price: 75, LongDensity: 600}, {Price: 125, ShortDensity: 400}}},
	}
	with := func(s step) []step { return append(append([]step(nil), start...), s) }
	for _, sc := range []scenario{
		{
			// ΔOI = 1500 − 2000 = −500 over total 1000: factor 0.5 → 300 and 200.
			name:  "both sides shrink by the same factor",
			p:     x4,
			steps: with(step{k: flat(3, 1500), long: 300, short: 200, levels: []heatmap.Level{{Price: 75, LongDensity: 300}, {Price: 125, ShortDensity: 200}}}),
			long:  &heatmap.SideTotals{Opened: 600, Remaining: 300, Closed: 300, Created: 1, Live: 1},
			short: &heatmap.SideTotals{Opened: 400, Remaining: 200, Closed: 200, Created: 1, Live: 1},
		},
		{
			// ΔOI = −2000 over total 1000: factor capped at 1, everything closes;
			// both positions end at 0 < 0.01 and are dropped.
			name:  "drop larger than total closes everything",
			p:     x4,
			steps: with(step{k: flat(3, 0), dropped: 2}),
			long:  &heatmap.SideTotals{Opened: 600, Closed: 600, Created: 1, Dropped: 1},
			short: &heatmap.SideTotals{Opened: 400, Closed: 400, Created: 1, Dropped: 1},
		},
		{
			// Low 75 liquidates the long first, so total = 400 and ΔOI −500 gives
			// factor min(500/400, 1) = 1: the short is closed whole.
			name:  "total is taken after consumption",
			p:     x4,
			steps: with(step{k: k(3, 100, 100, 75, 100, 1500), consumed: 1, dropped: 1}),
			long:  &heatmap.SideTotals{Opened: 600, Liquidated: 600, Created: 1, Consumed: 1},
			short: &heatmap.SideTotals{Opened: 400, Closed: 400, Created: 1, Dropped: 1},
		},
		{
			// Same side, two tiers: 4x gets 0.6·1000 = 600 (liq 75), 2x gets
			// 0.4·1000 = 400 (liq 50). ΔOI −500 → factor 0.5 → 300 and 200.
			name: "two tiers of one side",
			p:    params([]heatmap.Tier{{Leverage: 4, Weight: 0.6}, {Leverage: 2, Weight: 0.4}}, 0, 1),
			steps: []step{
				{k: flat(0, 1000)},
				{k: up(1, 2000), created: 2, long: 1000, levels: []heatmap.Level{{Price: 50, LongDensity: 400}, {Price: 75, LongDensity: 600}}},
				{k: flat(2, 1500), long: 500, levels: []heatmap.Level{{Price: 50, LongDensity: 200}, {Price: 75, LongDensity: 300}}},
			},
			long: &heatmap.SideTotals{Opened: 1000, Remaining: 500, Closed: 500, Created: 2, Live: 2},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func TestDustFloor(t *testing.T) {
	// A long of exactly 0.02 (OI 0 → 0.02) and, after a gap that resets the OI
	// baseline, a short of exactly 0.0199 (OI 0 → 0.0199). After another gap
	// the OI goes T → T/2 with T = 0.02 + 0.0199 = the engine's total, so the
	// factor is exactly 0.5: the long becomes 0.02·0.5 = 0.01 (== the floor,
	// stays), the short 0.00995 (< 0.01, dropped; all 0.0199 counts as closed).
	a, b := 0.02, 0.0199
	T := a + b // float64 addition, as the engine does (a constant sum would round differently)
	steps := []step{
		{k: flat(0, 0)},
		{k: up(1, a), created: 1, long: a, levels: []heatmap.Level{{Price: 75, LongDensity: a}}},
		{k: noOI(flat(2, 0)), long: a, levels: []heatmap.Level{{Price: 75, LongDensity: a}}},
		{k: flat(3, 0), long: a, levels: []heatmap.Level{{Price: 75, LongDensity: a}}},
		{k: down(4, b), created: 1, long: a, short: b, levels: []heatmap.Level{{Price: 75, LongDensity: a}, {Price: 125, ShortDensity: b}}},
		{k: noOI(flat(5, 0)), long: a, short: b, levels: []heatmap.Level{{Price: 75, LongDensity: a}, {Price: 125, ShortDensity: b}}},
		{k: flat(6, T), long: a, short: b, levels: []heatmap.Level{{Price: 75, LongDensity: a}, {Price: 125, ShortDensity: b}}},
		{k: flat(7, T/2), dropped: 1, long: 0.01, levels: []heatmap.Level{{Price: 75, LongDensity: 0.01}}},
	}
	run(t, scenario{
		p:     x4,
		steps: steps,
		long:  &heatmap.SideTotals{Opened: a, Remaining: 0.01, Closed: 0.01, Created: 1, Live: 1},
		short: &heatmap.SideTotals{Opened: b, Closed: b, Created: 1, Dropped: 1},
	})
}

func TestBucketing(t *testing.T) {
	// Tier 2x, mmr 0: short liq = entry·1.5, long liq = entry·0.5. Entry
	// 65843.6 → short liq 98765.4 (1000 USDT), long liq 32921.8 (2000 USDT).
	x2 := func(bin float64) heatmap.Params { return params([]heatmap.Tier{{Leverage: 2, Weight: 1}}, 0, bin) }
	pair := func() []step {
		return []step{
			{k: k(0, 65843.6, 65843.6, 65843.6, 65843.6, 0)},
			{k: k(1, 65900, 65900, 65800, 65843.6, 1000), created: 1, short: 1000},
			{k: k(2, 65800, 65900, 65800, 65843.6, 3000), created: 1, long: 2000, short: 1000},
		}
	}
	withLevels := func(steps []step, l1, l2 []heatmap.Level) []step {
		steps[1].levels, steps[2].levels = l1, l2
		return steps
	}
	// Tiers 4x and 5x at 0.5 each, mmr 0, entry 100: long liqs 75 and 80,
	// short liqs 125 and 120; 500 USDT each.
	x45 := func(bin float64) heatmap.Params {
		return params([]heatmap.Tier{{Leverage: 4, Weight: 0.5}, {Leverage: 5, Weight: 0.5}}, 0, bin)
	}
	for _, sc := range []scenario{
		{
			name: "bin 100 floors 98765.4 to 98700 and 32921.8 to 32900",
			p:    x2(100),
			steps: withLevels(pair(),
				[]heatmap.Level{{Price: 98700, ShortDensity: 1000}},
				[]heatmap.Level{{Price: 32900, LongDensity: 2000}, {Price: 98700, ShortDensity: 1000}}),
		},
		{
			name: "bin 1 floors to whole dollars",
			p:    x2(1),
			steps: withLevels(pair(),
				[]heatmap.Level{{Price: 98765, ShortDensity: 1000}},
				[]heatmap.Level{{Price: 32921, LongDensity: 2000}, {Price: 98765, ShortDensity: 1000}}),
		},
		{
			name: "bin 1000 floors to thousands",
			p:    x2(1000),
			steps: withLevels(pair(),
				[]heatmap.Level{{Price: 98000, ShortDensity: 1000}},
				[]heatmap.Level{{Price: 32000, LongDensity: 2000}, {Price: 98000, ShortDensity: 1000}}),
		},
		{
			// Long liq 400·0.75 = 300 exactly: 300/100 = 3, bucket 300 (not 200).
			name: "liq on a bucket edge belongs to that bucket",
			p:    params([]heatmap.Tier{{Leverage: 4, Weight: 1}}, 0, 100),
			steps: []step{
				{k: k(0, 400, 400, 400, 400, 0)},
				{k: k(1, 399, 400, 399, 400, 1000), created: 1, long: 1000, levels: []heatmap.Level{{Price: 300, LongDensity: 1000}}},
			},
		},
		{
			// 75 and 80 both floor to bucket 0 with bin 100: densities add up.
			name: "positions in one bucket add up",
			p:    x45(100),
			steps: []step{
				{k: flat(0, 0)},
				{k: up(1, 1000), created: 2, long: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000}}},
				// shorts at 120 and 125 → bucket 100.
				{k: down(2, 2000), created: 2, long: 1000, short: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000}, {Price: 100, ShortDensity: 1000}}},
			},
		},
		{
			// With bin 1000 the longs (75, 80) and shorts (120, 125) share bucket 0.
			name: "both sides in one bucket",
			p:    x45(1000),
			steps: []step{
				{k: flat(0, 0)},
				{k: up(1, 1000), created: 2, long: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000}}},
				{k: down(2, 2000), created: 2, long: 1000, short: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000, ShortDensity: 1000}}},
			},
		},
		{
			// Leverage 1 with mmr 0: long liq = 100·(1 − 1 + 0) = 0 → bucket +0,
			// never negative, and unreachable by any positive low.
			name: "leverage 1 long sits at price 0",
			p:    params([]heatmap.Tier{{Leverage: 1, Weight: 1}}, 0, 100),
			steps: []step{
				{k: flat(0, 0)},
				{k: up(1, 1000), created: 1, long: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000}}},
				{k: k(2, 100, 100, 0.01, 100, 1000), long: 1000, levels: []heatmap.Level{{Price: 0, LongDensity: 1000}}},
			},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func TestDefaultTiers(t *testing.T) {
	// Default tiers, mmr 0.004, bin 100, entry 100000, ΔOI 8.001e9 − 8e9 = 1e6.
	// Volumes: 5x 150000, 10x 300000, 25x 250000, 50x 200000, 100x 100000.
	// Long liq = 100000·(1 − 1/L + 0.004/L):
	//   5x 0.8008 → 80080, 10x 0.9004 → 90040, 25x 0.96016 → 96016,
	//   50x 0.98008 → 98008, 100x 0.99004 → 99004.
	// Short liq = 100000·(1 + 1/L − 0.004/L):
	//   5x 1.1992 → 119920, 10x 1.0996 → 109960, 25x 1.03984 → 103984,
	//   50x 1.01992 → 101992, 100x 1.00996 → 100996.
	p := heatmap.DefaultParams()
	longs := []heatmap.Level{
		{Price: 80000, LongDensity: 150000}, {Price: 90000, LongDensity: 300000},
		{Price: 96000, LongDensity: 250000}, {Price: 98000, LongDensity: 200000},
		{Price: 99000, LongDensity: 100000},
	}
	shorts := []heatmap.Level{
		{Price: 100900, ShortDensity: 100000}, {Price: 101900, ShortDensity: 200000},
		{Price: 103900, ShortDensity: 250000}, {Price: 109900, ShortDensity: 300000},
		{Price: 119900, ShortDensity: 150000},
	}
	for _, sc := range []scenario{
		{
			// Low 90040.5 reaches 99004, 98008, 96016 but not 90040 — which
			// 90039.99 does (without the mmr term it would be 90000 and survive).
			name: "long tiers liquidate from the highest leverage down",
			p:    p,
			steps: []step{
				{k: k(0, 100000, 100000, 100000, 100000, 8e9)},
				{k: k(1, 99900, 100000, 99900, 100000, 8.001e9), created: 5, long: 1e6, levels: longs},
				{k: k(2, 100000, 100000, 90040.5, 95000, 8.001e9), consumed: 3, long: 450000, levels: longs[:2]},
				{k: k(3, 95000, 95000, 90039.99, 95000, 8.001e9), consumed: 1, long: 150000, levels: longs[:1]},
			},
			long: &heatmap.SideTotals{Opened: 1e6, Remaining: 150000, Liquidated: 850000, Created: 5, Consumed: 4, Live: 1},
		},
		{
			// High 109959.99 reaches 100996, 101992, 103984 but not 109960 —
			// which 109960.01 does.
			name: "short tiers liquidate from the highest leverage down",
			p:    p,
			steps: []step{
				{k: k(0, 100000, 100000, 100000, 100000, 8e9)},
				{k: k(1, 100100, 100100, 100000, 100000, 8.001e9), created: 5, short: 1e6, levels: shorts},
				{k: k(2, 100000, 109959.99, 100000, 105000, 8.001e9), consumed: 3, short: 450000, levels: shorts[3:]},
				{k: k(3, 105000, 109960.01, 105000, 105000, 8.001e9), consumed: 1, short: 150000, levels: shorts[4:]},
			},
			short: &heatmap.SideTotals{Opened: 1e6, Remaining: 150000, Liquidated: 850000, Created: 5, Consumed: 4, Live: 1},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, sc) })
	}
}

func TestZeroWeightTierOpensNothing(t *testing.T) {
	// 4x:0 and 2x:1: only the 2x position is created (liq 100·0.5 = 50).
	run(t, scenario{
		p: params([]heatmap.Tier{{Leverage: 4, Weight: 0}, {Leverage: 2, Weight: 1}}, 0, 1),
		steps: []step{
			{k: flat(0, 0)},
			{k: up(1, 1000), created: 1, long: 1000, levels: []heatmap.Level{{Price: 50, LongDensity: 1000}}},
		},
		long: &heatmap.SideTotals{Opened: 1000, Remaining: 1000, Created: 1, Live: 1},
	})
}

// randomCandles is a seeded random walk that exercises every branch: gaps in
// OI, large OI collapses (dust drops), and big wicks (liquidations).
func randomCandles(seed uint64, n int, price, oi, oiStep, oiTrend, vol float64) []heatmap.Candle {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := oi
	out := make([]heatmap.Candle, n)
	for i := range out {
		open := price
		price *= math.Exp(r.NormFloat64() * vol)
		hi := math.Max(open, price) * (1 + math.Abs(r.NormFloat64())*vol/2)
		lo := math.Min(open, price) * (1 - math.Abs(r.NormFloat64())*vol/2)
		base += oiTrend
		oi += r.NormFloat64()*oiStep - 0.01*(oi-base)
		out[i] = heatmap.Candle{
			OpenTime: t0.Add(time.Duration(i) * 5 * time.Minute),
			Open:     open, High: hi, Low: lo, Close: price,
			Volume:  r.Float64() * 1000,
			OIValue: oi,
			HasOI:   true,
		}
	}
	return out
}

func TestInvariantRandom(t *testing.T) {
	candles := randomCandles(42, 3000, 95000, 8e9, 5e6, 0, 0.004)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range candles {
		switch x := r.Float64(); {
		case x < 0.03:
			candles[i].HasOI = false
		case x < 0.033:
			candles[i].OIValue *= 0.5 // a crash: factor near 1, lots of dust
		}
	}
	p := heatmap.DefaultParams()
	c, err := heatmap.NewClassic(p)
	if err != nil {
		t.Fatal(err)
	}
	var created, consumed, dropped int
	check := func(i int) {
		long, short := c.Totals()
		for _, st := range []struct {
			side heatmap.Side
			tot  heatmap.SideTotals
		}{{heatmap.Long, long}, {heatmap.Short, short}} {
			tot := st.tot
			sum := tot.Remaining + tot.Liquidated + tot.Closed
			if math.Abs(tot.Opened-sum) > relTol*tot.Opened {
				t.Fatalf("candle %d %v: opened %v != remaining %v + liquidated %v + closed %v = %v",
					i, st.side, tot.Opened, tot.Remaining, tot.Liquidated, tot.Closed, sum)
			}
			if tot.Created-tot.Consumed-tot.Dropped != tot.Live {
				t.Fatalf("candle %d %v: created %d − consumed %d − dropped %d != live %d",
					i, st.side, tot.Created, tot.Consumed, tot.Dropped, tot.Live)
			}
		}
		if created-consumed-dropped != long.Live+short.Live {
			t.Fatalf("candle %d: snapshot counts %d−%d−%d != live %d", i, created, consumed, dropped, long.Live+short.Live)
		}
	}
	for i, kc := range candles {
		s := c.Apply(kc)
		checkSnapshotShape(t, i, s, p.BinSize)
		created += s.PositionsCreated
		consumed += s.PositionsConsumed
		dropped += s.PositionsDropped
		var ld, sd float64
		for _, l := range s.Levels {
			ld += l.LongDensity
			sd += l.ShortDensity
		}
		if !near(ld, s.TotalLongVolume) || !near(sd, s.TotalShortVolume) {
			t.Fatalf("candle %d: level sums %v/%v != totals %v/%v", i, ld, sd, s.TotalLongVolume, s.TotalShortVolume)
		}
		long, short := c.Totals()
		if long.Remaining != s.TotalLongVolume || short.Remaining != s.TotalShortVolume {
			t.Fatalf("candle %d: Totals remaining %v/%v != snapshot %v/%v", i, long.Remaining, short.Remaining, s.TotalLongVolume, s.TotalShortVolume)
		}
		check(i)
	}
	// The series must have exercised every path, or the invariant proves little.
	long, short := c.Totals()
	for _, tot := range []heatmap.SideTotals{long, short} {
		if tot.Created == 0 || tot.Consumed == 0 || tot.Dropped == 0 || tot.Closed == 0 || tot.Live == 0 {
			t.Errorf("random series did not exercise every path: %+v", tot)
		}
	}
	t.Logf("long %+v", long)
	t.Logf("short %+v", short)
}

func TestReplayMatchesApply(t *testing.T) {
	candles := randomCandles(3, 500, 95000, 8e9, 5e6, 0, 0.003)
	p := heatmap.DefaultParams()
	got, err := heatmap.Replay(p, candles)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := heatmap.NewClassic(p)
	for i, kc := range candles {
		if want := c.Apply(kc); !reflect.DeepEqual(got[i], want) {
			t.Fatalf("candle %d: Replay and Apply differ", i)
		}
	}
}

func TestReplayRejects(t *testing.T) {
	ordered := func() []heatmap.Candle {
		return []heatmap.Candle{flat(0, 1000), up(1, 2000), flat(2, 2000), flat(3, 1500)}
	}
	for _, tc := range []struct {
		name    string
		p       heatmap.Params
		candles func() []heatmap.Candle
		wantErr string
	}{
		{"equal open times", x4, func() []heatmap.Candle { c := ordered(); c[2].OpenTime = c[1].OpenTime; return c }, "candle 2"},
		{"decreasing open times", x4, func() []heatmap.Candle { c := ordered(); c[3].OpenTime = c[0].OpenTime; return c }, "candle 3"},
		{"invalid params", params(nil, 0, 1), ordered, "leverage weights"},
		{"bin size out of range", params(x4.Tiers, 0, 0), ordered, "bin size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snaps, err := heatmap.Replay(tc.p, tc.candles())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
			if snaps != nil {
				t.Errorf("got %d snapshots with the error, want none", len(snaps))
			}
		})
	}
	t.Run("empty input", func(t *testing.T) {
		snaps, err := heatmap.Replay(x4, nil)
		if err != nil || len(snaps) != 0 {
			t.Fatalf("Replay(nil) = %d snapshots, %v", len(snaps), err)
		}
	})
}

func BenchmarkReplayWeek(b *testing.B) {
	// One week of 5-minute candles: a random walk around 95,000, OI around 8e9
	// USDT moving a few million per candle. In "flat-oi" OI mean-reverts, so
	// pro-rata closes keep the book at ~1,300 positions; in "growing-oi" OI
	// climbs 12% over the week with calmer prices (~0.05% per candle) and
	// ~5,000 positions are live at the end — the load the reference must still
	// replay in tens of milliseconds.
	for _, bc := range []struct {
		name       string
		trend, vol float64
	}{{"flat-oi", 0, 0.001}, {"growing-oi", 5e5, 0.0005}} {
		b.Run(bc.name, func(b *testing.B) {
			candles := randomCandles(1, 2016, 95000, 8e9, 3e6, bc.trend, bc.vol)
			p := heatmap.DefaultParams()
			var snaps []heatmap.Snapshot
			for b.Loop() {
				var err error
				if snaps, err = heatmap.Replay(p, candles); err != nil {
					b.Fatal(err)
				}
			}
			c, _ := heatmap.NewClassic(p)
			for _, kc := range candles {
				c.Apply(kc)
			}
			long, short := c.Totals()
			b.ReportMetric(float64(long.Live+short.Live), "live-positions")
			b.ReportMetric(float64(len(snaps[len(snaps)-1].Levels)), "levels")
		})
	}
}
