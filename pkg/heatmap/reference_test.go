package heatmap_test

// The reference: the original, straightforward implementation of the classic
// model, kept verbatim (renamed) as the oracle the Engine is checked against.
// It re-derives every snapshot from a sorted slice of live positions.

import (
	"cmp"
	"math"
	"slices"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

// refPosition is one synthetic position. bucket is derived from liq once, at
// creation, because bin size is fixed for the engine's lifetime.
type refPosition struct {
	liq    float64 // liquidation price
	bucket float64 // floor(liq/bin)·bin
	vol    float64 // remaining volume, USDT
}

// book holds one side's live positions and its cumulative accounting.
//
// pos is kept sorted by liq ascending (ties in creation order). That makes
// consumption a single cut (longs die from the top, shorts from the bottom)
// and lets a snapshot walk both sides in bucket order without a map.
type refBook struct {
	pos                        []refPosition
	opened, liquidated, closed float64
	created, consumed, dropped int
}

// reference is the engine state; it is not safe for concurrent use.
type reference struct {
	p       heatmap.Params
	sides   [2]refBook
	prev    heatmap.Candle
	hasPrev bool
	scratch []refPosition // reused for the positions created by one candle
	lastLen int           // number of levels last time, to size the next slice
}

// newReference validates p and returns an engine with no positions.
func newReference(p heatmap.Params) (*reference, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p.Tiers = slices.Clone(p.Tiers) // the caller may reuse its slice
	return &reference{p: p, scratch: make([]refPosition, 0, len(p.Tiers))}, nil
}

// Apply advances the model by one candle and returns the snapshot after it.
// Candles must be applied in time order; Apply does not check (Replay does),
// because a live caller already knows its candles are ordered.
func (c *reference) Apply(k heatmap.Candle) heatmap.Snapshot {
	consumed := c.consume(k)
	created, dropped := 0, 0
	if d := c.deltaOI(k); d > 0 {
		created = c.create(k, d)
	} else if d < 0 {
		dropped = c.close(-d)
	}
	c.prev, c.hasPrev = k, true

	levels, long, short := c.levels()
	return heatmap.Snapshot{
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
func (c *reference) Levels() []heatmap.Level {
	l, _, _ := c.levels()
	return l
}

// Totals returns cumulative per-side accounting since the engine started.
func (c *reference) Totals() (long, short heatmap.SideTotals) {
	return c.sides[heatmap.Long].totals(), c.sides[heatmap.Short].totals()
}

// deltaOI is the change in open interest the model reacts to; a gap in the OI
// series yields 0 rather than a fake jump from or to nothing.
func (c *reference) deltaOI(k heatmap.Candle) float64 {
	if !c.hasPrev || !c.prev.HasOI || !k.HasOI {
		return 0
	}
	return k.OIValue - c.prev.OIValue
}

// consume removes every position the candle's range touched and returns how
// many there were.
func (c *reference) consume(k heatmap.Candle) int {
	// Longs: liquidated when Low <= liq, i.e. the suffix with liq >= Low.
	lb := &c.sides[heatmap.Long]
	cut := len(lb.pos)
	for cut > 0 && lb.pos[cut-1].liq >= k.Low {
		cut--
	}
	n := lb.liquidate(cut, len(lb.pos))

	// Shorts: liquidated when High >= liq, i.e. the prefix with liq <= High.
	sb := &c.sides[heatmap.Short]
	cut = 0
	for cut < len(sb.pos) && sb.pos[cut].liq <= k.High {
		cut++
	}
	return n + sb.liquidate(0, cut)
}

// liquidate removes pos[i:j] as liquidated and returns how many it removed.
func (b *refBook) liquidate(i, j int) int {
	for _, p := range b.pos[i:j] {
		b.liquidated += p.vol
	}
	b.pos = slices.Delete(b.pos, i, j)
	b.consumed += j - i
	return j - i
}

// create opens the new positions of a candle whose OI rose by d and returns
// how many it opened.
func (c *reference) create(k heatmap.Candle, d float64) int {
	side := heatmap.Long
	if k.Close < k.Open {
		side = heatmap.Short
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
		if side == heatmap.Long {
			liq = entry * (1 - 1/L + mmr/L)
		} else {
			liq = entry * (1 + 1/L - mmr/L)
		}
		add = append(add, refPosition{liq: liq, bucket: bucketOf(liq, c.p.BinSize), vol: d * t.Weight})
	}
	c.scratch = add

	b := &c.sides[side]
	for _, p := range add {
		b.opened += p.vol
	}
	b.created += len(add)
	slices.SortStableFunc(add, func(x, y refPosition) int { return cmp.Compare(x.liq, y.liq) })
	b.pos = mergeSorted(b.pos, add)
	return len(add)
}

// mergeSorted inserts the sorted add into the sorted dst in one backward pass,
// so that a candle costs one shift of the tail rather than one per tier. On
// equal liq the existing refPosition stays first.
func mergeSorted(dst, add []refPosition) []refPosition {
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

// close shrinks every refPosition pro rata for an OI drop of d > 0 and returns
// how many positions fell below the dust floor and were dropped.
func (c *reference) close(d float64) int {
	total := c.sides[heatmap.Long].remaining() + c.sides[heatmap.Short].remaining()
	if total <= 0 {
		return 0
	}
	factor := min(d/total, 1)
	keep := 1 - factor
	return c.sides[heatmap.Long].shrink(keep) + c.sides[heatmap.Short].shrink(keep)
}

// shrink multiplies every volume by keep, drops what falls below the dust
// floor, books the difference as closed and returns the number dropped.
func (b *refBook) shrink(keep float64) int {
	kept := b.pos[:0]
	for _, p := range b.pos {
		nv := p.vol * keep
		if nv < heatmap.MinPositionVolume {
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
func (b *refBook) remaining() float64 {
	var s float64
	for _, p := range b.pos {
		s += p.vol
	}
	return s
}

func (b *refBook) totals() heatmap.SideTotals {
	return heatmap.SideTotals{
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
func (c *reference) levels() (out []heatmap.Level, long, short float64) {
	L, S := c.sides[heatmap.Long].pos, c.sides[heatmap.Short].pos
	out = make([]heatmap.Level, 0, max(c.lastLen, 16))
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
			out = append(out, heatmap.Level{Price: b, LongDensity: ld, ShortDensity: sd})
		}
	}
	c.lastLen = len(out)
	return out, long, short
}

// binanceOracle is a small, straightforward implementation of the binance
// model, written from the model's description only: an unordered slice of
// positions that every step scans whole.
type binanceOracle struct {
	p       heatmap.Params
	pos     []oraclePos
	tot     [2]heatmap.SideTotals // Remaining and Live are filled in by Totals
	prev    heatmap.Candle
	hasPrev bool
}

type oraclePos struct {
	side     heatmap.Side
	liq, vol float64
}

func newBinanceOracle(p heatmap.Params) *binanceOracle {
	if p.LongShare == 0 {
		p.LongShare = heatmap.DefaultLongShare
	}
	if p.PositionNotional == 0 {
		p.PositionNotional = heatmap.DefaultPositionNotional
	}
	if p.Brackets == nil {
		p.Brackets = heatmap.BracketsFor("BTCUSDT")
	}
	return &binanceOracle{p: p}
}

func (o *binanceOracle) Apply(k heatmap.Candle) heatmap.Snapshot {
	s := heatmap.Snapshot{Candle: k, CurrentPrice: k.Close}
	// 1. Consume, inclusive.
	kept := o.pos[:0]
	for _, q := range o.pos {
		if (q.side == heatmap.Long && k.Low <= q.liq) || (q.side == heatmap.Short && k.High >= q.liq) {
			o.tot[q.side].Liquidated += q.vol
			o.tot[q.side].Consumed++
			s.PositionsConsumed++
			continue
		}
		kept = append(kept, q)
	}
	o.pos = kept
	d := 0.0
	if o.hasPrev && o.prev.HasOI && k.HasOI {
		d = k.OIValue - o.prev.OIValue
	}
	o.prev, o.hasPrev = k, true
	switch {
	case d > 0: // 2. Create both sides at the typical price.
		N := o.p.PositionNotional
		var mmr, cum float64
		for _, b := range o.p.Brackets {
			if b.Floor <= N && N < b.Cap {
				mmr, cum = b.MMR, b.Cum
			}
		}
		ep := (k.High + k.Low + k.Close) / 3
		for _, t := range o.p.Tiers {
			if t.Weight == 0 {
				continue
			}
			L := t.Leverage
			long := ep * (1 - 1/L - cum/N) / (1 - mmr)
			if long < 0 {
				long = 0
			}
			short := ep * (1 + 1/L + cum/N) / (1 + mmr)
			for _, q := range []oraclePos{{heatmap.Long, long, d * o.p.LongShare * t.Weight}, {heatmap.Short, short, d * (1 - o.p.LongShare) * t.Weight}} {
				o.pos = append(o.pos, q)
				o.tot[q.side].Opened += q.vol
				o.tot[q.side].Created++
				s.PositionsCreated++
			}
		}
	case d < 0: // 3. Close pro rata across both sides.
		var total float64
		for _, q := range o.pos {
			total += q.vol
		}
		if total > 0 {
			f := math.Min(-d/total, 1)
			kept := o.pos[:0]
			for _, q := range o.pos {
				nv := q.vol * (1 - f)
				if nv < heatmap.MinPositionVolume {
					o.tot[q.side].Closed += q.vol
					o.tot[q.side].Dropped++
					s.PositionsDropped++
					continue
				}
				o.tot[q.side].Closed += q.vol - nv
				q.vol = nv
				kept = append(kept, q)
			}
			o.pos = kept
		}
	}
	// 4. Snapshot.
	s.Levels = o.Levels()
	for _, q := range o.pos {
		if q.side == heatmap.Long {
			s.TotalLongVolume += q.vol
		} else {
			s.TotalShortVolume += q.vol
		}
	}
	return s
}

func (o *binanceOracle) Levels() []heatmap.Level {
	byPrice := map[float64]*heatmap.Level{}
	for _, q := range o.pos {
		b := math.Floor(q.liq/o.p.BinSize) * o.p.BinSize
		l := byPrice[b]
		if l == nil {
			l = &heatmap.Level{Price: b}
			byPrice[b] = l
		}
		if q.side == heatmap.Long {
			l.LongDensity += q.vol
		} else {
			l.ShortDensity += q.vol
		}
	}
	out := make([]heatmap.Level, 0, len(byPrice))
	for _, l := range byPrice {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b heatmap.Level) int { return cmp.Compare(a.Price, b.Price) })
	return out
}

func (o *binanceOracle) Totals() (long, short heatmap.SideTotals) {
	t := o.tot
	for _, q := range o.pos {
		t[q.side].Remaining += q.vol
		t[q.side].Live++
	}
	return t[heatmap.Long], t[heatmap.Short]
}
