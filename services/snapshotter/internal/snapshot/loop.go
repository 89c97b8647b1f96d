// Package snapshot turns stored candles into published heatmap frames: every
// interval it recomputes the symbols whose data moved, skips content that did
// not change, encodes each frame once and hands it to the publishers.
package snapshot

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Source is the part of the store the loop reads.
type Source interface {
	// ChangedSince returns the span of candle times written after version,
	// the current version, and whether the store still knows that history.
	ChangedSince(symbol string, version uint64) (store.Span, uint64, bool)
	Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error)
	// LiquidationVersion moves whenever liquidations of symbol are written.
	LiquidationVersion(symbol string) uint64
	Liquidations(ctx context.Context, q store.LiquidationQuery) ([]store.Liquidation, error)
}

// Publisher receives every new frame.
type Publisher interface {
	Publish(ctx context.Context, f Frame) error
}

// Config is what the loop computes.
type Config struct {
	Symbols        []string
	Interval       time.Duration // how often to look for changes
	CandleInterval string        // "5m"
	CandleStep     time.Duration
	Lookback       time.Duration
	Params         map[string]heatmap.Params // per symbol
	// OnCompute, if set, is told how long each recomputation of a symbol
	// took: reading candles, applying them, encoding and hashing the frame
	// and handing it to the publishers (which never block), whether or not
	// it published. A tick that finds nothing new is not a recomputation.
	OnCompute func(symbol string, took time.Duration)
	// Epoch is this run's number from the store (store.NextEpoch), carried
	// in every frame with its seq: gateways order frames by the two, so a
	// restart on a machine whose clock is behind is not taken for old news.
	Epoch uint64
}

type state struct {
	engine  *heatmap.Engine
	from    time.Time // the engine's first candle's open time (window start)
	version uint64    // store version the engine reflects
	// liqVersion is the liquidation version liqs reflects, liqCandle the
	// open time of the candle they belong to.
	liqVersion uint64
	liqCandle  time.Time
	liqs       []protocol.Liquidation
	hash       [32]byte
	seq        uint64
	levels     []heatmap.Level
	// published is the payload of frame seq, the base of the next delta.
	published protocol.SnapshotData
}

// Loop is the snapshotter's heartbeat.
type Loop struct {
	cfg   Config
	src   Source
	pubs  []Publisher
	now   func() time.Time
	log   *slog.Logger
	state map[string]*state
}

// New returns a loop; now is the clock (time.Now outside tests).
func New(cfg Config, src Source, now func() time.Time, log *slog.Logger, pubs ...Publisher) *Loop {
	st := make(map[string]*state, len(cfg.Symbols))
	for _, s := range cfg.Symbols {
		st[s] = &state{}
	}
	return &Loop{cfg: cfg, src: src, pubs: pubs, now: now, log: log, state: st}
}

// Run computes at once, then every interval, until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		l.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick recomputes every symbol whose data changed and publishes what is new.
// A failing symbol is logged and retried next tick; it never stops the others.
func (l *Loop) Tick(ctx context.Context) {
	for _, sym := range l.cfg.Symbols {
		if _, err := l.update(ctx, sym); err != nil && ctx.Err() == nil {
			l.log.Error("snapshot failed", logging.KeySymbol, sym, logging.KeyErr, err)
		}
	}
}

