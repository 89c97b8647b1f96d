package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// TestFramesCarryDeltasThatRebuildThem: every frame after the first comes
// with a delta from the one before, and applying the deltas to the first
// frame's data rebuilds each later frame's data byte for byte.
func TestFramesCarryDeltasThatRebuildThem(t *testing.T) {
	ctx := context.Background()
	st, l, rec, now := newFixture(t)
	series(t, st, 10)
	l.Tick(ctx)
	for i := range 12 {
		// The open candle moves, and now and then a new candle opens.
		k, _, _ := st.LastKline(ctx, "BTCUSDT", "5m")
		if i%4 == 3 {
			k.OpenTime = k.OpenTime.Add(5 * time.Minute)
			oi := store.OpenInterest{Symbol: "BTCUSDT", TS: k.OpenTime, OpenInterest: 1, OpenInterestValue: 9e9 + float64(i)*3e6}
			if err := st.UpsertOpenInterest(ctx, []store.OpenInterest{oi}); err != nil {
				t.Fatal(err)
			}
		}
		k.Close = k.Close + float64(i%3-1)*40
		k.High, k.Low = max(k.High, k.Close), min(k.Low, k.Close)
		if err := st.UpsertKlines(ctx, []store.Kline{k}); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Second)
		l.Tick(ctx)
	}
	if len(rec.frames) < 8 {
		t.Fatalf("%d frames published, want most of 13", len(rec.frames))
	}
	if rec.frames[0].Delta != nil {
		t.Fatalf("the first frame has a delta: %s", rec.frames[0].Delta)
	}
	var first protocol.Snapshot
	if err := json.Unmarshal(rec.frames[0].Bytes, &first); err != nil {
		t.Fatal(err)
	}
	state := first.Data
	for _, f := range rec.frames[1:] {
		if f.Delta == nil {
			t.Fatalf("frame %d has no delta", f.Seq)
		}
		var d protocol.Delta
		if err := json.Unmarshal(f.Delta, &d); err != nil {
			t.Fatal(err)
		}
		if d.Type != protocol.TypeDelta || d.Seq != f.Seq || d.BaseSeq != f.Seq-1 || d.Timestamp != protocol.FormatTime(f.Produced) {
			t.Fatalf("delta envelope %+v for frame %d", d, f.Seq)
		}
		state = protocol.Apply(state, d.Data)
		got, _ := protocol.EncodeSnapshotData(state)
		var full protocol.Snapshot
		if err := json.Unmarshal(f.Bytes, &full); err != nil {
			t.Fatal(err)
		}
		if want, _ := protocol.EncodeSnapshotData(full.Data); !bytes.Equal(got, want) {
			t.Fatalf("frame %d rebuilt from deltas:\n%s\nwant\n%s", f.Seq, got, want)
		}
		if len(f.Delta) >= len(f.Bytes) {
			t.Fatalf("frame %d: delta of %d bytes for a %d-byte frame", f.Seq, len(f.Delta), len(f.Bytes))
		}
	}
}
