// Package ws is the gateway's WebSocket endpoint /ws/heatmap: admission
// (origin, connection caps, drain), the client protocol, and bounded
// per-connection delivery of hub frames.
package ws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
)

// Close codes the gateway sends.
const (
	CloseServiceRestart = 1012 // draining: reconnect elsewhere
	CloseTooBig         = 1009
	ClosePolicy         = 1008 // abuse: rate limit
	CloseSlowConsumer   = 4008 // private range: the client could not keep up
)

// Config bounds what one connection, one address and the process may do.
// Its keys sit under "ws." in the gateway's config.
type Config struct {
	IdleTimeout   time.Duration `mapstructure:"idle_timeout" desc:"close a peer that sent nothing (not even a pong) this long"`
	PingInterval  time.Duration `mapstructure:"ping_interval" desc:"server ping cadence"`
	WriteTimeout  time.Duration `mapstructure:"write_timeout" desc:"a snapshot write slower than this is a missed deadline"`
	SlowMaxMisses int           `mapstructure:"slow_max_misses" desc:"missed write deadlines in a row before a slow client is closed"`
	WarnInterval  time.Duration `mapstructure:"warn_interval" desc:"at most one SLOW_CONSUMER warning per client per interval"`
	QueueSize     int           `mapstructure:"queue_size" desc:"snapshot frames waiting per connection besides the one being written"`
	// MaxPendingReplies bounds what a client that sends but never reads can
	// make the gateway hold: pongs, errors and warnings it has not read.
	MaxPendingReplies int `mapstructure:"max_pending_replies" desc:"replies (pongs, errors, warnings, pings) waiting per connection; one more closes it as a slow consumer"`

	MaxFrameBytes int `mapstructure:"max_frame_bytes" desc:"largest client frame; bigger ones close the connection with 1009"`
	// ReadBufferBytes is held by every connection for its whole life, and
	// clients only send small actions: a small buffer is most of the
	// per-connection memory saved (a larger frame is still read whole).
	ReadBufferBytes int `mapstructure:"read_buffer_bytes" desc:"read buffer per connection"`
	// SendBufferBytes caps the kernel's send buffer of each client socket.
	// Autotuned, it grows to megabytes (tcp_wmem): a client that reads too
	// slowly then gets minutes-old frames while every write succeeds, so it
	// is never found slow, and each such client pins megabytes of kernel
	// memory. Capped, a write blocks once the client is a few frames behind,
	// and the write deadline finds it.
	SendBufferBytes   int     `mapstructure:"send_buffer_bytes" desc:"kernel send buffer per client socket (SO_SNDBUF; Linux doubles it); 0 leaves it to autotuning, which lets a slow reader fall minutes behind unnoticed"`
	MaxSymbols        int     `mapstructure:"max_symbols" desc:"symbols one connection may subscribe to"`
	ActionsPerSecond  float64 `mapstructure:"actions_per_second" desc:"client messages per second per connection"`
	ActionBurst       int     `mapstructure:"action_burst" desc:"burst of client messages allowed above the rate"`
	MaxRateViolations int     `mapstructure:"max_rate_violations" desc:"rate-limited messages in a row before the connection is closed"`

	MaxConns       int      `mapstructure:"max_connections" desc:"WebSocket connections per process; more are refused with 503"`
	MaxConnsPerIP  int      `mapstructure:"max_connections_per_ip" desc:"connections per client address; more are refused with 503"`
	AllowedOrigins []string `mapstructure:"allowed_origins" desc:"allowed Origin headers (* for any); empty allows the gateway's own host only"`
	TrustedProxies []string `mapstructure:"trusted_proxies" desc:"CIDRs of proxies whose X-Real-IP / X-Forwarded-For names the client"`

	Compression          bool `mapstructure:"compression" desc:"negotiate permessage-deflate when the client offers it"`
	CompressionThreshold int  `mapstructure:"compression_threshold" desc:"frames smaller than this many bytes are sent uncompressed"`
}

