package accuracy

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// TopShare is the share of a universe's buckets that make a scorer's top:
// the top decile.
const TopShare = 0.1

// UniverseSpan is how far either side of the price the scored buckets reach.
// The engine keeps every position at any distance (its levels have no price
// range), so the universe is bounded here: ±10 % of the price, wide enough
// for the liquidations of a day's moves, narrow enough that a top decile
// means something.
const UniverseSpan = 0.10

// ctxEvery is how many candles are replayed between looks at ctx, as in the
// time series' replay.
const ctxEvery = 256

// universe is the buckets scored at one moment: indices lo..hi, bucket i
// covering [i·bin, (i+1)·bin) as the engine's levels do, and k of its n
// buckets make a top.
type universe struct {
	price, bin float64
	lo, hi     int64
	n, k       int
}

// newUniverse is every bucket that meets [price·0.9, price·1.1); ok is false
// for a price that cannot have one.
func newUniverse(price, bin float64) (universe, bool) {
	if !(price > 0) || !(bin > 0) || math.IsInf(price, 0) {
		return universe{}, false
	}
	u := universe{price: price, bin: bin,
		lo: int64(math.Floor(snap(price * (1 - UniverseSpan) / bin))),
		hi: int64(math.Ceil(snap(price*(1+UniverseSpan)/bin))) - 1}
	if u.hi < u.lo {
		u.hi = u.lo
	}
	u.n = int(u.hi - u.lo + 1)
	// Rounded, not ceiled: k/n is then as near TopShare as whole buckets
	// allow (exactly it when n is a multiple of 10).
	u.k = max(1, int(math.Round(TopShare*float64(u.n))))
	return u, true
}

// snap rounds x to the nearest whole number when it is one up to float
// error: 100000·1.1 is 110000.00000000001, and the universe's edge must not
// grow a bucket from that.
func snap(x float64) float64 {
	if r := math.Round(x); math.Abs(x-r) <= 1e-9*max(1, math.Abs(x)) {
		return r
	}
	return x
}

// bucket is the index of the bucket holding price, as heatmap buckets a
// liquidation price: floor(price/bin).
func (u universe) bucket(price float64) int64 { return int64(math.Floor(price / u.bin)) }

// distance is how far bucket i's middle lies from the price.
func (u universe) distance(i int64) float64 {
	return math.Abs((float64(i)+0.5)*u.bin - u.price)
}

// nearest is the distance baseline's top: the k buckets whose middles lie
// nearest the price, the lower one first on a tie. They are contiguous, so
// the answer is an interval, grown one bucket at a time from the price's.
func (u universe) nearest() (lo, hi int64) {
	c := min(max(u.bucket(u.price), u.lo), u.hi)
	lo, hi = c, c
	for int(hi-lo+1) < u.k {
		switch {
		case lo == u.lo:
			hi++
		case hi == u.hi:
			lo--
		case u.distance(lo-1) <= u.distance(hi+1):
			lo--
		default:
			hi++
		}
	}
	return lo, hi
}

