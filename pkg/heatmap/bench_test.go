package heatmap_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

// market is a seeded BTCUSDT-like 5-minute series: price a random walk
// pulled weakly towards 95,000 (≈0.15 % per candle), OI around 8e9 USDT with
// two-week trends, noise of a few million per candle and occasional
// deleveraging events (a 3–8 % wick down while OI drops 5–15 %); a few
// candles lack OI.
type market struct {
	r                        *rand.Rand
	i                        int
	price, oi, anchor, drift float64
	regimes                  bool // draw a new OI trend every two weeks
}

func newMarket(seed uint64) *market {
	return &market{r: rand.New(rand.NewPCG(seed, 0xbeef)), price: 95000, oi: 8e9, anchor: 8e9, regimes: true}
}

func (m *market) next() heatmap.Candle {
	r := m.r
	if m.regimes && m.i%4032 == 0 { // a new two-week OI regime
		m.drift = r.NormFloat64() * 2e5
	}
	open := m.price
	m.price *= math.Exp(r.NormFloat64()*0.0015 + 0.0002*math.Log(95000/m.price))
	m.price = math.Round(m.price*10) / 10
	hi := math.Max(open, m.price) * (1 + math.Abs(r.NormFloat64())*0.0008)
	lo := math.Min(open, m.price) * (1 - math.Abs(r.NormFloat64())*0.0008)
	m.oi += m.drift + r.NormFloat64()*4e6 - 0.001*(m.oi-m.anchor)
	if r.IntN(3000) == 0 { // deleveraging
		lo *= 1 - 0.03 - 0.05*r.Float64()
		m.oi *= 1 - 0.05 - 0.1*r.Float64()
	}
	c := heatmap.Candle{
		OpenTime: t0.Add(time.Duration(m.i) * 5 * time.Minute),
		Open:     open, High: math.Round(hi*10) / 10, Low: math.Round(lo*10) / 10, Close: m.price,
		Volume:  100 + r.Float64()*900,
		OIValue: m.oi,
		HasOI:   r.IntN(1000) != 0,
	}
	c.High, c.Low = math.Max(c.High, math.Max(open, m.price)), math.Min(c.Low, math.Min(open, m.price))
	m.i++
	return c
}

func (m *market) candles(n int) []heatmap.Candle {
	out := make([]heatmap.Candle, n)
	for i := range out {
		out[i] = m.next()
	}
	return out
}

const candlesPerYear = 365 * 24 * 12 // 105,120 five-minute candles

var benchModels = []struct {
	name string
	p    func() heatmap.Params
}{{"classic", heatmap.DefaultParams}, {"binance", binanceParams}}

// BenchmarkReplayYear replays one year of one symbol through a fresh engine
// with ApplyNoLevels, as a catch-up after a restart would.
func BenchmarkReplayYear(b *testing.B) {
	candles := newMarket(1).candles(candlesPerYear)
	for _, m := range benchModels {
		b.Run(m.name, func(b *testing.B) {
			var e *heatmap.Engine
			for b.Loop() {
				var err error
				if e, err = heatmap.NewEngine(m.p()); err != nil {
					b.Fatal(err)
				}
				for _, c := range candles {
					if _, err := e.ApplyNoLevels(c); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(candles))*float64(b.N)/b.Elapsed().Seconds(), "candles/s")
			long, short := e.Totals()
			b.ReportMetric(float64(e.Live()), "live-positions")
			b.ReportMetric(float64(long.Created+short.Created), "created")
			b.ReportMetric(float64(len(e.Levels())), "levels")
		})
	}
}

