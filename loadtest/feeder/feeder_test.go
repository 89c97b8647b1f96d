package feeder

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
)

func TestFramesAreSpecShapedAndNearTheAskedSize(t *testing.T) {
	f, err := New([]string{"BTCUSDT", "ETHUSDT"}, time.Hour, 18000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.round(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
		b := f.latest[sym]
		if len(b) < 17000 || len(b) > 19000 {
			t.Errorf("%s frame is %d bytes, want about 18000", sym, len(b))
		}
		if head := string(b[:120]); !strings.HasPrefix(head, `{"type":"snapshot","symbol":"`+sym+`",`) || !strings.Contains(head, `"seq":1,`) {
			t.Errorf("%s frame starts %s", sym, head)
		}
		if ts, ok := protocol.PeekTimestamp(b); !ok || time.Since(ts) > time.Minute {
			t.Errorf("%s frame timestamp %v, %v; want now", sym, ts, ok)
		}
	}
	if _, err := New(nil, time.Second, 18000, nil); err == nil {
		t.Error("New without symbols: want an error")
	}
}

// The gateway's own HTTP source reads the feeder as it reads a snapshotter.
func TestGatewaySourceLongPollsTheFeeder(t *testing.T) {
	f, err := New([]string{"BTCUSDT", "ETHUSDT"}, time.Hour, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.Start(ctx); err != nil { // round 1; the ticker never fires within the test
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer cancel() // before Close: it waits for the held long polls
	src, err := bus.NewHTTPSource(srv.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := src.Symbols(ctx)
	if err != nil || strings.Join(syms, ",") != "BTCUSDT,ETHUSDT" {
		t.Fatalf("Symbols = %v, %v", syms, err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	deltas := map[string][]bool{}
	frames := make(chan struct{}, 16)
	go src.Run(ctx, syms, func(fr bus.Frame) {
		mu.Lock()
		got[fr.Symbol] = append(got[fr.Symbol], string(fr.Bytes[:min(len(fr.Bytes), 120)]))
		deltas[fr.Symbol] = append(deltas[fr.Symbol], fr.Delta != nil && bus.SameFrame(fr.Delta, fr.Bytes))
		mu.Unlock()
		frames <- struct{}{}
	})
	wait := func(n int) {
		for range n {
			select {
			case <-frames:
			case <-time.After(10 * time.Second):
				t.Fatal("no frame from the feeder within 10s")
			}
		}
	}
	wait(2) // seq 1 of both, at once
	if err := f.round(ctx); err != nil {
		t.Fatal(err)
	}
	wait(2) // seq 2 of both, ending the held long polls
	mu.Lock()
	defer mu.Unlock()
	for _, sym := range syms {
		if len(got[sym]) != 2 || !strings.Contains(got[sym][0], `"seq":1`) || !strings.Contains(got[sym][1], `"seq":2`) {
			t.Errorf("%s: got %q, want seq 1 then 2", sym, got[sym])
		}
		// The long poll asks ?delta=1: seq 2 comes with its delta, as from a snapshotter.
		if d := deltas[sym]; len(d) != 2 || d[0] || !d[1] {
			t.Errorf("%s: with a delta %v, want seq 1 without and seq 2 with", sym, d)
		}
	}
}

func TestLongPollAnswers(t *testing.T) {
	f, err := New([]string{"BTCUSDT"}, time.Hour, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.round(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, tc := range []struct {
		path, etag string
		code       int
	}{
		{"/v1/snapshots/BTCUSDT", "", http.StatusOK},
		{"/v1/snapshots/btcusdt?wait=10ms", `"feeder-1"`, http.StatusNotModified},
		{"/v1/snapshots/BTCUSDT?wait=10ms", `"feeder-0"`, http.StatusOK},
		{"/v1/snapshots/DOGEUSDT", "", http.StatusNotFound},
		{"/readyz", "", http.StatusOK},
		{"/nope", "", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.etag != "" {
			req.Header.Set("If-None-Match", tc.etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s (If-None-Match %s) = %d, want %d", tc.path, tc.etag, resp.StatusCode, tc.code)
		}
		if tc.code == http.StatusOK && strings.HasPrefix(tc.path, "/v1/snapshots") && resp.Header.Get("ETag") != `"feeder-1"` {
			t.Errorf("GET %s: ETag %q, want \"feeder-1\"", tc.path, resp.Header.Get("ETag"))
		}
	}
}

func TestPunctualityCountsLateAndSkippedRounds(t *testing.T) {
	f, err := New([]string{"BTCUSDT"}, time.Second, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	f.recordTick(t0, 5*time.Millisecond, time.Time{})
	f.recordTick(t0.Add(time.Second), 20*time.Millisecond, t0)
	// Two ticks dropped while the feeder was busy, then one 300 ms late.
	f.recordTick(t0.Add(4*time.Second), 300*time.Millisecond, t0.Add(time.Second))
	if p := f.Punctuality(); p.Ticks != 3 || p.LateTicks != 1 || p.SkippedTicks != 2 || p.MaxLateMs != 300 {
		t.Errorf("punctuality %+v; want 3 ticks, 1 late, 2 skipped, at most 300 ms late", p)
	}
	if p := f.PunctualitySince(t0.Add(500 * time.Millisecond)); p.Ticks != 2 || p.LateTicks != 1 || p.MaxLateMs != 300 {
		t.Errorf("since t0+0.5s: %+v; want the last 2 ticks", p)
	}
	if p := f.PunctualitySince(t0.Add(5 * time.Second)); p.Ticks != 0 || p.MaxLateMs != 0 {
		t.Errorf("since after the last tick: %+v; want nothing", p)
	}
}