// top is a model's top for one side: the k buckets of the universe with
// the most density on that side, ties going to the bucket nearer the price,
// then the lower one. Buckets without density never count, even when fewer
// than k have any: filling the top with empty buckets would credit the model
// with a tie-break's guess it never made.
func (u universe) top(levels []heatmap.Level, side heatmap.Side) map[int64]bool {
	type cand struct {
		i int64
		d float64
	}
	var cs []cand
	for _, l := range levels {
		d := l.LongDensity
		if side == heatmap.Short {
			d = l.ShortDensity
		}
		// Level prices are floor(liq/bin)·bin: rounding recovers the index.
		if i := int64(math.Round(l.Price / u.bin)); d > 0 && i >= u.lo && i <= u.hi {
			cs = append(cs, cand{i, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.d, a.d); c != 0 {
			return c
		}
		if c := cmp.Compare(u.distance(a.i), u.distance(b.i)); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	out := make(map[int64]bool, min(len(cs), u.k))
	for _, c := range cs[:min(len(cs), u.k)] {
		out[c.i] = true
	}
	return out
}

// Tally is what a day's liquidations add up to and how much of their
// notional each scorer's top held.
type Tally struct {
	Count    int
	Notional float64 // every liquidation's, inside the universe or not
	Model    float64 // notional in the model's top for its side
	Uniform  float64 // expected hit notional of a uniformly random top: k/n of what fell inside
	Distance float64 // notional in the k buckets nearest the price
}

// moment is the model as one candle left it, ready to score the
// liquidations until the next candle closes.
type moment struct {
	u      universe
	ok     bool // false: no candle yet, so no price and no universe
	levels []heatmap.Level
	tops   [2]map[int64]bool // per side, computed when first needed
	nearLo int64
	nearHi int64
}

func newMoment(eng *heatmap.Engine, levels []heatmap.Level) *moment {
	last, ok := eng.Last()
	if !ok {
		return &moment{}
	}
	u, ok := newUniverse(last.Close, eng.Params().BinSize)
	if !ok {
		return &moment{}
	}
	m := &moment{u: u, ok: true, levels: levels}
	m.nearLo, m.nearHi = u.nearest()
	return m
}

// score adds l to t. A liquidation outside the universe, or before any
// candle, counts in the notional and is a miss for every scorer.
func (m *moment) score(l store.Liquidation, t *Tally) {
	t.Count++
	t.Notional += l.Notional
	if !m.ok {
		return
	}
	i := m.u.bucket(l.Price)
	if i < m.u.lo || i > m.u.hi {
		return
	}
	t.Uniform += l.Notional * float64(m.u.k) / float64(m.u.n)
	if i >= m.nearLo && i <= m.nearHi {
		t.Distance += l.Notional
	}
	side := heatmap.Long
	if l.Side == store.SideShort {
		side = heatmap.Short
	}
	if m.tops[side] == nil {
		m.tops[side] = m.u.top(m.levels, side)
	}
	if m.tops[side][i] {
		t.Model += l.Notional
	}
}

// scoreDay replays candles (oldest first: the warm-up, then the day) through
// a fresh engine with p and scores each of liqs (oldest first) against the
// engine as the last candle that closed at or before the liquidation left
// it; a candle still open at that time has not happened yet for the model.
func scoreDay(ctx context.Context, p heatmap.Params, step time.Duration, candles []heatmap.Candle, liqs []store.Liquidation) (Tally, error) {
	var t Tally
	if len(liqs) == 0 {
		return t, nil
	}
	eng, err := heatmap.NewEngine(p)
	if err != nil {
		return t, fmt.Errorf("score %s model: %w", p.Model, err)
	}
	var levels []heatmap.Level
	j := 0
	for i, c := range candles {
		if i%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return t, fmt.Errorf("score %s model: %w", p.Model, err)
			}
		}
		if closes := c.OpenTime.Add(step); liqs[j].Time.Before(closes) {
			// Levels are rendered only where a liquidation needs them.
			levels = eng.AppendLevels(levels[:0])
			m := newMoment(eng, levels)
			for ; j < len(liqs) && liqs[j].Time.Before(closes); j++ {
				m.score(liqs[j], &t)
			}
			if j == len(liqs) {
				return t, nil
			}
		}
		if _, err := eng.ApplyNoLevels(c); err != nil {
			return t, fmt.Errorf("score %s model: candle %s: %w", p.Model, c.OpenTime.UTC().Format(time.RFC3339), err)
		}
	}
	// Liquidations after the last stored candle closed: the model as it
	// stands.
	m := newMoment(eng, eng.AppendLevels(levels[:0]))
	for ; j < len(liqs); j++ {
		m.score(liqs[j], &t)
	}
	return t, nil
}