// Validate checks every key and names the bad one.
func (c Config) Validate() error {
	checks := []struct {
		ok  bool
		key string
		msg string
	}{
		{c.IdleTimeout >= 5*time.Second && c.IdleTimeout <= 10*time.Minute, "ws.idle_timeout", "between 5s and 10m"},
		{c.PingInterval >= time.Second && c.PingInterval < c.IdleTimeout, "ws.ping_interval", "at least 1s and below ws.idle_timeout"},
		{c.WriteTimeout >= 10*time.Millisecond && c.WriteTimeout <= time.Minute, "ws.write_timeout", "between 10ms and 1m"},
		{c.SlowMaxMisses >= 1 && c.SlowMaxMisses <= 100, "ws.slow_max_misses", "between 1 and 100"},
		{c.WarnInterval >= 0, "ws.warn_interval", "not negative"},
		{c.QueueSize >= 1 && c.QueueSize <= 1000, "ws.queue_size", "between 1 and 1000"},
		{c.MaxPendingReplies >= 1 && c.MaxPendingReplies <= 1000, "ws.max_pending_replies", "between 1 and 1000"},
		{c.MaxFrameBytes >= 256 && c.MaxFrameBytes <= 1<<20, "ws.max_frame_bytes", "between 256 and 1048576"},
		{c.ReadBufferBytes >= 256 && c.ReadBufferBytes <= 1<<16, "ws.read_buffer_bytes", "between 256 and 65536"},
		{c.SendBufferBytes == 0 || (c.SendBufferBytes >= 4096 && c.SendBufferBytes <= 4<<20), "ws.send_buffer_bytes", "0 (autotuning) or between 4096 and 4194304"},
		{c.MaxSymbols >= 1 && c.MaxSymbols <= 100, "ws.max_symbols", "between 1 and 100"},
		{c.ActionsPerSecond > 0, "ws.actions_per_second", "above 0"},
		{c.ActionBurst >= 1, "ws.action_burst", "at least 1"},
		{c.MaxRateViolations >= 1, "ws.max_rate_violations", "at least 1"},
		{c.MaxConns >= 1, "ws.max_connections", "at least 1"},
		{c.MaxConnsPerIP >= 1, "ws.max_connections_per_ip", "at least 1"},
		{c.CompressionThreshold >= 0, "ws.compression_threshold", "not negative"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("%s: must be %s", ch.key, ch.msg)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("ws.trusted_proxies: %q is not a CIDR like 10.0.0.0/8", p)
		}
	}
	return nil
}

// DefaultConfig is safe for a public endpoint.
func DefaultConfig() Config {
	return Config{
		IdleTimeout: 60 * time.Second, PingInterval: 30 * time.Second,
		WriteTimeout: time.Second, SlowMaxMisses: 3, WarnInterval: 5 * time.Second, QueueSize: 5, MaxPendingReplies: 16,
		MaxFrameBytes: 4096, ReadBufferBytes: 1024, SendBufferBytes: 64 << 10, MaxSymbols: 10, ActionsPerSecond: 10, ActionBurst: 20, MaxRateViolations: 20,
		MaxConns: 20000, MaxConnsPerIP: 200,
		Compression: true, CompressionThreshold: 512,
	}
}

// Stats is the live state /ws/stats reports.
type Stats struct {
	ActiveConnections     int64          `json:"active_connections"`
	MessagesSent1m        int64          `json:"messages_sent_1m"`
	SlowConsumers         int64          `json:"slow_consumers"`
	SubscriptionsBySymbol map[string]int `json:"subscriptions_by_symbol"`
	SlowConsumersTotal    int64          `json:"slow_consumers_total"`
	Draining              bool           `json:"draining"`
}

