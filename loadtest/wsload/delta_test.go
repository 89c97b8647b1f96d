package wsload

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// deltaScript answers a subscribe, once start is closed, with a chain of
// BTCUSDT frames in epoch 7 — snapshot 1, delta 2 on 1 (good), delta 3 on 1
// (a bad base), snapshot 4, then delta 5 on 4 but of epoch 8 (a bad epoch) —
// and a delta of ETHUSDT whose base the client never read; then it closes.
type deltaScript struct {
	gws.BuiltinEventHandler
	start chan struct{}
	mu    sync.Mutex
	subs  []string
	sent  int // payload bytes, per connection
}

func (s *deltaScript) frames() [][]byte {
	ts := time.Now()
	// Compressible, and above gws's compression threshold.
	full := []byte(`{"levels":[` + strings.Repeat(`{"price":1,"long_density":2,"short_density":3},`, 40) + `{"price":2,"long_density":0,"short_density":0}]}`)
	d := []byte(`{"levels":[],"removed":[]}`)
	return [][]byte{
		protocol.SnapshotFrameEpoch("BTCUSDT", 7, 1, ts, full),
		protocol.DeltaFrame("BTCUSDT", 7, 2, 1, ts, d),
		protocol.DeltaFrame("BTCUSDT", 7, 3, 1, ts, d),
		protocol.SnapshotFrameEpoch("BTCUSDT", 7, 4, ts, full),
		protocol.DeltaFrame("BTCUSDT", 8, 5, 4, ts, d),
		protocol.DeltaFrame("ETHUSDT", 7, 2, 1, ts, d),
	}
}

func (s *deltaScript) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	s.mu.Lock()
	s.subs = append(s.subs, string(m.Bytes()))
	s.mu.Unlock()
	go func() {
		<-s.start
		for _, f := range s.frames() {
			c.WriteMessage(gws.OpcodeText, f)
		}
		c.WriteClose(1000, nil)
	}()
}

func TestDeltaChainsAndBytes(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[deflate], func(t *testing.T) {
			h := &deltaScript{start: make(chan struct{})}
			for _, f := range h.frames() {
				h.sent += len(f)
			}
			up := gws.NewUpgrader(h, &gws.ServerOption{PermessageDeflate: gws.PermessageDeflate{Enabled: true, Threshold: 256}})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c, err := up.Upgrade(w, r); err == nil {
					go c.ReadLoop()
				}
			}))
			defer srv.Close()
			cfg := Config{Targets: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, N: 2, Ramp: 100, Sources: 2, Mix: DefaultMix,
				UpdateInterval: 1, Interval: time.Second, Encoding: protocol.EncodingDelta, Deflate: deflate}
			pool, err := Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			for deadline := time.Now().Add(5 * time.Second); ; {
				h.mu.Lock()
				n := len(h.subs)
				h.mu.Unlock()
				if n == 2 || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			h.mu.Lock()
			for _, sub := range h.subs {
				if !strings.Contains(sub, `"encoding":"delta"`) {
					t.Errorf("subscribe %s: want \"encoding\":\"delta\"", sub)
				}
			}
			h.mu.Unlock()
			pool.Begin()
			close(h.start)
			for _, c := range pool.clients {
				select {
				case <-c.closed:
				case <-time.After(10 * time.Second):
					t.Fatalf("client %d never saw the close", c.idx)
				}
			}
			w := pool.End()
			f := w.Fast
			// Per client: 6 frames, 4 of them deltas, 3 of those breaking
			// the chain; no seq lost (the epoch change restarts the count).
			if f.Frames != 12 || f.Deltas != 8 || f.ChainBreaks != 6 || f.Gaps != 0 || f.OutOfOrder != 0 || f.Latency.Count != 12 {
				t.Errorf("%+v; want 12 frames, 8 deltas, 6 chain breaks, no gaps or reordering, 12 latencies", f)
			}
			got := f.PayloadBytesPerClientPerS * w.Seconds
			if math.Abs(got-float64(h.sent)) > 1e-6*float64(h.sent) {
				t.Errorf("payload %.1f bytes per client in the window, want the %d sent", got, h.sent)
			}
			wire := f.BytesPerClientPerS * w.Seconds
			if deflate && wire >= got {
				t.Errorf("deflate: %.0f wire bytes for %.0f of payload; want fewer", wire, got)
			}
			if !deflate && wire <= got {
				t.Errorf("plain: %.0f wire bytes for %.0f of payload; want more (framing)", wire, got)
			}
		})
	}
}

// The chain check reads the envelope only: a payload's own "seq" or
// "base_seq" is never taken for it.
func TestChainCheckOfOneClient(t *testing.T) {
	c := &client{class: newClass(), last: map[string]frameID{}, recording: new(atomic.Bool)}
	ts := time.Now()
	c.frame(ts, protocol.SnapshotFrameEpoch("BTCUSDT", 3, 10, ts, []byte(`{"base_seq":99,"seq":1}`)), false)
	c.frame(ts, protocol.DeltaFrame("BTCUSDT", 3, 11, 10, ts, []byte(`{"levels":[]}`)), true)
	if c.class.chainBreaks.Load() != 0 {
		t.Fatalf("delta 11 on 10 after snapshot 10: %d chain breaks, want 0", c.class.chainBreaks.Load())
	}
	c.frame(ts, protocol.DeltaFrame("BTCUSDT", 3, 13, 12, ts, []byte(`{"levels":[]}`)), true)
	if c.class.chainBreaks.Load() != 1 || c.class.gaps.Load() != 1 {
		t.Fatalf("delta 13 on 12 after 11: %d chain breaks, %d gaps; want 1 and 1", c.class.chainBreaks.Load(), c.class.gaps.Load())
	}
}
