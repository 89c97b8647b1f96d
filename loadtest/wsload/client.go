package wsload

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// client is one WebSocket connection and what it has read.
type client struct {
	gws.BuiltinEventHandler
	idx       int
	class     *class
	recording *atomic.Bool // the pool's: keep latencies
	conn      *gws.Conn
	wire      *countingConn
	// payload counts the bytes of every message read, as the application
	// sees them (inflated, when deflate is on).
	payload atomic.Int64
	// last is the newest frame read per symbol; touched only by the read loop.
	last    map[string]frameID
	closing atomic.Bool // set before the pool closes it, so the close is not counted
	// flagged: the server told this client it is slow (SLOW_CONSUMER or 4008).
	flagged atomic.Bool
	closed  chan struct{}
}

// frameID names a frame of a symbol: epoch 0 for a producer without one.
type frameID struct{ epoch, seq uint64 }

// closeSlowConsumer is the gateway's close code for a client that cannot keep up.
const closeSlowConsumer = 4008

var (
	keySymbol  = []byte(`"symbol":"`)
	keySeq     = []byte(`"seq":`)
	keyEpoch   = []byte(`"epoch":`)
	keyBaseSeq = []byte(`"base_seq":`)
	keyCode    = []byte(`"code":"`)
	keyData    = []byte(`"data":`)
	snapshot   = []byte(`{"type":"snapshot"`)
	delta      = []byte(`{"type":"delta"`)
	warning    = []byte(`{"type":"warning"`)
	errFrame   = []byte(`{"type":"error"`)
)

// OnMessage scans the envelope as a relay would and never decodes the
// payload, so the generator's own CPU stays small next to the target's.
func (c *client) OnMessage(_ *gws.Conn, m *gws.Message) {
	now := time.Now()
	defer m.Close()
	b := m.Bytes()
	c.payload.Add(int64(len(b)))
	switch {
	case bytes.HasPrefix(b, snapshot):
		c.frame(now, b, false)
	case bytes.HasPrefix(b, delta):
		c.frame(now, b, true)
	case bytes.HasPrefix(b, warning):
		code := peekString(b, keyCode)
		if code == protocol.WarnSlowConsumer {
			c.flagged.Store(true)
		}
		c.class.count(&c.class.warnings, code)
	case bytes.HasPrefix(b, errFrame):
		c.class.count(&c.class.errors, peekString(b, keyCode))
	default:
		c.class.other.Add(1)
	}
}

// frame accounts for a snapshot or a delta frame. A delta stands for the
// snapshot of the same seq and timestamp, so both count alike as frames for
// losses and latency. A delta must also continue the client's chain: its
// base_seq is the last seq read of the symbol, in the same epoch; any other
// delta is one the client could not apply, a chain break.
func (c *client) frame(now time.Time, b []byte, isDelta bool) {
	c.class.frames.Add(1)
	head := envelope(b)
	sym := peekString(head, keySymbol)
	seq, okSeq := peekUint(head, keySeq)
	epoch, _ := peekUint(head, keyEpoch)
	last, have := c.last[sym]
	if isDelta {
		c.class.deltas.Add(1)
		base, okBase := peekUint(head, keyBaseSeq)
		if !okBase || !okSeq || !have || base != last.seq || epoch != last.epoch {
			c.class.chainBreaks.Add(1)
		}
	}
	if sym != "" && okSeq {
		switch {
		case !have:
		case epoch != last.epoch:
			// A new producer (a snapshotter restart): its seqs start afresh.
		case seq > last.seq+1:
			c.class.gaps.Add(int64(seq - last.seq - 1))
		case seq <= last.seq:
			c.class.outOfOrder.Add(1)
		}
		if !have || epoch != last.epoch || seq > last.seq {
			c.last[sym] = frameID{epoch, seq}
		}
	}
	if !c.recording.Load() {
		return
	}
	if ts, ok := protocol.PeekTimestamp(b); ok {
		c.class.latency.add(c.idx, now.Sub(ts))
	}
}

func (c *client) OnClose(_ *gws.Conn, err error) {
	defer close(c.closed)
	if c.closing.Load() {
		return
	}
	code := "abnormal"
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		code = strconv.Itoa(int(ce.Code))
		if ce.Code == closeSlowConsumer {
			c.flagged.Store(true)
		}
	}
	c.class.count(&c.class.closes, code)
}

// envelope is b's head up to its "data": the fields a relay peeks, so the
// payload's own keys are never mistaken for them.
func envelope(b []byte) []byte {
	head := b[:min(len(b), 240)]
	if i := bytes.Index(head, keyData); i >= 0 {
		head = head[:i]
	}
	return head
}

// peekString returns the string value after key in b ("" if absent).
func peekString(b, key []byte) string {
	i := bytes.Index(b, key)
	if i < 0 {
		return ""
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 64 {
		return ""
	}
	return string(rest[:j])
}

// peekUint returns the unsigned integer after key in b.
func peekUint(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	var v uint64
	n := 0
	for _, d := range b[i+len(key):] {
		if d < '0' || d > '9' {
			break
		}
		v = v*10 + uint64(d-'0')
		n++
	}
	return v, n > 0
}

// countingConn counts the bytes read off the socket (compressed, when
// deflate is on) and, for a slow reader, reads no faster than rate bytes/s.
type countingConn struct {
	net.Conn
	read atomic.Int64
	rate int // bytes per second; 0 = unlimited
	next time.Time
}

func (c *countingConn) Read(p []byte) (int, error) {
	if c.rate > 0 {
		// At most a tenth of a second's worth per read, then wait until that
		// much time has passed: the socket buffers fill and the server sees a
		// reader that keeps up with rate bytes/s and no more.
		p = p[:min(len(p), max(1, c.rate/10))]
		if d := time.Until(c.next); d > 0 {
			time.Sleep(d)
		}
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	if c.rate > 0 {
		c.next = time.Now().Add(time.Duration(n) * time.Second / time.Duration(c.rate))
	}
	return n, err
}
