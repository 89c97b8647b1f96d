package ws

import (
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

// TestNoLeakAfterManyCycles connects, subscribes, receives and disconnects
// 10,000 times; afterwards the server holds no session, no per-IP count and
// no goroutine beyond those it started with.
func TestNoLeakAfterManyCycles(t *testing.T) {
	before := runtime.NumGoroutine()
	f := start(t, DefaultConfig())
	f.hub.Publish("BTCUSDT", frame("BTCUSDT", 1, 64))
	const cycles = 10000
	for i := 0; i < cycles; i++ {
		c, _, err := wsclient.Dial(f.url, wsclient.Options{Buffer: 4})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i%2 == 0 {
			// Half of them subscribe and read their snapshot first.
			if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Next(wait); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		c.Close()
		<-c.Done()
	}
	waitFor(t, "every session to be forgotten", func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		return len(f.srv.sessions) == 0 && len(f.srv.perIP) == 0 && f.srv.Active() == 0
	})
	if subs := f.hub.Subscriptions(); len(subs) != 0 {
		t.Fatalf("hub still holds subscriptions %v", subs)
	}
	// Goroutines of the server side must be gone: allow the fixture's own
	// (watchdog, httptest) and give closing sockets a moment to finish.
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before+8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after %d cycles, %d before", runtime.NumGoroutine(), cycles, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// httptest servers closed in Cleanup may still be unwinding their accept loop.
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
