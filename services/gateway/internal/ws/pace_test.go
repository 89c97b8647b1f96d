package ws

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// paced drives one real connection through frame arrivals on a fake clock
// and records, for every snapshot the server handed to the socket, the fake
// time it did so and its seq.
type paced struct {
	t        *testing.T
	f        *fixture
	clk      *fakeClock
	c        *wsclient.Client
	t0       time.Time // the producer's clock starts here
	seq      int
	accepted float64 // snapshots written so far, by the server's count
	sends    []pacedSend
}

type pacedSend struct {
	at     time.Duration // fake time since the start
	seq    int
	newest int // the newest seq published when it was sent
}

func newPaced(t *testing.T, interval int) *paced {
	clk := newFakeClock()
	f := startClock(t, DefaultConfig(), clk)
	c := dial(t, f.url, wsclient.Options{})
	p := &paced{t: t, f: f, clk: clk, c: c, t0: clk.now()}
	p.subscribe(interval)
	return p
}

func (p *paced) subscribe(interval int) {
	mustSend(p.t, p.c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": interval})
	// A subscribe has no ack; a pong after it says it was handled.
	mustSend(p.t, p.c, map[string]string{"action": "ping"})
	if _, err := p.c.NextOfType("pong", wait); err != nil {
		p.t.Fatal(err)
	}
}

// arrive moves the clock to at (firing the timers due on the way), then
// publishes the next frame, stamped by the producer at stamp.
func (p *paced) arrive(at, stamp time.Duration) {
	p.t.Helper()
	start := p.clk.now()
	fired := p.firedDuring(func() { p.clk.advance(p.t0.Add(at).Sub(start)) })
	p.seq++
	p.f.hub.Publish("BTCUSDT", protocol.SnapshotFrame("BTCUSDT", uint64(p.seq), p.t0.Add(stamp), []byte(`{"levels":[]}`)))
	p.settle(at, fired, true)
}

// idle moves the clock to at with no arrival.
func (p *paced) idle(at time.Duration) {
	p.t.Helper()
	start := p.clk.now()
	fired := p.firedDuring(func() { p.clk.advance(p.t0.Add(at).Sub(start)) })
	p.settle(at, fired, false)
}

// firedDuring runs step and returns the fake time of the last timer it
// fired, or -1: each timer is a held frame's slot.
func (p *paced) firedDuring(step func()) time.Duration {
	n := len(p.clk.firedAt())
	step()
	fired := p.clk.firedAt()
	if len(fired) == n {
		return -1
	}
	return fired[len(fired)-1].Sub(p.t0)
}

// settle waits until the server has written everything it accepted, then
// reads those frames and records when each was handed over: at the arrival
// for the frame just published, at its timer for a frame that was held.
func (p *paced) settle(at, fired time.Duration, published bool) {
	p.t.Helper()
	waitFor(p.t, "the session to go idle", func() bool { return sessionsIdle(p.f.srv) })
	n := counter(p.f.m.MessagesSent.WithLabelValues("other"))
	for ; p.accepted < n; p.accepted++ {
		m, err := p.c.NextOfType("snapshot", wait)
		if err != nil {
			p.t.Fatal(err)
		}
		seq := int(m["seq"].(float64))
		s := pacedSend{at: at, seq: seq, newest: p.seq}
		if !published || seq != p.seq {
			if fired < 0 {
				p.t.Fatalf("frame seq %d sent at %s neither on arrival nor by a timer", seq, at)
			}
			// The timer fired while the clock moved, before this step's publish.
			s.at = fired
			if published {
				s.newest = p.seq - 1
			}
		}
		p.sends = append(p.sends, s)
	}
}

func TestPacingFramesNoFasterThanTheIntervalAreNeverHeld(t *testing.T) {
	tests := []struct {
		name                     string
		interval                 int
		period                   time.Duration
		arrivalJitter, stampJitt time.Duration
		late                     time.Duration // frame 10 is produced this late
	}{
		// The page's default: snapshots every 5 s, update_interval 5.
		{"5 s cadence, 5 s interval, ±300 ms arrival jitter", 5, 5 * time.Second, 300 * time.Millisecond, 20 * time.Millisecond, 0},
		{"5 s cadence, 5 s interval, ±200 ms producer jitter too", 5, 5 * time.Second, 300 * time.Millisecond, 200 * time.Millisecond, 0},
		{"1 s cadence, 1 s interval", 1, time.Second, 300 * time.Millisecond, 20 * time.Millisecond, 0},
		{"5 s cadence, 1 s interval", 1, 5 * time.Second, 300 * time.Millisecond, 20 * time.Millisecond, 0},
		// One late frame must not shift the grid under the punctual ones after it.
		{"1 s cadence, 1 s interval, one frame 300 ms late", 1, time.Second, 20 * time.Millisecond, 20 * time.Millisecond, 300 * time.Millisecond},
		{"5 s cadence, 5 s interval, one frame 2 s late", 5, 5 * time.Second, 300 * time.Millisecond, 20 * time.Millisecond, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.interval)))
			jit := func(d time.Duration) time.Duration { return time.Duration((rng.Float64()*2 - 1) * float64(d)) }
			p := newPaced(t, tc.interval)
			var last time.Duration
			for k := 1; k <= 30; k++ {
				nominal := time.Duration(k) * tc.period
				stamp := nominal + jit(tc.stampJitt)
				if k == 10 {
					stamp += tc.late
				}
				at := max(stamp+tc.arrivalJitter+jit(tc.arrivalJitter), last) // arrivals keep their order
				last = at
				p.arrive(at, stamp)
				if got := p.sends[len(p.sends)-1]; got.seq != k || got.at != at {
					t.Fatalf("frame %d arrived at %s: last send was seq %d at %s; want it sent on arrival", k, at, got.seq, got.at)
				}
				if p.clk.pending() != 0 {
					t.Fatalf("frame %d: a frame is held", k)
				}
			}
			if len(p.sends) != 30 {
				t.Fatalf("%d sends for 30 frames", len(p.sends))
			}
			for _, reason := range []string{"conflated", "queue_full"} {
				if n := counter(p.f.m.FramesDropped.WithLabelValues(reason)); n != 0 {
					t.Fatalf("%v frames dropped as %s", n, reason)
				}
			}
		})
	}
}

