// Package demo generates deterministic, plausible-looking candles and open
// interest so the liquidation heatmap has something interesting to show
// without a connection to an exchange.
//
// The heatmap opens leveraged positions when open interest rises (long on an
// up candle, short on a down one) and liquidates them when price later trades
// through their liquidation prices. To make bands that open and get taken out,
// the walk has persistent trends (during which OI builds), volatility storms
// that often reverse the trend, stop-hunting wicks, and sharp OI drops on big
// adverse moves.
package demo

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// All model parameters are per 5 minutes; other step lengths scale variance,
// drift and hazard rates linearly in time so that Next (whole candles) and
// Advance (a few seconds) produce statistically consistent paths.
const baseStep = 5 * time.Minute

const (
	calmSigmaMin   = 0.0010 // per-5m log-return volatility in calm markets
	calmSigmaMax   = 0.0020
	stormSigmaMin  = 0.0040
	stormSigmaMax  = 0.0060
	refSigma       = 0.0015 // "normal" volatility that moves are judged against
	pStormStart    = 1.0 / 250
	pStormEnd      = 1.0 / 24
	pStormReversal = 0.5 // storms are where trends break, which liquidates the bands they built
	pTrendSwitch   = 1.0 / 36
	pFlatTrend     = 0.4
	trendMuMin     = 0.00010 // per-5m drift of a trend: ~0.4–2% over a typical 3h trend
	trendMuMax     = 0.00050
	priceReversion = 1.0 / 1500 // keeps weeks-long runs within a believable range of the anchor
	pJump          = 0.01
	pLongWick      = 0.04
	substeps       = 12 // intra-candle path resolution for high/low

	oiBuild      = 0.0012 // per-5m OI growth while a trend persists (momentum builds leverage)
	oiMomentum   = 0.3    // OI change per unit of log-return in the trend's direction
	oiFlatDecay  = 0.0002
	oiReversion  = 1.0 / 250
	oiNoise      = 0.0012
	oiCascadeZ2  = 6.25   // (2.5 reference sigmas)^2: below this a move liquidates nobody notable
	oiCascade    = 0.0004 // drop per unit of excess squared z; quadratic so it aggregates over time like variance
	oiWickLiq    = 0.5    // fraction of a long wick's size that OI loses to the stops it hits
	oiMaxDrop    = 0.08
	oiFloorRatio = 0.25
	oiCeilRatio  = 4.0

	volumeTurnover = 0.006 // USDT traded per 5m as a fraction of OI value in calm conditions
)

type startLevel struct {
	price   float64
	oiValue float64
}

// Levels are in the right ballpark for early 2025 so the demo heatmap's axes look familiar.
var startLevels = map[string]startLevel{
	"BTCUSDT": {price: 95_000, oiValue: 8e9},
	"ETHUSDT": {price: 3_400, oiValue: 4e9},
}

const defaultOIValue = 1e8

// Walker is a seeded random walk of one symbol's candles and open interest.
type Walker struct {
	symbol string
	rng    *rand.Rand

	price  float64
	anchor float64

	oiValue float64
	oiLevel float64

	sigma  float64
	stormy bool
	dir    int // -1 down, 0 flat, +1 up
	mu     float64

	turnover float64 // USDT volume per 5m at reference volatility
}

// Move is the result of advancing a Walker by part of a candle.
type Move struct {
	Price   float64
	OIValue float64
	Volume  float64 // base-asset volume traded during the step
}

// NewWalker starts a walk at the symbol's typical price and OI; unknown symbols get a seed-derived price.
func NewWalker(symbol string, seed uint64) *Walker {
	h := fnv.New64a()
	h.Write([]byte(symbol))
	w := &Walker{
		symbol: symbol,
		rng:    rand.New(rand.NewPCG(seed, h.Sum64())),
	}
	lvl, ok := startLevels[symbol]
	if !ok {
		// Log-uniform 10..1000 so unknown symbols don't all sit at the same scale.
		lvl = startLevel{price: 10 * math.Pow(100, w.rng.Float64()), oiValue: defaultOIValue}
	}
	w.price = lvl.price * (1 + 0.04*(w.rng.Float64()-0.5))
	w.anchor = w.price
	w.oiLevel = lvl.oiValue
	w.oiValue = lvl.oiValue * (1 + 0.1*(w.rng.Float64()-0.5))
	w.turnover = lvl.oiValue * volumeTurnover
	w.sigma = calmSigmaMin + (calmSigmaMax-calmSigmaMin)*w.rng.Float64()
	w.pickTrend()
	return w
}

