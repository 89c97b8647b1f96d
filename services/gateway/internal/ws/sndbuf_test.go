package ws

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

// A client that stops reading must be found behind before the kernel has
// taken megabytes for it. Left to autotuning, a socket's send buffer grows
// to 4 MB (far more on loopback's 64 KB segments): at a heatmap's 18–36 KB/s
// that is minutes of frames the client reads long after they were current,
// while the gateway sees every write succeed and calls nobody slow. The load
// runs' slow readers (2 KB/s) got 87 s old frames and no SLOW_CONSUMER.
func TestReview12StalledReaderIsFoundBehindWithinTheSendBuffer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout, cfg.SlowMaxMisses = 50*time.Millisecond, 3
	clk := newFakeClock()
	f := startClock(t, cfg, clk)
	fast, _ := fastAndStalled(t, f)
	// 100 frames of a spec-sized snapshot (1.8 MB) at once, each read by the fast client.
	const frameBytes, n = 18 << 10, 100
	for i := 1; i <= n; i++ {
		clk.advance(1100 * time.Millisecond)
		f.hub.Publish("BTCUSDT", frame("BTCUSDT", i, frameBytes))
		if m := nextSnapshot(t, fast); m["seq"] != float64(i) {
			t.Fatalf("fast client got seq %v, want %d", m["seq"], i)
		}
	}
	// Every write that completed went into the kernel: the fast client's n
	// frames, the rest the stalled one's. Its receive buffer (128 KB), a
	// capped send buffer and a frame in flight fit well inside 512 KB.
	toSlow := int(counter(f.m.MessagesSent.WithLabelValues(f.m.Symbol("BTCUSDT")))) - n
	if toSlow*frameBytes > 512<<10 {
		t.Fatalf("%d of %d frames (%d KB) went into the socket of a client that stopped reading: the kernel buffers them, the gateway sees no slow write, and the client reads them minutes late",
			toSlow, n, toSlow*frameBytes>>10)
	}
	t.Logf("%d frames (%d KB) written to the stalled client", toSlow, toSlow*frameBytes>>10)
}

// A write that runs into its socket deadline is a slow consumer too: the
// deadline may fire before the watchdog has counted slow_max_misses (a
// deadline at least half the budget away is kept), and the connection then
// ends with a timeout error. The load runs' slow readers were all counted as
// "idle" disconnects that way, and not one as slow_consumer.
func TestReview12WriteDeadlineCountsAsSlowConsumer(t *testing.T) {
	f := start(t, DefaultConfig())
	c := dial(t, f.url, wsclient.Options{})
	waitFor(t, "the session", func() bool { return len(f.srv.snapshot()) == 1 })
	ss := f.srv.snapshot()[0]
	ss.mu.Lock()
	ss.busy = true // a write in flight, as gws's writer reports back below
	ss.mu.Unlock()
	ss.written(nil, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded})
	c.Close() // gws closes the socket on a write error; here the client does
	waitFor(t, "the disconnect counted", func() bool { return f.srv.Active() == 0 })
	for reason, want := range map[string]float64{"slow_consumer": 1, "idle": 0, "client": 0} {
		if got := counter(f.m.Disconnects.WithLabelValues(reason)); got != want {
			t.Errorf("ws_disconnects_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}
