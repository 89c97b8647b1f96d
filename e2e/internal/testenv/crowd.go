package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// The page's reconnect policy, services/gateway/web/liqstream.js DEFAULTS
// (reconnectBase, reconnectMax, jitter, maxAttempts, drainJitter,
// wsRetryInterval); e2e's TestFleetFaults checks they still agree.
const (
	PageReconnectBase   = 2 * time.Second
	PageReconnectMax    = 32 * time.Second
	PageJitter          = 0.2
	PageMaxAttempts     = 5
	PageDrainJitter     = 5 * time.Second
	PageWSRetryInterval = 60 * time.Second
)

// BackoffDelay is liqstream.js's backoffDelay: the delay before reconnect
// attempt number attempt (1-based) for a random r in [0, 1): the base
// doubled per attempt, capped, times a factor within ± PageJitter.
func BackoffDelay(attempt int, r float64) time.Duration {
	base := PageReconnectMax
	if attempt <= 5 { // 2 s << 4 is 32 s already: no overflow past that
		base = min(PageReconnectBase<<(attempt-1), PageReconnectMax)
	}
	ms := math.Round(float64(base/time.Millisecond) * (1 + PageJitter*(2*r-1)))
	return time.Duration(ms) * time.Millisecond
}

// ReconnectWithin bounds how long after losing its connection a page-like
// client is back, when its reconnects fail at once (refused) until down
// after the loss and succeed from then on. Attempt k comes after k backoff
// delays, each within ± jitter of its base: attempt k can come no earlier
// than the sum of the k shortest delays and no later than the sum of the k
// longest. The first attempt that cannot come before down is therefore the
// k whose shortest sum reaches down; the client is back by its longest sum
// (plus the time the successful dial takes). It returns that time and k.
// Past PageMaxAttempts the page retries the socket every PageWSRetryInterval.
func ReconnectWithin(down time.Duration) (time.Duration, int) {
	var lo, hi time.Duration
	for k := 1; ; k++ {
		if k <= PageMaxAttempts {
			lo += BackoffDelay(k, 0)
			hi += BackoffDelay(k, 1)
		} else {
			lo += PageWSRetryInterval
			hi += PageWSRetryInterval
		}
		if lo >= down {
			return hi, k
		}
	}
}

// Crowd is many browser stand-ins behind the edge that behave like the page:
// subscribe, read every frame, and after a close reconnect as liqstream.js
// does: after a random delay of up to five seconds on 1012, otherwise with
// its backoff (BackoffDelay: 2 s doubling, ± 20 %). Each client dials from
// its own source address 127.X.Y.1, so nginx's ip_hash (which keys on the
// first three octets) tells them apart.
//
// It also checks what every client reads (Stats): snapshots must come in
// (epoch, seq) order, and it records the gaps between them and each lost
// connection's way back.
type Crowd struct {
	url      string
	symbol   string
	interval int
	stop     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	members []*member
	// closes1012 is when each 1012 close was read, for the pacing check.
	closes1012 []time.Time
	other      map[string]int // closes and dial errors that were not 1012

	// The stats window (ResetStats).
	since    time.Time
	losses   []*CrowdLoss
	examples []string // out-of-order frames, the first few
}

type member struct {
	gateway string    // where it is connected now; "" while not
	since   time.Time // when it connected there
	fresh   bool      // a frame arrived since it connected
	moves   int

	// What the client read, across all its connections.
	pos      position  // the newest snapshot's (epoch, seq)
	lastRead time.Time // when the last snapshot was read; zero before the first
	lost     *CrowdLoss

	// Since the stats window began.
	frames, outOfOrder, repeats int
	maxGap                      time.Duration
	maxGapAt                    time.Time
}

// position orders a symbol's frames: by epoch, then seq (docs/API.md).
type position struct{ epoch, seq uint64 }

func (p position) after(q position) bool {
	return p.epoch > q.epoch || (p.epoch == q.epoch && p.seq > q.seq)
}

// CrowdLoss is a connection a client lost: closed other than by a 1012.
type CrowdLoss struct {
	Client  int
	Gateway string    // where it was connected
	At      time.Time // when the close was read
	// Attempts counts the connection attempts made since (the one that
	// succeeded included).
	Attempts int
	// Back is when the first snapshot arrived on a new connection; zero
	// until then.
	Back time.Time
}

// CrowdOptions shape StartCrowdWith.
type CrowdOptions struct {
	Symbol string
	N      int // clients
	Ramp   int // clients started per second
	// UpdateInterval is the subscribe's update_interval in seconds; 0 is the
	// page's default, 5.
	UpdateInterval int
}

// CrowdSourceIP is client i's source address.
func CrowdSourceIP(i int) string {
	return net.IPv4(127, byte(1+i/256), byte(i%256), 1).String()
}

// StartCrowd connects n clients to url at ramp per second, each subscribed
// to symbol at update_interval 5 (the page's default).
func StartCrowd(t testing.TB, url, symbol string, n, ramp int) *Crowd {
	t.Helper()
	return StartCrowdWith(t, url, CrowdOptions{Symbol: symbol, N: n, Ramp: ramp})
}

