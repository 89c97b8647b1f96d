package ws

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// lingerTimeout bounds how long a closing connection is still read so the
// peer's last bytes do not turn the close into a reset. It is a bound in
// time, not bytes: a flooding client that has not yet read our close frame
// keeps sending, and cutting it off early is exactly the reset to avoid.
const lingerTimeout = 2 * time.Second

// lingerConn makes Close a lingering close, as RFC 6455 §7.1.1 and every
// HTTP server do: closing a socket whose receive buffer still holds unread
// client data makes the kernel send a TCP reset, which can destroy the
// error and close frames just written before the client reads them (a
// flooding client never learnt why it was cut). So Close shuts down only
// the sending side — the peer sees our close frame, then end of stream — and
// keeps reading and discarding until the peer closes too or lingerTimeout
// passes; only then is the socket released.
type lingerConn struct {
	net.Conn
	once   sync.Once
	closed atomic.Bool
}

// SetReadDeadline leaves a closing connection's linger deadline alone: gws
// and the idle timeout would otherwise push it out with every frame read.
func (c *lingerConn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline's counterpart for both directions.
func (c *lingerConn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

// halfCloser is a connection that can end its sending side alone.
type halfCloser interface {
	CloseWrite() error
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		hc, ok := c.Conn.(halfCloser)
		if !ok || hc.CloseWrite() != nil {
			c.Conn.Close()
			return
		}
		c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
		go func() {
			// gws's own read loop may still be reading too; whichever reader
			// sees the end, the socket is released here.
			io.Copy(io.Discard, c.Conn)
			c.Conn.Close()
		}()
	})
	return nil
}
