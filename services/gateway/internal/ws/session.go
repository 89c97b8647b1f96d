package ws

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
)

// symState is one subscribed symbol of a session.
type symState struct {
	sym string
	pacer
	lastOrder uint64     // hub order of the newest frame accepted; older ones are refused
	held      *hub.Frame // newest frame waiting for its slot
	heldStamp time.Time
	timer     stopper // fires at the held frame's slot
	// delta: the client asked for delta frames. chained: the last frame
	// written of this symbol was (sentEpoch, sentSeq), whole or as a delta,
	// so a delta based on it is all the client needs. Anything that skips a
	// frame (conflation, a drop, pacing, a failover, a restart) breaks the
	// chain by itself: the next frame's base is not the last one written.
	delta              bool
	chained            bool
	sentEpoch, sentSeq uint64
}

// subscriptions is a connection's symbols: a handful, so a slice scanned in
// order is smaller than a map (per connection, for its whole life) and as fast.
type subscriptions []*symState

func (ss subscriptions) get(sym string) *symState {
	for _, st := range ss {
		if st.sym == sym {
			return st
		}
	}
	return nil
}

// stopper is a timer the session can cancel.
type stopper interface{ Stop() bool }

// reply is a small frame for this connection alone: a pong, an error, a
// warning, a WebSocket ping or pong.
type reply struct {
	op      gws.Opcode
	payload []byte
	code    uint16 // of a close frame
	warning bool   // a SLOW_CONSUMER warning, encoded when it is written
}

// session is one connection: the hub's Subscriber. Every write goes through
// it, so every write is bounded and watched: at most one write is handed to
// gws at a time (gws's own queue is unbounded), each with its own socket
// deadline armed when it starts and cleared when it ends. Waiting here are at
// most MaxPendingReplies replies, which go first, and QueueSize snapshots,
// one per symbol, a newer frame replacing an older one (the oldest goes first
// when the queue is full). Per symbol a client gets no more than one frame
// per update interval, paced on the producer's clock (see pacer); a frame
// that comes too soon is held, newest wins, and sent at its slot.
type session struct {
	srv       *Server
	conn      *gws.Conn
	id        uint64 // conn_id in the logs
	ip        string
	connected time.Time

	mu       sync.Mutex
	interval time.Duration
	symbols  subscriptions
	queue    []*hub.Frame // FIFO, one per symbol
	replies  []reply      // FIFO, written before queued snapshots
	busy     bool         // a write is handed to gws
	deadline time.Time    // the socket's write deadline, as last set
	since    time.Time    // when that write was handed over
	// missed counts write-deadline misses in a row; countedUpTo marks how far
	// the current write has been counted, so a stalled write counts once per timeout.
	missed      int
	countedUpTo time.Time
	dropped     int // since the last SLOW_CONSUMER warning
	lastWarn    time.Time
	warnQueued  bool // a warning waits in replies; it will carry every drop until written
	closing     bool
	closeFrame  *reply // the close frame, written after the replies already queued
	closeReason string
	lastPing    time.Time

	limiter    *rate.Limiter
	violations int // rate-limited messages in a row
}

func newSession(srv *Server, conn *gws.Conn, ip string) *session {
	return &session{
		srv: srv, conn: conn, id: srv.connIDs.Add(1), ip: ip,
		interval: protocol.DefaultUpdateInterval * time.Second,
		lastPing: srv.now(), connected: srv.now(),
		limiter: rate.NewLimiter(rate.Limit(srv.cfg.ActionsPerSecond), srv.cfg.ActionBurst),
	}
}

// allow spends a token for one client message. Over the limit the client
// gets RATE_LIMITED; a client that keeps flooding is closed.
func (s *session) allow() bool {
	s.mu.Lock()
	if s.limiter.Allow() {
		s.violations = 0
		s.mu.Unlock()
		return true
	}
	s.violations++
	if s.violations >= s.srv.cfg.MaxRateViolations {
		s.closeLocked(ClosePolicy, "rate_limited", fmt.Sprintf("rate limit exceeded: more than %g messages per second", s.srv.cfg.ActionsPerSecond))
		s.mu.Unlock()
		return false // the close is logged when the connection is gone
	}
	first := s.violations == 1
	if first {
		// One error per burst: answering every flooded message would let the
		// flood grow our write queue.
		msg := fmt.Sprintf("too many messages: at most %g per second; further messages are ignored until the rate drops", s.srv.cfg.ActionsPerSecond)
		s.replyLocked(gws.OpcodeText, protocol.EncodeError(protocol.CodeRateLimited, msg))
	}
	s.mu.Unlock()
	if first {
		s.srv.warns.Warn(s.srv.log, "rate_limited", "client rate limited", logging.KeyConnID, s.id, logging.KeyReason, "rate_limited")
	}
	return false
}

