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
	// lastSeq per symbol; touched only by the read loop.
	lastSeq map[string]uint64
	closing atomic.Bool // set before the pool closes it, so the close is not counted
	// flagged: the server told this client it is slow (SLOW_CONSUMER or 4008).
	flagged atomic.Bool
	closed  chan struct{}
}

// closeSlowConsumer is the gateway's close code for a client that cannot keep up.
const closeSlowConsumer = 4008

var (
	keySymbol = []byte(`"symbol":"`)
	keySeq    = []byte(`"seq":`)
	keyCode   = []byte(`"code":"`)
	snapshot  = []byte(`{"type":"snapshot"`)
	warning   = []byte(`{"type":"warning"`)
	errFrame  = []byte(`{"type":"error"`)
)

// OnMessage scans the envelope as a relay would and never decodes the
// payload, so the generator's own CPU stays small next to the target's.
func (c *client) OnMessage(_ *gws.Conn, m *gws.Message) {
	now := time.Now()
	defer m.Close()
	b := m.Bytes()
	switch {
	case bytes.HasPrefix(b, snapshot):
		c.snapshot(now, b)
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

func (c *client) snapshot(now time.Time, b []byte) {
	c.class.frames.Add(1)
	head := b[:min(len(b), 200)]
	if sym := peekString(head, keySymbol); sym != "" {
		if seq, ok := peekUint(head, keySeq); ok {
			last := c.lastSeq[sym]
			switch {
			case last == 0:
			case seq > last+1:
				c.class.gaps.Add(int64(seq - last - 1))
			case seq <= last:
				c.class.outOfOrder.Add(1)
			}
			if seq > last {
				c.lastSeq[sym] = seq
			}
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
