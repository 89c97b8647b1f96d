package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
	"github.com/liqstream/liqstream/services/snapshotter/internal/demo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// SeedDemo writes cfg.Demo.Days of demo candles and OI for every symbol that
// has no candles yet, ending at the last closed candle before now. Each
// symbol's candles and open interest land in one transaction, so a crash
// leaves a symbol seeded whole or not at all. A store that already holds a
// symbol is left as it is, so restarts keep their data — except a symbol
// whose candles are exactly this seed's demo series with no open interest at
// all: an older version, which wrote the two in separate transactions, was
// stopped between them. That series is replaced by a fresh seed in one
// transaction. Candles that are not this seed's demo data are never deleted:
// a symbol with them and no open interest is left as it is, with a warning.
func SeedDemo(ctx context.Context, st *store.Store, cfg conf.Config, step time.Duration, now time.Time, log *slog.Logger) error {
	n := int(time.Duration(cfg.Demo.Days) * 24 * time.Hour / step)
	iv := cfg.Snapshot.CandleInterval
	for _, sym := range cfg.Symbols {
		_, last, have, err := st.DateRange(ctx, sym, iv)
		if err != nil {
			return err
		}
		ks, ois := demo.Generate(sym, cfg.Demo.Seed, now, step, n)
		if have == 0 {
			if err := st.Upsert(ctx, ks, ois); err != nil {
				return fmt.Errorf("seed demo %s: %w", sym, err)
			}
			log.Info("seeded demo data", logging.KeySymbol, sym, "candles", len(ks), "open_interest", len(ois))
			continue
		}
		if _, hasOI, err := st.LastOpenInterest(ctx, sym); err != nil {
			return err
		} else if hasOI {
			continue
		}
		demoData, err := isDemoSeries(ctx, st, sym, iv, cfg.Demo.Seed, step, last, int(have))
		if err != nil {
			return err
		}
		if !demoData {
			log.Warn("symbol has candles but no open interest, and they are not this demo seed's data: left as is, its heatmap stays empty until open interest is imported",
				logging.KeySymbol, sym, "candles", have)
			continue
		}
		if err := st.ReplaceKlines(ctx, sym, iv, ks, ois); err != nil {
			return fmt.Errorf("re-seed demo %s: %w", sym, err)
		}
		log.Warn("re-seeded demo data an earlier run left without open interest", logging.KeySymbol, sym,
			"old_candles", have, "candles", len(ks), "open_interest", len(ois))
	}
	return nil
}

// isDemoSeries reports whether the n stored candles of sym, the newest
// opening at last, are exactly what the demo generator makes with seed: the
// walk does not depend on the times, so the stored series must equal the
// first n candles of a fresh walk, shifted to end at last.
func isDemoSeries(ctx context.Context, st *store.Store, sym, iv string, seed uint64, step time.Duration, last time.Time, n int) (bool, error) {
	if demo.IntervalName(step) != iv {
		return false, nil
	}
	stored, err := st.Klines(ctx, sym, iv)
	if err != nil {
		return false, err
	}
	want, _ := demo.Generate(sym, seed, last.Add(step), step, n)
	if len(stored) != len(want) {
		return false, nil
	}
	for i, k := range stored {
		w := want[i]
		if !k.OpenTime.Equal(w.OpenTime) || k.Open != w.Open || k.High != w.High || k.Low != w.Low || k.Close != w.Close || k.Volume != w.Volume {
			return false, nil
		}
	}
	return true, nil
}
