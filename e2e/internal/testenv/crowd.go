package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

// Crowd is many browser stand-ins behind the edge that behave like the page:
// subscribe, read every frame, and after a close reconnect — after a random
// delay of up to five seconds on 1012, as liqstream.js does. Each client
// dials from its own source address 127.X.Y.1, so nginx's ip_hash (which
// keys on the first three octets) tells them apart.
type Crowd struct {
	url  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	members []*member
	// closes1012 is when each 1012 close was read, for the pacing check.
	closes1012 []time.Time
	other      map[string]int // closes and dial errors that were not 1012
}

type member struct {
	gateway string    // where it is connected now; "" while not
	since   time.Time // when it connected there
	fresh   bool      // a frame arrived since it connected
	moves   int
}

// CrowdSourceIP is client i's source address.
func CrowdSourceIP(i int) string {
	return net.IPv4(127, byte(1+i/256), byte(i%256), 1).String()
}

// StartCrowd connects n clients to url at ramp per second, each subscribed
// to symbol at update_interval 5 (the page's default).
func StartCrowd(t testing.TB, url, symbol string, n, ramp int) *Crowd {
	t.Helper()
	c := &Crowd{url: url, stop: make(chan struct{}), members: make([]*member, n), other: map[string]int{}}
	for i := range c.members {
		c.members[i] = &member{}
	}
	t.Cleanup(c.Stop)
	step := time.Second / time.Duration(ramp)
	for i := 0; i < n; i++ {
		c.wg.Add(1)
		go c.run(i, symbol)
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

func (c *Crowd) run(i int, symbol string) {
	defer c.wg.Done()
	m := c.members[i]
	for {
		cl, resp, err := wsclient.Dial(c.url, wsclient.Options{LocalAddr: CrowdSourceIP(i), Buffer: 4})
		if err != nil {
			c.count(fmt.Sprintf("dial: %v", err))
			if !c.pause(time.Second) {
				return
			}
			continue
		}
		gw := resp.Header.Get("X-Liqstream-Gateway")
		c.mu.Lock()
		m.gateway, m.since, m.fresh = gw, time.Now(), false
		c.mu.Unlock()
		if err := cl.Send(map[string]any{"action": "subscribe", "symbols": []string{symbol}, "update_interval": 5}); err != nil {
			c.count(fmt.Sprintf("subscribe: %v", err))
		}
		code := c.read(cl, m)
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
		delay := time.Second
		if code == 1012 {
			delay = time.Duration(rand.Int64N(int64(5 * time.Second)))
		} else {
			c.count(fmt.Sprintf("closed: %v", cl.Err()))
		}
		if !c.pause(delay) {
			return
		}
	}
}

// read consumes frames until the connection closes or the crowd stops, and
// returns the close code the server sent (0 for none).
func (c *Crowd) read(cl *wsclient.Client, m *member) uint16 {
	for {
		select {
		case <-c.stop:
			cl.Close()
			return 0
		default:
		}
		f, err := cl.Next(500 * time.Millisecond)
		if errors.Is(err, wsclient.ErrClosed) {
			var ce *wsclient.CloseError
			if errors.As(cl.Err(), &ce) {
				return ce.Code
			}
			return 0
		}
		if err == nil && bytes.HasPrefix(f.Bytes, []byte(`{"type":"snapshot"`)) {
			c.mu.Lock()
			m.fresh = true
			c.mu.Unlock()
		}
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
