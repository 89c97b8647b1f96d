package fakebinance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// Config shapes the market.
type Config struct {
	Symbols  []string
	Interval time.Duration // candle interval; 5m
	// Start is when the market's history begins, Now where its clock
	// stands at first (Start when zero). Both are truncated to Interval.
	Start, Now time.Time
	Seed       uint64
	// UpdateEvery is how often, in market time, each symbol's open candle
	// is pushed on its kline stream; 1s (Binance pushes every 250 ms).
	UpdateEvery time.Duration
	// LiquidationsPerMinute is the mean number of liquidations per symbol
	// per minute of market time; 0 makes none but those of Liquidate.
	LiquidationsPerMinute float64
	// MaxStreams is how many streams one connection may ask for; Binance
	// USD-M allows 200.
	MaxStreams int
	// MaxIncoming is how many frames a client may send per second before
	// the connection is closed, as Binance does past 10.
	MaxIncoming int
}

// Stats counts what clients asked for.
type Stats struct {
	Requests      map[string]int // REST requests by path
	Weight        int            // request weight as Binance counts it for these endpoints
	Refused       int            // REST requests answered with an injected error
	Connections   int            // WebSocket connections accepted, ever
	Open          int            // WebSocket connections open now
	Rejected      int            // WebSocket handshakes refused
	Messages      int            // stream messages written
	MaxConnStream int            // most streams one connection asked for
	// KlineRequests lists every klines request answered, in order.
	KlineRequests []KlineRequest
}

// KlineRequest is one klines request and how many candles it got.
type KlineRequest struct {
	Symbol string
	Start  time.Time // zero without startTime
	Limit  int
	Rows   int
}

// Server is the fake exchange: an http.Handler for REST and /stream.
type Server struct {
	cfg      Config
	upgrader *gws.Upgrader

	mu        sync.Mutex
	now       time.Time
	series    map[string]*series
	conns     map[*gws.Conn]*conn
	liqs      []Liquidation
	delivered map[int]bool
	dup       bool
	reorder   bool
	restFail  []injected
	wsReject  []injected
	stats     Stats
	// pushed is when each kline state was first written to a connection,
	// by symbol, open time and cumulative volume, for freshness measures;
	// entries older than pushedKeep go.
	pushed map[pushKey]time.Time
	// superseded is when a state stopped being the newest, the first push
	// of the next one; newest is each symbol's newest state pushed.
	superseded map[pushKey]time.Time
	newest     map[string]pushKey
}

type pushKey struct {
	sym    string
	open   int64
	volume float64
}

// pushedKeep bounds the memory of Pushed.
const pushedKeep = 15 * time.Minute

type injected struct{ status, retryAfter int }

// conn is one client connection and what it subscribed to.
type conn struct {
	klines   map[string]bool
	force    bool
	silent   bool
	held     map[string][]byte // reorder: a kline message sent after the next one
	window   time.Time
	incoming int
}

// New returns a server whose market stands at cfg.Now.
func New(cfg Config) *Server {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.UpdateEvery <= 0 {
		cfg.UpdateEvery = time.Second
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 200
	}
	if cfg.MaxIncoming <= 0 {
		cfg.MaxIncoming = 10
	}
	cfg.Start = cfg.Start.UTC().Truncate(cfg.Interval)
	if cfg.Now.IsZero() {
		cfg.Now = cfg.Start
	}
	s := &Server{cfg: cfg, now: cfg.Now.UTC().Truncate(cfg.UpdateEvery), series: map[string]*series{},
		conns: map[*gws.Conn]*conn{}, delivered: map[int]bool{}, stats: Stats{Requests: map[string]int{}},
		pushed: map[pushKey]time.Time{}, superseded: map[pushKey]time.Time{}, newest: map[string]pushKey{}}
	for _, sym := range cfg.Symbols {
		sr := newSeries(sym, cfg.Seed, cfg.Interval, cfg.Start)
		sr.advance(s.now)
		s.series[sym] = sr
	}
	s.upgrader = gws.NewUpgrader(handler{s}, &gws.ServerOption{})
	return s
}

// Now is the market's clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the market to `to`, step by UpdateEvery, writing each step's
// kline updates and liquidations to the connections subscribed to them
// before it returns. A symbol nobody is subscribed to moves all the same:
// its updates are lost, as they are on the real exchange.
func (s *Server) Advance(to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := s.now.Add(s.cfg.UpdateEvery); !t.After(to); t = t.Add(s.cfg.UpdateEvery) {
		s.step(t)
	}
}

