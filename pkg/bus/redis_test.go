package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/testenv"
)

const wait = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// frameAt is a snapshot frame produced at t0 + seq ms.
func frameAt(sym string, seq int) Frame {
	ts := time.Date(2025, 12, 29, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
	return Frame{Symbol: sym, Bytes: protocol.SnapshotFrame(sym, uint64(seq), ts, []byte(`{"levels":[]}`))}
}

func seqOf(f Frame) string {
	i := strings.Index(string(f.Bytes), `"seq":`)
	j := strings.Index(string(f.Bytes), `,"data"`)
	return f.Symbol + ":" + string(f.Bytes[i+6:j])
}

// collector gathers delivered frames and lets a test await one.
type collector struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func newCollector() *collector { return &collector{ch: make(chan string, 1024)} }

func (c *collector) deliver(f Frame) {
	s := seqOf(f)
	c.mu.Lock()
	c.got = append(c.got, s)
	c.mu.Unlock()
	c.ch <- s
}

func (c *collector) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case s := <-c.ch:
			if s == want {
				return
			}
		case <-timeout:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("never got %s; got %v", want, c.got)
		}
	}
}

func (c *collector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func startPublisher(t *testing.T, url string, syms []string) *RedisPublisher {
	t.Helper()
	client, err := NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	p := NewRedisPublisher(client, syms, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; client.Close() })
	return p
}

func startSource(t *testing.T, url string, syms []string, c *collector) chan bool {
	t.Helper()
	client, err := NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	s := NewRedisSource(client, quiet())
	s.Health = 300 * time.Millisecond
	ups := make(chan bool, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, syms, c.deliver, func(up bool) { ups <- up }); close(done) }()
	t.Cleanup(func() { cancel(); <-done; client.Close() })
	return ups
}

func awaitUp(t *testing.T, ups chan bool, want bool) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case v := <-ups:
			if v == want {
				return
			}
		case <-timeout:
			t.Fatalf("source never reported up=%v", want)
		}
	}
}

func TestRedisPublishSubscribeAndLatest(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startPublisher(t, r.URL, []string{"BTCUSDT", "ETHUSDT"})
	p.Publish(frameAt("BTCUSDT", 1))

	// A gateway started after the publish gets the latest frame at once.
	c := newCollector()
	ups := startSource(t, r.URL, []string{"BTCUSDT", "ETHUSDT"}, c)
	c.await(t, "BTCUSDT:1")
	awaitUp(t, ups, true)
	for i := 2; i <= 5; i++ {
		p.Publish(frameAt("BTCUSDT", i))
		c.await(t, fmt.Sprintf("BTCUSDT:%d", i))
	}
	p.Publish(frameAt("ETHUSDT", 7))
	c.await(t, "ETHUSDT:7")
	client, _ := NewRedisClient(r.URL)
	defer client.Close()
	syms, err := NewRedisSource(client, quiet()).Symbols(context.Background())
	if err != nil || strings.Join(syms, ",") != "BTCUSDT,ETHUSDT" {
		t.Fatalf("symbols %v %v", syms, err)
	}
}

func TestRedisRestartResumes(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startPublisher(t, r.URL, []string{"BTCUSDT"})
	c := newCollector()
	ups := startSource(t, r.URL, []string{"BTCUSDT"}, c)
	awaitUp(t, ups, true)
	p.Publish(frameAt("BTCUSDT", 1))
	c.await(t, "BTCUSDT:1")

	r.Stop()
	awaitUp(t, ups, false)
	// Published while Redis is down: kept and retried, never fatal.
	p.Publish(frameAt("BTCUSDT", 2))
	awaitCond(t, "the publisher to fail against the dead Redis", func() bool { return p.Failures.Load() > 0 && !p.Up() })
	r.Restart()
	// The publisher's retry writes frame 2 to the fresh server; the source
	// resubscribes and reads :latest, so frame 2 arrives either way.
	c.await(t, "BTCUSDT:2")
	awaitUp(t, ups, true)
	p.Publish(frameAt("BTCUSDT", 3))
	c.await(t, "BTCUSDT:3")
}

func TestFailoverFallsBackToHTTPAndReturns(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startPublisher(t, r.URL, []string{"BTCUSDT"})

	// The snapshotter's HTTP side serves the same frames (seq 100+ so a test
	// can tell which path delivered).
	up := newUpstream()
	up.body = func(seq int) []byte { return frameAt("BTCUSDT", 100+seq).Bytes }
	srv := httptest.NewServer(up)
	defer srv.Close()
	hs := newSource(t, srv.URL)
	hs.wait = 200 * time.Millisecond

	client, err := NewRedisClient(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rs := NewRedisSource(client, quiet())
	rs.Health = 300 * time.Millisecond
	fo := NewFailover(rs, hs, quiet())
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fo.Run(ctx, []string{"BTCUSDT"}, c.deliver); close(done) }()
	defer func() { cancel(); <-done }()

	awaitCond(t, "redis up, fallback off", func() bool { return fo.RedisUp() && !fo.Fallback() })
	p.Publish(frameAt("BTCUSDT", 1))
	c.await(t, "BTCUSDT:1")

	r.Stop()
	awaitCond(t, "fallback on", fo.Fallback)
	up.publish() // seq 101 over HTTP
	c.await(t, "BTCUSDT:101")

	r.Restart()
	awaitCond(t, "fallback off again", func() bool { return fo.RedisUp() && !fo.Fallback() })
	p.Publish(frameAt("BTCUSDT", 102))
	c.await(t, "BTCUSDT:102")
	// An older frame (seq 2 < 102 by timestamp) arriving late is never passed on.
	p.Publish(frameAt("BTCUSDT", 2))
	p.Publish(frameAt("BTCUSDT", 103))
	c.await(t, "BTCUSDT:103")
	for _, s := range c.all() {
		if s == "BTCUSDT:2" {
			t.Fatalf("an older frame was delivered after a newer one: %v", c.all())
		}
	}
	if fo.Switches.Load() != 1 {
		t.Fatalf("switches %d, want 1", fo.Switches.Load())
	}
}

func awaitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
