// Package wsclient is a small real WebSocket client for /ws/heatmap, used by
// tests and the load generator: it queues every frame it reads, stamped with
// the moment it was read.
package wsclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Frame is one text frame as read.
type Frame struct {
	Bytes []byte
	Read  time.Time
}

// Client is one connection.
type Client struct {
	conn   *gws.Conn
	frames chan Frame
	closed chan struct{}
	err    error
	pings  atomic.Int64

	// stop unblocks a reader parked on a full buffer when the owner closes;
	// without it a stalled reader could never finish its read loop.
	stop     chan struct{}
	stopOnce sync.Once
}

type handler struct {
	gws.BuiltinEventHandler
	c *Client
}

func (h *handler) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	f := Frame{Bytes: append([]byte(nil), m.Bytes()...), Read: time.Now()}
	select {
	case h.c.frames <- f:
	case <-h.c.stop:
	}
}

// OnPing counts the server's pings before answering them as gws does.
func (h *handler) OnPing(c *gws.Conn, payload []byte) {
	h.c.pings.Add(1)
	_ = c.WritePong(payload)
}

func (h *handler) OnClose(_ *gws.Conn, err error) {
	h.c.err = err
	close(h.c.closed)
}

// Options tune a dial.
type Options struct {
	// Header is sent with the upgrade request (e.g. Origin).
	Header http.Header
	// Buffer is how many unread frames are queued before reading stalls (default 1024).
	Buffer int
	// LocalAddr is the source IP to dial from, e.g. 127.2.0.1: nginx's ip_hash
	// keys on the first three octets, so tests spread clients this way.
	LocalAddr string
	// Compression offers permessage-deflate, as browsers do.
	Compression bool
	// HandshakeTimeout bounds the upgrade (gws's default when zero).
	HandshakeTimeout time.Duration
}

// ErrClosed is returned by Next once the connection has closed.
var ErrClosed = errors.New("connection closed")

// CloseError is the close frame the server sent, if any.
type CloseError = gws.CloseError

// Dial connects to url (ws://host/ws/heatmap) and starts reading.
func Dial(url string, opt Options) (*Client, *http.Response, error) {
	if opt.Buffer <= 0 {
		opt.Buffer = 1024
	}
	c := &Client{frames: make(chan Frame, opt.Buffer), closed: make(chan struct{}), stop: make(chan struct{})}
	co := &gws.ClientOption{Addr: url, RequestHeader: opt.Header, HandshakeTimeout: opt.HandshakeTimeout,
		PermessageDeflate: gws.PermessageDeflate{Enabled: opt.Compression}}
	if opt.LocalAddr != "" {
		ip := net.ParseIP(opt.LocalAddr)
		if ip == nil {
			return nil, nil, fmt.Errorf("dial %s: local address %q is not an IP", url, opt.LocalAddr)
		}
		co.NewDialer = func() (gws.Dialer, error) {
			return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}, nil
		}
	}
	conn, resp, err := gws.NewClient(&handler{c: c}, co)
	if err != nil {
		return nil, resp, fmt.Errorf("dial %s: %w", url, err)
	}
	c.conn = conn
	go conn.ReadLoop()
	return c, resp, nil
}

// SendRaw writes one text frame as it is.
func (c *Client) SendRaw(b []byte) error { return c.conn.WriteMessage(gws.OpcodeText, b) }

// Send writes v as JSON.
func (c *Client) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(b)
}

// Next returns the next frame, or an error after timeout or once closed.
func (c *Client) Next(timeout time.Duration) (Frame, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-c.frames:
		return f, nil
	default:
	}
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.closed:
		return Frame{}, fmt.Errorf("%w: %v", ErrClosed, c.err)
	case <-t.C:
		return Frame{}, fmt.Errorf("no frame within %s", timeout)
	}
}

// NextJSON returns the next frame decoded generically, as a JS client sees it.
func (c *Client) NextJSON(timeout time.Duration) (map[string]any, error) {
	f, err := c.Next(timeout)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(f.Bytes, &m); err != nil {
		return nil, fmt.Errorf("frame is not JSON: %w: %s", err, f.Bytes)
	}
	return m, nil
}

// Done is closed when the connection has closed; Err then tells why.
func (c *Client) Done() <-chan struct{} { return c.closed }

// Err is the close reason, valid after Done.
func (c *Client) Err() error { return c.err }

// Pings is how many WebSocket pings the server has sent.
func (c *Client) Pings() int64 { return c.pings.Load() }

// Close sends a normal close frame and closes the socket.
func (c *Client) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	return c.conn.WriteClose(1000, nil)
}

// NextOfType skips frames until one whose "type" is typ arrives within timeout.
func (c *Client) NextOfType(typ string, timeout time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.NextJSON(time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("waiting for a %q frame: %w", typ, err)
		}
		if m["type"] == typ {
			return m, nil
		}
	}
}
