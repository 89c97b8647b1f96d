package heatmap

// The dust heap holds every live position of both sides, smallest stored
// volume first. A pro-rata close multiplies every true volume by the same
// factor, which leaves the order of stored volumes unchanged, so the positions
// a close pushes under MinPositionVolume are exactly a prefix of this order:
// a close pops them instead of scanning the book. It is 4-ary because a
// liquidated position must be taken out from the middle, and a shallower heap
// touches fewer cache lines on the way down.

// dustEntry copies the stored volume so that sifting compares without
// reaching into the position arena.
type dustEntry struct {
	vol float64
	id  int32
}

const dustArity = 4

func (e *Engine) dustPush(id int32) {
	e.dust = append(e.dust, dustEntry{vol: e.pos[id].vol, id: id})
	e.dustUp(len(e.dust) - 1)
}

// dustRemove takes out the entry at index i (a position's heap field).
func (e *Engine) dustRemove(i int32) {
	last := len(e.dust) - 1
	e.pos[e.dust[i].id].heap = -1
	if int(i) == last {
		e.dust = e.dust[:last]
		return
	}
	e.dust[i] = e.dust[last]
	e.dust = e.dust[:last]
	if !e.dustUp(int(i)) {
		e.dustDown(int(i))
	}
}

// dustUp restores the heap above i and reports whether the entry moved.
func (e *Engine) dustUp(i int) bool {
	x := e.dust[i]
	start := i
	for i > 0 {
		p := (i - 1) / dustArity
		if !(x.vol < e.dust[p].vol) {
			break
		}
		e.dust[i] = e.dust[p]
		e.pos[e.dust[i].id].heap = int32(i)
		i = p
	}
	e.dust[i] = x
	e.pos[x.id].heap = int32(i)
	return i != start
}

func (e *Engine) dustDown(i int) {
	x := e.dust[i]
	n := len(e.dust)
	for {
		c := dustArity*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+dustArity && k < n; k++ {
			if e.dust[k].vol < e.dust[m].vol {
				m = k
			}
		}
		if !(e.dust[m].vol < x.vol) {
			break
		}
		e.dust[i] = e.dust[m]
		e.pos[e.dust[i].id].heap = int32(i)
		i = m
	}
	e.dust[i] = x
	e.pos[x.id].heap = int32(i)
}
