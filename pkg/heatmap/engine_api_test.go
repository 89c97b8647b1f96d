package heatmap_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

func mustEngine(t *testing.T, p heatmap.Params) *heatmap.Engine {
	t.Helper()
	e, err := heatmap.NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestReviseGolden(t *testing.T) {
	// x4: long liq = 0.75·entry, short liq = 1.25·entry, bin 1.
	oneLong := func(v float64) []heatmap.Level { return []heatmap.Level{{Price: 75, LongDensity: v}} }
	for _, tc := range []struct {
		name  string
		steps []struct {
			revise bool
			st     step
		}
		long, short heatmap.SideTotals
	}{
		{
			// Candle 1 is first an up candle (long 1000 at 75), then a down
			// candle (short 1000 at 125), then has no OI yet (nothing), then
			// settles up with OI 1500 (long 500 at 75). Candle 2 drops OI to
			// 1000: ΔOI −500 over the 500 left closes all of it (factor 1).
			// Only the last revision may count in the totals.
			name: "creation is undone",
			steps: []struct {
				revise bool
				st     step
			}{
				{false, step{k: flat(0, 1000)}},
				{false, step{k: up(1, 2000), created: 1, long: 1000, levels: oneLong(1000)}},
				{true, step{k: down(1, 2000), created: 1, short: 1000, levels: []heatmap.Level{{Price: 125, ShortDensity: 1000}}}},
				{true, step{k: noOI(up(1, 2000))}},
				{true, step{k: up(1, 1500), created: 1, long: 500, levels: oneLong(500)}},
				{false, step{k: flat(2, 1000), dropped: 1}},
			},
			long: heatmap.SideTotals{Opened: 500, Closed: 500, Created: 1, Dropped: 1},
		},
		{
			// The long at 75 is liquidated by a low of 75, revived when the
			// low is revised to 76, and closed by a quarter when the OI is
			// revised to fall 2000 → 1750 (250 of 1000).
			name: "liquidation and close are undone",
			steps: []struct {
				revise bool
				st     step
			}{
				{false, step{k: flat(0, 1000)}},
				{false, step{k: up(1, 2000), created: 1, long: 1000, levels: oneLong(1000)}},
				{false, step{k: k(2, 100, 100, 75, 90, 2000), consumed: 1}},
				{true, step{k: k(2, 100, 100, 76, 90, 2000), long: 1000, levels: oneLong(1000)}},
				{true, step{k: k(2, 100, 100, 76, 90, 1750), long: 750, levels: oneLong(750)}},
				{true, step{k: k(2, 100, 100, 75, 90, 1750), consumed: 1}},
				{true, step{k: k(2, 100, 100, 80, 90, 2000), long: 1000, levels: oneLong(1000)}},
			},
			long: heatmap.SideTotals{Opened: 1000, Remaining: 1000, Created: 1, Live: 1},
		},
		{
			// Two positions 0.02 and 0.0199 (see TestDustFloor); a revised
			// close of factor 0.5 drops the short, the next revision (no
			// change in OI) brings it back.
			name: "dust drop is undone",
			steps: []struct {
				revise bool
				st     step
			}{
				{false, step{k: flat(0, 0)}},
				{false, step{k: up(1, 0.02), created: 1, long: 0.02, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}}}},
				{false, step{k: noOI(flat(2, 0)), long: 0.02, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}}}},
				{false, step{k: flat(3, 0), long: 0.02, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}}}},
				{false, step{k: down(4, 0.0199), created: 1, long: 0.02, short: 0.0199, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}, {Price: 125, ShortDensity: 0.0199}}}},
				{false, step{k: noOI(flat(5, 0)), long: 0.02, short: 0.0199, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}, {Price: 125, ShortDensity: 0.0199}}}},
				{false, step{k: flat(6, 0.02+0.0199), long: 0.02, short: 0.0199, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}, {Price: 125, ShortDensity: 0.0199}}}},
				{false, step{k: flat(7, (0.02+0.0199)/2), dropped: 1, long: 0.01, levels: []heatmap.Level{{Price: 75, LongDensity: 0.01}}}},
				{true, step{k: flat(7, 0.02+0.0199), long: 0.02, short: 0.0199, levels: []heatmap.Level{{Price: 75, LongDensity: 0.02}, {Price: 125, ShortDensity: 0.0199}}}},
			},
			long:  heatmap.SideTotals{Opened: 0.02, Remaining: 0.02, Created: 1, Live: 1},
			short: heatmap.SideTotals{Opened: 0.0199, Remaining: 0.0199, Created: 1, Live: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, x4)
			for i, s := range tc.steps {
				apply := e.Apply
				if s.revise {
					apply = e.Revise
				}
				got, err := apply(s.st.k)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				checkStep(t, i, got, s.st, x4.BinSize)
				if err := e.CheckInvariants(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			long, short := e.Totals()
			if !totalsNear(long, tc.long) || !totalsNear(short, tc.short) {
				t.Errorf("totals\n got %+v\n     %+v\nwant %+v\n     %+v", long, short, tc.long, tc.short)
			}
		})
	}
}

