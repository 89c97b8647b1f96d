package snapshot

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// frameData decodes a frame's payload.
func frameData(t *testing.T, f Frame) protocol.SnapshotData {
	t.Helper()
	var s protocol.Snapshot
	if err := json.Unmarshal(f.Bytes, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data
}

func TestFramesCarryTheOpenCandlesLiquidations(t *testing.T) {
	st, l, rec, _ := newFixture(t)
	ctx := context.Background()
	series(t, st, 12)
	open := t0.Add(11 * 5 * time.Minute) // the newest candle
	l.Tick(ctx)
	if n := len(rec.frames); n != 1 {
		t.Fatalf("%d frames, want 1", n)
	}
	if ls := frameData(t, rec.frames[0]).Liquidations; ls != nil {
		t.Fatalf("liquidations %+v before any was stored", ls)
	}
	liqs := []store.Liquidation{
		{Symbol: "BTCUSDT", Time: open.Add(-time.Second), Side: store.SideLong, Price: 95400, Quantity: 1, Notional: 95400},   // previous candle
		{Symbol: "BTCUSDT", Time: open.Add(time.Minute), Side: store.SideShort, Price: 95600, Quantity: 0.5, Notional: 47800}, // this one
		{Symbol: "BTCUSDT", Time: open.Add(2 * time.Minute), Side: store.SideLong, Price: 95500, Quantity: 2, Notional: 191000},
	}
	if err := st.UpsertLiquidations(ctx, liqs); err != nil {
		t.Fatal(err)
	}
	// A liquidation alone, with no candle moving, makes a new frame at the next tick.
	l.Tick(ctx)
	if n := len(rec.frames); n != 2 {
		t.Fatalf("%d frames after a liquidation was stored, want 2", n)
	}
	got := frameData(t, rec.frames[1]).Liquidations
	want := []protocol.Liquidation{
		{Time: protocol.FormatTime(liqs[1].Time), Side: "short", Price: 95600, Quantity: 0.5, Notional: 47800},
		{Time: protocol.FormatTime(liqs[2].Time), Side: "long", Price: 95500, Quantity: 2, Notional: 191000},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("frame liquidations %+v, want the open candle's %+v", got, want)
	}
	// The delta carries them too, so a delta client sees the same.
	var d protocol.Delta
	if err := json.Unmarshal(rec.frames[1].Delta, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Data.Liquidations) != 2 {
		t.Fatalf("delta liquidations %+v, want 2", d.Data.Liquidations)
	}
	// Replaying the same events changes nothing a client sees.
	if err := st.UpsertLiquidations(ctx, liqs); err != nil {
		t.Fatal(err)
	}
	l.Tick(ctx)
	if n := len(rec.frames); n != 2 {
		t.Fatalf("%d frames after a replay of stored liquidations, want still 2", n)
	}
	// A new candle opens: its frame has none of the old candle's.
	next := open.Add(5 * time.Minute)
	if err := st.UpsertKlines(ctx, []store.Kline{{Symbol: "BTCUSDT", Interval: "5m", OpenTime: next, Open: 95600, High: 95650, Low: 95550, Close: 95620, Volume: 1}}); err != nil {
		t.Fatal(err)
	}
	l.Tick(ctx)
	if n := len(rec.frames); n != 3 {
		t.Fatalf("%d frames after a new candle, want 3", n)
	}
	if ls := frameData(t, rec.frames[2]).Liquidations; ls != nil {
		t.Fatalf("the new candle's frame carries %+v, want none", ls)
	}
}

func TestFrameLiquidationsKeepTheLargest(t *testing.T) {
	st, l, rec, _ := newFixture(t)
	ctx := context.Background()
	series(t, st, 3)
	open := t0.Add(2 * 5 * time.Minute)
	var liqs []store.Liquidation
	for i := range maxFrameLiquidations + 50 {
		// Notional rises with i, so the largest are the newest 200.
		liqs = append(liqs, store.Liquidation{Symbol: "BTCUSDT", Time: open.Add(time.Duration(i) * time.Second), Side: store.SideLong,
			Price: 95000, Quantity: float64(i + 1), Notional: float64(i+1) * 95000})
	}
	if err := st.UpsertLiquidations(ctx, liqs); err != nil {
		t.Fatal(err)
	}
	l.Tick(ctx)
	got := frameData(t, rec.frames[len(rec.frames)-1]).Liquidations
	if len(got) != maxFrameLiquidations {
		t.Fatalf("%d liquidations in the frame, want %d", len(got), maxFrameLiquidations)
	}
	if got[0].Quantity != 51 || got[len(got)-1].Quantity != float64(maxFrameLiquidations+50) {
		t.Fatalf("kept quantities %g..%g, want the largest 51..%d oldest first", got[0].Quantity, got[len(got)-1].Quantity, maxFrameLiquidations+50)
	}
}