// The grid's phase comes from the first frame sent, which may be late: the
// hub's cached frame a subscribe gets, or one produced after a slow compute.
// The frames after it, on the producer's cadence, all looked early by that
// lateness and each was held by it for as long as the connection lived (seen
// in e2e as 119 ms on every frame at a 1 s interval). Only the frame right
// after a late first one is too soon; the ones after it must go on arrival.
func TestPacingALateFirstFrameHoldsAtMostTheNext(t *testing.T) {
	tests := []struct {
		name     string
		interval int
		period   time.Duration
		late     time.Duration
		cached   bool // the late frame is the one a subscribe gets at once
	}{
		{"1 s cadence, first frame 300 ms late", 1, time.Second, 300 * time.Millisecond, false},
		{"5 s cadence, first frame 2 s late", 5, 5 * time.Second, 2 * time.Second, false},
		{"1 s cadence, the subscribe's cached frame 300 ms late", 1, time.Second, 300 * time.Millisecond, true},
		{"5 s cadence, the subscribe's cached frame 2 s late", 5, 5 * time.Second, 2 * time.Second, true},
	}
	const delay = 20 * time.Millisecond // arrival after the stamp
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			f := startClock(t, DefaultConfig(), clk)
			p := &paced{t: t, f: f, clk: clk, c: dial(t, f.url, wsclient.Options{}), t0: clk.now()}
			first := tc.period + tc.late
			if tc.cached {
				p.idle(first + delay)
				p.seq = 1
				f.hub.Publish("BTCUSDT", protocol.SnapshotFrame("BTCUSDT", 1, p.t0.Add(first), []byte(`{"levels":[]}`)))
				mustSend(t, p.c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": tc.interval})
				if _, err := p.c.NextOfType("snapshot", wait); err != nil {
					t.Fatal(err)
				}
				p.accepted = 1
				p.sends = append(p.sends, pacedSend{at: first + delay, seq: 1, newest: 1})
			} else {
				p.subscribe(tc.interval)
				p.arrive(first+delay, first)
			}
			for k := 2; k <= 12; k++ {
				stamp := time.Duration(k) * tc.period
				p.arrive(stamp+delay, stamp)
				if k == 2 {
					continue // too soon after the late one: it may wait for its slot
				}
				if got := p.sends[len(p.sends)-1]; got.seq != k || got.at != stamp+delay || p.clk.pending() != 0 {
					t.Fatalf("frame %d arrived at %s: last send seq %d at %s, %d held; want it sent on arrival (sends %v)",
						k, stamp+delay, got.seq, got.at, p.clk.pending(), p.sends)
				}
			}
			if len(p.sends) != 12 {
				t.Fatalf("%d sends for 12 frames: %v", len(p.sends), p.sends)
			}
		})
	}
}