// update brings symbol's engine up to date with the store and publishes
// a frame if the content changed; it returns whether it published.
//
// Only what moved is applied: writes at or after the engine's last candle
// revise it and append newer ones (O(changes)); a write further back, a lost
// change history or a window older than lookback plus a day rebuilds from
// the window start.
func (l *Loop) update(ctx context.Context, sym string) (bool, error) {
	st := l.state[sym]
	span, cur, complete := l.src.ChangedSince(sym, st.version)
	liqVer := l.src.LiquidationVersion(sym)
	now := l.now()
	if st.engine != nil && cur == st.version && liqVer == st.liqVersion && !st.from.Before(now.Add(-l.cfg.Lookback-24*time.Hour)) {
		return false, nil
	}
	if l.cfg.OnCompute != nil {
		start := time.Now()
		defer func() { l.cfg.OnCompute(sym, time.Since(start)) }()
	}
	last, haveLast := heatmap.Candle{}, false
	if st.engine != nil {
		last, haveLast = st.engine.Last()
	}
	rebuild := st.engine == nil || !haveLast || !complete ||
		(!span.Min.IsZero() && span.Min.Before(last.OpenTime)) ||
		st.from.Before(now.Add(-l.cfg.Lookback-24*time.Hour))
	var from time.Time
	if rebuild {
		from = now.Add(-l.cfg.Lookback).Truncate(l.cfg.CandleStep)
	} else {
		from = last.OpenTime
	}
	candles, err := l.src.Candles(ctx, sym, l.cfg.CandleInterval, from, time.Time{})
	if err != nil {
		return false, err
	}
	if rebuild {
		p, ok := l.cfg.Params[sym]
		if !ok {
			return false, fmt.Errorf("compute %s: no heatmap parameters configured", sym)
		}
		eng, err := heatmap.NewEngine(p)
		if err != nil {
			return false, fmt.Errorf("compute %s: %w", sym, err)
		}
		st.engine, st.from = eng, from
	}
	for i, c := range candles {
		if !rebuild && i == 0 && c.OpenTime.Equal(last.OpenTime) {
			_, err = st.engine.ReviseNoLevels(c)
		} else {
			_, err = st.engine.ApplyNoLevels(c)
		}
		if err != nil {
			st.engine = nil // the next tick rebuilds from the store
			return false, fmt.Errorf("compute %s: %w", sym, err)
		}
	}
	st.version = cur
	c, ok := st.engine.Last()
	if !ok {
		return false, nil
	}
	if err := l.loadLiquidations(ctx, sym, st, c.OpenTime, liqVer); err != nil {
		return false, err
	}
	snap := l.snapshotData(st)
	data, err := protocol.EncodeSnapshotData(snap)
	if err != nil {
		return false, err
	}
	h := sha256.Sum256(data)
	if st.seq > 0 && h == st.hash {
		return false, nil
	}
	st.hash = h
	st.seq++
	f := Frame{Symbol: sym, Seq: st.seq, Produced: l.now()}
	f.Bytes = protocol.SnapshotFrameEpoch(sym, l.cfg.Epoch, f.Seq, f.Produced, data)
	if st.seq > 1 {
		// What changed since the last frame, for clients that keep their
		// state: typically a few levels of hundreds. Not worth sending when
		// it is no smaller (a new bin size moves every level).
		dd, err := protocol.EncodeDeltaData(protocol.Diff(st.published, snap))
		if err != nil {
			return false, err
		}
		if delta := protocol.DeltaFrame(sym, l.cfg.Epoch, f.Seq, f.Seq-1, f.Produced, dd); len(delta) < len(f.Bytes) {
			f.Delta = delta
		}
	}
	st.published = snap
	for _, p := range l.pubs {
		if err := p.Publish(ctx, f); err != nil {
			l.log.Error("publish failed", logging.KeySymbol, sym, "seq", f.Seq, logging.KeyErr, err)
		}
	}
	return true, nil
}

// snapshotData renders the engine's current state as a snapshot payload.
func (l *Loop) snapshotData(st *state) protocol.SnapshotData {
	p := st.engine.Params()
	st.levels = st.engine.AppendLevels(st.levels[:0])
	long, short := st.engine.Totals()
	levels := make([]protocol.Level, len(st.levels))
	for i, lv := range st.levels {
		levels[i] = protocol.Level{Price: lv.Price, LongDensity: lv.LongDensity, ShortDensity: lv.ShortDensity}
	}
	c, _ := st.engine.Last()
	return protocol.SnapshotData{
		Levels:            levels,
		CurrentPrice:      c.Close,
		PositionsCreated:  long.Created + short.Created,
		PositionsConsumed: long.Consumed + short.Consumed,
		TotalLongVolume:   long.Remaining,
		TotalShortVolume:  short.Remaining,
		BinSize:           p.BinSize,
		Model:             string(p.Model),
		Interval:          l.cfg.CandleInterval,
		WindowStart:       protocol.FormatTime(st.from),
		Candle: protocol.Candle{
			OpenTime: protocol.FormatTime(c.OpenTime), Open: c.Open, High: c.High,
			Low: c.Low, Close: c.Close, Volume: c.Volume,
		},
		Liquidations: st.liqs,
	}
}

// maxFrameLiquidations bounds the liquidations a frame carries: in a crash
// a candle can see thousands, and the frame must stay small. The largest by
// notional are kept (they are the ones drawn big on the page).
const maxFrameLiquidations = 200

// loadLiquidations reads the liquidations of the candle opening at open
// when they changed or the candle did.
func (l *Loop) loadLiquidations(ctx context.Context, sym string, st *state, open time.Time, version uint64) error {
	if version == st.liqVersion && open.Equal(st.liqCandle) {
		return nil
	}
	ls, err := l.src.Liquidations(ctx, store.LiquidationQuery{Symbol: sym, From: open, To: open.Add(l.cfg.CandleStep)})
	if err != nil {
		return fmt.Errorf("liquidations %s: %w", sym, err)
	}
	if len(ls) > maxFrameLiquidations {
		ls = slices.Clone(ls)
		slices.SortStableFunc(ls, func(a, b store.Liquidation) int { return cmp.Compare(b.Notional, a.Notional) })
		ls = ls[:maxFrameLiquidations]
		slices.SortStableFunc(ls, func(a, b store.Liquidation) int { return a.Time.Compare(b.Time) })
	}
	st.liqs = nil
	for _, x := range ls {
		st.liqs = append(st.liqs, protocol.Liquidation{Time: protocol.FormatTime(x.Time), Side: x.Side,
			Price: x.Price, Quantity: x.Quantity, Notional: x.Notional})
	}
	st.liqVersion, st.liqCandle = version, open
	return nil
}