// StartCrowdWith connects the crowd o describes to url.
func StartCrowdWith(t testing.TB, url string, o CrowdOptions) *Crowd {
	t.Helper()
	if o.UpdateInterval == 0 {
		o.UpdateInterval = protocol.DefaultUpdateInterval
	}
	c := &Crowd{url: url, symbol: o.Symbol, interval: o.UpdateInterval, stop: make(chan struct{}),
		members: make([]*member, o.N), other: map[string]int{}, since: time.Now()}
	for i := range c.members {
		c.members[i] = &member{}
	}
	t.Cleanup(c.Stop)
	step := time.Second / time.Duration(o.Ramp)
	for i := 0; i < o.N; i++ {
		c.wg.Add(1)
		go c.run(i)
		time.Sleep(step) // the ramp itself, not a synchronisation
	}
	return c
}

// Stop closes every client and waits for them.
func (c *Crowd) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

func (c *Crowd) run(i int) {
	defer c.wg.Done()
	m := c.members[i]
	attempt := 0 // reconnect attempts in the current outage, as liqstream.js counts them
	for {
		c.mu.Lock()
		if m.lost != nil {
			m.lost.Attempts++
		}
		c.mu.Unlock()
		cl, resp, err := wsclient.Dial(c.url, wsclient.Options{LocalAddr: CrowdSourceIP(i), Buffer: 4})
		if err != nil {
			c.count(fmt.Sprintf("dial: %v", err))
			attempt++
			if !c.pause(c.backoff(attempt)) {
				return
			}
			continue
		}
		gw := resp.Header.Get("X-Liqstream-Gateway")
		c.mu.Lock()
		m.gateway, m.since, m.fresh = gw, time.Now(), false
		c.mu.Unlock()
		if err := cl.Send(map[string]any{"action": "subscribe", "symbols": []string{c.symbol}, "update_interval": c.interval}); err != nil {
			c.count(fmt.Sprintf("subscribe: %v", err))
		}
		opened := time.Now()
		code, gotMessage := c.read(cl, m)
		c.mu.Lock()
		m.gateway = ""
		if code == 1012 {
			m.moves++
			c.closes1012 = append(c.closes1012, time.Now())
		}
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		default:
		}
		// Only a connection that proved itself resets the budget (liqstream.js #onClose).
		if gotMessage || time.Since(opened) >= 2*PageReconnectBase {
			attempt = 0
		}
		var delay time.Duration
		if code == 1012 {
			delay = time.Duration(rand.Int64N(int64(PageDrainJitter)))
		} else {
			c.count(fmt.Sprintf("closed: %v", cl.Err()))
			c.mu.Lock()
			if m.lost == nil {
				m.lost = &CrowdLoss{Client: i, Gateway: gw, At: time.Now()}
				c.losses = append(c.losses, m.lost)
			}
			c.mu.Unlock()
			attempt++
			delay = c.backoff(attempt)
		}
		if !c.pause(delay) {
			return
		}
	}
}

// backoff is the page's delay before reconnect attempt number attempt.
func (c *Crowd) backoff(attempt int) time.Duration {
	if attempt > PageMaxAttempts {
		return PageWSRetryInterval // given up: polling, with a socket retry now and then
	}
	return BackoffDelay(attempt, rand.Float64())
}

// read consumes frames until the connection closes or the crowd stops, and
// returns the close code the server sent (0 for none) and whether any frame
// arrived.
func (c *Crowd) read(cl *wsclient.Client, m *member) (code uint16, gotMessage bool) {
	first := true
	for {
		select {
		case <-c.stop:
			cl.Close()
			return 0, gotMessage
		default:
		}
		f, err := cl.Next(500 * time.Millisecond)
		if errors.Is(err, wsclient.ErrClosed) {
			var ce *wsclient.CloseError
			if errors.As(cl.Err(), &ce) {
				return ce.Code, gotMessage
			}
			return 0, gotMessage
		}
		if err != nil {
			continue
		}
		gotMessage = true
		if bytes.HasPrefix(f.Bytes, []byte(`{"type":"snapshot"`)) {
			c.snapshot(m, f, first)
			first = false
		}
	}
}

// snapshot records a snapshot frame a client read; first is whether it is
// the first on its connection.
//
// Order: a frame must come after the newest the client read before, by
// (epoch, seq), whichever connection brought either. One exception: the
// first frame on a new connection may repeat the newest one read (the
// gateway sends its latest frame on subscribe, and it may be the one the
// old connection delivered last); that is counted as a repeat, not out of
// order, since the page drops it (liqstream.js #deliver keeps one key per
// symbol). A repeat on the same connection is out of order.
func (c *Crowd) snapshot(m *member, f wsclient.Frame, first bool) {
	epoch, seq, ok := protocol.PeekEpochSeq(f.Bytes)
	p := position{epoch, seq}
	c.mu.Lock()
	defer c.mu.Unlock()
	m.fresh = true
	m.frames++
	switch {
	case !ok:
		m.outOfOrder++
		c.example(fmt.Sprintf("a snapshot without epoch and seq: %.120s", f.Bytes))
	case m.lastRead.IsZero() || p.after(m.pos):
	case p == m.pos && first:
		m.repeats++
	default:
		m.outOfOrder++
		c.example(fmt.Sprintf("(epoch %d, seq %d) after (%d, %d)%s", p.epoch, p.seq, m.pos.epoch, m.pos.seq,
			map[bool]string{true: ", first on a new connection", false: ""}[first]))
	}
	if p.after(m.pos) {
		m.pos = p
	}
	if !first && !m.lastRead.IsZero() {
		if gap := f.Read.Sub(m.lastRead); gap > m.maxGap {
			m.maxGap, m.maxGapAt = gap, f.Read
		}
	}
	m.lastRead = f.Read
	if m.lost != nil {
		m.lost.Back = f.Read
		m.lost = nil
	}
}

