package app

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
	"github.com/liqstream/liqstream/services/snapshotter/internal/demo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

func seedSetup(t *testing.T) (*store.Store, conf.Config, time.Duration, *slog.Logger, *bytes.Buffer) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "seed.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := conf.Default()
	cfg.Symbols = []string{"BTCUSDT", "ETHUSDT"}
	cfg.Demo.Days = 2
	cfg.Snapshot.CandleInterval = "5m"
	var buf bytes.Buffer
	return st, cfg, 5 * time.Minute, slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func rowsOf(t *testing.T, st *store.Store, sym string) (candles int64, oi bool) {
	t.Helper()
	_, _, n, err := st.DateRange(context.Background(), sym, "5m")
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := st.LastOpenInterest(context.Background(), sym)
	if err != nil {
		t.Fatal(err)
	}
	return n, ok
}

// Issue 15: a seed an older version cut short between its candles and its
// open interest is found on the next start and seeded again, whole.
func TestSeedDemoRepairsSymbolSeededWithoutOpenInterest(t *testing.T) {
	ctx := context.Background()
	st, cfg, step, log, logs := seedSetup(t)
	earlier := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	now := earlier.Add(3 * time.Hour)
	// What the old seed left: BTCUSDT's candles (of a 1-day seed), no OI.
	ks, _ := demo.Generate("BTCUSDT", cfg.Demo.Seed, earlier, step, 288)
	if err := st.UpsertKlines(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if err := SeedDemo(ctx, st, cfg, step, now, log); err != nil {
		t.Fatal(err)
	}
	want := int64(cfg.Demo.Days * 24 * 12)
	for _, sym := range cfg.Symbols {
		if n, oi := rowsOf(t, st, sym); n != want || !oi {
			t.Fatalf("%s: %d candles, open interest %v; want %d and true\n%s", sym, n, oi, want, logs)
		}
	}
	c, _ := st.Count(ctx)
	if c.Klines != 2*want || c.OpenInterest != 2*want {
		t.Fatalf("counts %+v, want %d each", c, 2*want)
	}
	_, last, _, _ := st.DateRange(ctx, "BTCUSDT", "5m")
	if wantLast := now.Truncate(step).Add(-step); !last.Equal(wantLast) {
		t.Fatalf("re-seed ends at %s, want %s (old candles must be gone)", last, wantLast)
	}
	if !strings.Contains(logs.String(), "re-seeded demo data") || !strings.Contains(logs.String(), "BTCUSDT") {
		t.Fatalf("no warning naming the repaired symbol:\n%s", logs)
	}
	// A second start changes nothing.
	if err := SeedDemo(ctx, st, cfg, step, now.Add(time.Hour), log); err != nil {
		t.Fatal(err)
	}
	if c2, _ := st.Count(ctx); c2 != c {
		t.Fatalf("second start changed counts %+v -> %+v", c, c2)
	}
}

// Candles that are not the demo's own (an import, another seed) are never
// deleted: the symbol is left as it is, with a warning naming it.
func TestSeedDemoLeavesForeignCandlesWithoutOpenInterest(t *testing.T) {
	ctx := context.Background()
	st, cfg, step, log, logs := seedSetup(t)
	ks, _ := demo.Generate("BTCUSDT", cfg.Demo.Seed+1, time.Now(), step, 100)
	ks[50].Volume += 1 // and not contiguous demo data either way
	if err := st.UpsertKlines(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if err := SeedDemo(ctx, st, cfg, step, time.Now(), log); err != nil {
		t.Fatal(err)
	}
	if n, oi := rowsOf(t, st, "BTCUSDT"); n != 100 || oi {
		t.Fatalf("BTCUSDT: %d candles, OI %v; want the 100 stored, untouched", n, oi)
	}
	if n, oi := rowsOf(t, st, "ETHUSDT"); n != int64(cfg.Demo.Days*288) || !oi {
		t.Fatalf("ETHUSDT: %d candles, OI %v", n, oi)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "symbol=BTCUSDT") {
		t.Fatalf("no warning naming BTCUSDT:\n%s", logs)
	}
}

// A seeded symbol (candles and OI) is kept across restarts.
func TestSeedDemoKeepsSeededSymbols(t *testing.T) {
	ctx := context.Background()
	st, cfg, step, log, _ := seedSetup(t)
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	if err := SeedDemo(ctx, st, cfg, step, now, log); err != nil {
		t.Fatal(err)
	}
	_, last, _, _ := st.DateRange(ctx, "BTCUSDT", "5m")
	if err := SeedDemo(ctx, st, cfg, step, now.Add(6*time.Hour), log); err != nil {
		t.Fatal(err)
	}
	if _, last2, _, _ := st.DateRange(ctx, "BTCUSDT", "5m"); !last2.Equal(last) {
		t.Fatalf("restart re-seeded a seeded symbol: last %s -> %s", last, last2)
	}
}
