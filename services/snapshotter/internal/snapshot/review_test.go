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

// gapSeries writes 5m candles at the given indexes (5m steps from t0), each
// rising, with open interest oi(i).
func gapSeries(t *testing.T, st *store.Store, idx []int, oi func(i int) float64) {
	t.Helper()
	var ks []store.Kline
	var ois []store.OpenInterest
	for _, i := range idx {
		ot := t0.Add(time.Duration(i) * 5 * time.Minute)
		ks = append(ks, store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: ot, Open: 95000, High: 95060, Low: 94990, Close: 95050, Volume: 10})
		ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: ot, OpenInterest: 1, OpenInterestValue: oi(i)})
	}
	if err := st.UpsertKlines(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertOpenInterest(context.Background(), ois); err != nil {
		t.Fatal(err)
	}
}

// lastSnapshot runs one tick of a fresh loop over st and decodes its frame.
func lastSnapshot(t *testing.T, st *store.Store, now time.Time) protocol.Snapshot {
	t.Helper()
	rec := &recorder{}
	l := New(Config{
		Symbols: []string{"BTCUSDT"}, Interval: time.Second, CandleInterval: "5m", CandleStep: 5 * time.Minute,
		Lookback: 7 * 24 * time.Hour, Params: map[string]heatmap.Params{"BTCUSDT": heatmap.DefaultParams()},
	}, st, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)), rec)
	l.Tick(context.Background())
	if len(rec.frames) != 1 {
		t.Fatalf("%d frames, want 1", len(rec.frames))
	}
	var snap protocol.Snapshot
	if err := json.Unmarshal(rec.frames[0].Bytes, &snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// A missing day of candles must not turn the day's OI change into one
// candle's worth of new positions.
func TestReview20GapCreatesNoPositions(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "gap.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const day = 288 // 5m candles
	// Flat OI before and after the gap; it rose by 1e9 while no candle was stored.
	idx := []int{0, 1, 2, 3, 4, day + 5, day + 6, day + 7}
	gapSeries(t, st, idx, func(i int) float64 {
		if i > day {
			return 9e9
		}
		return 8e9
	})
	snap := lastSnapshot(t, st, t0.Add(time.Duration(day+8)*5*time.Minute))
	if snap.Data.PositionsCreated != 0 || len(snap.Data.Levels) != 0 {
		t.Fatalf("positions created across the gap: %d, %d levels; want none", snap.Data.PositionsCreated, len(snap.Data.Levels))
	}
}

// Under heatmap.oi_gap=reference the store leaves gaps unmarked and the
// reference algorithm books the gap's change at the candle after it.
func TestReview20ReferenceKeepsGapChange(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "gap.duckdb"), store.WithOIGap(heatmap.OIGapReference))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const day = 288
	gapSeries(t, st, []int{0, 1, day + 5, day + 6}, func(i int) float64 {
		if i > day {
			return 9e9
		}
		return 8e9
	})
	snap := lastSnapshot(t, st, t0.Add(time.Duration(day+7)*5*time.Minute))
	if snap.Data.PositionsCreated != 5 {
		t.Fatalf("positions created %d, want the reference's 5 at the candle after the gap", snap.Data.PositionsCreated)
	}
}

// The loop's incremental path meets a gap at the start of its query (the
// engine's last candle) and after it; it must publish what a rebuild does.
func TestReview20IncrementalGapEqualsRebuild(t *testing.T) {
	ctx := context.Background()
	st, l, rec, _ := newFixture(t)
	oi := func(i int) float64 { return 8e9 + float64(i)*1e6 }
	gapSeries(t, st, []int{0, 1, 2}, oi)
	l.Tick(ctx)
	for _, i := range []int{6, 7, 9} {
		gapSeries(t, st, []int{i}, oi)
		l.Tick(ctx) // appends the candle after the gap
		gapSeries(t, st, []int{i}, func(int) float64 { return oi(i) + 5e5 })
		l.Tick(ctx) // revises it: the query starts at a candle after a gap
	}
	fresh := New(l.cfg, st, l.now, l.log, &recorder{})
	fresh.Tick(ctx)
	got := payload(t, rec.frames[len(rec.frames)-1].Bytes)
	want := payload(t, fresh.pubs[0].(*recorder).frames[0].Bytes)
	if got != want {
		t.Fatalf("incremental payload differs from a rebuild:\n got %s\nwant %s", got, want)
	}
}