// Run advances the market with the wall clock every UpdateEvery until ctx
// ends: the mode for a running snapshotter.
func (s *Server) Run(ctx context.Context) {
	tk := time.NewTicker(s.cfg.UpdateEvery)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			s.Advance(now)
		}
	}
}

func (s *Server) step(t time.Time) {
	s.now = t
	if t.Second() == 0 {
		for k, at := range s.pushed {
			if time.Since(at) > pushedKeep {
				delete(s.pushed, k)
				delete(s.superseded, k)
			}
		}
	}
	for _, sym := range s.cfg.Symbols {
		sr := s.series[sym]
		closedBefore := len(sr.closed)
		sr.advance(t)
		for i := closedBefore; i < len(sr.closed); i++ {
			s.sendKline(sym, sr.closed[i], t)
		}
		s.sendKline(sym, sr.open(t), t)
		if s.cfg.LiquidationsPerMinute > 0 {
			r := rand.New(rand.NewPCG(sr.seed^0x5bd1e995, uint64(t.UnixMilli())))
			if r.Float64() < s.cfg.LiquidationsPerMinute*s.cfg.UpdateEvery.Minutes() {
				side, dir := "SELL", -1.0
				if r.IntN(2) == 0 {
					side, dir = "BUY", 1.0
				}
				p := sr.price(t)
				price := roundTick(p * (1 + dir*0.002*r.Float64()))
				qty := math.Round(r.ExpFloat64()*20000/p*1000) / 1000
				if qty > 0 {
					s.liquidate(Liquidation{Symbol: sym, Side: side, Price: price, Avg: price, Quantity: qty, Time: t})
				}
			}
		}
	}
}

// Liquidate makes a liquidation happen now, at price, and sends it.
func (s *Server) Liquidate(symbol, side string, price, qty float64) Liquidation {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Liquidation{Symbol: symbol, Side: side, Price: price, Avg: price, Quantity: qty, Time: s.now}
	s.liquidate(l)
	return l
}

func (s *Server) liquidate(l Liquidation) {
	s.liqs = append(s.liqs, l)
	msg := fmt.Sprintf(`{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":%d,"o":{"s":%q,"S":%q,"o":"LIMIT","f":"IOC","q":"%s","p":"%s","ap":"%s","X":"FILLED","l":"%s","z":"%s","T":%d}}}`,
		l.Time.UnixMilli()+3, l.Symbol, l.Side, num(l.Quantity), num(l.Price), num(l.Avg), num(l.Quantity), num(l.Quantity), l.Time.UnixMilli())
	for ws, c := range s.conns {
		if c.force && s.write(ws, c, []byte(msg)) {
			s.delivered[len(s.liqs)-1] = true
		}
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func (s *Server) sendKline(sym string, c Candle, at time.Time) {
	iv := intervalName(s.cfg.Interval)
	msg := []byte(fmt.Sprintf(`{"stream":"%s@kline_%s","data":{"e":"kline","E":%d,"s":%q,"k":{"t":%d,"T":%d,"s":%q,"i":%q,"f":1,"L":2,"o":"%s","c":"%s","h":"%s","l":"%s","v":"%s","n":10,"x":%t,"q":"0","V":"0","Q":"0","B":"0"}}}`,
		strings.ToLower(sym), iv, at.UnixMilli(), sym, c.Open.UnixMilli(), c.Open.Add(s.cfg.Interval).UnixMilli()-1, sym, iv,
		num(c.O), num(c.C), num(c.H), num(c.L), num(c.V), c.Final))
	key := pushKey{sym, c.Open.UnixMilli(), c.V}
	for ws, cn := range s.conns {
		if !cn.klines[sym] {
			continue
		}
		if _, ok := s.pushed[key]; !ok && !cn.silent {
			now := time.Now()
			s.pushed[key] = now
			if prev, ok := s.newest[sym]; ok {
				s.superseded[prev] = now
			}
			s.newest[sym] = key
		}
		if s.reorder {
			prev := cn.held[sym]
			cn.held[sym] = msg
			if prev != nil {
				s.write(ws, cn, msg)
				s.write(ws, cn, prev)
				delete(cn.held, sym)
			}
			continue
		}
		s.write(ws, cn, msg)
	}
}

// write sends msg (twice while duplicating) unless the connection is silent;
// it reports whether it was sent.
func (s *Server) write(ws *gws.Conn, c *conn, msg []byte) bool {
	if c.silent {
		return false
	}
	n := 1
	if s.dup {
		n = 2
	}
	for range n {
		if ws.WriteMessage(gws.OpcodeText, msg) != nil {
			return false
		}
		s.stats.Messages++
	}
	return true
}

func intervalName(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/time.Minute)) + "m"
}

