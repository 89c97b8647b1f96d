package heatmap

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// renormBelow is how small the global scale may get before stored volumes
// are rescaled; far from float64's range so that new positions (stored as
// volume/scale) never overflow. A variable so that a test can force it.
var renormBelow = 0x1p-500

// position is one synthetic position. Its true volume is vol·scale, so that a
// pro-rata close is one multiplication of the engine's scale.
type position struct {
	liq  float64 // liquidation price
	key  float64 // bucket price, floor(liq/bin)·bin
	vol  float64 // stored volume
	seq  uint64  // creation order: breaks liq ties so that undo restores bucket order exactly
	heap int32   // index in the dust heap
	side uint8
}

// tierPrice is a tier with its liquidation price as a multiple of the entry,
// computed once per engine.
type tierPrice struct{ weight, long, short float64 }

// sideState is one side's totals; volumes in sum are stored units, the
// cumulative ones are true USDT.
type sideState struct {
	sum                        ksum
	opened, liquidated, closed float64
	created, consumed, dropped int
	live                       int
}

// state is every scalar a candle changes, kept together so that one copy
// saves it for Revise.
type state struct {
	side    [2]sideState
	scale   float64
	seq     uint64
	last    Candle
	hasLast bool
}

type opKind uint8

const (
	opDetach opKind = iota // b is a subtree of wholly liquidated buckets; lo holds their count
	opCut                  // cut[lo:hi] were liquidated from the end of b
	opCreate               // id was added to b
	opDrop                 // id left b under the dust floor
	opWipe                 // a close of factor 1 dropped the whole book, now in Engine.wiped; lo holds its size
)

// undoOp is one change of the last candle. Ops are undone in reverse, so each
// restores the bucket exactly as the op found it.
type undoOp struct {
	b      *bucket
	old    ksum // b.sum before the op
	id     int32
	lo, hi int32
	kind   opKind
	side   uint8
	flag   bool // opCreate: b was new; opCut, opDrop: b was emptied and left the tree
}

// Engine is the incremental heatmap: Apply adds a candle, Revise replaces the
// still-open last one. A candle costs O(log n) per position it opens,
// liquidates or drops plus O(1) per bucket it liquidates whole, never a pass
// over the book: each side is a price-ordered treap of buckets (one split
// finds everything the range reached), each bucket a sorted slice of its
// positions with a running total (so a snapshot costs O(levels)), a pro-rata
// close is one multiplication of a global scale, and a heap by volume yields
// the positions a close pushes under the dust floor. Revise undoes the last
// candle from a log of its changes, O(changes), and applies the new version.
//
// It is not safe for concurrent use; the read-only methods (Levels,
// AppendLevels, Totals, Live, Last, Params) may run concurrently with each
// other but not with Apply or Revise.
type Engine struct {
	p     Params // effective: defaults filled, brackets resolved
	tiers []tierPrice
	books [2]tree
	pos   []position // arena; ids index it
	free  []int32
	dust  []dustEntry
	s     state
	saved state // s before the last candle
	ops   []undoOp
	cut   []int32
	wiped struct { // the book a close of factor 1 dropped, kept for Revise
		books [2]tree
		dust  []dustEntry
	}
	dustSpare []dustEntry // the other heap buffer, so that a wipe need not copy
	spare     []*bucket   // emptied buckets for reuse
	walk      []*bucket   // scratch for walking a subtree
	rng       uint64      // treap priorities
}

// NewEngine validates p and returns an engine with no positions.
func NewEngine(p Params) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	e := &Engine{p: p, rng: 0x9e3779b97f4a7c15}
	e.s.scale = 1
	br := bracketFor(p.Brackets, p.PositionNotional)
	for _, t := range p.Tiers {
		if t.Weight == 0 {
			continue
		}
		L := t.Leverage
		tp := tierPrice{weight: t.Weight}
		if p.Model == ModelBinance {
			r := br.Cum / p.PositionNotional
			tp.long = (1 - 1/L - r) / (1 - br.MMR)
			tp.short = (1 + 1/L + r) / (1 + br.MMR)
		} else {
			// Written as the reference writes it, so that entry·factor rounds
			// to the same liquidation price, bit for bit.
			tp.long = 1 - 1/L + p.MMR/L
			tp.short = 1 + 1/L - p.MMR/L
		}
		e.tiers = append(e.tiers, tp)
	}
	return e, nil
}