func TestEngineOrderErrors(t *testing.T) {
	e := mustEngine(t, x4)
	if _, err := e.Revise(flat(0, 1000)); err == nil || !strings.Contains(err.Error(), "no candle applied yet") {
		t.Fatalf("Revise on an empty engine: %v", err)
	}
	if _, ok := e.Last(); ok {
		t.Fatal("Last() on an empty engine reports a candle")
	}
	mustApply := func(c heatmap.Candle) heatmap.Snapshot {
		t.Helper()
		s, err := e.Apply(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mustApply(flat(0, 1000))
	before := mustApply(up(1, 2000))
	for _, c := range []heatmap.Candle{up(1, 3000), up(0, 3000)} {
		if _, err := e.Apply(c); err == nil || !strings.Contains(err.Error(), "not after the last one") {
			t.Errorf("Apply(%s) = %v, want an order error", c.OpenTime, err)
		}
	}
	for _, c := range []heatmap.Candle{up(0, 3000), up(2, 3000)} {
		if _, err := e.Revise(c); err == nil || !strings.Contains(err.Error(), "only the last candle can be revised") {
			t.Errorf("Revise(%s) = %v, want an order error", c.OpenTime, err)
		}
	}
	if last, ok := e.Last(); !ok || last != up(1, 2000) {
		t.Fatalf("Last() = %v, %v after rejected calls", last, ok)
	}
	if got := e.Levels(); !reflect.DeepEqual(got, before.Levels) {
		t.Fatalf("rejected calls changed the levels: %v", got)
	}
	// The last candle is still revisable after the rejections.
	s, err := e.Revise(up(1, 1500))
	if err != nil || !levelsNear(s.Levels, []heatmap.Level{{Price: 75, LongDensity: 500}}) {
		t.Fatalf("Revise after rejections = %v, %v", s.Levels, err)
	}
}

func TestEngineRejectsBadCandles(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name string
		edit func(*heatmap.Candle)
		want string
	}{
		{"NaN close", func(c *heatmap.Candle) { c.Close = nan }, "close NaN"},
		{"negative low", func(c *heatmap.Candle) { c.Low = -1 }, "low -1"},
		{"infinite high", func(c *heatmap.Candle) { c.High = inf }, "high +Inf"},
		{"NaN open", func(c *heatmap.Candle) { c.Open = nan }, "open NaN"},
		{"infinite OI", func(c *heatmap.Candle) { c.OIValue = inf }, "open interest +Inf"},
		{"negative OI", func(c *heatmap.Candle) { c.OIValue = -5 }, "open interest -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, x4)
			want, _ := e.Apply(flat(0, 1000))
			c := up(1, 2000)
			tc.edit(&c)
			if _, err := e.Apply(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error containing %q", err, tc.want)
			}
			c.OpenTime = want.Candle.OpenTime
			if _, err := e.Revise(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Revise: %v, want an error containing %q", err, tc.want)
			}
			if last, _ := e.Last(); last != want.Candle || e.Live() != 0 {
				t.Fatalf("a rejected candle changed the engine")
			}
			// Classic has no error to return: it ignores the candle.
			cl, _ := heatmap.NewClassic(x4)
			cl.Apply(flat(0, 1000))
			c.OpenTime = up(1, 0).OpenTime
			if s := cl.Apply(c); s.PositionsCreated != 0 || len(s.Levels) != 0 {
				t.Fatalf("Classic applied a bad candle: %+v", s)
			}
			if s := cl.Apply(up(2, 2000)); s.PositionsCreated != 1 {
				t.Fatalf("Classic after a bad candle: ΔOI not measured from candle 0: %+v", s)
			}
		})
	}
	t.Run("without OI the OI value is not looked at", func(t *testing.T) {
		e := mustEngine(t, x4)
		c := flat(0, math.NaN())
		c.HasOI = false
		if _, err := e.Apply(c); err != nil {
			t.Fatal(err)
		}
	})
}

