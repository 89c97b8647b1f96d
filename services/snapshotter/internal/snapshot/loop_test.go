package snapshot

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

var t0 = time.Date(2025, 12, 29, 10, 0, 0, 0, time.UTC)

type recorder struct{ frames []Frame }

func (r *recorder) Publish(_ context.Context, f Frame) error {
	r.frames = append(r.frames, f)
	return nil
}

func newFixture(t *testing.T) (*store.Store, *Loop, *recorder, *time.Time) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "loop.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := t0.Add(time.Hour)
	rec := &recorder{}
	l := New(Config{
		Symbols: []string{"BTCUSDT"}, Interval: time.Second, CandleInterval: "5m", CandleStep: 5 * time.Minute,
		Lookback: 24 * time.Hour, Params: map[string]heatmap.Params{"BTCUSDT": heatmap.DefaultParams()},
	}, st, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)), rec)
	return st, l, rec, &now
}

// series writes candles that rise with rising OI, so long positions open.
func series(t *testing.T, st *store.Store, n int) {
	t.Helper()
	var ks []store.Kline
	var ois []store.OpenInterest
	price := 95000.0
	for i := 0; i < n; i++ {
		ot := t0.Add(time.Duration(i) * 5 * time.Minute)
		ks = append(ks, store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: ot, Open: price, High: price + 60, Low: price - 10, Close: price + 50, Volume: 10})
		ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: ot, OpenInterest: 1, OpenInterestValue: 8e9 + float64(i)*1e6})
		price += 50
	}
	if err := st.UpsertKlines(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertOpenInterest(context.Background(), ois); err != nil {
		t.Fatal(err)
	}
}

func TestTickPublishesOnlyChangedContent(t *testing.T) {
	ctx := context.Background()
	st, l, rec, now := newFixture(t)

	l.Tick(ctx)
	if len(rec.frames) != 0 {
		t.Fatalf("empty store published %d frames", len(rec.frames))
	}
	series(t, st, 10)
	l.Tick(ctx)
	if len(rec.frames) != 1 {
		t.Fatalf("after data arrived: %d frames, want 1", len(rec.frames))
	}
	f := rec.frames[0]
	var snap protocol.Snapshot
	if err := json.Unmarshal(f.Bytes, &snap); err != nil {
		t.Fatalf("frame is not a snapshot: %v", err)
	}
	if snap.Type != "snapshot" || snap.Symbol != "BTCUSDT" || snap.Seq != 1 || len(snap.Data.Levels) == 0 {
		t.Fatalf("unexpected frame %s", f.Bytes)
	}
	if snap.Timestamp != protocol.FormatTime(*now) {
		t.Fatalf("timestamp %s, want production time %s", snap.Timestamp, protocol.FormatTime(*now))
	}
	// 9 rising candles each create 5 tiers; none of them can be consumed by a
	// later candle whose low stays above every long liquidation price.
	if snap.Data.PositionsCreated != 45 || snap.Data.PositionsConsumed != 0 || snap.Data.CurrentPrice != 95000+9*50+50 {
		t.Fatalf("data %+v", snap.Data)
	}

	l.Tick(ctx)
	if len(rec.frames) != 1 {
		t.Fatal("a tick without writes published again")
	}
	// Rewriting identical rows moves the version but not the content.
	series(t, st, 10)
	*now = now.Add(time.Second)
	l.Tick(ctx)
	if len(rec.frames) != 1 {
		t.Fatal("identical content was published again")
	}
	// A real change (the open candle's close moves) publishes seq 2.
	k, _, _ := st.LastKline(ctx, "BTCUSDT", "5m")
	k.Close, k.High = k.High+5, k.High+5
	if err := st.UpsertKlines(ctx, []store.Kline{k}); err != nil {
		t.Fatal(err)
	}
	l.Tick(ctx)
	if len(rec.frames) != 2 || rec.frames[1].Seq != 2 {
		t.Fatalf("after a change: %d frames, last seq %d; want 2 and 2", len(rec.frames), rec.frames[len(rec.frames)-1].Seq)
	}
}

