package snapshot

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// OnCompute hears of every recomputation, published or not, and of no tick
// that found nothing new.
func TestOnComputeTimesRecomputations(t *testing.T) {
	ctx := context.Background()
	st, l, rec, now := newFixture(t)
	var computed []string
	l.cfg.OnCompute = func(sym string, took time.Duration) {
		if took < 0 {
			t.Errorf("negative compute time %s", took)
		}
		computed = append(computed, sym)
	}
	steps := []struct {
		name      string
		change    func()
		computed  int // recomputations so far
		published int // frames so far
	}{
		{"empty store: the first tick builds", func() {}, 1, 0},
		{"data arrived", func() { series(t, st, 10) }, 2, 1},
		{"nothing new", func() {}, 2, 1},
		{"same rows rewritten: recomputed, not published", func() { series(t, st, 10); *now = now.Add(time.Second) }, 3, 1},
		{"a real change", func() {
			k, _, _ := st.LastKline(ctx, "BTCUSDT", "5m")
			k.Close, k.High = k.High+5, k.High+5
			if err := st.UpsertKlines(ctx, []store.Kline{k}); err != nil {
				t.Fatal(err)
			}
		}, 4, 2},
	}
	for _, s := range steps {
		s.change()
		l.Tick(ctx)
		if len(computed) != s.computed || len(rec.frames) != s.published {
			t.Fatalf("%s: %d recomputations, %d frames; want %d and %d", s.name, len(computed), len(rec.frames), s.computed, s.published)
		}
	}
	if !slices.Equal(slices.Compact(computed), []string{"BTCUSDT"}) {
		t.Fatalf("computed %v, want BTCUSDT only", computed)
	}
}