// engineWith returns an engine holding at least n live positions, built from
// a market whose OI keeps rising (so that most candles open positions) and
// whose price is calm, and that market to continue from.
func engineWith(b *testing.B, p heatmap.Params, n int) (*heatmap.Engine, *market) {
	b.Helper()
	e, err := heatmap.NewEngine(p)
	if err != nil {
		b.Fatal(err)
	}
	m := newMarket(2)
	oi := 8e9
	for e.Live() < n {
		c := m.next()
		oi += 1e6 // steady growth: a create on every candle
		c.OIValue, c.HasOI = oi, true
		if _, err := e.ApplyNoLevels(c); err != nil {
			b.Fatal(err)
		}
	}
	// Continue around the OI reached, without a trend, so that the engine
	// neither grows nor collapses while it is measured.
	m.oi, m.anchor, m.drift, m.regimes = oi, oi, 0, false
	return e, m
}

// BenchmarkApply100k is one Apply (levels not rendered) on an engine holding
// ~100,000 live positions, with candles from the realistic market. A market
// continued for millions of candles wanders off and liquidates most of the
// book, so the engine is rebuilt (off the clock) whenever its size leaves
// ±10 % of the start.
func BenchmarkApply100k(b *testing.B) {
	for _, m := range benchModels {
		b.Run(m.name, func(b *testing.B) {
			const n = 100_000
			e, mk := engineWith(b, m.p(), n)
			rebuilds, lo, hi := 0, e.Live(), e.Live()
			for b.Loop() {
				if _, err := e.ApplyNoLevels(mk.next()); err != nil {
					b.Fatal(err)
				}
				live := e.Live()
				lo, hi = min(lo, live), max(hi, live)
				if live < n*9/10 || live > n*11/10 {
					b.StopTimer()
					e, mk = engineWith(b, m.p(), n)
					rebuilds++
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(lo), "min-live")
			b.ReportMetric(float64(hi), "max-live")
			b.ReportMetric(float64(rebuilds), "rebuilds")
		})
	}
}

// BenchmarkRevise100k is one Revise (levels not rendered) of the open candle
// on an engine holding ~100,000 live positions: the kline and OI updates a
// live feed delivers between two closes, alternating between two versions.
func BenchmarkRevise100k(b *testing.B) {
	for _, m := range benchModels {
		b.Run(m.name, func(b *testing.B) {
			e, mk := engineWith(b, m.p(), 100_000)
			c := mk.next()
			if _, err := e.ApplyNoLevels(c); err != nil {
				b.Fatal(err)
			}
			v := c
			v.Close, v.Low, v.High = c.Close*0.998, c.Low*0.997, c.High
			v.OIValue -= 5e6
			versions := [2]heatmap.Candle{c, v}
			i := 0
			for b.Loop() {
				i++
				if _, err := e.ReviseNoLevels(versions[i&1]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(e.Live()), "live")
		})
	}
}

// BenchmarkSnapshotRenderEncode renders the levels from the bucket totals and
// encodes them as JSON, the per-publish cost of the snapshotter; the
// render-only variants show how little of it is the engine's.
func BenchmarkSnapshotRenderEncode(b *testing.B) {
	for _, m := range benchModels {
		year, _ := heatmap.NewEngine(m.p())
		for _, c := range newMarket(1).candles(candlesPerYear) {
			if _, err := year.ApplyNoLevels(c); err != nil {
				b.Fatal(err)
			}
		}
		big, _ := engineWith(b, m.p(), 100_000)
		for _, tc := range []struct {
			name string
			e    *heatmap.Engine
		}{{"year", year}, {"100k", big}} {
			b.Run(m.name+"/"+tc.name, func(b *testing.B) { renderEncode(b, tc.e, true) })
			b.Run(m.name+"/"+tc.name+"/render-only", func(b *testing.B) { renderEncode(b, tc.e, false) })
		}
	}
}

func renderEncode(b *testing.B, e *heatmap.Engine, encode bool) {
	var levels []heatmap.Level
	var out []byte
	for b.Loop() {
		levels = e.AppendLevels(levels[:0])
		if encode {
			var err error
			if out, err = json.Marshal(levels); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(levels)), "levels")
	if encode {
		b.ReportMetric(float64(len(out)), "bytes")
	}
}