// Server is an http.Handler for /ws/heatmap.
type Server struct {
	cfg      Config
	hub      *hub.Hub
	log      *slog.Logger
	metrics  *metrics.Metrics
	upgrader *gws.Upgrader
	now      func() time.Time
	// afterFunc schedules a held frame's send; tests move it with their clock.
	afterFunc func(time.Duration, func()) stopper
	trusted   []netip.Prefix
	origins   map[string]bool

	mu       sync.Mutex
	sessions map[*session]struct{}
	upgrades int // admitted, upgrade in progress: counted against the caps
	perIP    map[string]int
	draining bool
	emptied  chan struct{} // closed when draining and the last session left
	// admitted, when set, runs between admission and the upgrade: tests use it
	// to hold an upgrade in progress while something else happens.
	admitted func()

	active    atomic.Int64
	slowTotal atomic.Int64
	connIDs   atomic.Uint64 // the last conn_id given
	// warns bounds the warn lines of anomalies (refused upgrades, slow
	// consumers, rate limits, write failures): a flood of them is a log
	// flood, so beyond the bound they are logged at debug.
	warns  *logging.Throttle
	sent1m metrics.Window
	// dropped holds the per-reason counters resolved once: a label lookup
	// per dropped frame would dominate the enqueue path.
	dropped map[string]prometheus.Counter
	// sentBySymbol caches sentCounter; cleared when the symbol list changes,
	// which changes which symbols get a label of their own.
	sentBySymbol sync.Map
}

// New returns the endpoint serving h's symbols; header is added to every
// upgrade response (the gateway names itself there, so operators and tests
// behind a load balancer can tell which instance a client reached).
func New(cfg Config, h *hub.Hub, m *metrics.Metrics, log *slog.Logger, header http.Header) (*Server, error) {
	s := &Server{cfg: cfg, hub: h, log: log, metrics: m, now: time.Now, warns: logging.NewThrottle(warnWindow, warnBurst),
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		sessions:  map[*session]struct{}{}, perIP: map[string]int{}, origins: map[string]bool{},
		dropped: map[string]prometheus.Counter{
			"conflated":  m.FramesDropped.WithLabelValues("conflated"),
			"queue_full": m.FramesDropped.WithLabelValues("queue_full"),
		}}
	for _, c := range cfg.TrustedProxies {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want a CIDR like 10.0.0.0/8: %w", c, err)
		}
		s.trusted = append(s.trusted, p)
	}
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	s.upgrader = gws.NewUpgrader(&handler{s: s}, &gws.ServerOption{
		ReadMaxPayloadSize: cfg.MaxFrameBytes,
		ReadBufferSize:     cfg.ReadBufferBytes,
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   5 * time.Second,
		ResponseHeader:     header,
		NewSession:         func() gws.SessionStorage { return &sessionSlot{} },
		PermessageDeflate: gws.PermessageDeflate{
			Enabled: cfg.Compression, Threshold: cfg.CompressionThreshold,
			// Broadcast frames are compressed once for every connection, which
			// rules out a per-connection sliding window on the server side.
			ServerContextTakeover: false, ClientContextTakeover: false,
		},
	})
	return s, nil
}

// Run is the watchdog: it counts write-deadline misses, closes clients that
// keep missing, and pings quiet peers, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	// Half the write timeout still counts every miss (one per tick at most,
	// each write timeout apart) while scanning every session half as often
	// as a quarter would: at 10,000 connections the scan is a cost of its own.
	t := time.NewTicker(min(s.cfg.WriteTimeout/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := s.now()
		for _, ss := range s.snapshot() {
			ss.check(now)
		}
	}
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

// Active is the number of open connections.
func (s *Server) Active() int64 { return s.active.Load() }

// Stats reports the live numbers of /ws/stats.
func (s *Server) Stats() Stats {
	var slow int64
	for _, ss := range s.snapshot() {
		ss.mu.Lock()
		if ss.missed > 0 {
			slow++
		}
		ss.mu.Unlock()
	}
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	return Stats{
		ActiveConnections: s.active.Load(), MessagesSent1m: s.sent1m.Sum(s.now()), SlowConsumers: slow,
		SubscriptionsBySymbol: s.hub.Subscriptions(), SlowConsumersTotal: s.slowTotal.Load(), Draining: draining,
	}
}

// Drain refuses new upgrades, closes every client with 1012 so it reconnects
// elsewhere, and waits until all are gone or ctx ends.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	if s.emptied == nil {
		s.emptied = make(chan struct{})
	}
	s.signalEmptiedLocked()
	emptied := s.emptied
	s.mu.Unlock()
	for _, ss := range s.snapshot() {
		ss.mu.Lock()
		ss.closeLocked(CloseServiceRestart, "drain", "service restart: reconnect")
		ss.mu.Unlock()
	}
	select {
	case <-emptied:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %d connections still open: %w", s.active.Load(), ctx.Err())
	}
}