// Params returns the parameters in effect: defaults filled in, brackets resolved.
func (e *Engine) Params() Params {
	p := e.p
	p.Tiers = slices.Clone(p.Tiers)
	p.Brackets = slices.Clone(p.Brackets)
	return p
}

// Apply adds a candle after the last one and returns the snapshot after it.
// An error (candle not after the last, or not finite) leaves the engine as it was.
func (e *Engine) Apply(c Candle) (Snapshot, error) { return e.apply(c, true) }

// ApplyNoLevels is Apply without rendering Snapshot.Levels (left nil), for
// callers that advance many candles and render only some, such as a catch-up
// replay; Levels renders the current buckets on demand.
func (e *Engine) ApplyNoLevels(c Candle) (Snapshot, error) { return e.apply(c, false) }

// Revise replaces the last candle (same OpenTime) with c, as when the open
// kline or its OI average updates, and returns what a replay ending with c
// would. It may be called any number of times in a row.
func (e *Engine) Revise(c Candle) (Snapshot, error) { return e.revise(c, true) }

// ReviseNoLevels is Revise without rendering Snapshot.Levels, like ApplyNoLevels.
func (e *Engine) ReviseNoLevels(c Candle) (Snapshot, error) { return e.revise(c, false) }

func (e *Engine) apply(c Candle, render bool) (Snapshot, error) {
	if err := checkCandle(c); err != nil {
		return Snapshot{}, err
	}
	if e.s.hasLast && !c.OpenTime.After(e.s.last.OpenTime) {
		return Snapshot{}, fmt.Errorf("heatmap: candle at %s is not after the last one at %s (to update the open candle, use Revise)",
			c.OpenTime.Format(time.RFC3339Nano), e.s.last.OpenTime.Format(time.RFC3339Nano))
	}
	e.commit()
	return e.advance(c, render), nil
}

func (e *Engine) revise(c Candle, render bool) (Snapshot, error) {
	if !e.s.hasLast {
		return Snapshot{}, fmt.Errorf("heatmap: revise at %s: no candle applied yet", c.OpenTime.Format(time.RFC3339Nano))
	}
	if !c.OpenTime.Equal(e.s.last.OpenTime) {
		return Snapshot{}, fmt.Errorf("heatmap: revise at %s: the last candle opened at %s; only the last candle can be revised",
			c.OpenTime.Format(time.RFC3339Nano), e.s.last.OpenTime.Format(time.RFC3339Nano))
	}
	if err := checkCandle(c); err != nil {
		return Snapshot{}, err
	}
	e.rollback()
	return e.advance(c, render), nil
}

// checkCandle rejects values that would put NaN into the price order.
func checkCandle(c Candle) error {
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"open", c.Open}, {"high", c.High}, {"low", c.Low}, {"close", c.Close}} {
		if !(f.v >= 0) || math.IsInf(f.v, 1) {
			return fmt.Errorf("heatmap: candle at %s: %s %g is not a finite non-negative price", c.OpenTime.Format(time.RFC3339Nano), f.name, f.v)
		}
	}
	if c.HasOI && (!(c.OIValue >= 0) || math.IsInf(c.OIValue, 1)) {
		return fmt.Errorf("heatmap: candle at %s: open interest %g is not a finite non-negative value", c.OpenTime.Format(time.RFC3339Nano), c.OIValue)
	}
	return nil
}

// advance runs the model's four steps for c on top of the current state.
func (e *Engine) advance(c Candle, render bool) Snapshot {
	if e.s.scale < renormBelow {
		e.renormalise()
	}
	e.saved = e.s
	consumed := e.consume(c)
	created, dropped := 0, 0
	if d := e.deltaOI(c); d > 0 {
		created = e.create(c, d)
	} else if d < 0 {
		dropped = e.close(-d)
	}
	e.s.last, e.s.hasLast = c, true
	s := Snapshot{
		Candle:            c,
		CurrentPrice:      c.Close,
		PositionsCreated:  created,
		PositionsConsumed: consumed,
		PositionsDropped:  dropped,
		TotalLongVolume:   e.remaining(Long),
		TotalShortVolume:  e.remaining(Short),
	}
	if render {
		s.Levels = e.Levels()
	}
	return s
}