// After the producer's clock goes back (a restarted snapshotter), a late
// first frame must hold at most the next one, as at the start.
func TestPacerRephasesAfterTheProducersClockWentBack(t *testing.T) {
	var p pacer
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	for s := 100; s <= 110; s++ {
		if w := p.wait(at(s*1000), time.Second); w != 0 {
			t.Fatalf("punctual frame at %d s held %s", s, w)
		}
		p.sent(at(s*1000), time.Second)
	}
	// Restarted: its clock 100 s behind, and its first frame 300 ms late.
	for i, ms := range []int{10300, 11000, 12000, 13000, 14000} {
		w := p.wait(at(ms), time.Second)
		if w > 0 {
			p.arrived(at(ms)) // held, then sent at its slot
			if i > 1 {
				t.Fatalf("frame at %d ms after the restart held %s; only the one after the late first may wait", ms, w)
			}
		}
		p.sent(at(ms), time.Second)
	}
}

func TestPacingFasterFramesAreCappedToTheNewestPerInterval(t *testing.T) {
	p := newPaced(t, 5)
	for k := 1; k <= 31; k++ {
		nominal := time.Duration(k) * time.Second
		p.arrive(nominal+40*time.Millisecond, nominal)
	}
	p.idle(40 * time.Second) // the last held frame's slot passes
	checkSpacing(t, p.sends, 5*time.Second)
	if n := len(p.sends); n < 6 || n > 8 {
		t.Fatalf("%d sends over 31 s at one per 5 s", n)
	}
	for _, s := range p.sends {
		if s.seq != s.newest {
			t.Fatalf("sent seq %d at %s; the newest by then was %d", s.seq, s.at, s.newest)
		}
	}
}

func TestPacingIntervalChangedMidStream(t *testing.T) {
	p := newPaced(t, 5)
	k := 0
	arrive := func(until time.Duration) {
		for {
			at := time.Duration(k+1) * time.Second
			if at > until {
				return
			}
			k++
			p.arrive(at, at)
		}
	}
	arrive(16 * time.Second)
	before := len(p.sends)
	p.subscribe(2) // the same symbol again, a shorter interval
	arrive(40 * time.Second)
	checkSpacing(t, p.sends[:before], 5*time.Second)
	after := p.sends[before:]
	if len(after) < 10 {
		t.Fatalf("%d sends in 24 s after switching to a 2 s interval", len(after))
	}
	checkSpacing(t, after[1:], 2*time.Second) // the first may fall anywhere in the switch
}

func TestPacingUnsubscribeWhileHeld(t *testing.T) {
	p := newPaced(t, 5)
	p.arrive(time.Second, time.Second)
	p.arrive(2*time.Second, 2*time.Second) // held for its slot
	if p.clk.pending() != 1 || len(p.sends) != 1 {
		t.Fatalf("pending timers %d, sends %d: want frame 2 held", p.clk.pending(), len(p.sends))
	}
	mustSend(t, p.c, map[string]any{"action": "unsubscribe", "symbols": []string{"BTCUSDT"}})
	mustSend(t, p.c, map[string]string{"action": "ping"})
	if _, err := p.c.NextOfType("pong", wait); err != nil {
		t.Fatal(err)
	}
	if p.clk.pending() != 0 {
		t.Fatal("the held frame's timer still runs after unsubscribe")
	}
	p.idle(20 * time.Second)
	if len(p.sends) != 1 {
		t.Fatalf("sends after unsubscribe: %v", p.sends[1:])
	}
}

// checkSpacing asserts consecutive sends are interval ± 10 % apart.
func checkSpacing(t *testing.T, sends []pacedSend, interval time.Duration) {
	t.Helper()
	for i := 1; i < len(sends); i++ {
		gap := sends[i].at - sends[i-1].at
		if gap < interval*9/10 || gap > interval*11/10 {
			t.Fatalf("sends %v: %s between seq %d and %d, want %s ± 10 %%", sends, gap, sends[i-1].seq, sends[i].seq, interval)
		}
	}
}

// A client closed for flooding must learn why: the RATE_LIMITED error and the
// 1008 close frame, never a TCP reset that can destroy both (RFC 6455 §7).
func TestFloodedClientAlwaysReadsTheCloseReason(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ActionsPerSecond, cfg.ActionBurst, cfg.MaxRateViolations = 1, 2, 5
	f := start(t, cfg)
	ping := []byte(`{"action":"ping","pad":"` + strings.Repeat("x", 512) + `"}`)
	for i := 0; i < 50; i++ {
		c, _, err := wsclient.Dial(f.url, wsclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Keep sending until our side sees the close: the unread tail of the
		// flood is what used to make the server's close a reset.
		for c.SendRaw(ping) == nil {
		}
		var limited bool
		for {
			m, err := c.NextJSON(wait)
			if err != nil {
				break
			}
			limited = limited || (m["type"] == "error" && m["code"] == "RATE_LIMITED")
		}
		awaitClose(t, c)
		if code := closeCode(c); code != ClosePolicy || !limited {
			t.Fatalf("try %d: close %v, RATE_LIMITED read %v; want both", i+1, c.Err(), limited)
		}
	}
}
