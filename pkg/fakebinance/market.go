// Package fakebinance is a Binance USD-M futures server for tests and
// measurements: the REST endpoints liqstream reads (klines, openInterestHist)
// and the combined market streams (<symbol>@kline_<interval>,
// !forceOrder@arr) over WebSocket, on a deterministic market whose clock the
// caller moves. It can drop connections, go silent, send duplicates and
// out-of-order updates, and refuse requests with 429/418 and Retry-After, and
// it knows the truth an uninterrupted feed would have stored.
package fakebinance

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Candle is one kline as the market made it.
type Candle struct {
	Open          time.Time
	O, H, L, C, V float64
	Final         bool // the candle has closed
}

// OI is one openInterestHist row.
type OI struct {
	TS    time.Time
	OI    float64 // contracts
	Value float64 // USDT
}

// Liquidation is one forceOrder event.
type Liquidation struct {
	Symbol   string
	Side     string // order side: SELL closes a long, BUY a short
	Price    float64
	Quantity float64
	Avg      float64
	Time     time.Time
}

// Notional is the filled notional, as liqstream computes it.
func (l Liquidation) Notional() float64 { return l.Avg * l.Quantity }

// series is one symbol's market: candles by index from the start, each made
// second by second from a generator seeded by (symbol, index), so any
// candle's state at any second is the same however it is asked for.
type series struct {
	sym     string
	seed    uint64
	base    float64
	step    time.Duration
	start   time.Time
	closed  []Candle // closed candles from start, in order
	oi      []OI     // one per step boundary from start
	oiLevel float64
}

func symbolSeed(sym string, seed uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sym))
	return h.Sum64() ^ seed
}

// basePrice gives well-known symbols their usual scale and others a price
// between 200 and 20,000 USDT, where liqstream's bin sizes (1 USD and up)
// make heatmaps of ordinary resolution.
func basePrice(sym string, seed uint64) float64 {
	switch sym {
	case "BTCUSDT":
		return 90000
	case "ETHUSDT":
		return 3000
	}
	return roundTick(200 * math.Pow(100, float64(seed%1000)/1000))
}

// BasePrice is where symbol's market starts for seed.
func BasePrice(symbol string, seed uint64) float64 {
	return basePrice(symbol, symbolSeed(symbol, seed))
}

func newSeries(sym string, seed uint64, step time.Duration, start time.Time) *series {
	s := symbolSeed(sym, seed)
	b := basePrice(sym, s)
	return &series{sym: sym, seed: s, base: b, step: step, start: start, oiLevel: b * 2e5}
}

// candleAt makes candle i (opening at start+i·step) as it stood after
// `secs` seconds, from its open price.
func (s *series) candleAt(i int, open float64, secs int) Candle {
	r := rand.New(rand.NewPCG(s.seed, uint64(i)))
	c := Candle{Open: s.start.Add(time.Duration(i) * s.step), O: open, H: open, L: open, C: open}
	// A volatility of ~0.1 % per second-scaled 5-minute candle, in ticks of
	// the symbol's price scale so prices stay plausible decimals.
	vol := 0.0025 / math.Sqrt(s.step.Seconds())
	for range secs {
		c.C *= math.Exp(vol * r.NormFloat64())
		c.C = roundTick(c.C)
		c.H, c.L = max(c.H, c.C), min(c.L, c.C)
		c.V += math.Round(r.ExpFloat64()*1000) / 1000
	}
	c.V = math.Round(c.V*1000) / 1000
	return c
}

// roundTick keeps 5 significant digits, as exchange tick sizes roughly do.
func roundTick(p float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(p))-4)
	return math.Round(p/e) * e
}

// advance closes every candle that ends at or before now and publishes the
// open interest rows due by then.
func (s *series) advance(now time.Time) {
	secs := int(s.step / time.Second)
	for {
		i := len(s.closed)
		end := s.start.Add(time.Duration(i+1) * s.step)
		if end.After(now) {
			break
		}
		open := s.base
		if i > 0 {
			open = s.closed[i-1].C
		}
		c := s.candleAt(i, open, secs)
		c.Final = true
		s.closed = append(s.closed, c)
	}
	for {
		j := len(s.oi)
		ts := s.start.Add(time.Duration(j) * s.step)
		if ts.After(now) {
			break
		}
		r := rand.New(rand.NewPCG(s.seed^0x9e3779b97f4a7c15, uint64(j)))
		s.oiLevel *= math.Exp(0.01 * r.NormFloat64())
		price := s.base
		if j > 0 && j-1 < len(s.closed) {
			price = s.closed[j-1].C
		}
		oi := math.Round(s.oiLevel/price*1000) / 1000
		s.oi = append(s.oi, OI{TS: ts, OI: oi, Value: math.Round(oi*price*1e4) / 1e4})
	}
}

// open returns the open candle at now (advance must have run).
func (s *series) open(now time.Time) Candle {
	i := len(s.closed)
	openPrice := s.base
	if i > 0 {
		openPrice = s.closed[i-1].C
	}
	start := s.start.Add(time.Duration(i) * s.step)
	c := s.candleAt(i, openPrice, int(now.Sub(start)/time.Second))
	return c
}

// price is the market price at now.
func (s *series) price(now time.Time) float64 { return s.open(now).C }
