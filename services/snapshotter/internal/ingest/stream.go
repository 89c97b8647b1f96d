package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// DefaultStreamURL is Binance USD-M futures' market stream endpoint.
const DefaultStreamURL = "wss://fstream.binance.com"

// MaxStreamsPerConn is how many streams Binance USD-M lets one connection
// carry.
const MaxStreamsPerConn = 200

// forceOrderStream carries every symbol's liquidation orders.
const forceOrderStream = "!forceOrder@arr"

// StreamConfig configures the live market streams; zero fields take the
// defaults documented on each.
type StreamConfig struct {
	URL      string   // DefaultStreamURL
	Symbols  []string // required
	Interval string   // candle interval, "5m"
	// MaxStreams is how many streams one connection carries; more symbols
	// take more connections. MaxStreamsPerConn.
	MaxStreams int
	// PingEvery is how often the client pings; Binance answers each with a
	// pong. 30s: 2 frames a minute, far below the 10 a second it allows.
	PingEvery time.Duration
	// Silence is how long a connection may deliver nothing (no message, no
	// ping, no pong) before it is taken for dead and replaced; 75s.
	Silence time.Duration
	// MaxAge replaces a connection before Binance cuts it at 24 h; 23h.
	// The new one is opened before the old one closes, so nothing is missed.
	MaxAge time.Duration
	// Overlap is how long both connections are read after the new one
	// delivered its first message, so what was already on its way on the
	// old one is read before it closes; 2s.
	Overlap time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential wait before
	// reconnecting; 1s and 2m. A Retry-After on a refused handshake is
	// honoured when longer.
	MinBackoff, MaxBackoff time.Duration
	// Flush is how often what the streams delivered is written to the
	// store, in one transaction; 250ms, Binance's kline push rate.
	Flush            time.Duration
	HandshakeTimeout time.Duration // 10s
}

// Backfiller is the REST side of the live source: it fetches what a
// stream connection missed (Binance's poller).
type Backfiller interface {
	StreamUp(symbols []string)
	StreamDown(symbols []string)
	MarkFinal(symbol string, open time.Time)
}

// StreamStore is the part of the store the streams write.
type StreamStore interface {
	UpsertAll(ctx context.Context, ks []store.Kline, ois []store.OpenInterest, ls []store.Liquidation) error
}

// StreamStats is a snapshot of the streams' counters, for metrics.
type StreamStats struct {
	Dials, DialErrors uint64 // connection attempts and failed ones
	Rotations         uint64 // connections replaced at MaxAge
	Connected         int    // connections open now
	Connections       int    // connections wanted (shards)
	Messages          map[string]uint64
	// Dropped counts kline updates not stored: "duplicate", "stale" (older
	// than one already stored) and "after_final" (for a closed candle).
	Dropped       map[string]uint64
	DecodeErrors  uint64
	Liquidations  uint64 // stored, replays included
	FlushErrors   uint64
	Disconnected  time.Duration // total time some shard was down, reconnects included
	LastMessageAt time.Time     // or when Run started, before any message
}

// Stream reads Binance's kline and forceOrder streams and writes what they
// deliver; Binance's poller backfills what a disconnection missed.
type Stream struct {
	cfg    StreamConfig
	step   time.Duration
	st     StreamStore
	rest   Backfiller
	log    *slog.Logger
	events chan event
	known  map[string]bool
	// stop is closed when Run's context ends, so a reader blocked on a
	// full events queue lets go.
	stop <-chan struct{}

	mu    sync.Mutex
	stats StreamStats
}

// event is what a connection hands the writer: a candle update, a
// liquidation, or a connection coming up.
type event struct {
	kline *klineUpdate
	liq   *store.Liquidation
	up    []string // a connection carrying these symbols opened
}

type klineUpdate struct {
	k       store.Kline
	eventMS int64
	final   bool
}