// Shed closes up to n connections made before before with 1012, like a drain
// of a few, so their clients reconnect and the edge places them again: the
// rebalancer uses it after a scale-out. A client that connected after before
// was placed by the edge as it is now; shedding it would only send it back
// where the edge's hash maps it, so the rebalancer passes the moment its
// shedding began and each client moves at most once. It returns how many it closed.
func (s *Server) Shed(n int, before time.Time) int {
	if n <= 0 {
		return 0
	}
	var picked []*session
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return 0
	}
	// Map order is unspecified, not random enough to rely on, but no
	// particular clients are preferred: any spread of them will do.
	for ss := range s.sessions {
		if len(picked) == n {
			break
		}
		if ss.connected.Before(before) {
			picked = append(picked, ss)
		}
	}
	s.mu.Unlock()
	closed := 0
	for _, ss := range picked {
		ss.mu.Lock()
		if !ss.closing {
			ss.closeLocked(CloseServiceRestart, "rebalance", "rebalancing: reconnect")
			closed++
		}
		ss.mu.Unlock()
	}
	return closed
}

// The warn lines of each kind of anomaly: at most warnBurst per warnWindow.
const (
	warnWindow = 10 * time.Second
	warnBurst  = 5
)

// ServeHTTP admits or refuses the upgrade, then reads the connection until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := s.ClientIP(r)
	if !s.originAllowed(r) {
		s.refuse(w, ip, http.StatusForbidden, "refused_origin", fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")))
		return
	}
	if !s.hub.Known() {
		// Until then every subscribe would be refused as unknown.
		s.refuse(w, ip, http.StatusServiceUnavailable, "refused_starting", "server is starting: the symbol list is not known yet; retry shortly")
		return
	}
	s.mu.Lock()
	switch {
	case s.draining:
		s.mu.Unlock()
		s.refuse(w, ip, http.StatusServiceUnavailable, "refused_draining", "server is restarting: reconnect to another instance")
		return
	case len(s.sessions)+s.upgrades >= s.cfg.MaxConns:
		s.mu.Unlock()
		s.refuse(w, ip, http.StatusServiceUnavailable, "refused_total_cap", fmt.Sprintf("server is at its limit of %d connections", s.cfg.MaxConns))
		return
	case s.perIP[ip] >= s.cfg.MaxConnsPerIP:
		s.mu.Unlock()
		s.refuse(w, ip, http.StatusServiceUnavailable, "refused_ip_cap", fmt.Sprintf("too many connections from %s (limit %d)", ip, s.cfg.MaxConnsPerIP))
		return
	}
	// Count the upgrade before it happens so a burst cannot slip past the caps.
	s.perIP[ip]++
	s.upgrades++
	s.mu.Unlock()
	if s.admitted != nil {
		s.admitted()
	}

	conn, err := s.upgrade(w, r)
	if err != nil {
		s.mu.Lock()
		s.upgrades--
		s.releaseIPLocked(ip)
		s.signalEmptiedLocked()
		s.mu.Unlock()
		s.metrics.Connects.WithLabelValues("upgrade_failed").Inc()
		s.log.Debug("upgrade failed", logging.KeyReason, "upgrade_failed", "remote", ip, logging.KeyErr, err)
		return
	}
	ss := newSession(s, conn, ip)
	s.log.Debug("connection accepted", logging.KeyConnID, ss.id, "remote", ip)
	conn.Session().Store(sessionKey, ss)
	s.mu.Lock()
	s.upgrades--
	s.sessions[ss] = struct{}{}
	// Counted with the set, so the count never lags the sessions a drain waits for.
	s.active.Add(1)
	s.metrics.ActiveConnections.Inc()
	// A drain that began during the upgrade did not see this session.
	draining := s.draining
	s.mu.Unlock()
	s.metrics.Connects.WithLabelValues("accepted").Inc()
	conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if draining {
		ss.mu.Lock()
		ss.closeLocked(CloseServiceRestart, "drain", "service restart: reconnect")
		ss.mu.Unlock()
	}
	go conn.ReadLoop()
}

