package ws

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

var t0 = time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)

// pair is frame (epoch, seq) and its delta from base; pad makes the frame
// large, for a client that cannot keep up.
func pair(epoch, seq, base uint64, pad int) (full, delta []byte) {
	data := fmt.Sprintf(`{"levels":[],"pad":"%s"}`, strings.Repeat("x", pad))
	ts := t0.Add(time.Duration(seq) * time.Second)
	full = protocol.SnapshotFrameEpoch("BTCUSDT", epoch, seq, ts, []byte(data))
	delta = protocol.DeltaFrame("BTCUSDT", epoch, seq, base, ts, []byte(`{"levels":[],"removed":[]}`))
	return full, delta
}

// got is what a client read: its type, epoch, seq and base.
type got struct {
	typ              string
	epoch, seq, base uint64
}

func (g got) String() string { return fmt.Sprintf("%s %d/%d<-%d", g.typ, g.epoch, g.seq, g.base) }

func readFrame(t *testing.T, c *wsclient.Client) got {
	t.Helper()
	for {
		m, err := c.NextJSON(wait)
		if err != nil {
			t.Fatal(err)
		}
		if m["type"] != "snapshot" && m["type"] != "delta" {
			continue // warnings
		}
		g := got{typ: m["type"].(string), seq: uint64(m["seq"].(float64))}
		if e, ok := m["epoch"].(float64); ok {
			g.epoch = uint64(e)
		}
		if b, ok := m["base_seq"].(float64); ok {
			g.base = uint64(b)
		}
		return g
	}
}

func subscribeDelta(t *testing.T, f *fixture, c *wsclient.Client, interval int) {
	t.Helper()
	mustSend(t, c, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": interval, "encoding": "delta"})
}

// TestDeltaChainAndItsBreaks: a delta client gets a full frame first, then
// deltas while each one's base is the frame it was last sent; after any
// break the next frame is full. A client that did not ask gets full frames.
func TestDeltaChainAndItsBreaks(t *testing.T) {
	clk := newFakeClock()
	f := startClock(t, DefaultConfig(), clk)
	clk.advance(time.Duration(t0.UnixNano()))
	publish := func(epoch, seq, base uint64) {
		clk.advance(1100 * time.Millisecond) // past a 1 s interval: due at once
		full, delta := pair(epoch, seq, base, 0)
		f.hub.PublishDelta("BTCUSDT", full, delta)
	}
	publish(1, 1, 0)
	dc := dial(t, f.url, wsclient.Options{})
	fc := dial(t, f.url, wsclient.Options{})
	subscribeDelta(t, f, dc, 1)
	mustSend(t, fc, map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1})
	want := func(c *wsclient.Client, step string, typ string, epoch, seq uint64) {
		t.Helper()
		g := readFrame(t, c)
		if g.typ != typ || g.epoch != epoch || g.seq != seq {
			t.Fatalf("%s: got %v, want %s %d/%d", step, g, typ, epoch, seq)
		}
		if typ == "delta" && g.base != seq-1 {
			t.Fatalf("%s: delta %v based on %d", step, g, g.base)
		}
	}
	want(dc, "subscribe", "snapshot", 1, 1)
	want(fc, "subscribe", "snapshot", 1, 1)
	for seq := uint64(2); seq <= 4; seq++ {
		publish(1, seq, seq-1)
		want(dc, "unbroken chain", "delta", 1, seq)
		want(fc, "full client", "snapshot", 1, seq)
	}

	// A failover that lost frame 5: 6's delta is based on 5.
	publish(1, 6, 5)
	want(dc, "a lost frame (failover)", "snapshot", 1, 6)
	publish(1, 7, 6)
	want(dc, "after the full frame", "delta", 1, 7)

	// A snapshotter restart: epoch 2 counts from 1 again.
	publish(2, 1, 0) // no base in the new epoch: the delta is left out
	want(dc, "restart, first frame", "snapshot", 2, 1)
	publish(2, 2, 1)
	want(dc, "restart, second frame", "delta", 2, 2)
	// A delta naming another epoch's base is not followed either.
	full, _ := pair(3, 3, 2, 0)
	_, stale := pair(2, 3, 2, 0)
	clk.advance(1100 * time.Millisecond)
	f.hub.PublishDelta("BTCUSDT", full, stale)
	want(dc, "delta of another epoch", "snapshot", 3, 3)

	// A resubscribe is a resync: the newest frame again, whole.
	subscribeDelta(t, f, dc, 1)
	want(dc, "resubscribe", "snapshot", 3, 3)
	publish(3, 4, 3)
	want(dc, "after the resync", "delta", 3, 4)

	// Held by update_interval: at 5 s, frames 5 and 6 come within the slot;
	// the client gets 6 at the slot, whole (it never had 5), then deltas.
	subscribeDelta(t, f, dc, 5)
	want(dc, "resubscribe at 5 s", "snapshot", 3, 4)
	full, delta := pair(3, 5, 4, 0)
	f.hub.PublishDelta("BTCUSDT", full, delta)
	full, delta = pair(3, 6, 5, 0)
	f.hub.PublishDelta("BTCUSDT", full, delta)
	clk.advance(6 * time.Second)
	want(dc, "held then sent at its slot", "snapshot", 3, 6)
	publish(3, 7, 6) // stamped t0+7s; 6 took the slot t0+9s, so 7's is t0+14s
	clk.advance(8 * time.Second)
	want(dc, "next slot", "delta", 3, 7)

	// A reconnect starts a new chain.
	dc2 := dial(t, f.url, wsclient.Options{})
	subscribeDelta(t, f, dc2, 1)
	want(dc2, "reconnect", "snapshot", 3, 7)
	// The deltas read above: 3 in the chain, 7, 2/2, 3/4 and 3/7.
	if n := counter(f.m.DeltasSent); n != 7 {
		t.Fatalf("ws_delta_frames_sent_total %v, want the 7 deltas written", n)
	}
}