// --- faults ---

// DropConnections closes every open connection abruptly, without a close
// frame, as a network fault does; it returns how many it closed.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for ws := range s.conns {
		ws.NetConn().Close()
		n++
	}
	return n
}

// Silence makes every open connection go quiet: no messages, no pongs, no
// close, a half-dead link. New connections are served normally.
func (s *Server) Silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.silent = true
	}
}

// Duplicate sends every message twice while on.
func (s *Server) Duplicate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dup = on
}

// Reorder sends each kline update after the next one of its symbol while on,
// so a client sees every update, half of them late.
func (s *Server) Reorder(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reorder = on
	if !on {
		for ws, c := range s.conns {
			for sym, m := range c.held {
				s.write(ws, c, m)
				delete(c.held, sym)
			}
		}
	}
}

// FailREST answers the next n REST requests with status (429 or 418, say)
// and a Retry-After of retryAfter seconds (none when 0).
func (s *Server) FailREST(n, status, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.restFail = append(s.restFail, injected{status, retryAfter})
	}
}

// RejectConnections refuses the next n WebSocket handshakes with status and
// Retry-After.
func (s *Server) RejectConnections(n, status, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.wsReject = append(s.wsReject, injected{status, retryAfter})
	}
}

// --- truth ---

// Klines returns symbol's candles from Start: every closed one and the open
// one as it stands.
func (s *Server) Klines(symbol string) []Candle {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.series[symbol]
	return append(slices.Clone(sr.closed), sr.open(s.now))
}

// OpenInterest returns symbol's openInterestHist rows published so far.
func (s *Server) OpenInterest(symbol string) []OI {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.series[symbol].oi)
}

// Liquidations returns every liquidation that happened; delivered tells
// whether each was written to at least one connection.
func (s *Server) Liquidations() (all []Liquidation, delivered []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all = slices.Clone(s.liqs)
	delivered = make([]bool, len(all))
	for i := range all {
		delivered[i] = s.delivered[i]
	}
	return all, delivered
}

// Pushed returns when the state of symbol's candle opening at open with
// the given cumulative volume was first written to a client (wall clock),
// for measuring how fresh what clients show is.
func (s *Server) Pushed(symbol string, open time.Time, volume float64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.pushed[pushKey{symbol, open.UnixMilli(), volume}]
	return at, ok
}

// Superseded returns when that state stopped being the market's newest: the
// first push of the next one (wall clock); false while it is still the
// newest. A client showing it is behind the market from then on: the market
// changes once a second while pushes come every UpdateEvery, so the time
// since a state's first push overstates how far behind a client is.
func (s *Server) Superseded(symbol string, open time.Time, volume float64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.superseded[pushKey{symbol, open.UnixMilli(), volume}]
	return at, ok
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Requests = make(map[string]int, len(s.stats.Requests))
	for k, v := range s.stats.Requests {
		st.Requests[k] = v
	}
	st.KlineRequests = slices.Clone(s.stats.KlineRequests)
	st.Open = len(s.conns)
	return st
}

// --- HTTP ---