func (c *Crowd) example(s string) {
	if len(c.examples) < 10 {
		c.examples = append(c.examples, s)
	}
}

func (c *Crowd) pause(d time.Duration) bool {
	select {
	case <-c.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func (c *Crowd) count(what string) {
	c.mu.Lock()
	c.other[what]++
	c.mu.Unlock()
}

// CrowdState is a moment's view of the crowd.
type CrowdState struct {
	Connected int
	// Fresh counts connected clients that have read a frame on their
	// current connection.
	Fresh     int
	ByGateway map[string]int
	Moves     int // 1012 closes read so far
	// Other is every close or dial failure that was not a 1012, by error.
	Other map[string]int
}

// State reports where every client is now.
func (c *Crowd) State() CrowdState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CrowdState{ByGateway: map[string]int{}, Other: map[string]int{}, Moves: len(c.closes1012)}
	for _, m := range c.members {
		if m.gateway == "" {
			continue
		}
		s.Connected++
		s.ByGateway[m.gateway]++
		if m.fresh {
			s.Fresh++
		}
	}
	for k, v := range c.other {
		s.Other[k] = v
	}
	return s
}

// ClientsOn lists the clients connected to gateway now.
func (c *Crowd) ClientsOn(gateway string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for i, m := range c.members {
		if m.gateway == gateway {
			ids = append(ids, i)
		}
	}
	return ids
}

// CrowdStats is what the clients read since the stats window began.
type CrowdStats struct {
	Since time.Time
	// Losses are the connections lost in the window (and any loss from
	// before it not yet recovered), in the order they were read.
	Losses []CrowdLoss
	// MaxGap is the longest time between two consecutive snapshots on one
	// connection, any client; MaxGapClient read it, the second at MaxGapAt.
	MaxGap       time.Duration
	MaxGapClient int
	MaxGapAt     time.Time
	// OutOfOrder counts snapshots that did not come after the client's
	// newest; Repeats the allowed repeats of it on a new connection (see
	// snapshot); Examples shows the first few out-of-order ones.
	OutOfOrder, Repeats int
	Examples            []string
	Frames              int // snapshots read
	// OldestRead is the earliest of the clients' latest snapshot reads:
	// every client has read a snapshot at or after it (zero if one has not
	// read any yet).
	OldestRead time.Time
	// MinEpoch and MaxEpoch are the lowest and highest epoch of the
	// clients' newest snapshots.
	MinEpoch, MaxEpoch uint64
}

// ResetStats starts a new stats window.
func (c *Crowd) ResetStats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.since = time.Now()
	var open []*CrowdLoss
	for _, l := range c.losses {
		if l.Back.IsZero() {
			open = append(open, l)
		}
	}
	c.losses, c.examples = open, nil
	for _, m := range c.members {
		m.frames, m.outOfOrder, m.repeats, m.maxGap, m.maxGapAt = 0, 0, 0, 0, time.Time{}
	}
}

// Stats reports the stats window so far.
func (c *Crowd) Stats() CrowdStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CrowdStats{Since: c.since, Examples: append([]string(nil), c.examples...), MaxGapClient: -1}
	for _, l := range c.losses {
		s.Losses = append(s.Losses, *l)
	}
	for i, m := range c.members {
		s.OutOfOrder += m.outOfOrder
		s.Repeats += m.repeats
		s.Frames += m.frames
		if m.maxGap > s.MaxGap {
			s.MaxGap, s.MaxGapClient, s.MaxGapAt = m.maxGap, i, m.maxGapAt
		}
		if i == 0 || m.lastRead.Before(s.OldestRead) {
			s.OldestRead = m.lastRead
		}
		if i == 0 || m.pos.epoch < s.MinEpoch {
			s.MinEpoch = m.pos.epoch
		}
		s.MaxEpoch = max(s.MaxEpoch, m.pos.epoch)
	}
	return s
}

// PeakMoves is the most 1012 closes read within any window of length w (a
// sliding window over the close times), and the most times one client moved.
func (c *Crowd) PeakMoves(w time.Duration) (peak, mostPerClient int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := append([]time.Time(nil), c.closes1012...)
	for i, j := 0, 0; i < len(ts); i++ {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		peak = max(peak, i-j+1)
	}
	for _, m := range c.members {
		mostPerClient = max(mostPerClient, m.moves)
	}
	return peak, mostPerClient
}