// Send implements hub.Subscriber. It never blocks on the network.
func (s *session) Send(f *hub.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.symbols.get(f.Symbol)
	if s.closing || st == nil || f.Order <= st.lastOrder {
		return
	}
	st.lastOrder = f.Order
	now := s.srv.now()
	stamp := stampOf(f, now)
	if wait := st.wait(stamp, s.interval); wait > 0 {
		// Too soon for the client's interval: hold the newest until its slot.
		if st.held != nil {
			st.held.Release()
		}
		f.Retain()
		st.held, st.heldStamp = f, stamp
		st.arrived(stamp)
		if st.timer == nil {
			sym := f.Symbol
			st.timer = s.srv.afterFunc(wait, func() { s.flushHeld(sym) })
		}
		return
	}
	f.Retain()
	s.sendLocked(st, f, stamp, now)
}

// stampOf is the time f is paced on: its producer's timestamp, or, for a
// frame without one, its arrival.
func stampOf(f *hub.Frame, now time.Time) time.Time {
	if f.Stamp.IsZero() {
		return now
	}
	return f.Stamp
}

// sendLocked queues f (taking one reference) as st's frame for this slot;
// anything held for the slot is older and goes.
func (s *session) sendLocked(st *symState, f *hub.Frame, stamp, now time.Time) {
	st.stopTimer()
	if st.held != nil {
		st.held.Release()
		st.held = nil
	}
	st.sent(stamp, s.interval)
	s.enqueueLocked(f, now)
}

func (st *symState) stopTimer() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

// sendNow delivers f at once, ignoring the interval: a subscribe's first
// frame. A frame the session already has a newer one of is not sent: a
// publish may have overtaken the subscribe.
func (s *session) sendNow(f *hub.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.symbols.get(f.Symbol)
	if s.closing || st == nil || f.Order <= st.lastOrder {
		return
	}
	st.lastOrder = f.Order
	now := s.srv.now()
	f.Retain()
	s.sendLocked(st, f, stampOf(f, now), now)
}

// flushHeld sends sym's held frame: its slot has come.
func (s *session) flushHeld(sym string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.symbols.get(sym)
	if st == nil || st.held == nil || s.closing {
		return
	}
	st.timer = nil
	f := st.held
	st.held = nil
	s.sendLocked(st, f, st.heldStamp, s.srv.now())
}

// enqueueLocked takes ownership of one reference to f.
func (s *session) enqueueLocked(f *hub.Frame, now time.Time) {
	for i, q := range s.queue {
		if q.Symbol == f.Symbol {
			// Conflate: the client only ever wants the newest frame of a symbol.
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			q.Release()
			s.dropLocked("conflated", now)
			break
		}
	}
	if len(s.queue) >= s.srv.cfg.QueueSize {
		s.queue[0].Release()
		s.queue = s.queue[1:]
		s.dropLocked("queue_full", now)
	}
	s.queue = append(s.queue, f)
	s.startLocked(now)
}

func (s *session) dropLocked(reason string, now time.Time) {
	s.dropped++
	s.srv.dropped[reason].Inc()
	if now.Sub(s.lastWarn) >= s.srv.cfg.WarnInterval {
		s.warnLocked(now)
	}
}

// warnLocked queues a SLOW_CONSUMER warning unless one is already waiting:
// a client too slow to read one warning does not need a second.
func (s *session) warnLocked(now time.Time) {
	s.lastWarn = now
	if s.warnQueued {
		return
	}
	s.warnQueued = true
	s.pushReplyLocked(reply{op: gws.OpcodeText, warning: true})
}

// warningLocked encodes the queued warning with every drop counted so far.
func (s *session) warningLocked() []byte {
	n := s.dropped
	s.dropped, s.warnQueued = 0, false
	msg := fmt.Sprintf("Connection slow - may miss updates: %d snapshot(s) replaced by newer ones", n)
	return protocol.EncodeWarning(protocol.WarnSlowConsumer, msg, n)
}

// reply queues a frame for this client alone.
func (s *session) reply(op gws.Opcode, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replyLocked(op, payload)
}