// ServeHTTP serves /fapi/v1/klines, /futures/data/openInterestHist and the
// combined streams at /stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/stream" {
		s.serveStream(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests[r.URL.Path]++
	if len(s.restFail) > 0 {
		f := s.restFail[0]
		s.restFail = s.restFail[1:]
		s.stats.Refused++
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
		}
		http.Error(w, `{"code":-1003,"msg":"Too many requests; injected by fakebinance."}`, f.status)
		return
	}
	q := r.URL.Query()
	sr, ok := s.series[q.Get("symbol")]
	if !ok && r.URL.Path != "/fapi/v1/ping" {
		http.Error(w, `{"code":-1121,"msg":"Invalid symbol."}`, http.StatusBadRequest)
		return
	}
	ms := func(k string) (time.Time, bool) {
		v, err := strconv.ParseInt(q.Get(k), 10, 64)
		return time.UnixMilli(v).UTC(), err == nil
	}
	limit := func(def, most int) int {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n <= 0 {
			return def
		}
		return min(n, most)
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/fapi/v1/ping":
		w.Write([]byte("{}"))
	case "/fapi/v1/klines":
		if q.Get("interval") != intervalName(s.cfg.Interval) {
			http.Error(w, `{"code":-1120,"msg":"Invalid interval."}`, http.StatusBadRequest)
			return
		}
		n := limit(500, 1500)
		s.stats.Weight += klineWeight(n)
		all := append(slices.Clone(sr.closed), sr.open(s.now))
		from, hasFrom := ms("startTime")
		var rows [][]any
		for _, c := range all {
			if hasFrom && c.Open.Before(from) {
				continue
			}
			rows = append(rows, []any{c.Open.UnixMilli(), num(c.O), num(c.H), num(c.L), num(c.C), num(c.V),
				c.Open.Add(s.cfg.Interval).UnixMilli() - 1, "0", 10, "0", "0", "0"})
			if len(rows) == n {
				break
			}
		}
		if !hasFrom && len(rows) > 0 {
			rows = rows[max(0, len(all)-n):]
		}
		if rows == nil {
			rows = [][]any{}
		}
		req := KlineRequest{Symbol: sr.sym, Limit: n, Rows: len(rows)}
		if hasFrom {
			req.Start = from
		}
		s.stats.KlineRequests = append(s.stats.KlineRequests, req)
		json.NewEncoder(w).Encode(rows)
	case "/futures/data/openInterestHist":
		s.stats.Weight++
		from, _ := ms("startTime")
		to, hasTo := ms("endTime")
		if !hasTo {
			to = s.now
		}
		if from.Before(s.now.Add(-30 * 24 * time.Hour)) {
			http.Error(w, `{"code":-1130,"msg":"parameter 'startTime' is invalid."}`, http.StatusBadRequest)
			return
		}
		n := limit(30, 500)
		rows := []map[string]any{}
		for _, o := range sr.oi {
			if o.TS.Before(from) || o.TS.After(to) {
				continue
			}
			rows = append(rows, map[string]any{"symbol": sr.sym, "sumOpenInterest": num(o.OI),
				"sumOpenInterestValue": num(o.Value), "timestamp": o.TS.UnixMilli()})
			if len(rows) == n {
				break
			}
		}
		json.NewEncoder(w).Encode(rows)
	default:
		http.NotFound(w, r)
	}
}

// klineWeight is Binance's weight of a klines request by its limit.
func klineWeight(limit int) int {
	switch {
	case limit < 100:
		return 1
	case limit < 500:
		return 2
	case limit <= 1000:
		return 5
	}
	return 10
}

func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.wsReject) > 0 {
		f := s.wsReject[0]
		s.wsReject = s.wsReject[1:]
		s.stats.Rejected++
		s.mu.Unlock()
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.retryAfter))
		}
		http.Error(w, "refused by fakebinance", f.status)
		return
	}
	c := &conn{klines: map[string]bool{}, held: map[string][]byte{}}
	names := strings.Split(r.URL.Query().Get("streams"), "/")
	if len(names) > s.cfg.MaxStreams {
		s.stats.Rejected++
		s.mu.Unlock()
		http.Error(w, fmt.Sprintf("%d streams, at most %d per connection", len(names), s.cfg.MaxStreams), http.StatusBadRequest)
		return
	}
	s.stats.MaxConnStream = max(s.stats.MaxConnStream, len(names))
	iv := "@kline_" + intervalName(s.cfg.Interval)
	for _, n := range names {
		switch {
		case n == "!forceOrder@arr":
			c.force = true
		case strings.HasSuffix(n, iv):
			c.klines[strings.ToUpper(strings.TrimSuffix(n, iv))] = true
		}
	}
	s.mu.Unlock()
	ws, err := s.upgrader.Upgrade(w, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[ws] = c
	s.stats.Connections++
	s.mu.Unlock()
	go ws.ReadLoop()
}

type handler struct{ s *Server }

func (h handler) OnOpen(*gws.Conn) {}

func (h handler) OnClose(ws *gws.Conn, _ error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	delete(h.s.conns, ws)
}

// incoming counts a client frame and closes the connection past MaxIncoming
// a second; it reports whether the connection is silent.
func (h handler) incoming(ws *gws.Conn) (silent bool) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	c := h.s.conns[ws]
	if c == nil {
		return true
	}
	now := time.Now()
	if now.Sub(c.window) >= time.Second {
		c.window, c.incoming = now, 0
	}
	c.incoming++
	if c.incoming > h.s.cfg.MaxIncoming {
		ws.WriteClose(1008, []byte("too many messages"))
		return true
	}
	return c.silent
}

func (h handler) OnPing(ws *gws.Conn, payload []byte) {
	if !h.incoming(ws) {
		ws.WritePong(payload)
	}
}

func (h handler) OnPong(ws *gws.Conn, _ []byte) { h.incoming(ws) }

func (h handler) OnMessage(ws *gws.Conn, m *gws.Message) {
	m.Close()
	h.incoming(ws)
}