// deltaOI is the change in open interest the model reacts to; a gap in the OI
// series, or in the candles (AfterGap), yields 0 rather than a fake jump from
// or to nothing, or a whole gap's change booked at one candle.
func (e *Engine) deltaOI(c Candle) float64 {
	if !e.s.hasLast || !e.s.last.HasOI || !c.HasOI || c.AfterGap {
		return 0
	}
	return c.OIValue - e.s.last.OIValue
}

func (e *Engine) remaining(s Side) float64 { return e.s.side[s].sum.value() * e.s.scale }

// consume liquidates what the candle's range reached. Bucketing is monotone
// in price, so for longs every bucket above Low's bucket is wholly liquidated
// (one split), Low's own bucket partly, and nothing below; shorts mirror it.
func (e *Engine) consume(c Candle) int {
	n := 0
	lb := &e.books[Long]
	if lb.root != nil {
		kl := bucketOf(c.Low, e.p.BinSize)
		rest, top := split(lb.root, kl, true)
		lb.root = rest
		if top != nil {
			n += e.liquidateTree(Long, top)
		}
		if b := lb.find(kl); b != nil {
			n += e.cutBucket(Long, b, c.Low)
		}
	}
	sb := &e.books[Short]
	if sb.root != nil {
		kh := bucketOf(c.High, e.p.BinSize)
		bottom, rest := split(sb.root, kh, false)
		sb.root = rest
		if bottom != nil {
			n += e.liquidateTree(Short, bottom)
		}
		if b := sb.find(kh); b != nil {
			n += e.cutBucket(Short, b, c.High)
		}
	}
	return n
}

// liquidateTree books the detached subtree t as liquidated. Its buckets stay
// intact in the undo log until the next candle commits.
func (e *Engine) liquidateTree(side Side, t *bucket) int {
	ss := &e.s.side[side]
	e.walk = appendInOrder(e.walk[:0], t)
	n := 0
	for _, b := range e.walk {
		for _, id := range b.ids {
			e.dustRemove(e.pos[id].heap)
		}
		n += len(b.ids)
		ss.sum.sub(b.sum)
		ss.liquidated += b.sum.value() * e.s.scale
	}
	e.books[side].n -= len(e.walk)
	e.ops = append(e.ops, undoOp{kind: opDetach, side: uint8(side), b: t, lo: int32(len(e.walk))})
	ss.consumed += n
	ss.live -= n
	if ss.live == 0 {
		ss.sum = ksum{} // no residue of the subtraction
	}
	return n
}

// cutBucket liquidates the positions of b that price reached: for longs
// liq >= price, for shorts liq <= price; both are the end of b.ids.
func (e *Engine) cutBucket(side Side, b *bucket, price float64) int {
	j := len(b.ids)
	if side == Long {
		for j > 0 && e.pos[b.ids[j-1]].liq >= price {
			j--
		}
	} else {
		for j > 0 && e.pos[b.ids[j-1]].liq <= price {
			j--
		}
	}
	k := len(b.ids) - j
	if k == 0 {
		return 0
	}
	ss := &e.s.side[side]
	op := undoOp{kind: opCut, side: uint8(side), b: b, old: b.sum, lo: int32(len(e.cut))}
	for _, id := range b.ids[j:] {
		p := &e.pos[id]
		e.dustRemove(p.heap)
		b.sum.add(-p.vol)
		ss.sum.add(-p.vol)
		ss.liquidated += p.vol * e.s.scale
	}
	e.cut = append(e.cut, b.ids[j:]...)
	op.hi = int32(len(e.cut))
	b.ids = b.ids[:j]
	if j == 0 {
		e.books[side].remove(b)
		b.sum = ksum{}
		op.flag = true
	}
	e.ops = append(e.ops, op)
	ss.consumed += k
	ss.live -= k
	if ss.live == 0 {
		ss.sum = ksum{}
	}
	return k
}

// create opens the positions of a candle whose OI rose by d.
func (e *Engine) create(c Candle, d float64) int {
	if e.p.Model == ModelBinance {
		entry := (c.High + c.Low + c.Close) / 3
		long, short := d*e.p.LongShare, d*(1-e.p.LongShare)
		for _, t := range e.tiers {
			liq := entry * t.long
			if liq <= 0 {
				liq = 0 // a long that cannot be liquidated; also turns −0 into 0
			}
			e.open(Long, liq, long*t.weight)
			e.open(Short, entry*t.short, short*t.weight)
		}
		return 2 * len(e.tiers)
	}
	side := Long
	if c.Close < c.Open {
		side = Short
	}
	for _, t := range e.tiers {
		f := t.long
		if side == Short {
			f = t.short
		}
		e.open(side, c.Close*f, d*t.weight)
	}
	return len(e.tiers)
}

