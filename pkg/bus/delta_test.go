package bus

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/testenv"
)

// pairAt is frame (epoch 1, seq) with its delta from base (none when base is 0).
func pairAt(sym string, seq, base uint64) Frame {
	ts := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	f := Frame{Symbol: sym, Bytes: protocol.SnapshotFrameEpoch(sym, 1, seq, ts, []byte(`{"levels":[]}`))}
	if base > 0 {
		f.Delta = protocol.DeltaFrame(sym, 1, seq, base, ts, []byte(`{"levels":[],"removed":[]}`))
	}
	return f
}

// TestRedisCarriesDeltasWithTheirFrames: the delta published before its
// frame reaches the subscriber with it; a frame published without one
// comes alone, and the :latest key (read on subscribing) is the full frame.
func TestRedisCarriesDeltasWithTheirFrames(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startPublisher(t, r.URL, []string{"BTCUSDT"})
	p.Publish(pairAt("BTCUSDT", 1, 0))
	got := make(chan Frame, 16)
	client, err := NewRedisClient(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := NewRedisSource(client, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ups := make(chan bool, 8)
	go s.Run(ctx, []string{"BTCUSDT"}, func(f Frame) { got <- f }, func(up bool) { ups <- up })
	awaitUp(t, ups, true)
	recv := func(what string) Frame {
		t.Helper()
		select {
		case f := <-got:
			return f
		case <-time.After(wait):
			t.Fatalf("no frame: %s", what)
			return Frame{}
		}
	}
	if f := recv("latest"); f.Delta != nil || !bytes.Equal(f.Bytes, pairAt("BTCUSDT", 1, 0).Bytes) {
		t.Fatalf("latest on subscribe: %s with delta %s", f.Bytes, f.Delta)
	}
	for seq := uint64(2); seq <= 4; seq++ {
		want := pairAt("BTCUSDT", seq, seq-1)
		p.Publish(want)
		f := recv(fmt.Sprintf("frame %d", seq))
		// Frame 1 may come twice: read as :latest and published after the
		// subscription started.
		for _, s, _ := protocol.PeekEpochSeq(f.Bytes); s < seq; _, s, _ = protocol.PeekEpochSeq(f.Bytes) {
			f = recv(fmt.Sprintf("frame %d", seq))
		}
		if !bytes.Equal(f.Bytes, want.Bytes) || !bytes.Equal(f.Delta, want.Delta) {
			t.Fatalf("frame %d: %s with delta %s", seq, f.Bytes, f.Delta)
		}
	}
	p.Publish(pairAt("BTCUSDT", 5, 0))
	if f := recv("a frame without delta"); f.Delta != nil {
		t.Fatalf("frame 5 came with delta %s", f.Delta)
	}
}

func TestSplitPair(t *testing.T) {
	d, f := []byte(`{"type":"delta"}`), []byte(`{"type":"snapshot"}`)
	gd, gf, ok := SplitPair(JoinPair(d, f))
	if !ok || !bytes.Equal(gd, d) || !bytes.Equal(gf, f) {
		t.Fatalf("SplitPair(JoinPair) = %s %s %v", gd, gf, ok)
	}
	for _, bad := range []string{"", "{}", "\n{}\n", "{}\n\n", "{}\n{}\n{}\n"} {
		if _, _, ok := SplitPair([]byte(bad)); ok {
			t.Errorf("SplitPair(%q) accepted", bad)
		}
	}
}

// TestHTTPSourceReadsDeltaPairs: the long poll asks for deltas and splits
// the snapshotter's NDJSON answer; a plain answer is a frame without one.
func TestHTTPSourceReadsDeltaPairs(t *testing.T) {
	var seq uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("delta") != "1" {
			t.Errorf("poll without delta=1: %s", r.URL)
		}
		if r.Header.Get("If-None-Match") == fmt.Sprintf(`"%d"`, seq) {
			if seq == 3 {
				<-r.Context().Done()
				return
			}
			seq++
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, seq))
		f := pairAt("BTCUSDT", seq, seq-1)
		if seq == 1 {
			w.Write(f.Bytes)
			return
		}
		w.Header().Set("Content-Type", NDJSON)
		w.Write(JoinPair(f.Delta, f.Bytes))
	}))
	defer srv.Close()
	seq = 1
	src := newSource(t, srv.URL)
	got := make(chan Frame, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx, []string{"BTCUSDT"}, func(f Frame) { got <- f })
	for want := uint64(1); want <= 3; want++ {
		select {
		case f := <-got:
			w := pairAt("BTCUSDT", want, want-1)
			if want == 1 {
				w.Delta = nil
			}
			if !bytes.Equal(f.Bytes, w.Bytes) || !bytes.Equal(f.Delta, w.Delta) {
				t.Fatalf("poll %d: %s with delta %s", want, f.Bytes, f.Delta)
			}
		case <-time.After(wait):
			t.Fatalf("poll %d: nothing delivered", want)
		}
	}
}