// replyLocked queues a reply. A client with MaxPendingReplies replies it has
// not read is not reading at all: it is closed rather than buffered for.
func (s *session) replyLocked(op gws.Opcode, payload []byte) {
	s.pushReplyLocked(reply{op: op, payload: payload})
}

func (s *session) pushReplyLocked(r reply) {
	if s.closing {
		return
	}
	if len(s.replies) >= s.srv.cfg.MaxPendingReplies {
		s.closeLocked(CloseSlowConsumer, "slow_consumer",
			fmt.Sprintf("slow consumer: %d replies not read", len(s.replies)))
		return
	}
	s.replies = append(s.replies, r)
	s.startLocked(s.srv.now())
}

// startLocked hands the next write to gws if none is in flight: the close
// frame once closing, replies before snapshots.
func (s *session) startLocked(now time.Time) {
	if s.busy {
		return
	}
	var r *reply
	switch {
	case len(s.replies) > 0:
		first := s.replies[0]
		r = &first
		s.replies[0] = reply{}
		s.replies = s.replies[1:]
		if len(s.replies) == 0 {
			s.replies = nil // let the backing array go
		}
		if first.warning {
			first.payload = s.warningLocked()
		}
	case s.closeFrame != nil:
		r, s.closeFrame = s.closeFrame, nil
	case s.closing || len(s.queue) == 0:
		return
	}
	s.busy, s.since, s.countedUpTo = true, now, now
	// Armed at hand-over: only one write of ours is ever in gws's queue, so
	// it starts as soon as the writer finishes the previous one, whose
	// completion is what calls this.
	s.armDeadline()
	if r != nil {
		w := *r
		s.conn.Async(func() {
			var err error
			if w.op == gws.OpcodeCloseConnection {
				err = s.conn.WriteClose(w.code, w.payload)
			} else {
				err = s.conn.WriteMessage(w.op, w.payload)
			}
			s.written(nil, err)
		})
		return
	}
	f := s.queue[0]
	s.queue = s.queue[1:]
	write, done := f.WriteTo, func(err error) { s.written(f, err) }
	if st := s.symbols.get(f.Symbol); st != nil {
		if st.delta && st.chained && f.Follows(st.sentEpoch, st.sentSeq) {
			write = f.WriteDeltaTo
			// Counted when handed to the socket, not when the write
			// completes: a client can read the frame before the completion
			// runs, and a failed write ends the connection anyway.
			s.srv.metrics.DeltasSent.Inc()
		}
		// Chained only to a frame that has a seq to be followed by.
		st.chained, st.sentEpoch, st.sentSeq = f.Seq > 0, f.Epoch, f.Seq
	}
	if err := write(s.conn, done); err != nil {
		s.busy = false
		f.Release()
	}
}

// armDeadline gives the write being handed over its own deadline: a socket
// that accepts nothing for the whole slow-consumer budget is dead, and the
// deadline frees the writer even if the watchdog is late. Every write arms
// it afresh, so a quiet connection's next write never meets a stale one.
//
// Moving a socket deadline is a runtime timer change, and at one per write
// it was the largest per-write cost the bare broadcaster does not pay; so a
// deadline still at least half the budget away is kept. Each write thus has
// at least half the budget (two write timeouts or more), and the watchdog,
// not the socket, counts the misses.
func (s *session) armDeadline() {
	budget := s.srv.cfg.WriteTimeout * time.Duration(s.srv.cfg.SlowMaxMisses+1)
	now := time.Now()
	if s.deadline.Sub(now) >= budget/2 {
		return
	}
	s.deadline = now.Add(budget)
	s.conn.SetWriteDeadline(s.deadline)
}

// written runs on gws's writer when a write finished; f is nil for a reply.
func (s *session) written(f *hub.Frame, err error) {
	now := s.srv.now()
	if f != nil {
		if err == nil {
			s.srv.sent(f, now)
		}
		f.Release()
	}
	s.mu.Lock()
	s.busy = false
	if err != nil {
		// gws closes the connection on a write error; OnClose cleans up. A
		// write that ran into its deadline is a slow consumer even if the
		// watchdog had not counted slow_max_misses yet: a deadline kept from
		// an earlier write may fire after half the budget.
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		if timeout && s.closeReason == "" {
			s.closeReason = "slow_consumer"
		}
		closing := s.closing
		s.mu.Unlock()
		// A write cut short by a close already under way, or by its deadline
		// (the close line says slow_consumer), is no news of its own.
		if !timeout && !closing && !errors.Is(err, gws.ErrConnClosed) && !errors.Is(err, net.ErrClosed) {
			s.srv.warns.Warn(s.srv.log, "write_failed", "write failed", logging.KeyConnID, s.id, logging.KeyReason, "write_failed", logging.KeyErr, err)
		}
		return
	}
	defer s.mu.Unlock()
	if now.Sub(s.since) <= s.srv.cfg.WriteTimeout {
		s.missed = 0
	}
	s.startLocked(now)
}