func (e *Engine) open(side Side, liq, vol float64) {
	id := e.alloc()
	stored := vol / e.s.scale
	key := bucketOf(liq, e.p.BinSize)
	e.pos[id] = position{liq: liq, key: key, vol: stored, seq: e.s.seq, side: uint8(side)}
	e.s.seq++
	bk := &e.books[side]
	op := undoOp{kind: opCreate, side: uint8(side), id: id}
	b := bk.find(key)
	if b == nil {
		b = e.newBucket(key)
		bk.insert(b)
		op.flag = true
	}
	op.b, op.old = b, b.sum
	e.insertID(side, b, id)
	b.sum.add(stored)
	ss := &e.s.side[side]
	ss.sum.add(stored)
	ss.opened += vol
	ss.created++
	ss.live++
	e.dustPush(id)
	e.ops = append(e.ops, op)
}

// close shrinks every position pro rata for an OI drop of d > 0, by scaling
// instead of touching them, and drops those now under the dust floor.
func (e *Engine) close(d float64) int {
	sc := e.s.scale
	rl, rs := e.remaining(Long), e.remaining(Short)
	total := rl + rs
	if !(total > 0) {
		return 0
	}
	factor := min(d/total, 1)
	keep := 1 - factor
	e.s.side[Long].closed += rl * (1 - keep)
	e.s.side[Short].closed += rs * (1 - keep)
	if keep == 0 {
		return e.wipe()
	}
	ns := sc * keep
	e.s.scale = ns
	n := 0
	for len(e.dust) > 0 && e.dust[0].vol*ns < MinPositionVolume {
		e.drop(e.dust[0].id)
		n++
	}
	if e.s.side[Long].live+e.s.side[Short].live == 0 {
		e.s.scale = 1 // an empty book can start afresh; also undoes keep = 0
	}
	return n
}

// wipe is the dust loop for keep = 0, where every position ends at 0 and is
// dropped: it sets the whole book aside in O(1) instead of popping it
// position by position, with the same result bit for bit (each drop would
// add 0 to closed, and an emptied side's sum is reset to 0).
func (e *Engine) wipe() int {
	n := e.s.side[Long].live + e.s.side[Short].live
	e.wiped.books, e.wiped.dust = e.books, e.dust
	e.books, e.dust, e.dustSpare = [2]tree{}, e.dustSpare[:0], nil
	for side := range e.s.side {
		ss := &e.s.side[side]
		ss.dropped += ss.live
		ss.live = 0
		ss.sum = ksum{}
	}
	e.s.scale = 1
	e.ops = append(e.ops, undoOp{kind: opWipe, lo: int32(n)})
	return n
}

// drop removes a position the dust floor took; what it still held was closed.
func (e *Engine) drop(id int32) {
	p := &e.pos[id]
	side := Side(p.side)
	bk := &e.books[side]
	b := bk.find(p.key)
	op := undoOp{kind: opDrop, side: p.side, b: b, old: b.sum, id: id}
	e.dustRemove(p.heap)
	e.removeID(side, b, id)
	b.sum.add(-p.vol)
	ss := &e.s.side[side]
	ss.sum.add(-p.vol)
	ss.closed += p.vol * e.s.scale
	ss.dropped++
	ss.live--
	if len(b.ids) == 0 {
		bk.remove(b)
		b.sum = ksum{}
		op.flag = true
	}
	if ss.live == 0 {
		ss.sum = ksum{}
	}
	e.ops = append(e.ops, op)
}

