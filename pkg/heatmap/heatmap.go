// Package heatmap computes a liquidation heatmap for crypto perpetual futures
// with the "classic" reference model. It is pure: candles in, snapshots out,
// no I/O, no clock, no randomness.
//
// The model guesses where leveraged traders would be liquidated. Rising open
// interest (OI) is read as new positions, opened at the candle's close on the
// side the candle moved towards and spread over leverage tiers; falling OI
// closes existing positions pro rata; price touching a liquidation price
// removes the position. Per candle, in this order:
//
//  1. Consume: a long is liquidated when Low <= its liquidation price, a short
//     when High >= it (both inclusive); it is removed whole.
//  2. Create (ΔOI > 0): ΔOI = OIValue − previous candle's OIValue, or 0 when
//     there is no previous candle or either candle lacks OI. All of it goes to
//     one side: long when Close >= Open (a doji counts as long), short when
//     Close < Open. Entry = Close; one position per tier with nonzero weight,
//     volume ΔOI·weight, liquidation price
//     long  entry·(1 − 1/L + mmr/L),
//     short entry·(1 + 1/L − mmr/L).
//     Because step 1 ran first, a position is never tested against the candle
//     that created it.
//  3. Close (ΔOI < 0): with total the remaining volume of both sides after step 1,
//     factor = min(|ΔOI|/total, 1) and every position keeps (1 − factor) of its
//     volume; positions left below MinPositionVolume are dropped.
//  4. Snapshot: bucket = floor(liq/bin)·bin; per bucket the long and short
//     volume; only non-zero buckets, ascending by price.
//
// Per side, opened = remaining + liquidated + closed (up to rounding).
//
// This implementation is the straightforward reference: it re-derives every
// snapshot from the live positions. Results match any other faithful
// implementation up to floating-point summation order.
package heatmap

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// MinPositionVolume is the dust floor (USDT): a pro-rata close that leaves a
// position below it drops the position, so that repeated closes do not keep
// ever-smaller positions alive forever.
const MinPositionVolume = 0.01

// Candle is one kline plus the open interest the model needs; prices in USDT.
type Candle struct {
	OpenTime                       time.Time
	Open, High, Low, Close, Volume float64
	OIValue                        float64 // average open_interest_value (USDT) over the candle
	HasOI                          bool    // false when no OI observation fell in the candle
}

// Level is one price bucket; densities are remaining position volume (USDT)
// that would be liquidated somewhere in [Price, Price+bin).
type Level struct {
	Price        float64 `json:"price"`
	LongDensity  float64 `json:"long_density"`
	ShortDensity float64 `json:"short_density"`
}

// Side distinguishes longs from shorts, which liquidate in opposite directions.
type Side int

// The two sides; their values index per-side arrays.
const (
	Long  Side = iota // liquidated when price falls to its liquidation price
	Short             // liquidated when price rises to its liquidation price
)

