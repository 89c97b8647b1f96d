package heatmap

import "math"

// ksum is a compensated (Neumaier) running sum. Bucket and side totals are
// updated by adding and removing positions for years; a plain float sum would
// keep the rounding error of every large position that ever passed through,
// which matters once only small ones are left. With the compensation term the
// error stays near one rounding of the current value.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *ksum) sub(o ksum) {
	k.add(-o.s)
	k.add(-o.c)
}

func (k ksum) value() float64 { return k.s + k.c }

// bucket is one price bucket of one side and, at the same time, a node of
// that side's treap. ids are its positions in liquidation order reversed:
// the one price reaches first is last, so a liquidation is a truncation.
// Longs are kept by (liq, seq) ascending, shorts by liq descending then seq.
type bucket struct {
	key         float64 // floor(liq/bin)·bin
	sum         ksum    // stored volume of ids
	ids         []int32
	left, right *bucket
	prio        uint64
}

// tree is a treap of buckets keyed by price. A treap gives the two cuts the
// model needs (everything above a price for longs, below for shorts) as one
// O(log n) split, so a candle never walks buckets it does not liquidate.
type tree struct {
	root *bucket
	n    int // buckets
}

func (t *tree) find(key float64) *bucket {
	n := t.root
	for n != nil {
		switch {
		case key < n.key:
			n = n.left
		case key > n.key:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// split divides n into keys below key (at or below, when inclusive) and the rest.
func split(n *bucket, key float64, inclusive bool) (lo, hi *bucket) {
	if n == nil {
		return nil, nil
	}
	if n.key < key || (inclusive && n.key == key) {
		n.right, hi = split(n.right, key, inclusive)
		return n, hi
	}
	lo, n.left = split(n.left, key, inclusive)
	return lo, n
}

// merge joins two treaps whose keys do not interleave (all of a below b).
func merge(a, b *bucket) *bucket {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = merge(a.right, b)
		return a
	default:
		b.left = merge(a, b.left)
		return b
	}
}

// insert adds b, whose key must not be present and whose children are nil.
func (t *tree) insert(b *bucket) {
	lo, hi := split(t.root, b.key, false)
	t.root = merge(merge(lo, b), hi)
	t.n++
}

// remove takes b out of the tree and clears its links.
func (t *tree) remove(b *bucket) {
	t.root = removeKey(t.root, b.key)
	t.n--
}

func removeKey(n *bucket, key float64) *bucket {
	switch {
	case n == nil:
		return nil
	case key < n.key:
		n.left = removeKey(n.left, key)
		return n
	case key > n.key:
		n.right = removeKey(n.right, key)
		return n
	}
	m := merge(n.left, n.right)
	n.left, n.right = nil, nil
	return m
}

// appendInOrder appends n's buckets in ascending price.
func appendInOrder(dst []*bucket, n *bucket) []*bucket {
	for n != nil {
		dst = appendInOrder(dst, n.left)
		dst = append(dst, n)
		n = n.right
	}
	return dst
}
