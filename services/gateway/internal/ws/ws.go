// Package ws is the gateway's WebSocket endpoint /ws/heatmap: it upgrades
// connections with gws, decodes client actions and wires each connection to
// the hub.
package ws

import (
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
)

// Config bounds what one connection may do.
type Config struct {
	// IdleTimeout closes a peer that sent nothing (not even a ping) for this long.
	IdleTimeout time.Duration
	// MaxFrameBytes is the largest client frame read; bigger ones close the connection.
	MaxFrameBytes int
	// MaxSymbols is how many symbols one connection may hold.
	MaxSymbols int
}

// Server is an http.Handler for /ws/heatmap.
type Server struct {
	cfg      Config
	hub      *hub.Hub
	log      *slog.Logger
	upgrader *gws.Upgrader
	now      func() time.Time
	active   atomic.Int64
}

// New returns the endpoint serving h's symbols.
func New(cfg Config, h *hub.Hub, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, hub: h, log: log, now: time.Now}
	s.upgrader = gws.NewUpgrader(&handler{s: s}, &gws.ServerOption{
		ReadMaxPayloadSize: cfg.MaxFrameBytes,
		// Frames are handled in order per connection; the hub never blocks.
		ParallelEnabled:  false,
		CheckUtf8Enabled: true,
		HandshakeTimeout: 5 * time.Second,
	})
	return s
}

// Active is the number of open connections.
func (s *Server) Active() int64 { return s.active.Load() }

// ServeHTTP upgrades the request and reads the connection until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r)
	if err != nil {
		// gws has already answered the client with the handshake error.
		s.log.Debug("upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	go conn.ReadLoop()
}

// session is one connection's state; it is the hub's Subscriber.
type session struct {
	conn *gws.Conn
	// interval is the client's requested update interval in seconds; enforced
	// per symbol by the delivery path (see docs/API.md).
	interval atomic.Int64
}

// Send queues frame without blocking the hub's fan-out.
func (ss *session) Send(_ string, frame []byte) {
	ss.conn.WriteAsync(gws.OpcodeText, frame, nil)
}

const sessionKey = "s"

type handler struct {
	gws.BuiltinEventHandler
	s *Server
}

func (h *handler) OnOpen(c *gws.Conn) {
	ss := &session{conn: c}
	ss.interval.Store(protocol.DefaultUpdateInterval)
	c.Session().Store(sessionKey, ss)
	h.s.active.Add(1)
	h.touch(c)
}

func (h *handler) OnClose(c *gws.Conn, err error) {
	h.s.active.Add(-1)
	if ss := sessionOf(c); ss != nil {
		h.s.hub.Remove(ss)
	}
	var ce *gws.CloseError
	if err != nil && !errors.As(err, &ce) {
		h.s.log.Debug("connection closed", "remote", c.RemoteAddr().String(), "err", err)
	}
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) {
	h.touch(c)
	c.WritePong(payload)
}

func (h *handler) OnPong(c *gws.Conn, _ []byte) { h.touch(c) }

// touch pushes the idle deadline out: any frame from the peer proves it alive.
func (h *handler) touch(c *gws.Conn) {
	c.SetReadDeadline(h.s.now().Add(h.s.cfg.IdleTimeout))
}

func (h *handler) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	h.touch(c)
	ss := sessionOf(c)
	if ss == nil {
		return
	}
	if msg.Opcode != gws.OpcodeText {
		h.reply(c, protocol.EncodeError(protocol.CodeInvalidMessage, "binary frames are not accepted: send JSON text"))
		return
	}
	m, err := protocol.DecodeClientMessage(msg.Bytes())
	if err != nil {
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			h.reply(c, protocol.EncodeError(de.Code, de.Message))
			return
		}
		h.reply(c, protocol.EncodeError(protocol.CodeInvalidMessage, err.Error()))
		return
	}
	switch m.Action {
	case protocol.ActionPing:
		h.reply(c, protocol.EncodePong(h.s.now()))
	case protocol.ActionSubscribe:
		ss.interval.Store(int64(m.UpdateInterval))
		if err := h.s.hub.Subscribe(ss, m.Symbols, h.s.cfg.MaxSymbols); err != nil {
			code := protocol.CodeInvalidMessage
			var ue *hub.UnknownSymbolsError
			if errors.As(err, &ue) {
				code = protocol.CodeInvalidSymbol
			}
			h.reply(c, protocol.EncodeError(code, err.Error()))
		}
	case protocol.ActionUnsubscribe:
		h.s.hub.Unsubscribe(ss, m.Symbols)
	}
}

func (h *handler) reply(c *gws.Conn, frame []byte) {
	c.WriteAsync(gws.OpcodeText, frame, nil)
}

func sessionOf(c *gws.Conn) *session {
	v, ok := c.Session().Load(sessionKey)
	if !ok {
		return nil
	}
	ss, _ := v.(*session)
	return ss
}
