package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/api"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// gapCheckEvery is how often the store is searched for data gaps after the
// check at start.
const gapCheckEvery = time.Hour

// gapTables are the table label values of store_gaps, exported at 0 from the
// start for every configured symbol.
var gapTables = []string{"open_interest"}

// gapWatch finds the gaps in the store's data that leave a symbol's heatmap
// empty or wrong (store.DataGaps: candles without open interest, open
// interest that stopped, a long hole in it inside the snapshot lookback),
// logs a warning for each, exports them as store_gaps and keeps them for
// /readyz, /v1/symbols and /data/gaps. Gaps do not stop anything: the
// heatmap of such a symbol is computed as before, just loudly.
type gapWatch struct {
	st       *store.Store
	symbols  []string // configured: the only symbol label values
	interval string   // snapshot.candle_interval
	step     time.Duration
	lookback time.Duration // holes are searched for in the last lookback
	max      int           // candles in a row without open interest that are tolerated
	now      func() time.Time
	log      *slog.Logger
	gauge    *prometheus.GaugeVec

	mu   sync.Mutex
	gaps []store.DataGap
}

func newGapWatch(st *store.Store, symbols []string, interval string, step, lookback time.Duration, now func() time.Time, log *slog.Logger) *gapWatch {
	w := &gapWatch{st: st, symbols: symbols, interval: interval, step: step, lookback: lookback, max: store.DefaultGapCandles, now: now, log: log,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "store_gaps",
			Help: "Gaps in a symbol's stored data that leave its heatmap empty or wrong (candles without open interest), by the table missing rows, as of the last check (at start, then hourly).",
		}, []string{"symbol", "table"})}
	for _, sym := range symbols {
		for _, tbl := range gapTables {
			w.gauge.WithLabelValues(sym, tbl)
		}
	}
	return w
}

// check searches the store once, then logs and exports what it found.
func (w *gapWatch) check(ctx context.Context) error {
	gaps, err := w.st.DataGaps(ctx, w.interval, w.now().Add(-w.lookback), w.max)
	if err != nil {
		return err
	}
	gaps = slices.DeleteFunc(gaps, func(g store.DataGap) bool { return !slices.Contains(w.symbols, g.Symbol) })
	counts := map[[2]string]float64{}
	for _, g := range gaps {
		counts[[2]string{g.Symbol, g.Table}]++
		w.log.Warn("data gap: the heatmap of this symbol is empty or wrong", logging.KeySymbol, g.Symbol, logging.KeyReason, g.Kind,
			"since", g.Since.Format(time.RFC3339), "table", g.Table, "candles", g.Candles, "message", w.sentence(g))
	}
	for _, sym := range w.symbols {
		for _, tbl := range gapTables {
			w.gauge.WithLabelValues(sym, tbl).Set(counts[[2]string{sym, tbl}])
		}
	}
	w.mu.Lock()
	w.gaps = gaps
	w.mu.Unlock()
	return nil
}

// checkOrLog checks, logging a failure: a check that fails keeps the last
// result and stops nothing.
func (w *gapWatch) checkOrLog(ctx context.Context) {
	if err := w.check(ctx); err != nil && ctx.Err() == nil {
		w.log.Error("data gap check failed", logging.KeyErr, err)
	}
}

// run checks every interval until ctx ends (the check at start is the
// caller's, so that its warnings come before the service is up).
func (w *gapWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.checkOrLog(ctx)
		}
	}
}

// warnings returns the gaps of the last check as the API shows them.
func (w *gapWatch) warnings() []api.Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]api.Warning, 0, len(w.gaps))
	for _, g := range w.gaps {
		out = append(out, api.Warning{Symbol: g.Symbol, Table: g.Table, Kind: g.Kind, Since: g.Since, Message: w.sentence(g)})
	}
	return out
}

// sentence says what g means for the heatmap, for people.
func (w *gapWatch) sentence(g store.DataGap) string {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch g.Kind {
	case store.GapNoOpenInterest:
		return fmt.Sprintf("%s has candles but no open-interest data (%d %s candles since %s): its heatmap is empty", g.Symbol, g.Candles, w.interval, ts(g.Since))
	case store.GapOpenInterestStale:
		return fmt.Sprintf("no open-interest data for %s since %s (%d %s candles without it)", g.Symbol, ts(g.Since), g.Candles, w.interval)
	case store.GapOpenInterestHole:
		return fmt.Sprintf("no open-interest data for %s from %s to %s (%d %s candles without it)", g.Symbol, ts(g.Since), ts(g.Until.Add(w.step)), g.Candles, w.interval)
	}
	return fmt.Sprintf("%s: %s in %s since %s", g.Symbol, g.Kind, g.Table, ts(g.Since))
}
