package heatmap_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

// seriesKind describes a family of random candle/OI series. Every kind has
// OI gaps, dojis, big wicks and OI collapses; they differ in scale, so that
// together they reach every path: many live positions, dust drops, wipes.
type seriesKind struct {
	name              string
	price, vol, tick  float64 // start price, per-candle log volatility, price tick
	oi, oiStep, trend float64 // start OI, random step, drift of the OI's anchor per candle
	gap, doji, wick   float64 // per-candle probabilities
	collapse          float64 // probability that OI falls to near zero
}

var seriesKinds = []seriesKind{
	{name: "btc", price: 95000, vol: 0.004, tick: 0.1, oi: 8e9, oiStep: 5e6, gap: 0.03, doji: 0.05, wick: 0.02, collapse: 0.002},
	{name: "growing", price: 95000, vol: 0.0015, tick: 0.1, oi: 8e9, oiStep: 3e6, trend: 2e6, gap: 0.02, doji: 0.05, wick: 0.01, collapse: 0.001},
	{name: "small-oi", price: 3000, vol: 0.006, tick: 0.01, oi: 1000, oiStep: 40, gap: 0.05, doji: 0.08, wick: 0.03, collapse: 0.01},
}

// wildCandles draws a seeded series of kind sk. Prices are rounded to the
// tick so that equal liquidation prices (ties) happen as they do in markets.
func wildCandles(seed uint64, n int, sk seriesKind) []heatmap.Candle {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	round := func(x float64) float64 { return math.Max(math.Round(x/sk.tick)*sk.tick, sk.tick) }
	price, oi, anchor := sk.price, sk.oi, sk.oi
	gapLeft := 0
	out := make([]heatmap.Candle, n)
	for i := range out {
		open := round(price)
		if r.Float64() < sk.doji {
			price = open
		} else {
			price = round(price * math.Exp(r.NormFloat64()*sk.vol))
		}
		hi := math.Max(open, price) * (1 + math.Abs(r.NormFloat64())*sk.vol/2)
		lo := math.Min(open, price) * (1 - math.Abs(r.NormFloat64())*sk.vol/2)
		if r.Float64() < sk.wick {
			if r.IntN(2) == 0 {
				lo *= 1 - 0.1*r.Float64()
			} else {
				hi *= 1 + 0.1*r.Float64()
			}
		}
		anchor += sk.trend
		oi += r.NormFloat64()*sk.oiStep - 0.02*(oi-anchor)
		if r.Float64() < sk.collapse {
			oi *= 1e-7 // near zero: the pro-rata factor caps at 1 or leaves only dust
		}
		oi = math.Max(oi, 0)
		if gapLeft == 0 && r.Float64() < sk.gap {
			gapLeft = 1 + r.IntN(4)
		}
		hasOI := gapLeft == 0
		if gapLeft > 0 {
			gapLeft--
		}
		out[i] = heatmap.Candle{
			OpenTime: t0.Add(time.Duration(i) * 5 * time.Minute),
			Open:     open, High: round(hi), Low: round(lo), Close: price,
			Volume:  r.Float64() * 1000,
			OIValue: oi,
			HasOI:   hasOI,
		}
		out[i].High = math.Max(out[i].High, math.Max(open, price))
		out[i].Low = math.Min(out[i].Low, math.Min(open, price))
	}
	return out
}

func binanceParams() heatmap.Params {
	p := heatmap.DefaultParams()
	p.Model = heatmap.ModelBinance
	return p
}

// candles returns n, or a quarter of it under the race detector.
func candles(n int) int {
	if raceEnabled {
		return n / 4
	}
	return n
}

// oracle is what both straightforward implementations offer.
type oracle interface {
	Apply(heatmap.Candle) heatmap.Snapshot
	Totals() (long, short heatmap.SideTotals)
}