// check is the watchdog's look at one session: it counts deadline misses,
// closes a client that keeps missing, and pings a quiet one.
func (s *session) check(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	wt := s.srv.cfg.WriteTimeout
	if s.busy && now.Sub(s.countedUpTo) > wt {
		s.countedUpTo = s.countedUpTo.Add(wt)
		s.missed++
		s.srv.slowMiss()
		if s.missed >= s.srv.cfg.SlowMaxMisses {
			s.closeLocked(CloseSlowConsumer, "slow_consumer",
				fmt.Sprintf("slow consumer: missed the %s write deadline %d times", wt, s.missed))
			return
		}
		if now.Sub(s.lastWarn) >= s.srv.cfg.WarnInterval {
			s.warnLocked(now)
		}
	}
	if now.Sub(s.lastPing) >= s.srv.cfg.PingInterval {
		s.lastPing = now
		s.replyLocked(gws.OpcodePing, nil)
	}
}

// isClosing reports whether the gateway has begun closing the connection.
func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// closeLocked closes the connection with code and a reason the client sees;
// label is the metrics label.
func (s *session) closeLocked(code uint16, label, reason string) {
	if s.closing {
		return
	}
	s.closing, s.closeReason = true, label
	for _, f := range s.queue {
		f.Release()
	}
	s.queue = nil
	// The close frame follows the replies already queued (the error
	// explaining the close). A write stuck in flight gets a second more,
	// then the socket goes regardless.
	s.closeFrame = &reply{op: gws.OpcodeCloseConnection, payload: []byte(reason), code: code}
	s.deadline = time.Now().Add(time.Second)
	s.conn.SetWriteDeadline(s.deadline)
	s.startLocked(s.srv.now())
}

// setInterval changes the client's update interval; a held frame's slot
// moves with it at once.
func (s *session) setInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d == s.interval {
		return
	}
	s.interval = d
	now := s.srv.now()
	for _, st := range s.symbols {
		if st.held == nil {
			continue
		}
		sym := st.sym
		st.stopTimer()
		if wait := st.wait(st.heldStamp, d); wait > 0 {
			st.timer = s.srv.afterFunc(wait, func() { s.flushHeld(sym) })
			continue
		}
		f := st.held
		st.held = nil
		s.sendLocked(st, f, st.heldStamp, now)
	}
}

// track adds syms to the session's subscriptions with the encoding asked
// for. A symbol subscribed to again with delta encoding is a resync: its
// chain is broken and its newest frame will be sent again, whole.
func (s *session) track(syms []string, delta bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sym := range syms {
		st := s.symbols.get(sym)
		if st == nil {
			s.symbols = append(s.symbols, &symState{sym: sym, delta: delta})
			continue
		}
		st.delta = delta
		if delta {
			// The resent frame starts the pacing grid afresh: counted as
			// a new slot it would hold the next frame an extra interval.
			st.chained, st.lastOrder, st.pacer = false, 0, pacer{}
		}
	}
}

// untrack forgets syms, dropping anything held or queued for them.
func (s *session) untrack(syms []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sym := range syms {
		s.forgetLocked(sym)
	}
}

func (s *session) forgetLocked(sym string) {
	st := s.symbols.get(sym)
	if st == nil {
		return
	}
	st.stopTimer()
	if st.held != nil {
		st.held.Release()
	}
	s.symbols = slices.DeleteFunc(s.symbols, func(o *symState) bool { return o == st })
	q := s.queue[:0]
	for _, f := range s.queue {
		if f.Symbol == sym {
			f.Release()
			continue
		}
		q = append(q, f)
	}
	s.queue = q
}

// release frees everything the session holds; the connection is gone.
func (s *session) release() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for len(s.symbols) > 0 {
		s.forgetLocked(s.symbols[0].sym)
	}
	for _, f := range s.queue {
		f.Release()
	}
	s.queue, s.replies, s.closeFrame, s.warnQueued = nil, nil, nil, false
	return s.closeReason
}