// Price is the current price (the close of the last candle or step).
func (w *Walker) Price() float64 { return w.price }

// OIValue is the current open interest in USDT.
func (w *Walker) OIValue() float64 { return w.oiValue }

// Resume moves the walk to price, e.g. the last stored close, so new candles continue the stored series.
func (w *Walker) Resume(price float64) {
	if price > 0 && !math.IsInf(price, 0) && !math.IsNaN(price) {
		w.price = price
		w.anchor = price
	}
}

// ResumeOI continues the OI walk from a stored value, so a restarted
// simulator does not jump from its own starting level: the model would read
// that jump as billions of USDT opened or closed in one candle.
func (w *Walker) ResumeOI(value float64) {
	if value > 0 && !math.IsInf(value, 0) && !math.IsNaN(value) {
		w.oiValue = value
		w.oiLevel = value
	}
}

// Next generates one whole candle opening at openTime and the OI observation for it.
func (w *Walker) Next(openTime time.Time, interval time.Duration) (store.Kline, store.OpenInterest) {
	f := stepFraction(interval)
	w.switchRegimes(f)

	open := w.price
	sub := f / substeps
	drift := w.drift() * sub
	sd := w.sigma * math.Sqrt(sub)
	var x, hi, lo float64 // log-price path relative to open
	for range substeps {
		x += drift + sd*w.rng.NormFloat64() + w.jump(sub)
		hi = math.Max(hi, x)
		lo = math.Min(lo, x)
	}
	r := x

	// Even calm candles have a little wick beyond the sampled path.
	scale := w.sigma * math.Sqrt(f)
	hi += 0.15 * scale * math.Abs(w.rng.NormFloat64())
	lo -= 0.15 * scale * math.Abs(w.rng.NormFloat64())
	var wickLiq float64
	if w.rng.Float64() < hazard(pLongWick, f) {
		// A stop hunt: the wick runs through nearby liquidation bands and comes back.
		size := scale * (1.5 + 2.5*w.rng.Float64())
		if w.rng.IntN(2) == 0 {
			hi += size
		} else {
			lo -= size
		}
		wickLiq = oiWickLiq * size
	}

	closePrice := open * math.Exp(r)
	k := store.Kline{
		Symbol:   w.symbol,
		Interval: IntervalName(interval),
		OpenTime: openTime,
		Open:     open,
		High:     math.Max(open*math.Exp(hi), math.Max(open, closePrice)),
		Low:      math.Min(open*math.Exp(lo), math.Min(open, closePrice)),
		Close:    closePrice,
	}
	rangeExcess := (hi - lo) - math.Abs(r)
	k.Volume = w.volumeUSDT(f, math.Abs(r), rangeExcess) / ((open + closePrice) / 2)

	w.price = closePrice
	w.updateOI(r, f, wickLiq)
	return k, store.OpenInterest{
		Symbol:            w.symbol,
		TS:                openTime,
		OpenInterest:      w.oiValue / closePrice,
		OpenInterestValue: w.oiValue,
	}
}

// Advance moves the walk by dt, a fraction of a candle, for live updates of the open candle.
func (w *Walker) Advance(dt time.Duration) Move {
	if dt <= 0 {
		return Move{Price: w.price, OIValue: w.oiValue}
	}
	f := stepFraction(dt)
	w.switchRegimes(f)
	r := w.drift()*f + w.sigma*math.Sqrt(f)*w.rng.NormFloat64() + w.jump(f)
	before := w.price
	w.price *= math.Exp(r)
	w.updateOI(r, f, 0)
	vol := w.volumeUSDT(f, math.Abs(r), 0) / ((before + w.price) / 2)
	return Move{Price: w.price, OIValue: w.oiValue, Volume: vol}
}

// drift includes a weak pull to the anchor so long simulations stay near a believable level.
func (w *Walker) drift() float64 {
	return w.mu - priceReversion*math.Log(w.price/w.anchor)
}

// jump adds rare fat-tail moves that a Gaussian walk would almost never produce.
func (w *Walker) jump(f float64) float64 {
	if w.rng.Float64() >= hazard(pJump, f) {
		return 0
	}
	size := w.sigma * (2 + 2*w.rng.Float64())
	if w.rng.IntN(2) == 0 {
		return -size
	}
	return size
}