// NewStream checks cfg, fills its defaults and returns the streams; a nil
// logger discards logs.
func NewStream(cfg StreamConfig, st StreamStore, rest Backfiller, log *slog.Logger) (*Stream, error) {
	if len(cfg.Symbols) == 0 {
		return nil, errors.New("binance stream: no symbols")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.URL == "" {
		cfg.URL = DefaultStreamURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("binance stream: url %q: want wss://host", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Interval == "" {
		cfg.Interval = "5m"
	}
	if cfg.MaxStreams <= 0 || cfg.MaxStreams > MaxStreamsPerConn {
		cfg.MaxStreams = MaxStreamsPerConn
	}
	def(&cfg.PingEvery, 30*time.Second)
	def(&cfg.Silence, 75*time.Second)
	def(&cfg.MaxAge, 23*time.Hour)
	def(&cfg.Overlap, 2*time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 2*time.Minute)
	def(&cfg.Flush, 250*time.Millisecond)
	def(&cfg.HandshakeTimeout, 10*time.Second)
	step, err := store.IntervalDuration(cfg.Interval)
	if err != nil {
		return nil, fmt.Errorf("binance stream: interval: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stream{cfg: cfg, step: step, st: st, rest: rest, log: log, events: make(chan event, 4096),
		known: map[string]bool{},
		stats: StreamStats{Messages: map[string]uint64{}, Dropped: map[string]uint64{}}}
	for _, sym := range cfg.Symbols {
		s.known[sym] = true
	}
	return s, nil
}

// Stats returns a copy of the counters.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Messages = maps.Clone(st.Messages)
	st.Dropped = maps.Clone(st.Dropped)
	return st
}

// shard is the streams of one connection and the symbols they carry.
type shard struct {
	streams []string
	symbols []string
}

// shards splits the streams over connections of at most MaxStreams; the
// first also carries the liquidations of every symbol.
func (s *Stream) shards() []shard {
	var out []shard
	cur := shard{streams: []string{forceOrderStream}}
	for _, sym := range s.cfg.Symbols {
		if len(cur.streams) == s.cfg.MaxStreams {
			out = append(out, cur)
			cur = shard{}
		}
		cur.streams = append(cur.streams, strings.ToLower(sym)+"@kline_"+s.cfg.Interval)
		cur.symbols = append(cur.symbols, sym)
	}
	return append(out, cur)
}

// Run keeps every connection up and writes what they deliver until ctx
// ends; it returns nil then. Nothing a connection or the store does stops it.
func (s *Stream) Run(ctx context.Context) error {
	shards := s.shards()
	s.stop = ctx.Done()
	s.mu.Lock()
	s.stats.Connections = len(shards)
	// Until a first message, the age of the last one is that of the start:
	// a stream that never delivers is as stale as one that stopped.
	s.stats.LastMessageAt = time.Now()
	s.mu.Unlock()
	s.log.Info("binance streams started", "url", s.cfg.URL, "symbols", len(s.cfg.Symbols), "connections", len(shards))
	var wg sync.WaitGroup
	for _, sh := range shards {
		wg.Go(func() { s.keep(ctx, sh) })
	}
	s.write(ctx)
	wg.Wait()
	return nil
}

// keep holds one shard's connection open: it reconnects after any failure
// with a jittered backoff, and replaces the connection at MaxAge by opening
// the next one first.
func (s *Stream) keep(ctx context.Context, sh shard) {
	failures := 0
	var old *session
	downSince := time.Time{}
	for ctx.Err() == nil {
		sess, retryAfter, err := s.dial(ctx, sh)
		if err != nil {
			if old != nil {
				// The replacement failed: the old connection is about to be
				// cut by Binance anyway.
				old.close()
				old = nil
			}
			if downSince.IsZero() {
				downSince = time.Now()
				s.rest.StreamDown(sh.symbols)
			}
			failures++
			wait := s.backoff(failures, retryAfter)
			s.log.Warn("binance stream connect failed", logging.KeyErr, err, "failures", failures, "retry_in", wait.String())
			if !sleepCtx(ctx, wait) {
				break
			}
			continue
		}
		if old != nil {
			// The new connection carries everything from the moment its
			// first message arrives; what Binance wrote to the old one
			// before that may still be in flight, so it is read a while
			// longer. Both deliver the same events meanwhile; the writer
			// keeps each once.
			sess.awaitFirst(ctx, s.cfg.Silence)
			sleepCtx(ctx, s.cfg.Overlap)
			old.close()
			old = nil
		} else {
			// Everything earlier connections delivered is queued before this
			// event, so the writer stores it before the backfill starts.
			if !s.queue(event{up: sh.symbols}) {
				sess.close()
				break
			}
		}
		if !downSince.IsZero() {
			s.addDown(time.Since(downSince))
			downSince = time.Time{}
		}
		aged, got := sess.wait(ctx, s.cfg.MaxAge)
		if got {
			failures = 0
		}
		if aged && ctx.Err() == nil {
			s.log.Info("binance stream connection replaced before Binance's 24 h limit", "age", s.cfg.MaxAge.String())
			s.mu.Lock()
			s.stats.Rotations++
			s.mu.Unlock()
			old = sess
			continue
		}
		sess.close()
		if ctx.Err() != nil {
			break
		}
		downSince = time.Now()
		s.rest.StreamDown(sh.symbols)
		failures++
		wait := s.backoff(failures, 0)
		s.log.Warn("binance stream connection lost", logging.KeyErr, sess.err(), "retry_in", wait.String())
		if !sleepCtx(ctx, wait) {
			break
		}
	}
	if old != nil {
		old.close()
	}
}

func (s *Stream) addDown(d time.Duration) {
	s.mu.Lock()
	s.stats.Disconnected += d
	s.mu.Unlock()
}

// backoff is the wait before attempt failures+1: exponential from
// MinBackoff, capped at MaxBackoff, with half of it random so a fleet of
// snapshotters does not reconnect in step; at least retryAfter.
func (s *Stream) backoff(failures int, retryAfter time.Duration) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < failures && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dial opens one connection for sh; a refused handshake returns the
// server's Retry-After.
func (s *Stream) dial(ctx context.Context, sh shard) (*session, time.Duration, error) {
	s.mu.Lock()
	s.stats.Dials++
	s.mu.Unlock()
	sess := &session{s: s, done: make(chan struct{}), first: make(chan struct{})}
	addr := s.cfg.URL + "/stream?streams=" + strings.Join(sh.streams, "/")
	conn, resp, err := gws.NewClient(sess, &gws.ClientOption{
		Addr: addr, HandshakeTimeout: s.cfg.HandshakeTimeout,
		RequestHeader:      http.Header{"User-Agent": {"liqstream-snapshotter"}},
		ReadMaxPayloadSize: 1 << 20,
	})
	if err != nil {
		s.mu.Lock()
		s.stats.DialErrors++
		s.mu.Unlock()
		var retry time.Duration
		if resp != nil {
			retry = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			err = fmt.Errorf("connect %s: HTTP %d: %w", s.cfg.URL, resp.StatusCode, err)
		} else {
			err = fmt.Errorf("connect %s: %w", s.cfg.URL, err)
		}
		return nil, retry, err
	}
	sess.conn = conn
	s.mu.Lock()
	s.stats.Connected++
	s.mu.Unlock()
	conn.SetReadDeadline(time.Now().Add(s.cfg.Silence))
	go conn.ReadLoop()
	go sess.ping(s.cfg.PingEvery)
	if ctx.Err() != nil {
		sess.close()
		return nil, 0, ctx.Err()
	}
	return sess, 0, nil
}

// session is one open connection.
type session struct {
	gws.BuiltinEventHandler
	s    *Stream
	conn *gws.Conn
	// got is set once the connection delivered a message, and first
	// closed then.
	got       atomic.Bool
	first     chan struct{}
	firstOnce sync.Once
	done      chan struct{}
	once      sync.Once
	closeErr  error
}

func (c *session) alive() { c.conn.SetReadDeadline(time.Now().Add(c.s.cfg.Silence)) }

func (c *session) OnPing(conn *gws.Conn, payload []byte) {
	c.alive()
	conn.WritePong(payload)
}

func (c *session) OnPong(*gws.Conn, []byte) { c.alive() }

func (c *session) OnClose(_ *gws.Conn, err error) {
	c.once.Do(func() {
		c.closeErr = err
		c.s.mu.Lock()
		c.s.stats.Connected--
		c.s.mu.Unlock()
		close(c.done)
	})
}

func (c *session) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.alive()
	c.s.handle(m.Bytes())
	c.got.Store(true)
	c.firstOnce.Do(func() { close(c.first) })
}

// ping pings until the connection ends; a link that stops answering is
// found by Silence.
func (c *session) ping(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.conn.WritePing(nil)
		}
	}
}

