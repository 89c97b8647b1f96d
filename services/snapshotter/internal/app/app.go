// Package app assembles the snapshotter: store, demo seed, simulator, compute
// loop and HTTP API, with one lifecycle.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/serve"
	"github.com/liqstream/liqstream/services/snapshotter/internal/accuracy"
	"github.com/liqstream/liqstream/services/snapshotter/internal/api"
	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
	"github.com/liqstream/liqstream/services/snapshotter/internal/history"
	"github.com/liqstream/liqstream/services/snapshotter/internal/simulator"
	"github.com/liqstream/liqstream/services/snapshotter/internal/snapshot"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Run serves until ctx ends, then stops every part and closes the store.
func Run(ctx context.Context, cfg conf.Config, log *slog.Logger) (err error) {
	params, err := cfg.HeatmapParams()
	if err != nil {
		return err
	}
	step, err := store.IntervalDuration(cfg.Snapshot.CandleInterval)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DB, append(cfg.StoreOptions(), store.WithLogger(log))...)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	counts, err := st.Count(ctx)
	if err != nil {
		return err
	}
	log.Info("store opened", "db", cfg.DB, "klines", counts.Klines, "open_interest", counts.OpenInterest)
	if cfg.Demo.Enabled {
		if err := SeedDemo(ctx, st, cfg, step, time.Now(), log); err != nil {
			return err
		}
	}

	epoch, err := st.NextEpoch(ctx)
	if err != nil {
		return err
	}
	board := snapshot.NewBoard(strconv.FormatUint(epoch, 10))
	pubs := []snapshot.Publisher{board}
	var redisPub *bus.RedisPublisher
	if cfg.RedisURL != "" {
		client, err := bus.NewRedisClient(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("redis_url: %w", err)
		}
		defer client.Close()
		redisPub = bus.NewRedisPublisher(client, cfg.Symbols, log)
		pubs = append(pubs, redisFrames{redisPub})
	}
	metrics := newMetrics(st, redisPub, cfg.Symbols, cfg.Snapshot.Interval)
	pubs = append(pubs, metrics)
	// Data that cannot make a heatmap is loud: warned about at start and
	// hourly, in store_gaps, /readyz, /v1/symbols and /data/gaps.
	gaps := newGapWatch(st, cfg.Symbols, cfg.Snapshot.CandleInterval, step, cfg.Snapshot.Lookback, time.Now, log)
	gaps.checkOrLog(ctx)
	metrics.watchGaps(gaps)
	loop := snapshot.New(snapshot.Config{
		Symbols: cfg.Symbols, Interval: cfg.Snapshot.Interval, CandleInterval: cfg.Snapshot.CandleInterval,
		CandleStep: step, Lookback: cfg.Snapshot.Lookback, Params: params, OnCompute: metrics.observeCompute,
		Epoch: epoch,
	}, st, time.Now, log, pubs...)

	hist := history.New(st, history.Defaults{
		Symbols: cfg.Symbols, Params: params, Weights: cfg.Heatmap.LeverageWeights,
		Window: cfg.History.DefaultWindow, Interval: cfg.History.DefaultInterval, MaxSnapshots: cfg.History.MaxSnapshots,
		Warmup: cfg.Snapshot.Lookback, CacheBytes: int64(cfg.History.CacheMB) << 20, ComputeTimeout: cfg.History.ComputeTimeout,
		Workers: cfg.History.Workers, Queue: cfg.History.Queue,
	}, time.Now, log)

	metrics.watchHistory(hist)

	g, gctx := errgroup.WithContext(ctx)
	if cfg.Binance.Enabled {
		if err := startBinance(gctx, g, cfg, st, metrics, log); err != nil {
			return err
		}
	}

	if cfg.Sim.Enabled {
		sim := simulator.New(simulator.Config{Symbols: cfg.Symbols, Interval: step, Tick: cfg.Sim.Tick, Seed: cfg.Demo.Seed}, st, simulator.RealClock(), log)
		g.Go(func() error { return sim.Run(gctx) })
	}
	if redisPub != nil {
		g.Go(func() error { return redisPub.Run(gctx) })
	}
	g.Go(func() error { return loop.Run(gctx) })
	g.Go(func() error {
		// An invalidated DuckDB refuses every query until the file is opened
		// again, which only a new process can do: stop, loudly, so the
		// supervisor restarts the snapshotter rather than it serving stale
		// frames forever.
		select {
		case <-gctx.Done():
			return nil
		case <-st.Invalidated():
			return st.InvalidatedErr()
		}
	})
	g.Go(func() error {
		gaps.run(gctx, gapCheckEvery)
		return nil
	})
	g.Go(func() error {
		runSummary(gctx, log, newSummary(metrics.published, metrics.compute, redisPub, time.Now), cfg.LogSummary)
		return nil
	})
	g.Go(func() error {
		// Scoring replays like the time series and shares its workers.
		acc, err := accuracy.New(st, hist, accuracy.Config{Symbols: cfg.Symbols, Params: params,
			Interval: cfg.Snapshot.CandleInterval, Lookback: cfg.Snapshot.Lookback, Timeout: cfg.History.ComputeTimeout}, time.Now, log)
		if err != nil {
			return err
		}
		return serve.HTTP(gctx, cfg.Listen, api.New(board, cfg.Symbols, hist, metrics.handler(),
			history.NewInputs(st, cfg.Symbols, cfg.Snapshot.CandleInterval, time.Now), acc).WithWarnings(gaps.warnings), 5*time.Second, log)
	})
	return g.Wait()
}

// redisFrames hands the loop's frames to the Redis publisher, which never blocks.
type redisFrames struct{ p *bus.RedisPublisher }

func (r redisFrames) Publish(_ context.Context, f snapshot.Frame) error {
	r.p.Publish(bus.Frame{Symbol: f.Symbol, Bytes: f.Bytes, Delta: f.Delta})
	return nil
}
