package e2e

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// received is one snapshot as a client read it.
type received struct {
	seq      int
	produced time.Time
	read     time.Time
}

// collect reads c's BTCUSDT snapshots until it has n or the deadline passes.
func collect(t *testing.T, c *wsclient.Client, n int, deadline time.Time) []received {
	t.Helper()
	var out []received
	for len(out) < n && time.Now().Before(deadline) {
		f, err := c.Next(time.Until(deadline))
		if err != nil {
			break
		}
		var m struct {
			Type      string `json:"type"`
			Seq       int    `json:"seq"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.Unmarshal(f.Bytes, &m); err != nil || m.Type != "snapshot" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
		if err != nil {
			t.Errorf("timestamp %q: %v", m.Timestamp, err) // collect runs on its own goroutine: no Fatal
			return out
		}
		out = append(out, received{m.Seq, ts, f.Read})
	}
	return out
}

// Issue 11: update_interval caps the rate and never delays. The snapshotter
// publishes every second; clients at update_interval 1 must get every frame
// at once, clients at 5 one frame per 5 s, each the newest at its time.
func TestOnTimeDelivery(t *testing.T) {
	s := testenv.StartStack(t, testenv.FastSnapshotterArgs...)
	waitReady(t, s.GatewayURL())

	type client struct {
		interval int
		c        *wsclient.Client
		got      []received
	}
	var clients []*client
	for _, iv := range []int{1, 1, 5, 5} {
		c := dial(t, s.WSURL())
		if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": iv}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, &client{interval: iv, c: c})
	}
	// 32 frames at 1 s; 8 at 5 s (the first, on subscribe, plus 7 paced).
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := 32
			if cl.interval == 5 {
				want = 8
			}
			cl.got = collect(t, cl.c, want, deadline)
		}()
	}
	wg.Wait()

	var all []received // every frame, from the interval-1 clients
	for _, cl := range clients {
		if cl.interval != 1 {
			continue
		}
		got := cl.got[1:] // the first is the latest on subscribe, produced before
		if len(got) < 30 {
			t.Fatalf("interval-1 client got %d frames in 60 s, want 30+", len(got))
		}
		var lat []time.Duration
		for i, r := range got {
			lat = append(lat, r.read.Sub(r.produced))
			if i > 0 && r.seq != got[i-1].seq+1 {
				t.Fatalf("interval-1 client: seq %d after %d: a frame was held back or lost", r.seq, got[i-1].seq)
			}
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
		t.Logf("interval 1: %d frames, producer→client p50 %s p99 %s", len(lat), p50, p99)
		if p99 >= 100*time.Millisecond {
			t.Errorf("interval-1 client: p99 producer→client %s, want < 100 ms (latencies %v)", p99, lat)
		}
		all = append(all, got...)
	}
	for _, cl := range clients {
		if cl.interval != 5 {
			continue
		}
		got := cl.got
		if len(got) < 7 {
			t.Fatalf("interval-5 client got %d frames in 60 s, want 7+", len(got))
		}
		// From the second paced frame on: the first paced one may come any
		// time after the subscribe's frame, which was produced up to 1 s before.
		for i := 2; i < len(got); i++ {
			gap := got[i].read.Sub(got[i-1].read)
			if gap < 4500*time.Millisecond || gap > 5500*time.Millisecond {
				t.Errorf("interval-5 client: %s between seq %d and %d, want 5 s ± 10 %%", gap, got[i-1].seq, got[i].seq)
			}
		}
		for _, r := range got[1:] {
			// The newest at its time: no frame produced before it was read
			// (less a delivery margin) is newer.
			for _, o := range all {
				if o.seq > r.seq && o.produced.Before(r.read.Add(-100*time.Millisecond)) {
					t.Errorf("interval-5 client read seq %d at %s, but seq %d was produced at %s", r.seq, r.read.Format("15:04:05.000"), o.seq, o.produced.Format("15:04:05.000"))
					break
				}
			}
		}
	}
}