// awaitFirst returns once the connection delivered a message, ended, or
// timeout passed.
func (c *session) awaitFirst(ctx context.Context, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.first:
	case <-c.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// wait returns when the connection ends or ctx does (aged false), or at
// maxAge (aged true); got reports whether it delivered anything.
func (c *session) wait(ctx context.Context, maxAge time.Duration) (aged, got bool) {
	t := time.NewTimer(maxAge)
	defer t.Stop()
	select {
	case <-c.done:
	case <-ctx.Done():
	case <-t.C:
		aged = true
	}
	return aged, c.got.Load()
}

func (c *session) close() {
	c.conn.WriteClose(1000, nil)
	c.conn.NetConn().Close()
	<-c.done
}

func (c *session) err() error {
	if c.closeErr == nil {
		return errors.New("closed")
	}
	return c.closeErr
}

// handle decodes one stream message and queues what it carries.
func (s *Stream) handle(msg []byte) {
	var w struct {
		Stream string          `json:"stream"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(msg, &w); err != nil || len(w.Data) == 0 {
		s.decodeError(fmt.Errorf("stream message is not {stream, data}: %.80s", msg))
		return
	}
	var ev event
	switch {
	case w.Stream == forceOrderStream:
		l, err := ParseForceOrder(w.Data)
		if err != nil {
			s.decodeError(err)
			return
		}
		s.count("forceOrder")
		if !s.known[l.Symbol] {
			return // the stream carries every symbol; only ours are kept
		}
		row := l.Row()
		ev.liq = &row
	case strings.Contains(w.Stream, "@kline_"):
		u, err := s.parseKline(w.Data)
		if err != nil {
			s.decodeError(err)
			return
		}
		s.count("kline")
		ev.kline = &u
	default:
		s.decodeError(fmt.Errorf("message of stream %q, which was not asked for", w.Stream))
		return
	}
	s.queue(ev)
}

// queue hands ev to the writer; false once Run is ending.
func (s *Stream) queue(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.stop:
		return false
	}
}

func (s *Stream) count(kind string) {
	s.mu.Lock()
	s.stats.Messages[kind]++
	s.stats.LastMessageAt = time.Now()
	s.mu.Unlock()
}

func (s *Stream) decodeError(err error) {
	s.mu.Lock()
	s.stats.DecodeErrors++
	s.mu.Unlock()
	s.log.Warn("binance stream message refused", logging.KeyErr, err)
}

// parseKline reads a kline event: {"e":"kline","E":…,"s":…,"k":{"t":…,
// "o","h","l","c","v","x":…}}; keys are read exactly ("t"/"T", "v"/"V"
// are different fields).
func (s *Stream) parseKline(data []byte) (klineUpdate, error) {
	var ev, k rawObject
	if err := json.Unmarshal(data, &ev); err != nil {
		return klineUpdate{}, fmt.Errorf("kline event: %w", err)
	}
	if ev.str("e") != "kline" || json.Unmarshal(ev["k"], &k) != nil || k == nil {
		return klineUpdate{}, fmt.Errorf("kline event %q without a kline", ev.str("e"))
	}
	sym := k.str("s")
	if !s.known[sym] {
		return klineUpdate{}, fmt.Errorf("kline of symbol %q, which was not asked for", sym)
	}
	if iv := k.str("i"); iv != s.cfg.Interval {
		return klineUpdate{}, fmt.Errorf("kline %s: interval %q, want %q", sym, iv, s.cfg.Interval)
	}
	var eventMS int64
	var final bool
	if json.Unmarshal(ev["E"], &eventMS) != nil || eventMS < minEpochMillis {
		return klineUpdate{}, fmt.Errorf("kline %s: event time %s is not a time in milliseconds", sym, ev["E"])
	}
	if json.Unmarshal(k["x"], &final) != nil {
		return klineUpdate{}, fmt.Errorf("kline %s: x %s is not a boolean", sym, k["x"])
	}
	m, err := newKlineMaker(sym, s.cfg.Interval)
	if err != nil {
		return klineUpdate{}, err
	}
	kl, err := m.make(klineFields{openTime: string(k["t"]), open: k.str("o"), high: k.str("h"), low: k.str("l"), close: k.str("c"), volume: k.str("v")})
	if err != nil {
		return klineUpdate{}, fmt.Errorf("kline %s: %w", sym, err)
	}
	return klineUpdate{k: kl, eventMS: eventMS, final: final}, nil
}

// Row is l as the store keeps it.
func (l Liquidation) Row() store.Liquidation {
	side := store.SideShort
	if l.Long() {
		side = store.SideLong
	}
	return store.Liquidation{Symbol: l.Symbol, Time: l.Time, Side: side, Price: l.Price, Quantity: l.Quantity, Notional: l.Notional}
}

// candleKey names one candle of one symbol.
type candleKey struct {
	sym  string
	open time.Time
}

// seen is what the writer knows of a candle's updates.
type seen struct {
	eventMS int64
	final   bool
}

// maxPendingLiquidations bounds what waits for a failing store; past it the
// oldest are dropped, counted and logged.
const maxPendingLiquidations = 100_000

// write is the single writer: it orders updates per candle by event time
// (a duplicate or an older update than one already taken is dropped, and
// nothing after a candle's closing update), keeps the newest of each
// candle, and stores all of it every Flush in one transaction.
func (s *Stream) write(ctx context.Context) {
	t := time.NewTicker(s.cfg.Flush)
	defer t.Stop()
	known := map[candleKey]seen{}
	pending := map[candleKey]klineUpdate{}
	newest := map[string]time.Time{}
	var liqs []store.Liquidation
	flush := func() bool {
		if len(pending) == 0 && len(liqs) == 0 {
			return true
		}
		ks := make([]store.Kline, 0, len(pending))
		for _, u := range pending {
			ks = append(ks, u.k)
		}
		if err := s.st.UpsertAll(ctx, ks, nil, liqs); err != nil {
			s.mu.Lock()
			s.stats.FlushErrors++
			s.mu.Unlock()
			if ctx.Err() == nil {
				s.log.Warn("binance stream write failed; kept for the next flush", logging.KeyErr, err,
					"candles", len(ks), "liquidations", len(liqs))
			}
			return false
		}
		for key, u := range pending {
			if u.final {
				s.rest.MarkFinal(key.sym, key.open)
			}
		}
		s.mu.Lock()
		s.stats.Liquidations += uint64(len(liqs))
		s.mu.Unlock()
		clear(pending)
		liqs = liqs[:0]
		// Forget candles well behind their symbol's newest: an update that
		// old is out of any order Binance produces.
		for key := range known {
			if key.open.Before(newest[key.sym].Add(-3 * s.step)) {
				delete(known, key)
			}
		}
		return true
	}
	drop := func(why string) {
		s.mu.Lock()
		s.stats.Dropped[why]++
		s.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case <-t.C:
			flush()
		case ev := <-s.events:
			switch {
			case ev.up != nil:
				// A failed flush marks nothing final, so the backfill then
				// starts earlier, never later.
				flush()
				s.rest.StreamUp(ev.up)
			case ev.liq != nil:
				if len(liqs) >= maxPendingLiquidations {
					liqs = liqs[1:]
					drop("liquidation_overflow")
				}
				liqs = append(liqs, *ev.liq)
			case ev.kline != nil:
				u := *ev.kline
				key := candleKey{u.k.Symbol, u.k.OpenTime}
				prev, ok := known[key]
				switch {
				case ok && prev.final:
					drop("after_final")
				case ok && u.eventMS < prev.eventMS:
					drop("stale")
				case ok && u.eventMS == prev.eventMS && u.final == prev.final:
					drop("duplicate")
				default:
					known[key] = seen{eventMS: u.eventMS, final: u.final}
					pending[key] = u
					if key.open.After(newest[key.sym]) {
						newest[key.sym] = key.open
					}
				}
			}
		}
	}
}
