package bus

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/liqstream/liqstream/pkg/testenv"
)

// freezeProxy relays TCP to a target until frozen; then it stops forwarding
// in both directions without closing anything: a half-open link, as when a
// NAT or a firewall drops a connection's state.
type freezeProxy struct {
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go p.pipe(u, c)
			go p.pipe(c, u)
		}
	}()
	return p
}

// pipe copies until frozen; frozen, it reads and drops, so nothing reaches
// the other side and nothing is closed.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *freezeProxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

// A subscription whose link goes half-open (nothing arrives, nothing
// closes) is found dead within a few health intervals: a ping sent on a
// silent subscription must be answered before the next one is due.
func TestRedisSourceNoticesAHalfOpenLink(t *testing.T) {
	r := testenv.StartRedis(t)
	proxy := startFreezeProxy(t, r.Addr)
	p := startPublisher(t, r.URL, []string{"BTCUSDT"})
	c := newCollector()
	ups := startSource(t, proxy.url(), []string{"BTCUSDT"}, c) // Health 300 ms
	awaitUp(t, ups, true)
	p.Publish(frameAt("BTCUSDT", 1))
	c.await(t, "BTCUSDT:1")

	proxy.frozen.Store(true)
	awaitUp(t, ups, false) // within the 10 s wait: ~3 health intervals

	// The link heals: the source subscribes afresh and frames flow again.
	proxy.frozen.Store(false)
	awaitUp(t, ups, true)
	p.Publish(frameAt("BTCUSDT", 2))
	c.await(t, "BTCUSDT:2")
}