// TestDeltaNeverSkipsAFrameItNeeds: a client too slow to read loses frames
// to conflation; every delta it does get is based on the frame it read
// just before, so its state stays exact.
func TestDeltaNeverSkipsAFrameItNeeds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WriteTimeout, cfg.SlowMaxMisses, cfg.WarnInterval = 50*time.Millisecond, 1<<30, 0
	clk := newFakeClock()
	f := startClock(t, cfg, clk)
	slow := dial(t, f.url, wsclient.Options{Buffer: 1})
	subscribeDelta(t, f, slow, 1)
	waitFor(t, "the subscription", func() bool { return f.hub.Subscriptions()["BTCUSDT"] == 1 })
	const n = 60
	for i := uint64(1); i <= n; i++ {
		clk.advance(1100 * time.Millisecond)
		// Every third frame is large: the socket fills and frames conflate.
		pad := 0
		if i%3 == 0 {
			pad = 256 << 10
		}
		full, delta := pair(1, i, i-1, pad)
		f.hub.PublishDelta("BTCUSDT", full, delta)
	}
	if counter(f.m.FramesDropped.WithLabelValues("conflated"))+counter(f.m.FramesDropped.WithLabelValues("queue_full")) == 0 {
		t.Fatal("nothing was conflated: the client was not slow, the test proves nothing")
	}
	var last uint64
	deltas, fulls := 0, 0
	for last < n {
		g := readFrame(t, slow)
		if g.typ == "delta" {
			if g.base != last {
				t.Fatalf("delta %v after frame %d: the client never had its base", g, last)
			}
			deltas++
		} else {
			fulls++
		}
		if g.seq <= last {
			t.Fatalf("frame %v after %d", g, last)
		}
		last = g.seq
	}
	if fulls < 2 || deltas == 0 {
		t.Fatalf("%d full frames and %d deltas: want breaks (full frames after the first) and deltas between them", fulls, deltas)
	}
	t.Logf("slow delta client read %d full frames and %d deltas of %d published", fulls, deltas, n)
}
