package heatmap

import (
	"fmt"
	"math"
)

// SetRenormBelow lets a test force renormalisation of the global scale (which
// real series reach only after months of closes) and returns the undo.
func SetRenormBelow(v float64) (restore func()) {
	old := renormBelow
	renormBelow = v
	return func() { renormBelow = old }
}

// Scale exposes the global volume scale, so a test can tell that it moved.
func (e *Engine) Scale() float64 { return e.s.scale }

// CheckInvariants verifies the engine's internal structures against each
// other: treap order and priorities, bucket contents and sums, per-side
// counts and sums, the dust heap, and the position arena's bookkeeping.
func (e *Engine) CheckInvariants() error {
	near := func(a, b float64) bool {
		return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))+1e-300
	}
	if !(e.s.scale > 0) {
		return fmt.Errorf("scale %g", e.s.scale)
	}
	seen := map[int32]bool{}
	for side := range e.books {
		var buckets []*bucket
		buckets = appendInOrder(buckets, e.books[side].root)
		if len(buckets) != e.books[side].n {
			return fmt.Errorf("%v: tree has %d buckets, count says %d", Side(side), len(buckets), e.books[side].n)
		}
		var check func(n *bucket) error
		check = func(n *bucket) error {
			for _, c := range []*bucket{n.left, n.right} {
				if c != nil {
					if c.prio > n.prio {
						return fmt.Errorf("%v: treap priority violated at %g", Side(side), n.key)
					}
					if err := check(c); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if r := e.books[side].root; r != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		live := 0
		var sum float64
		for i, b := range buckets {
			if i > 0 && !(buckets[i-1].key < b.key) {
				return fmt.Errorf("%v: keys not ascending: %g then %g", Side(side), buckets[i-1].key, b.key)
			}
			if len(b.ids) == 0 {
				return fmt.Errorf("%v: empty bucket %g in the tree", Side(side), b.key)
			}
			var bs float64
			for j, id := range b.ids {
				p := e.pos[id]
				if seen[id] {
					return fmt.Errorf("position %d in two places", id)
				}
				seen[id] = true
				if Side(p.side) != Side(side) || p.key != b.key || bucketOf(p.liq, e.p.BinSize) != b.key {
					return fmt.Errorf("%v: position %d (%+v) in bucket %g", Side(side), id, p, b.key)
				}
				if j > 0 && !e.before(Side(side), b.ids[j-1], id) {
					return fmt.Errorf("%v: bucket %g out of order at %d", Side(side), b.key, j)
				}
				if p.heap < 0 || int(p.heap) >= len(e.dust) || e.dust[p.heap].id != id || e.dust[p.heap].vol != p.vol {
					return fmt.Errorf("position %d has a bad heap index %d", id, p.heap)
				}
				bs += p.vol
			}
			if !near(b.sum.value(), bs) {
				return fmt.Errorf("%v: bucket %g sum %g, positions add up to %g", Side(side), b.key, b.sum.value(), bs)
			}
			live += len(b.ids)
			sum += b.sum.value()
		}
		ss := e.s.side[side]
		if live != ss.live {
			return fmt.Errorf("%v: %d positions in buckets, live says %d", Side(side), live, ss.live)
		}
		if ss.created-ss.consumed-ss.dropped != ss.live {
			return fmt.Errorf("%v: created − consumed − dropped != live: %+v", Side(side), ss)
		}
		if !near(ss.sum.value(), sum) {
			return fmt.Errorf("%v: side sum %g, buckets add up to %g", Side(side), ss.sum.value(), sum)
		}
	}
	if len(e.dust) != len(seen) {
		return fmt.Errorf("dust heap has %d entries for %d live positions", len(e.dust), len(seen))
	}
	for i := 1; i < len(e.dust); i++ {
		if e.dust[i].vol < e.dust[(i-1)/dustArity].vol {
			return fmt.Errorf("dust heap order violated at %d", i)
		}
	}
	pending := 0
	for _, op := range e.ops {
		switch op.kind {
		case opDetach:
			for _, b := range appendInOrder(nil, op.b) {
				pending += len(b.ids)
			}
		case opCut:
			pending += int(op.hi - op.lo)
		case opDrop:
			pending++
		case opWipe:
			pending += int(op.lo)
		}
	}
	if len(e.free)+len(seen)+pending != len(e.pos) {
		return fmt.Errorf("arena: %d free + %d live + %d awaiting commit != %d slots", len(e.free), len(seen), pending, len(e.pos))
	}
	return nil
}