// upgrade hijacks the request's connection and upgrades it with a lingering
// close, so every close the gateway or gws makes ends in a clean handshake.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*gws.Conn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("upgrade: the response cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("upgrade: hijack: %w", err)
	}
	if sb, ok := nc.(interface{ SetWriteBuffer(int) error }); ok && s.cfg.SendBufferBytes > 0 {
		if err := sb.SetWriteBuffer(s.cfg.SendBufferBytes); err != nil {
			nc.Close()
			return nil, fmt.Errorf("upgrade: set the send buffer: %w", err)
		}
	}
	lc := &lingerConn{Conn: nc}
	br := brw.Reader // net/http's, 4 KB: keep it only if it already holds client bytes
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(lc, s.cfg.ReadBufferBytes)
	}
	return s.upgrader.UpgradeFromConn(lc, br, r)
}

// signalEmptiedLocked tells a waiting Drain that nothing is left: no session
// and no upgrade in progress.
func (s *Server) signalEmptiedLocked() {
	if !s.draining || s.emptied == nil || len(s.sessions) > 0 || s.upgrades > 0 {
		return
	}
	select {
	case <-s.emptied:
	default:
		close(s.emptied)
	}
}

// refuse answers an upgrade it will not make. Refusals while starting or
// draining are expected and logged at debug; the others are anomalies (an
// origin not allowed, a cap reached), warned within the throttle's bound,
// since a connection flood would otherwise be a log flood. The summary line
// counts every refusal.
func (s *Server) refuse(w http.ResponseWriter, ip string, code int, result, msg string) {
	s.metrics.Connects.WithLabelValues(result).Inc()
	args := []any{logging.KeyReason, result, "remote", ip, "status", code, "detail", msg}
	if result == "refused_starting" || result == "refused_draining" {
		s.log.Debug("upgrade refused", args...)
	} else {
		s.warns.Warn(s.log, result, "upgrade refused", args...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) releaseIPLocked(ip string) {
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip]--
	}
}

// remove forgets a closed session.
func (s *Server) remove(ss *session, reason string) {
	s.hub.Remove(ss)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[ss]; !ok {
		return
	}
	delete(s.sessions, ss)
	s.releaseIPLocked(ss.ip)
	// Counted before the drain is woken, so a Drain that returns finds every
	// count settled; the reason before the active count, so whoever sees the
	// connection gone also sees why.
	s.metrics.Disconnects.WithLabelValues(reason).Inc()
	s.metrics.ActiveConnections.Dec()
	s.active.Add(-1)
	s.signalEmptiedLocked()
}

// sent records one snapshot write that completed.
func (s *Server) sent(f *hub.Frame, now time.Time) {
	s.sent1m.Add(now, 1)
	s.sentCounter(f.Symbol).Inc()
	if !f.Stamp.IsZero() {
		s.metrics.DeliveryLatency.Observe(now.Sub(f.Stamp).Seconds())
	}
}

// sentCounter is ws_messages_sent_total for sym, resolved once: a label
// lookup per write is a cost paid tens of thousands of times a second.
func (s *Server) sentCounter(sym string) prometheus.Counter {
	if c, ok := s.sentBySymbol.Load(sym); ok {
		return c.(prometheus.Counter)
	}
	c := s.metrics.MessagesSent.WithLabelValues(s.metrics.Symbol(sym))
	s.sentBySymbol.Store(sym, c)
	return c
}

func (s *Server) slowMiss() {
	s.slowTotal.Add(1)
	s.metrics.SlowConsumers.Inc()
}

// originAllowed applies the allowlist. Requests without Origin come from
// non-browser clients (load generators, services), which CORS does not cover.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || s.origins["*"] {
		return true
	}
	if len(s.origins) == 0 {
		u, err := url.Parse(o)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return s.origins[strings.ToLower(strings.TrimRight(o, "/"))]
}