// commit makes the last candle permanent: what it removed can be reused.
func (e *Engine) commit() {
	// After a wipe no position is alive: the arena restarts instead of
	// listing every slot as free.
	wiped := len(e.ops) > 0 && e.ops[len(e.ops)-1].kind == opWipe
	for i := range e.ops {
		op := &e.ops[i]
		switch op.kind {
		case opDetach:
			e.walk = appendInOrder(e.walk[:0], op.b)
			for _, b := range e.walk {
				if !wiped {
					for _, id := range b.ids {
						e.release(id)
					}
				}
				e.recycle(b)
			}
		case opCut:
			if !wiped {
				for _, id := range e.cut[op.lo:op.hi] {
					e.release(id)
				}
			}
			if op.flag {
				e.recycle(op.b)
			}
		case opDrop:
			if !wiped {
				e.release(op.id)
			}
			if op.flag {
				e.recycle(op.b)
			}
		case opWipe:
			e.pos, e.free = e.pos[:0], e.free[:0]
			e.dustSpare = e.wiped.dust[:0]
			e.wiped.books, e.wiped.dust = [2]tree{}, nil // its buckets go to the GC
		}
		op.b = nil
	}
	e.ops, e.cut = e.ops[:0], e.cut[:0]
}

// rollback undoes the last candle, newest change first, and restores the
// scalars saved before it, so the state is bit for bit what it was.
func (e *Engine) rollback() {
	for i := len(e.ops) - 1; i >= 0; i-- {
		op := &e.ops[i]
		side := Side(op.side)
		bk := &e.books[side]
		switch op.kind {
		case opWipe:
			e.dustSpare = e.dust[:0]
			e.books, e.dust = e.wiped.books, e.wiped.dust
			e.wiped.books, e.wiped.dust = [2]tree{}, nil
		case opCreate:
			e.dustRemove(e.pos[op.id].heap)
			e.removeID(side, op.b, op.id)
			op.b.sum = op.old
			if op.flag {
				bk.remove(op.b)
				e.recycle(op.b)
			}
			e.release(op.id)
		case opDrop:
			if op.flag {
				bk.insert(op.b)
			}
			e.insertID(side, op.b, op.id)
			op.b.sum = op.old
			e.dustPush(op.id)
		case opCut:
			if op.flag {
				bk.insert(op.b)
			}
			ids := e.cut[op.lo:op.hi]
			op.b.ids = append(op.b.ids, ids...)
			op.b.sum = op.old
			for _, id := range ids {
				e.dustPush(id)
			}
		case opDetach:
			e.walk = appendInOrder(e.walk[:0], op.b)
			for _, b := range e.walk {
				for _, id := range b.ids {
					e.dustPush(id)
				}
			}
			if side == Long {
				bk.root = merge(bk.root, op.b)
			} else {
				bk.root = merge(op.b, bk.root)
			}
			bk.n += int(op.lo)
		}
		op.b = nil
	}
	e.ops, e.cut = e.ops[:0], e.cut[:0]
	e.s = e.saved
}

// renormalise folds the scale into the stored volumes. It multiplies by a
// power of two, which is exact, so it changes no volume and no order.
func (e *Engine) renormalise() {
	frac, exp := math.Frexp(e.s.scale)
	for i := range e.dust {
		v := math.Ldexp(e.dust[i].vol, exp)
		e.dust[i].vol = v
		e.pos[e.dust[i].id].vol = v
	}
	for side := range e.books {
		e.walk = appendInOrder(e.walk[:0], e.books[side].root)
		for _, b := range e.walk {
			b.sum = ksum{math.Ldexp(b.sum.s, exp), math.Ldexp(b.sum.c, exp)}
		}
		s := &e.s.side[side].sum
		*s = ksum{math.Ldexp(s.s, exp), math.Ldexp(s.c, exp)}
	}
	e.s.scale = frac
}

// before reports whether position a sorts before b in a bucket of side:
// the one that price reaches later comes first.
func (e *Engine) before(side Side, a, b int32) bool {
	pa, pb := &e.pos[a], &e.pos[b]
	if pa.liq != pb.liq {
		return (pa.liq < pb.liq) == (side == Long)
	}
	return pa.seq < pb.seq
}