func (w *Walker) switchRegimes(f float64) {
	if w.stormy {
		if w.rng.Float64() < hazard(pStormEnd, f) {
			w.stormy = false
			w.sigma = calmSigmaMin + (calmSigmaMax-calmSigmaMin)*w.rng.Float64()
		}
	} else if w.rng.Float64() < hazard(pStormStart, f) {
		w.stormy = true
		w.sigma = stormSigmaMin + (stormSigmaMax-stormSigmaMin)*w.rng.Float64()
		if w.rng.Float64() < pStormReversal {
			w.reverseTrend()
			return
		}
	}
	if w.rng.Float64() < hazard(pTrendSwitch, f) {
		w.pickTrend()
	}
}

func (w *Walker) pickTrend() {
	if w.rng.Float64() < pFlatTrend {
		w.dir, w.mu = 0, 0
		return
	}
	w.dir = 1
	if w.rng.IntN(2) == 0 {
		w.dir = -1
	}
	w.mu = float64(w.dir) * (trendMuMin + (trendMuMax-trendMuMin)*w.rng.Float64())
}

func (w *Walker) reverseTrend() {
	if w.dir == 0 {
		w.pickTrend()
		if w.dir == 0 {
			w.dir, w.mu = 1, trendMuMin
		}
		return
	}
	w.dir = -w.dir
	w.mu = float64(w.dir) * (trendMuMin + (trendMuMax-trendMuMin)*w.rng.Float64())
}

// updateOI applies one step of r (log-return) over f base steps. Every term is
// linear in f or in r (or quadratic in r), so many small steps add up to
// roughly what one big step would do.
func (w *Walker) updateOI(r, f, wickLiq float64) {
	d := -oiReversion * f * math.Log(w.oiValue/w.oiLevel)
	if w.dir != 0 {
		d += oiBuild * f * (0.5 + w.rng.Float64())
		d += oiMomentum * r * float64(w.dir)
	} else {
		d -= oiFlatDecay * f
	}
	d += oiNoise * math.Sqrt(f) * w.rng.NormFloat64()

	ref := refSigma * math.Sqrt(f)
	z2 := (r / ref) * (r / ref)
	adverse := w.dir == 0 || r*float64(w.dir) < 0
	if z2 > oiCascadeZ2 {
		drop := oiCascade * f * (z2 - oiCascadeZ2) * (1 + w.rng.Float64())
		if !adverse {
			// A big move with the trend squeezes the other side, but fresh momentum longs partly replace them.
			drop /= 3
		}
		d -= math.Min(drop, oiMaxDrop)
	}
	d -= wickLiq

	w.oiValue *= math.Exp(d)
	w.oiValue = math.Min(math.Max(w.oiValue, w.oiLevel*oiFloorRatio), w.oiLevel*oiCeilRatio)
}

// volumeUSDT grows with the size of the move: big candles are where stops and liquidations trade.
func (w *Walker) volumeUSDT(f, absR, wick float64) float64 {
	ref := refSigma * math.Sqrt(f)
	mult := 0.4 + 0.6*absR/ref + 0.2*math.Max(wick, 0)/ref
	return w.turnover * f * mult * math.Exp(0.25*w.rng.NormFloat64())
}

func stepFraction(d time.Duration) float64 { return float64(d) / float64(baseStep) }

// hazard converts a per-base-step probability into one for f base steps.
func hazard(p, f float64) float64 { return 1 - math.Pow(1-p, f) }

// IntervalName returns Binance's notation for an interval (1m, 5m, 1h, 4h, 1d, 1w).
func IntervalName(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d <= 0:
		return ""
	case d%(7*day) == 0:
		return fmt.Sprintf("%dw", d/(7*day))
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// Generate returns n candles and OI observations, oldest first, ending with the last candle closed at end.
func Generate(symbol string, seed uint64, end time.Time, interval time.Duration, n int) ([]store.Kline, []store.OpenInterest) {
	if n <= 0 || interval <= 0 {
		return nil, nil
	}
	last := end.UTC().Truncate(interval).Add(-interval)
	t := last.Add(-time.Duration(n-1) * interval)
	w := NewWalker(symbol, seed)
	ks := make([]store.Kline, 0, n)
	ois := make([]store.OpenInterest, 0, n)
	for range n {
		k, oi := w.Next(t, interval)
		ks = append(ks, k)
		ois = append(ois, oi)
		t = t.Add(interval)
	}
	return ks, ois
}