// ClientIP is the address connection caps and API rates count against: the peer, or, when
// the peer is a trusted proxy, the address X-Forwarded-For names. The chain
// is walked from the right, skipping trusted proxies, because only the
// entries our own proxies appended can be believed; the leftmost ones are
// whatever the client sent. X-Real-IP is ignored: behind a proxy that only
// appends X-Forwarded-For a client could set it to anything. The result is a
// canonical address, so a port or junk never makes a key of its own.
func (s *Server) ClientIP(r *http.Request) string {
	peer, ok := parseHostAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr // not TCP (a test's pipe); nothing to trust
	}
	if !s.trustedAddr(peer) {
		return peer.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHostAddr(strings.TrimSpace(hops[i]))
		if !ok {
			break // a trusted proxy never writes junk: the client did
		}
		client = a
		if !s.trustedAddr(a) {
			break
		}
	}
	return client.String()
}

func (s *Server) trustedAddr(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr reads "ip", "ip:port" or "[ipv6]:port" as an unmapped address.
func parseHostAddr(v string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(v, "["), "]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

const sessionKey = "s"

// sessionSlot is a connection's gws session storage. The gateway keeps one
// value there, its session; gws's default map costs ~300 B per connection.
type sessionSlot struct{ v atomic.Pointer[session] }

func (s *sessionSlot) Len() int {
	if s.v.Load() == nil {
		return 0
	}
	return 1
}

func (s *sessionSlot) Load(key string) (any, bool) {
	if v := s.v.Load(); key == sessionKey && v != nil {
		return v, true
	}
	return nil, false
}

func (s *sessionSlot) Delete(key string) {
	if key == sessionKey {
		s.v.Store(nil)
	}
}

func (s *sessionSlot) Store(key string, value any) {
	if ss, ok := value.(*session); ok && key == sessionKey {
		s.v.Store(ss)
	}
}

func (s *sessionSlot) Range(f func(key string, value any) bool) {
	if v := s.v.Load(); v != nil {
		f(sessionKey, v)
	}
}

type handler struct {
	gws.BuiltinEventHandler
	s *Server
}

func (h *handler) OnClose(c *gws.Conn, err error) {
	ss := sessionOf(c)
	if ss == nil {
		return
	}
	reason := ss.release()
	if reason == "" {
		reason = closeReason(err)
	}
	h.s.remove(ss, reason)
	h.s.logClosed(ss, reason, err)
}

// logClosed is a connection's last line. A close the gateway made for abuse
// or slowness, or an unexplained error, is an anomaly (warn, throttled); a
// client leaving, an idle timeout, a drain or a rebalance is lifecycle (debug).
func (s *Server) logClosed(ss *session, reason string, err error) {
	args := []any{logging.KeyConnID, ss.id, logging.KeyReason, reason, logging.DurationMS(s.now().Sub(ss.connected))}
	var ce *gws.CloseError
	switch {
	case errors.As(err, &ce):
		args = append(args, "close_code", ce.Code)
	case err != nil && !errors.Is(err, gws.ErrConnClosed):
		args = append(args, logging.KeyErr, err)
	}
	switch reason {
	case "slow_consumer", "rate_limited", "oversize", "error":
		s.warns.Warn(s.log, "closed_"+reason, "connection closed", args...)
	default:
		s.log.Debug("connection closed", args...)
	}
}

// closeReason labels a close the gateway did not start.
func closeReason(err error) string {
	var ce *gws.CloseError
	switch {
	case err == nil, errors.As(err, &ce):
		return "client"
	case errors.Is(err, gws.ErrConnClosed):
		return "client"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "idle"
	}
	if strings.Contains(err.Error(), "1009") || strings.Contains(strings.ToLower(err.Error()), "too big") {
		return "oversize"
	}
	return "error"
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) {
	h.touch(c)
	if ss := sessionOf(c); ss != nil && !ss.isClosing() {
		// gws reuses payload's buffer once this returns.
		ss.reply(gws.OpcodePong, append([]byte(nil), payload...))
	}
}

func (h *handler) OnPong(c *gws.Conn, _ []byte) { h.touch(c) }

// touch pushes the idle deadline out: any frame from the peer proves it alive.
func (h *handler) touch(c *gws.Conn) {
	c.SetReadDeadline(time.Now().Add(h.s.cfg.IdleTimeout))
}

func (h *handler) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	h.touch(c)
	ss := sessionOf(c)
	if ss == nil || ss.isClosing() {
		return // closing: what the client still sends is read and ignored
	}
	if !ss.allow() {
		h.s.metrics.ClientErrors.WithLabelValues(protocol.CodeRateLimited).Inc()
		return
	}
	if msg.Opcode != gws.OpcodeText {
		h.reply(ss, protocol.CodeInvalidMessage, "binary frames are not accepted: send JSON text")
		return
	}
	m, err := protocol.DecodeClientMessage(msg.Bytes())
	if err != nil {
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			h.reply(ss, de.Code, de.Message)
			return
		}
		h.reply(ss, protocol.CodeInvalidMessage, err.Error())
		return
	}
	switch m.Action {
	case protocol.ActionPing:
		ss.reply(gws.OpcodeText, protocol.EncodePong(h.s.now()))
	case protocol.ActionSubscribe:
		h.subscribe(ss, m)
	case protocol.ActionUnsubscribe:
		h.s.hub.Unsubscribe(ss, m.Symbols)
		ss.untrack(m.Symbols)
		h.s.log.Debug("unsubscribed", logging.KeyConnID, ss.id, "symbols", m.Symbols)
	}
}

