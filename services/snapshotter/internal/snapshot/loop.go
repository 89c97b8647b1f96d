// Package snapshot turns stored candles into published heatmap frames: every
// interval it recomputes the symbols whose data moved, skips content that did
// not change, encodes each frame once and hands it to the publishers.
package snapshot

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// Source is the part of the store the loop reads.
type Source interface {
	// Version moves whenever symbol's rows change.
	Version(symbol string) uint64
	Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error)
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
}

type state struct {
	version  uint64
	computed bool
	hash     [32]byte
	seq      uint64
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
			l.log.Error("snapshot failed", "symbol", sym, "err", err)
		}
	}
}

// update returns whether a new frame was published.
func (l *Loop) update(ctx context.Context, sym string) (bool, error) {
	st := l.state[sym]
	v := l.src.Version(sym)
	if st.computed && v == st.version {
		return false, nil
	}
	from := l.now().Add(-l.cfg.Lookback).Truncate(l.cfg.CandleStep)
	candles, err := l.src.Candles(ctx, sym, l.cfg.CandleInterval, from, time.Time{})
	if err != nil {
		return false, err
	}
	st.version, st.computed = v, true
	if len(candles) == 0 {
		return false, nil
	}
	data, err := l.compute(sym, from, candles)
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
	f.Bytes = protocol.SnapshotFrame(sym, f.Seq, f.Produced, data)
	for _, p := range l.pubs {
		if err := p.Publish(ctx, f); err != nil {
			l.log.Error("publish failed", "symbol", sym, "seq", f.Seq, "err", err)
		}
	}
	return true, nil
}

// compute replays the window and encodes the payload of its last snapshot.
func (l *Loop) compute(sym string, from time.Time, candles []heatmap.Candle) ([]byte, error) {
	p, ok := l.cfg.Params[sym]
	if !ok {
		return nil, fmt.Errorf("compute %s: no heatmap parameters configured", sym)
	}
	eng, err := heatmap.NewClassic(p)
	if err != nil {
		return nil, fmt.Errorf("compute %s: %w", sym, err)
	}
	var last heatmap.Snapshot
	for _, c := range candles {
		last = eng.Apply(c)
	}
	long, short := eng.Totals()
	levels := make([]protocol.Level, len(last.Levels))
	for i, lv := range last.Levels {
		levels[i] = protocol.Level{Price: lv.Price, LongDensity: lv.LongDensity, ShortDensity: lv.ShortDensity}
	}
	c := last.Candle
	return protocol.EncodeSnapshotData(protocol.SnapshotData{
		Levels:            levels,
		CurrentPrice:      last.CurrentPrice,
		PositionsCreated:  long.Created + short.Created,
		PositionsConsumed: long.Consumed + short.Consumed,
		TotalLongVolume:   last.TotalLongVolume,
		TotalShortVolume:  last.TotalShortVolume,
		BinSize:           p.BinSize,
		Model:             "classic",
		Interval:          l.cfg.CandleInterval,
		WindowStart:       protocol.FormatTime(from),
		Candle: protocol.Candle{
			OpenTime: protocol.FormatTime(c.OpenTime), Open: c.Open, High: c.High,
			Low: c.Low, Close: c.Close, Volume: c.Volume,
		},
	})
}
