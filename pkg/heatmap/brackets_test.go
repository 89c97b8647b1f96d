package heatmap_test

import (
	"math"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

func TestBracketTables(t *testing.T) {
	for _, tc := range []struct {
		symbol string
		floors []float64
		mmr    []float64
		cum    []float64 // by hand: cum_i = cum_i-1 + floor_i·(mmr_i − mmr_i-1)
		cap    float64   // of the last bracket
	}{
		{
			symbol: "BTCUSDT",
			floors: []float64{0, 50e3, 500e3, 8e6, 50e6, 80e6, 100e6, 120e6, 200e6, 300e6},
			mmr:    []float64{0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.125, 0.15, 0.25, 0.5},
			// 50k·0.001 = 50; +500k·0.005 = 2,550; +8M·0.015 = 122,550;
			// +50M·0.025 = 1,372,550; +80M·0.05 = 5,372,550; +100M·0.025 =
			// 7,872,550; +120M·0.025 = 10,872,550; +200M·0.1 = 30,872,550;
			// +300M·0.25 = 105,872,550.
			cum: []float64{0, 50, 2550, 122550, 1372550, 5372550, 7872550, 10872550, 30872550, 105872550},
			cap: 500e6,
		},
		{
			symbol: "ETHUSDT",
			floors: []float64{0, 50e3, 500e3, 8e6, 50e6, 80e6, 100e6, 150e6, 300e6, 500e6},
			mmr:    []float64{0.005, 0.0065, 0.01, 0.02, 0.05, 0.1, 0.125, 0.15, 0.25, 0.5},
			// 50k·0.0015 = 75; +500k·0.0035 = 1,825; +8M·0.01 = 81,825;
			// +50M·0.03 = 1,581,825; +80M·0.05 = 5,581,825; +100M·0.025 =
			// 8,081,825; +150M·0.025 = 11,831,825; +300M·0.1 = 41,831,825;
			// +500M·0.25 = 166,831,825.
			cum: []float64{0, 75, 1825, 81825, 1581825, 5581825, 8081825, 11831825, 41831825, 166831825},
			cap: 800e6,
		},
	} {
		t.Run(tc.symbol, func(t *testing.T) {
			for _, sym := range []string{tc.symbol, strings.ToLower(tc.symbol), " " + tc.symbol} {
				b := heatmap.BracketsFor(sym)
				if len(b) != len(tc.floors) {
					t.Fatalf("BracketsFor(%q) has %d brackets, want %d", sym, len(b), len(tc.floors))
				}
				for i := range b {
					cap := tc.cap
					if i+1 < len(b) {
						cap = tc.floors[i+1]
					}
					if b[i].Floor != tc.floors[i] || b[i].Cap != cap || b[i].MMR != tc.mmr[i] || !near(b[i].Cum, tc.cum[i]) {
						t.Errorf("BracketsFor(%q)[%d] = %+v, want floor %g cap %g mmr %g cum %g", sym, i, b[i], tc.floors[i], cap, tc.mmr[i], tc.cum[i])
					}
				}
			}
		})
	}
	t.Run("unknown symbol gets the BTCUSDT table", func(t *testing.T) {
		got, want := heatmap.BracketsFor("DOGEUSDT"), heatmap.BracketsFor("BTCUSDT")
		if len(got) != len(want) || got[3] != want[3] {
			t.Fatalf("BracketsFor(DOGEUSDT) = %v", got)
		}
	})
	t.Run("copies", func(t *testing.T) {
		b := heatmap.BracketsFor("BTCUSDT")
		b[0].MMR = 0.9
		if heatmap.BracketsFor("BTCUSDT")[0].MMR != 0.004 {
			t.Fatal("BracketsFor hands out its table")
		}
	})
}

func TestParseBrackets(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		in   string
		want []heatmap.Bracket
	}{
		// cum: 0; 50000·(0.005 − 0.004) = 50; 50 + 500000·(0.01 − 0.005) = 2550.
		{"0:0.004,50000:0.005,500000:0.01", []heatmap.Bracket{
			{Floor: 0, Cap: 50000, MMR: 0.004, Cum: 0},
			{Floor: 50000, Cap: 500000, MMR: 0.005, Cum: 50},
			{Floor: 500000, Cap: inf, MMR: 0.01, Cum: 2550},
		}},
		{" 0 : 0.01 ", []heatmap.Bracket{{Floor: 0, Cap: inf, MMR: 0.01}}},
		// A falling rate gives a negative cum: 1000·(0.01 − 0.02) = −10.
		{"0:0.02,1e3:0.01", []heatmap.Bracket{{0, 1000, 0.02, 0}, {1000, inf, 0.01, -10}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := heatmap.ParseBrackets(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Floor != w.Floor || g.Cap != w.Cap || g.MMR != w.MMR || !near(g.Cum, w.Cum) {
					t.Fatalf("bracket %d: got %+v, want %+v", i, g, w)
				}
			}
			p := heatmap.DefaultParams()
			p.Brackets = got
			if err := p.Validate(); err != nil {
				t.Errorf("parsed brackets do not validate: %v", err)
			}
		})
	}
}

func TestParseBracketsErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "brackets: empty"},
		{"0:0.004,,1000:0.005", `brackets: "": empty entry`},
		{"0:0.004,1000", `brackets: "1000": want FLOOR:MMR`},
		{"0:0.004,x:0.005", `brackets: "x:0.005": floor is not a finite number`},
		{"0:0.004,Inf:0.005", `"Inf:0.005": floor is not a finite number`},
		{"0:0.004,1000:y", `brackets: "1000:y": mmr is not a number`},
		{"0:0.004,1000:1", `"1000:1": mmr must be in [0, 1)`},
		{"0:-0.1", `"0:-0.1": mmr must be in [0, 1)`},
		{"100:0.004", `"100:0.004": the first floor must be 0`},
		{"0:0.004,1000:0.005,1000:0.01", `"1000:0.01": floor must be above the previous one (1000)`},
		{"0:0.004,1000:0.005,500:0.01", `"500:0.01": floor must be above the previous one`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := heatmap.ParseBrackets(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseBrackets(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// binance builds binance-model params with one tier (leverage L), bin 1,
// the given long share and representative notional, BTCUSDT brackets.
func binance(L, share, notional float64) heatmap.Params {
	return heatmap.Params{
		Tiers: []heatmap.Tier{{Leverage: L, Weight: 1}}, MMR: heatmap.DefaultMMR, BinSize: 1,
		Model: heatmap.ModelBinance, LongShare: share, PositionNotional: notional,
		Brackets: heatmap.BracketsFor("BTCUSDT"),
	}
}

// runEngine is run (heatmap_test.go) through the Engine API.
func runEngine(t *testing.T, sc scenario) *heatmap.Engine {
	t.Helper()
	e, err := heatmap.NewEngine(sc.p)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	for i, st := range sc.steps {
		s, err := e.Apply(st.k)
		if err != nil {
			t.Fatalf("candle %d: %v", i, err)
		}
		checkStep(t, i, s, st, sc.p.BinSize)
	}
	long, short := e.Totals()
	if sc.long != nil && !totalsNear(long, *sc.long) {
		t.Errorf("long totals\n got %+v\nwant %+v", long, *sc.long)
	}
	if sc.short != nil && !totalsNear(short, *sc.short) {
		t.Errorf("short totals\n got %+v\nwant %+v", short, *sc.short)
	}
	if got := e.Levels(); !levelsNear(got, sc.steps[len(sc.steps)-1].levels) {
		t.Errorf("Levels() = %v, want the last snapshot's", got)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Error(err)
	}
	return e
}

func checkStep(t *testing.T, i int, s heatmap.Snapshot, st step, bin float64) {
	t.Helper()
	checkSnapshotShape(t, i, s, bin)
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

func TestBinanceGolden(t *testing.T) {
	// Candle 1 has H 1010, L 990, C 1000: typical price (1010+990+1000)/3 =
	// 1000 exactly. ΔOI = 2000 − 1000 = 1000, long share 0.6: a long of 600
	// and a short of 400, one 10x tier.
	open := func(i int) heatmap.Candle { return k(i, 1000, 1010, 990, 1000, 2000) }

	// N = 500,000 sits exactly on the third floor, so bracket 3 applies:
	// mmr 0.01, cum 2,550, cum/N = 0.0051.
	//   long  = 1000·(1 − 0.1 − 0.0051)/(1 − 0.01) = 894.9/0.99  = 903.9393… → 903
	//   short = 1000·(1 + 0.1 + 0.0051)/(1 + 0.01) = 1105.1/1.01 = 1094.1584… → 1094
	atFloor := []heatmap.Level{{Price: 903, LongDensity: 600}, {Price: 1094, ShortDensity: 400}}
	// One cent below, bracket 2: mmr 0.005, cum 50, cum/N = 50/499,999.99 = 0.000100000002.
	//   long  = 1000·(0.9 − 0.000100000002)/0.995 = 899.899999998/0.995 = 904.4221… → 904
	//   short = 1000·(1.1 + 0.000100000002)/1.005 = 1100.100000002/1.005 = 1094.6268… → 1094
	belowFloor := []heatmap.Level{{Price: 904, LongDensity: 600}, {Price: 1094, ShortDensity: 400}}
	// Classic with mmr 0.004 would give long 1000·(1 − 0.1 + 0.0004) = 900.4.

	for _, sc := range []scenario{
		{
			name: "notional at a floor takes the higher bracket",
			p:    binance(10, 0.6, 500000),
			steps: []step{
				{k: k(0, 1000, 1000, 1000, 1000, 1000)},
				{k: open(1), created: 2, long: 600, short: 400, levels: atFloor},
				// Low 903.94 is above 903.9393…: the long survives.
				{k: k(2, 1000, 1000, 903.94, 950, 2000), long: 600, short: 400, levels: atFloor},
				// Low 903.93 reaches it (inclusive rule, from above).
				{k: k(3, 950, 1000, 903.93, 950, 2000), consumed: 1, short: 400, levels: atFloor[1:]},
				// ΔOI −200 over the 400 left: factor 0.5, the short keeps 200.
				{k: k(4, 950, 1000, 940, 960, 1800), short: 200, levels: []heatmap.Level{{Price: 1094, ShortDensity: 200}}},
				// High 1094.16 ≥ 1094.1584…: the short is liquidated.
				{k: k(5, 960, 1094.16, 950, 1000, 1800), consumed: 1},
			},
			long:  &heatmap.SideTotals{Opened: 600, Liquidated: 600, Created: 1, Consumed: 1},
			short: &heatmap.SideTotals{Opened: 400, Liquidated: 200, Closed: 200, Created: 1, Consumed: 1},
		},
		{
			name: "notional just below a floor takes the lower bracket",
			p:    binance(10, 0.6, 499999.99),
			steps: []step{
				{k: k(0, 1000, 1000, 1000, 1000, 1000)},
				{k: open(1), created: 2, long: 600, short: 400, levels: belowFloor},
			},
		},
		{
			// Both sides open whatever the candle's direction, and a doji
			// changes nothing: the same levels for an up, down and flat candle
			// with the same H, L, C.
			name: "direction does not matter",
			p:    binance(10, 0.6, 500000),
			steps: []step{
				{k: k(0, 1000, 1000, 1000, 1000, 1000)},
				{k: k(1, 1010, 1010, 990, 1000, 2000), created: 2, long: 600, short: 400, levels: atFloor},
			},
		},
		{
			name: "no OI creates nothing",
			p:    binance(10, 0.6, 500000),
			steps: []step{
				{k: k(0, 1000, 1000, 1000, 1000, 1000)},
				{k: noOI(open(1))},
				{k: open(2)}, // the gap broke the series
			},
		},
	} {
		t.Run(sc.name, func(t *testing.T) { runEngine(t, sc) })
	}
}

func TestBinanceDefaultTiers(t *testing.T) {
	// Default tiers, bin 100, N = 100,000 (default) → bracket 2: mmr 0.005,
	// cum 50, cum/N = 0.0005. Entry (100100 + 99900 + 100000)/3 = 100000;
	// ΔOI 8.001e9 − 8e9 = 1e6, half long: 500,000 per side, by weight
	// 5x 75,000, 10x 150,000, 25x 125,000, 50x 100,000, 100x 50,000.
	// Long  = 100000·(1 − 1/L − 0.0005)/0.995:
	//   5x 0.7995/0.995 = 0.803517… → 80351.76 → 80300
	//   10x 0.8995/0.995 = 0.904020… → 90402.01 → 90400
	//   25x 0.9595/0.995 = 0.964321… → 96432.16 → 96400
	//   50x 0.9795/0.995 = 0.984422… → 98442.21 → 98400
	//   100x 0.9895/0.995 = 0.994472… → 99447.24 → 99400
	// Short = 100000·(1 + 1/L + 0.0005)/1.005:
	//   100x 1.0105/1.005 = 1.005472… → 100547.26 → 100500
	//   50x 1.0205/1.005 = 1.015422… → 101542.29 → 101500
	//   25x 1.0405/1.005 = 1.035323… → 103532.34 → 103500
	//   10x 1.1005/1.005 = 1.095024… → 109502.49 → 109500
	//   5x 1.2005/1.005 = 1.194527… → 119452.74 → 119400
	p := binanceParams()
	levels := []heatmap.Level{
		{Price: 80300, LongDensity: 75000}, {Price: 90400, LongDensity: 150000},
		{Price: 96400, LongDensity: 125000}, {Price: 98400, LongDensity: 100000},
		{Price: 99400, LongDensity: 50000},
		{Price: 100500, ShortDensity: 50000}, {Price: 101500, ShortDensity: 100000},
		{Price: 103500, ShortDensity: 125000}, {Price: 109500, ShortDensity: 150000},
		{Price: 119400, ShortDensity: 75000},
	}
	after := append(append([]heatmap.Level(nil), levels[:3]...), levels[6:]...)
	runEngine(t, scenario{
		p: p,
		steps: []step{
			{k: k(0, 100000, 100000, 100000, 100000, 8e9)},
			{k: k(1, 100000, 100100, 99900, 100000, 8.001e9), created: 10, long: 500000, short: 500000, levels: levels},
			// Low 98442.2 reaches 99447.24 and 98442.211… (100x, 50x longs), not
			// 96432.16; high 101542.28 reaches 100547.26 (100x short), not
			// 101542.2885… (50x).
			{k: k(2, 100000, 101542.28, 98442.2, 100000, 8.001e9), consumed: 3, long: 350000, short: 450000, levels: after},
		},
		long:  &heatmap.SideTotals{Opened: 500000, Remaining: 350000, Liquidated: 150000, Created: 5, Consumed: 2, Live: 3},
		short: &heatmap.SideTotals{Opened: 500000, Remaining: 450000, Liquidated: 50000, Created: 5, Consumed: 1, Live: 4},
	})
}

func TestBinanceLongAtZero(t *testing.T) {
	// Leverage 1 with N = 40,000 (bracket 1: mmr 0.004, cum 0): long =
	// EP·(1 − 1 − 0)/0.996 = 0 → bucket 0. With N = 100,000 (cum 50) the
	// formula gives EP·(−0.0005)/0.995 < 0, which is clamped to 0 as well.
	// Short = 100·(1 + 1 + 0)/1.004 = 199.20… (N 40,000) or
	// 100·(1 + 1 + 0.0005)/1.005 = 199.05… (N 100,000) → 199 either way.
	for _, n := range []float64{40000, 100000} {
		p := binance(1, 0.5, n)
		e := runEngine(t, scenario{p: p, steps: []step{
			{k: flat(0, 0)},
			{k: flat(1, 1000), created: 2, long: 500, short: 500, levels: []heatmap.Level{{Price: 0, LongDensity: 500}, {Price: 199, ShortDensity: 500}}},
		}})
		if math.Signbit(e.Levels()[0].Price) {
			t.Errorf("N %g: level at −0", n)
		}
	}
}