// subscribe registers the symbols with the session first, so the hub's
// immediate latest-frame send finds them, and rolls back if the hub refuses;
// a refused subscribe changes nothing, its update interval included.
func (h *handler) subscribe(ss *session, m protocol.ClientMessage) {
	ss.mu.Lock()
	var fresh []string
	for _, sym := range m.Symbols {
		if ss.symbols.get(sym) == nil {
			fresh = append(fresh, sym)
		}
	}
	ss.mu.Unlock()
	ss.track(m.Symbols, m.Encoding == protocol.EncodingDelta)
	latest, err := h.s.hub.Subscribe(ss, m.Symbols, h.s.cfg.MaxSymbols)
	if err != nil {
		ss.untrack(fresh)
		var ue *hub.UnknownSymbolsError
		if errors.As(err, &ue) {
			h.s.log.Debug("subscribe refused", logging.KeyConnID, ss.id, logging.KeyReason, protocol.CodeInvalidSymbol, "symbols", m.Symbols, logging.KeyErr, err)
			h.replySymbols(ss, protocol.CodeInvalidSymbol, err.Error(), ue.Unknown)
			return
		}
		h.s.log.Debug("subscribe refused", logging.KeyConnID, ss.id, logging.KeyReason, protocol.CodeInvalidMessage, "symbols", m.Symbols, logging.KeyErr, err)
		h.reply(ss, protocol.CodeInvalidMessage, err.Error())
		return
	}
	ss.setInterval(time.Duration(m.UpdateInterval) * time.Second)
	h.s.log.Debug("subscribed", logging.KeyConnID, ss.id, "symbols", m.Symbols, "update_interval", m.UpdateInterval)
	for _, f := range latest {
		ss.sendNow(f) // the first frame ignores the update interval
		f.Release()
	}
}

func (h *handler) reply(ss *session, code, msg string) {
	h.replySymbols(ss, code, msg, nil)
}

func (h *handler) replySymbols(ss *session, code, msg string, symbols []string) {
	h.s.metrics.ClientErrors.WithLabelValues(code).Inc()
	ss.reply(gws.OpcodeText, protocol.EncodeErrorSymbols(code, msg, symbols))
}

// SymbolsRemoved tells each subscriber of a symbol no longer served (as
// hub.SetSymbols returned them) and forgets those subscriptions.
func (s *Server) SymbolsRemoved(lost map[hub.Subscriber][]string) {
	s.sentBySymbol.Clear()
	valid := strings.Join(s.hub.Symbols(), ", ")
	for sub, syms := range lost {
		ss, ok := sub.(*session)
		if !ok {
			continue
		}
		ss.untrack(syms)
		msg := fmt.Sprintf("symbol(s) %s no longer served; valid symbols: %s", strings.Join(syms, ", "), valid)
		s.metrics.ClientErrors.WithLabelValues(protocol.CodeInvalidSymbol).Inc()
		ss.reply(gws.OpcodeText, protocol.EncodeErrorSymbols(protocol.CodeInvalidSymbol, msg, syms))
	}
}

func sessionOf(c *gws.Conn) *session {
	v, ok := c.Session().Load(sessionKey)
	if !ok {
		return nil
	}
	ss, _ := v.(*session)
	return ss
}