func TestApplyNoLevels(t *testing.T) {
	cs := wildCandles(5, 300, seriesKinds[0])
	a, b := mustEngine(t, binanceParams()), mustEngine(t, binanceParams())
	for i, c := range cs {
		full, _ := a.Apply(c)
		bare, err := b.ApplyNoLevels(c)
		if err != nil {
			t.Fatal(err)
		}
		if bare.Levels != nil {
			t.Fatalf("candle %d: ApplyNoLevels rendered levels", i)
		}
		if i%10 == 0 {
			if bare, err = b.ReviseNoLevels(c); err != nil || bare.Levels != nil {
				t.Fatalf("candle %d: ReviseNoLevels = %v, %v", i, bare.Levels, err)
			}
		}
		bare.Levels = b.Levels()
		if !reflect.DeepEqual(full, bare) {
			t.Fatalf("candle %d: Apply and ApplyNoLevels+Levels differ", i)
		}
	}
	if got := b.AppendLevels(make([]heatmap.Level, 1, 8)); !reflect.DeepEqual(got[1:], a.Levels()) {
		t.Fatal("AppendLevels does not append the levels")
	}
}

func TestEngineParams(t *testing.T) {
	p := binanceParams()
	p.LongShare, p.PositionNotional, p.Brackets = 0, 0, nil
	e := mustEngine(t, p)
	got := e.Params()
	if got.LongShare != 0.5 || got.PositionNotional != 100000 || got.Model != heatmap.ModelBinance ||
		!reflect.DeepEqual(got.Brackets, heatmap.BracketsFor("BTCUSDT")) {
		t.Fatalf("Params() = %+v, want the defaults filled in", got)
	}
	got.Tiers[0].Leverage = 2
	got.Brackets[0].MMR = 0.5
	if q := e.Params(); q.Tiers[0].Leverage != 5 || q.Brackets[0].MMR != 0.004 {
		t.Fatal("Params() shares its slices with the engine")
	}
	if m := mustEngine(t, heatmap.Params{Tiers: x4.Tiers, BinSize: 1}).Params().Model; m != heatmap.ModelClassic {
		t.Fatalf("zero Model runs %q, want classic", m)
	}
}

func TestConsumedBucketsLeaveNoResidue(t *testing.T) {
	// Volumes 1e9/3, 1/3 and 7 in one bucket (x4 at entries 100, 100.1,
	// 100.2: liq 75, 75.075, 75.15), consumed in two steps; the bucket and
	// the side must end at exactly zero, not at rounding residue.
	e := mustEngine(t, x4)
	steps := []heatmap.Candle{
		flat(0, 0),
		k(1, 99, 101, 99, 100, 1e9/3),
		k(2, 99, 101, 99, 100.1, 1e9/3+1.0/3),
		k(3, 99, 101, 99, 100.2, 1e9/3+1.0/3+7),
		k(4, 100, 100, 75.1, 100, 1e9/3+1.0/3+7), // takes 75.15 only
		k(5, 100, 100, 75, 100, 1e9/3+1.0/3+7),   // takes the rest
	}
	var s heatmap.Snapshot
	for _, c := range steps {
		var err error
		if s, err = e.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	long, _ := e.Totals()
	if len(s.Levels) != 0 || s.TotalLongVolume != 0 || long.Remaining != 0 || e.Live() != 0 {
		t.Fatalf("after consuming everything: levels %v, long %v, remaining %v, live %d", s.Levels, s.TotalLongVolume, long.Remaining, e.Live())
	}
}

func TestParseModel(t *testing.T) {
	for in, want := range map[string]heatmap.Model{"": heatmap.ModelClassic, "classic": heatmap.ModelClassic, " Binance ": heatmap.ModelBinance, "BINANCE": heatmap.ModelBinance} {
		if got, err := heatmap.ParseModel(in); err != nil || got != want {
			t.Errorf("ParseModel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := heatmap.ParseModel("bybit"); err == nil || !strings.Contains(err.Error(), `model: "bybit"`) {
		t.Errorf("ParseModel(bybit) = %v", err)
	}
}

func TestReplayRejectsBadCandle(t *testing.T) {
	c := []heatmap.Candle{flat(0, 1000), up(1, 2000), flat(2, math.Inf(1))}
	snaps, err := heatmap.Replay(x4, c)
	if err == nil || !strings.Contains(err.Error(), "candle 2") || snaps != nil {
		t.Fatalf("Replay = %d snapshots, %v", len(snaps), err)
	}
}

func TestClassicKeepsOldOrderSemantics(t *testing.T) {
	// The original Classic.Apply did not check order; callers that relied on
	// that keep working (each candle is applied as given).
	c, _ := heatmap.NewClassic(x4)
	c.Apply(flat(1, 1000))
	if s := c.Apply(up(0, 2000)); s.PositionsCreated != 1 {
		t.Fatalf("out-of-order candle: %+v", s)
	}
}