func (e *Engine) insertID(side Side, b *bucket, id int32) {
	lo, hi := 0, len(b.ids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if e.before(side, id, b.ids[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	b.ids = slices.Insert(b.ids, lo, id)
}

func (e *Engine) removeID(side Side, b *bucket, id int32) {
	lo, hi := 0, len(b.ids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if e.before(side, b.ids[m], id) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(b.ids) || b.ids[lo] != id {
		panic(fmt.Sprintf("heatmap: position %d missing from bucket %g", id, b.key))
	}
	b.ids = slices.Delete(b.ids, lo, lo+1)
}

func (e *Engine) alloc() int32 {
	if n := len(e.free); n > 0 {
		id := e.free[n-1]
		e.free = e.free[:n-1]
		return id
	}
	if len(e.pos) == math.MaxInt32 {
		panic("heatmap: more than 2^31 live positions")
	}
	e.pos = append(e.pos, position{})
	return int32(len(e.pos) - 1)
}

func (e *Engine) release(id int32) { e.free = append(e.free, id) }

func (e *Engine) newBucket(key float64) *bucket {
	var b *bucket
	if n := len(e.spare); n > 0 {
		b = e.spare[n-1]
		e.spare = e.spare[:n-1]
	} else {
		b = new(bucket)
	}
	// splitmix64: treap priorities need only be well spread, not secret.
	e.rng += 0x9e3779b97f4a7c15
	z := e.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	b.key, b.prio = key, z^(z>>31)
	return b
}

func (e *Engine) recycle(b *bucket) {
	*b = bucket{ids: b.ids[:0]}
	e.spare = append(e.spare, b)
}

// Levels renders the current buckets, ascending by price, non-empty only, as
// a fresh slice the caller may keep. It reads the maintained bucket totals,
// so its cost is O(levels), not O(positions).
func (e *Engine) Levels() []Level {
	return e.AppendLevels(make([]Level, 0, e.books[Long].n+e.books[Short].n))
}

// AppendLevels is Levels appending to dst, so that a caller rendering often
// can reuse one buffer.
func (e *Engine) AppendLevels(dst []Level) []Level {
	// Two in-order walks in step, merged by price. The walks only read the
	// trees, so concurrent renders do not race; their stacks live in fixed
	// arrays because a treap of n buckets is O(log n) deep (about 3·ln n
	// expected), spilling to the heap only past that.
	var lstack, sstack [64]*bucket
	ls, ss := lstack[:0], sstack[:0]
	for n := e.books[Long].root; n != nil; n = n.left {
		ls = append(ls, n)
	}
	for n := e.books[Short].root; n != nil; n = n.left {
		ss = append(ss, n)
	}
	sc := e.s.scale
	for len(ls) > 0 || len(ss) > 0 {
		var lb, sb *bucket
		if len(ls) > 0 {
			lb = ls[len(ls)-1]
		}
		if len(ss) > 0 {
			sb = ss[len(ss)-1]
		}
		var lv Level
		takeL, takeS := false, false
		switch {
		case sb == nil || (lb != nil && lb.key < sb.key):
			lv, takeL = Level{Price: lb.key, LongDensity: lb.sum.value() * sc}, true
		case lb == nil || sb.key < lb.key:
			lv, takeS = Level{Price: sb.key, ShortDensity: sb.sum.value() * sc}, true
		default:
			lv, takeL, takeS = Level{Price: lb.key, LongDensity: lb.sum.value() * sc, ShortDensity: sb.sum.value() * sc}, true, true
		}
		if takeL {
			ls = ls[:len(ls)-1]
			for n := lb.right; n != nil; n = n.left {
				ls = append(ls, n)
			}
		}
		if takeS {
			ss = ss[:len(ss)-1]
			for n := sb.right; n != nil; n = n.left {
				ss = append(ss, n)
			}
		}
		if lv.LongDensity != 0 || lv.ShortDensity != 0 {
			dst = append(dst, lv)
		}
	}
	return dst
}

// Totals returns cumulative per-side accounting since the engine started.
func (e *Engine) Totals() (long, short SideTotals) {
	return e.sideTotals(Long), e.sideTotals(Short)
}

func (e *Engine) sideTotals(s Side) SideTotals {
	ss := &e.s.side[s]
	return SideTotals{
		Opened:     ss.opened,
		Remaining:  e.remaining(s),
		Liquidated: ss.liquidated,
		Closed:     ss.closed,
		Created:    ss.created,
		Consumed:   ss.consumed,
		Dropped:    ss.dropped,
		Live:       ss.live,
	}
}

// Live returns the number of live positions on both sides.
func (e *Engine) Live() int { return e.s.side[Long].live + e.s.side[Short].live }

// Last returns the last candle applied (or revised), if any.
func (e *Engine) Last() (Candle, bool) { return e.s.last, e.s.hasLast }