// String names the side for logs and test output.
func (s Side) String() string {
	switch s {
	case Long:
		return "long"
	case Short:
		return "short"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// SideTotals is cumulative accounting for one side since the engine started;
// it exists so callers (and tests) can check Opened = Remaining + Liquidated + Closed.
type SideTotals struct {
	Opened, Remaining, Liquidated, Closed float64 // volumes, USDT
	Created, Consumed                     int     // positions opened / liquidated
	Dropped                               int     // positions removed by the dust floor after a close
	Live                                  int     // positions alive now: Created − Consumed − Dropped
}

// Snapshot is the heatmap as it stands after one candle.
type Snapshot struct {
	Candle            Candle
	Levels            []Level // non-zero buckets, ascending price
	CurrentPrice      float64 // the candle's close
	PositionsCreated  int     // in this candle
	PositionsConsumed int     // in this candle (liquidated)
	PositionsDropped  int     // in this candle (dust floor after a close)
	TotalLongVolume   float64 // remaining long volume after this candle
	TotalShortVolume  float64 // remaining short volume after this candle
}

// position is one synthetic position. bucket is derived from liq once, at
// creation, because bin size is fixed for the engine's lifetime.
type position struct {
	liq    float64 // liquidation price
	bucket float64 // floor(liq/bin)·bin
	vol    float64 // remaining volume, USDT
}

// book holds one side's live positions and its cumulative accounting.
//
// pos is kept sorted by liq ascending (ties in creation order). That makes
// consumption a single cut (longs die from the top, shorts from the bottom)
// and lets a snapshot walk both sides in bucket order without a map.
type book struct {
	pos                        []position
	opened, liquidated, closed float64
	created, consumed, dropped int
}

// Classic is the engine state; it is not safe for concurrent use.
type Classic struct {
	p       Params
	sides   [2]book
	prev    Candle
	hasPrev bool
	scratch []position // reused for the positions created by one candle
	lastLen int        // number of levels last time, to size the next slice
}

// NewClassic validates p and returns an engine with no positions.
func NewClassic(p Params) (*Classic, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p.Tiers = slices.Clone(p.Tiers) // the caller may reuse its slice
	return &Classic{p: p, scratch: make([]position, 0, len(p.Tiers))}, nil
}

// Apply advances the model by one candle and returns the snapshot after it.
// Candles must be applied in time order; Apply does not check (Replay does),
// because a live caller already knows its candles are ordered.
func (c *Classic) Apply(k Candle) Snapshot {
	consumed := c.consume(k)
	created, dropped := 0, 0
	if d := c.deltaOI(k); d > 0 {
		created = c.create(k, d)
	} else if d < 0 {
		dropped = c.close(-d)
	}
	c.prev, c.hasPrev = k, true

	levels, long, short := c.levels()
	return Snapshot{
		Candle:            k,
		Levels:            levels,
		CurrentPrice:      k.Close,
		PositionsCreated:  created,
		PositionsConsumed: consumed,
		PositionsDropped:  dropped,
		TotalLongVolume:   long,
		TotalShortVolume:  short,
	}
}

// Levels returns the current buckets as a fresh slice the caller may keep.
func (c *Classic) Levels() []Level {
	l, _, _ := c.levels()
	return l
}

// Totals returns cumulative per-side accounting since the engine started.
func (c *Classic) Totals() (long, short SideTotals) {
	return c.sides[Long].totals(), c.sides[Short].totals()
}

// Replay runs a fresh engine over candles and returns one snapshot per candle.
// It checks the whole input first, so an error never comes with partial output.
func Replay(p Params, candles []Candle) ([]Snapshot, error) {
	c, err := NewClassic(p)
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(candles); i++ {
		if !candles[i].OpenTime.After(candles[i-1].OpenTime) {
			return nil, fmt.Errorf("heatmap: candle %d (open time %s) is not after candle %d (open time %s): candles must be in strictly increasing time order",
				i, candles[i].OpenTime.Format(time.RFC3339), i-1, candles[i-1].OpenTime.Format(time.RFC3339))
		}
	}
	out := make([]Snapshot, len(candles))
	for i, k := range candles {
		out[i] = c.Apply(k)
	}
	return out, nil
}

// deltaOI is the change in open interest the model reacts to; a gap in the OI
// series yields 0 rather than a fake jump from or to nothing.
func (c *Classic) deltaOI(k Candle) float64 {
	if !c.hasPrev || !c.prev.HasOI || !k.HasOI {
		return 0
	}
	return k.OIValue - c.prev.OIValue
}

// consume removes every position the candle's range touched and returns how
// many there were.
func (c *Classic) consume(k Candle) int {
	// Longs: liquidated when Low <= liq, i.e. the suffix with liq >= Low.
	lb := &c.sides[Long]
	cut := len(lb.pos)
	for cut > 0 && lb.pos[cut-1].liq >= k.Low {
		cut--
	}
	n := lb.liquidate(cut, len(lb.pos))

	// Shorts: liquidated when High >= liq, i.e. the prefix with liq <= High.
	sb := &c.sides[Short]
	cut = 0
	for cut < len(sb.pos) && sb.pos[cut].liq <= k.High {
		cut++
	}
	return n + sb.liquidate(0, cut)
}

// liquidate removes pos[i:j] as liquidated and returns how many it removed.
func (b *book) liquidate(i, j int) int {
	for _, p := range b.pos[i:j] {
		b.liquidated += p.vol
	}
	b.pos = slices.Delete(b.pos, i, j)
	b.consumed += j - i
	return j - i
}

// create opens the new positions of a candle whose OI rose by d and returns
// how many it opened.
func (c *Classic) create(k Candle, d float64) int {
	side := Long
	if k.Close < k.Open {
		side = Short
	}
	entry := k.Close
	mmr := c.p.MMR
	add := c.scratch[:0]
	for _, t := range c.p.Tiers {
		if t.Weight == 0 {
			continue
		}
		L := t.Leverage
		var liq float64
		if side == Long {
			liq = entry * (1 - 1/L + mmr/L)
		} else {
			liq = entry * (1 + 1/L - mmr/L)
		}
		add = append(add, position{liq: liq, bucket: bucketOf(liq, c.p.BinSize), vol: d * t.Weight})
	}
	c.scratch = add

	b := &c.sides[side]
	for _, p := range add {
		b.opened += p.vol
	}
	b.created += len(add)
	slices.SortStableFunc(add, func(x, y position) int { return cmp.Compare(x.liq, y.liq) })
	b.pos = mergeSorted(b.pos, add)
	return len(add)
}

// mergeSorted inserts the sorted add into the sorted dst in one backward pass,
// so that a candle costs one shift of the tail rather than one per tier. On
// equal liq the existing position stays first.
func mergeSorted(dst, add []position) []position {
	n := len(dst)
	dst = slices.Grow(dst, len(add))[:n+len(add)]
	i, j := n-1, len(add)-1
	for k := len(dst) - 1; j >= 0; k-- {
		if i >= 0 && dst[i].liq > add[j].liq {
			dst[k] = dst[i]
			i--
		} else {
			dst[k] = add[j]
			j--
		}
	}
	return dst
}

// close shrinks every position pro rata for an OI drop of d > 0 and returns
// how many positions fell below the dust floor and were dropped.
func (c *Classic) close(d float64) int {
	total := c.sides[Long].remaining() + c.sides[Short].remaining()
	if total <= 0 {
		return 0
	}
	factor := min(d/total, 1)
	keep := 1 - factor
	return c.sides[Long].shrink(keep) + c.sides[Short].shrink(keep)
}

// shrink multiplies every volume by keep, drops what falls below the dust
// floor, books the difference as closed and returns the number dropped.
func (b *book) shrink(keep float64) int {
	kept := b.pos[:0]
	for _, p := range b.pos {
		nv := p.vol * keep
		if nv < MinPositionVolume {
			b.closed += p.vol
			continue
		}
		b.closed += p.vol - nv
		p.vol = nv
		kept = append(kept, p)
	}
	dropped := len(b.pos) - len(kept)
	clear(b.pos[len(kept):])
	b.pos = kept
	b.dropped += dropped
	return dropped
}

// remaining sums live volume in slice order; snapshots and Totals use the same
// order so their figures agree bit for bit.
func (b *book) remaining() float64 {
	var s float64
	for _, p := range b.pos {
		s += p.vol
	}
	return s
}

func (b *book) totals() SideTotals {
	return SideTotals{
		Opened:     b.opened,
		Remaining:  b.remaining(),
		Liquidated: b.liquidated,
		Closed:     b.closed,
		Created:    b.created,
		Consumed:   b.consumed,
		Dropped:    b.dropped,
		Live:       len(b.pos),
	}
}

// bucketOf is the reference bucketing; written exactly as floor(liq/bin)·bin
// so that boundary cases round the same way as the reference.
func bucketOf(liq, bin float64) float64 {
	return math.Floor(liq/bin) * bin
}

// levels aggregates both sides by bucket and also returns each side's total.
// Both slices are sorted by liq, hence by bucket (floor and scaling are
// monotone), so one merge walk visits each bucket once in ascending order.
func (c *Classic) levels() (out []Level, long, short float64) {
	L, S := c.sides[Long].pos, c.sides[Short].pos
	out = make([]Level, 0, max(c.lastLen, 16))
	i, j := 0, 0
	for i < len(L) || j < len(S) {
		var b float64
		switch {
		case j == len(S):
			b = L[i].bucket
		case i == len(L):
			b = S[j].bucket
		default:
			b = min(L[i].bucket, S[j].bucket)
		}
		var ld, sd float64
		for ; i < len(L) && L[i].bucket == b; i++ {
			ld += L[i].vol
			long += L[i].vol
		}
		for ; j < len(S) && S[j].bucket == b; j++ {
			sd += S[j].vol
			short += S[j].vol
		}
		if ld != 0 || sd != 0 {
			out = append(out, Level{Price: b, LongDensity: ld, ShortDensity: sd})
		}
	}
	c.lastLen = len(out)
	return out, long, short
}
