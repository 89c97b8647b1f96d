package hub

import (
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// Frame is one published snapshot frame shared by every subscriber. Its gws
// Broadcaster builds the wire frame (and compresses it) once, however many
// connections write it.
//
// A Broadcaster frees its buffer once closed and its started writes finish,
// so a Frame is reference counted: whoever keeps it past the call that handed
// it over (a connection queueing it) must Retain it and Release it later.
type Frame struct {
	Symbol string
	Bytes  []byte
	// Order rises with every frame the hub publishes for Symbol, so a
	// subscriber can refuse a frame not newer than one it already has.
	Order uint64
	// Stamp is the producer's timestamp from the frame's envelope, zero if
	// it has none: the clock update intervals are paced on.
	Stamp time.Time
	// Epoch and Seq name the frame (from its envelope; 0 when absent), and
	// BaseSeq the frame of the same epoch its delta applies to.
	Epoch, Seq, BaseSeq uint64
	// Delta is the delta frame to this one, nil without one.
	Delta []byte

	b, db *gws.Broadcaster // db is nil without a delta
	refs  atomic.Int64
}

// NewFrame wraps payload, holding one reference for the caller.
func NewFrame(symbol string, payload []byte) *Frame { return NewFrameDelta(symbol, payload, nil) }

// NewFrameDelta wraps payload and the delta frame to it from an earlier
// frame. A delta that does not name payload's epoch and seq, or names no
// base, is left out: a client can always be sent the whole frame.
func NewFrameDelta(symbol string, payload, delta []byte) *Frame {
	f := &Frame{Symbol: symbol, Bytes: payload, b: gws.NewBroadcaster(gws.OpcodeText, payload)}
	f.Stamp, _ = protocol.PeekTimestamp(payload)
	f.Epoch, f.Seq, _ = protocol.PeekEpochSeq(payload)
	if delta != nil {
		de, ds, ok := protocol.PeekEpochSeq(delta)
		base, bok := protocol.PeekBaseSeq(delta)
		if ok && bok && de == f.Epoch && ds == f.Seq && f.Epoch > 0 && base < ds {
			f.Delta, f.BaseSeq = delta, base
			f.db = gws.NewBroadcaster(gws.OpcodeText, delta)
		}
	}
	f.refs.Store(1)
	return f
}

// Retain takes a reference.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release drops a reference; the last one frees the broadcast buffer.
func (f *Frame) Release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		f.b.Close()
		if f.db != nil {
			f.db.Close()
		}
	case n < 0:
		panic("hub: Frame released more often than retained")
	}
}

// WriteTo queues the frame on conn without blocking; done runs after the write.
// The caller must hold a reference until WriteTo returns.
func (f *Frame) WriteTo(conn *gws.Conn, done func(error)) error {
	return f.b.Broadcast(conn, done)
}

// Follows reports whether the frame's delta applies to the frame epoch/seq.
func (f *Frame) Follows(epoch, seq uint64) bool {
	return f.db != nil && epoch == f.Epoch && seq == f.BaseSeq
}

// WriteDeltaTo queues the delta frame on conn, as WriteTo does the frame;
// only for a frame with a delta (Follows).
func (f *Frame) WriteDeltaTo(conn *gws.Conn, done func(error)) error {
	return f.db.Broadcast(conn, done)
}