func TestBoardWait(t *testing.T) {
	b := NewBoard("e1")
	ctx := context.Background()
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, ok := b.Wait(short, "BTCUSDT", ""); ok {
		t.Fatal("Wait on an empty board returned a frame")
	}
	b.Publish(ctx, Frame{Symbol: "BTCUSDT", Seq: 1, Bytes: []byte("a")})
	f, ok := b.Wait(ctx, "BTCUSDT", "")
	if !ok || f.Seq != 1 || b.ETag(f) != `"e1-1"` {
		t.Fatalf("got %+v %v", f, ok)
	}
	got := make(chan Frame)
	go func() {
		f, _ := b.Wait(ctx, "BTCUSDT", `"e1-1"`)
		got <- f
	}()
	b.Publish(ctx, Frame{Symbol: "ETHUSDT", Seq: 1}) // another symbol must not wake it with a stale frame
	b.Publish(ctx, Frame{Symbol: "BTCUSDT", Seq: 2, Bytes: []byte("b")})
	if f := <-got; f.Seq != 2 {
		t.Fatalf("waiter got seq %d, want 2", f.Seq)
	}
	// A different epoch (a restarted snapshotter) is a different frame even at the same seq.
	b2 := NewBoard("e2")
	b2.Publish(ctx, Frame{Symbol: "BTCUSDT", Seq: 1})
	if _, ok := b2.Wait(ctx, "BTCUSDT", `"e1-1"`); !ok {
		t.Fatal("a frame of a new epoch was treated as unchanged")
	}
}

// The loop's incremental path (revise the open candle, append new ones) must
// publish exactly what a loop starting from scratch on the same store would.
func TestIncrementalEqualsRebuild(t *testing.T) {
	ctx := context.Background()
	st, l, rec, now := newFixture(t)
	series(t, st, 10)
	l.Tick(ctx)
	for step := 0; step < 6; step++ {
		k, _, _ := st.LastKline(ctx, "BTCUSDT", "5m")
		if step%2 == 0 {
			// The open candle moves: a dip that liquidates some longs.
			k.Low, k.Close = k.Low*0.985, k.Low*0.99
			if err := st.UpsertKlines(ctx, []store.Kline{k}); err != nil {
				t.Fatal(err)
			}
		} else {
			// A new candle opens with more open interest.
			n := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: k.OpenTime.Add(5 * time.Minute), Open: k.Close, High: k.Close * 1.01, Low: k.Close * 0.999, Close: k.Close * 1.005, Volume: 3}
			if err := st.UpsertKlines(ctx, []store.Kline{n}); err != nil {
				t.Fatal(err)
			}
			if err := st.UpsertOpenInterest(ctx, []store.OpenInterest{{Symbol: "BTCUSDT", TS: n.OpenTime, OpenInterest: 1, OpenInterestValue: 8e9 + float64(20+step)*1e6}}); err != nil {
				t.Fatal(err)
			}
			*now = now.Add(5 * time.Minute)
		}
		l.Tick(ctx)
	}
	fresh := New(l.cfg, st, l.now, l.log, &recorder{})
	fresh.Tick(ctx)
	got := payload(t, rec.frames[len(rec.frames)-1].Bytes)
	want := payload(t, fresh.pubs[0].(*recorder).frames[0].Bytes)
	if got != want {
		t.Fatalf("incremental payload differs from a rebuild:\n got %s\nwant %s", got, want)
	}
	if len(rec.frames) < 4 {
		t.Fatalf("only %d frames published over 6 changes", len(rec.frames))
	}
}

// payload is a frame's data without window_start: both loops' windows
// reach back before the first stored candle, so only that label differs.
func payload(t *testing.T, frame []byte) string {
	t.Helper()
	var m struct{ Data map[string]json.RawMessage }
	if err := json.Unmarshal(frame, &m); err != nil {
		t.Fatal(err)
	}
	delete(m.Data, "window_start")
	b, _ := json.Marshal(m.Data)
	return string(b)
}