func newOracle(t *testing.T, p heatmap.Params) oracle {
	t.Helper()
	if p.Model == heatmap.ModelBinance {
		return newBinanceOracle(p)
	}
	r, err := newReference(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sameSnapshot compares an engine snapshot with an oracle's: the same buckets,
// densities and totals to relTol, the same counts.
func sameSnapshot(got, want heatmap.Snapshot) error {
	if got.PositionsCreated != want.PositionsCreated || got.PositionsConsumed != want.PositionsConsumed || got.PositionsDropped != want.PositionsDropped {
		return fmt.Errorf("created/consumed/dropped %d/%d/%d, want %d/%d/%d", got.PositionsCreated, got.PositionsConsumed, got.PositionsDropped,
			want.PositionsCreated, want.PositionsConsumed, want.PositionsDropped)
	}
	if !near(got.TotalLongVolume, want.TotalLongVolume) || !near(got.TotalShortVolume, want.TotalShortVolume) {
		return fmt.Errorf("long/short %v/%v, want %v/%v", got.TotalLongVolume, got.TotalShortVolume, want.TotalLongVolume, want.TotalShortVolume)
	}
	if got.Candle != want.Candle || got.CurrentPrice != want.CurrentPrice {
		return fmt.Errorf("candle %+v, want %+v", got.Candle, want.Candle)
	}
	if len(got.Levels) != len(want.Levels) {
		return fmt.Errorf("%d levels, want %d", len(got.Levels), len(want.Levels))
	}
	for i, g := range got.Levels {
		w := want.Levels[i]
		if g.Price != w.Price || !near(g.LongDensity, w.LongDensity) || !near(g.ShortDensity, w.ShortDensity) {
			return fmt.Errorf("level %d: %+v, want %+v", i, g, w)
		}
	}
	return nil
}

// TestEngineMatchesOracle replays random series through the Engine and the
// straightforward oracle of its model and requires them to agree on every
// bucket of every snapshot to 1e-9 relative.
func TestEngineMatchesOracle(t *testing.T) {
	for _, model := range []heatmap.Model{heatmap.ModelClassic, heatmap.ModelBinance} {
		for _, sk := range seriesKinds {
			bins, seeds, n := []float64{100, 1, 7.5}, uint64(3), 2500
			if model == heatmap.ModelBinance {
				// The binance oracle renders through a map: keep it affordable.
				bins, seeds, n = []float64{100, 7.5}, 2, 1500
			}
			var created, consumed, dropped int
			for _, bin := range bins {
				for seed := uint64(1); seed <= seeds; seed++ {
					t.Run(fmt.Sprintf("%s/%s/bin%g/seed%d", model, sk.name, bin, seed), func(t *testing.T) {
						p := heatmap.DefaultParams()
						p.Model, p.BinSize = model, bin
						if sk.name == "small-oi" {
							p.Brackets = heatmap.BracketsFor("ETHUSDT")
						}
						c, l, d := checkAgainstOracle(t, p, wildCandles(seed, candles(n), sk))
						created, consumed, dropped = created+c, consumed+l, dropped+d
					})
				}
			}
			// The agreement proves little unless the series took every path.
			if created == 0 || consumed == 0 || dropped == 0 {
				t.Errorf("%s/%s: series did not exercise every path: created %d consumed %d dropped %d", model, sk.name, created, consumed, dropped)
			}
		}
	}
}

func checkAgainstOracle(t *testing.T, p heatmap.Params, candles []heatmap.Candle) (created, consumed, dropped int) {
	t.Helper()
	e, err := heatmap.NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	o := newOracle(t, p)
	maxLive := 0
	for i, c := range candles {
		got, err := e.Apply(c)
		if err != nil {
			t.Fatalf("candle %d: %v", i, err)
		}
		want := o.Apply(c)
		if err := sameSnapshot(got, want); err != nil {
			t.Fatalf("candle %d: %v", i, err)
		}
		gl, gs := e.Totals()
		wl, ws := o.Totals()
		if !totalsNear(gl, wl) || !totalsNear(gs, ws) {
			t.Fatalf("candle %d: totals\n got %+v %+v\nwant %+v %+v", i, gl, gs, wl, ws)
		}
		if i%251 == 0 || i == len(candles)-1 {
			if err := e.CheckInvariants(); err != nil {
				t.Fatalf("candle %d: %v", i, err)
			}
		}
		created += got.PositionsCreated
		consumed += got.PositionsConsumed
		dropped += got.PositionsDropped
		maxLive = max(maxLive, e.Live())
	}
	t.Logf("created %d consumed %d dropped %d, max live %d, final live %d", created, consumed, dropped, maxLive, e.Live())
	return created, consumed, dropped
}

// TestInvariantBothModels checks opened = remaining + liquidated + closed per
// side after every candle, and that the snapshot's levels add up to its totals.
func TestInvariantBothModels(t *testing.T) {
	for _, p := range []heatmap.Params{heatmap.DefaultParams(), binanceParams()} {
		for _, sk := range seriesKinds {
			for seed := uint64(10); seed < 13; seed++ {
				t.Run(fmt.Sprintf("%s/%s/seed%d", p.Model, sk.name, seed), func(t *testing.T) {
					e, err := heatmap.NewEngine(p)
					if err != nil {
						t.Fatal(err)
					}
					for i, c := range wildCandles(seed, candles(3000), sk) {
						s, err := e.Apply(c)
						if err != nil {
							t.Fatal(err)
						}
						long, short := e.Totals()
						for _, tot := range []heatmap.SideTotals{long, short} {
							sum := tot.Remaining + tot.Liquidated + tot.Closed
							if math.Abs(tot.Opened-sum) > 1e-6*tot.Opened {
								t.Fatalf("candle %d: opened %v != remaining %v + liquidated %v + closed %v", i, tot.Opened, tot.Remaining, tot.Liquidated, tot.Closed)
							}
							if tot.Created-tot.Consumed-tot.Dropped != tot.Live {
								t.Fatalf("candle %d: counts %+v", i, tot)
							}
						}
						var ld, sd float64
						for _, l := range s.Levels {
							ld += l.LongDensity
							sd += l.ShortDensity
						}
						if !near(ld, s.TotalLongVolume) || !near(sd, s.TotalShortVolume) || long.Remaining != s.TotalLongVolume || short.Remaining != s.TotalShortVolume {
							t.Fatalf("candle %d: levels add up to %v/%v, snapshot %v/%v, totals %v/%v", i, ld, sd,
								s.TotalLongVolume, s.TotalShortVolume, long.Remaining, short.Remaining)
						}
						if e.Live() != long.Live+short.Live {
							t.Fatalf("candle %d: Live %d != %d + %d", i, e.Live(), long.Live, short.Live)
						}
					}
				})
			}
		}
	}
}

// variant is a plausible earlier state of the open candle c: same open time,
// other prices and OI, sometimes no OI yet.
func variant(r *rand.Rand, c heatmap.Candle) heatmap.Candle {
	v := c
	v.Close = math.Max(c.Open*(1+r.NormFloat64()*0.01), 0.01)
	if r.IntN(8) == 0 {
		v.Close = v.Open // doji
	}
	v.High = math.Max(math.Max(v.Open, v.Close), c.High*(1+r.NormFloat64()*0.02))
	v.Low = math.Max(math.Min(math.Min(v.Open, v.Close), c.Low*(1+r.NormFloat64()*0.02)), 0)
	if r.IntN(10) == 0 {
		v.Low *= 0.9 // a big wick
	}
	v.OIValue = math.Max(c.OIValue*(1+r.NormFloat64()*0.001), 0)
	switch r.IntN(10) {
	case 0:
		v.HasOI = !c.HasOI
	case 1:
		v.OIValue *= 1e-6 // collapse
	}
	return v
}

// TestReviseEqualsReplay applies every candle as a random variant, revises
// it 0–5 times (the last revision being the real candle), and requires the
// result to equal, bit for bit, a fresh engine that only ever saw the real
// candles.
func TestReviseEqualsReplay(t *testing.T) {
	for _, p := range []heatmap.Params{heatmap.DefaultParams(), binanceParams()} {
		for _, sk := range seriesKinds {
			for seed := uint64(20); seed < 23; seed++ {
				t.Run(fmt.Sprintf("%s/%s/seed%d", p.Model, sk.name, seed), func(t *testing.T) {
					checkReviseEqualsReplay(t, p, wildCandles(seed, candles(2000), sk), seed)
				})
			}
		}
	}
}

func checkReviseEqualsReplay(t *testing.T, p heatmap.Params, candles []heatmap.Candle, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	e, err := heatmap.NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := heatmap.NewEngine(p)
	revisions := 0
	for i, c := range candles {
		n := r.IntN(6)
		first := c
		if n > 0 {
			first = variant(r, c)
		}
		got, err := e.Apply(first)
		if err != nil {
			t.Fatalf("candle %d: Apply: %v", i, err)
		}
		for j := range n {
			next := c
			if j < n-1 {
				next = variant(r, c)
			}
			if got, err = e.Revise(next); err != nil {
				t.Fatalf("candle %d: Revise %d: %v", i, j, err)
			}
			revisions++
		}
		want, err := fresh.Apply(c)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("candle %d after %d revisions: %v\n got %+v\nwant %+v", i, n, sameSnapshot(got, want), got, want)
		}
		gl, gs := e.Totals()
		wl, ws := fresh.Totals()
		if gl != wl || gs != ws || e.Live() != fresh.Live() {
			t.Fatalf("candle %d: totals\n got %+v %+v\nwant %+v %+v", i, gl, gs, wl, ws)
		}
		if i%241 == 0 {
			if err := e.CheckInvariants(); err != nil {
				t.Fatalf("candle %d: %v", i, err)
			}
		}
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d revisions, %d live", revisions, e.Live())
}

// TestRenormalisation forces the global scale to be folded into the stored
// volumes at almost every candle (real series need months of closes for
// that) and checks that nothing observable changes.
func TestRenormalisation(t *testing.T) {
	defer heatmap.SetRenormBelow(0.999)()
	for _, p := range []heatmap.Params{heatmap.DefaultParams(), binanceParams()} {
		for _, sk := range seriesKinds {
			t.Run(fmt.Sprintf("%s/%s", p.Model, sk.name), func(t *testing.T) {
				cs := wildCandles(31, candles(1500), sk)
				checkAgainstOracle(t, p, cs)
				checkReviseEqualsReplay(t, p, cs, 31)
			})
		}
	}
}

// TestScaleShrinks makes sure the random series do exercise the lazy scale,
// or the renormalisation test above would be checking a constant.
func TestScaleShrinks(t *testing.T) {
	e, _ := heatmap.NewEngine(heatmap.DefaultParams())
	minScale := 1.0
	for _, c := range wildCandles(1, 3000, seriesKinds[1]) {
		if _, err := e.ApplyNoLevels(c); err != nil {
			t.Fatal(err)
		}
		minScale = math.Min(minScale, e.Scale())
	}
	if !(minScale < 0.5) {
		t.Errorf("scale never went below %v", minScale)
	}
}
