// Package simulator keeps a demo market moving: it fills gaps with whole
// candles and nudges the still-open candle and its open interest every few
// seconds, so the live heatmap changes without an exchange connection.
package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/demo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Writer is the part of the store the simulator needs.
type Writer interface {
	// LastKline returns the newest stored kline of symbol/interval and ok=false when there is none.
	LastKline(ctx context.Context, symbol, interval string) (store.Kline, bool, error)
	// Upsert inserts or replaces candles by (symbol, interval, open_time)
	// and open interest by (symbol, ts), all in one transaction: a crash
	// never leaves a candle without the open interest written with it.
	Upsert(ctx context.Context, ks []store.Kline, ois []store.OpenInterest) error
	// LastOpenInterest returns the newest stored observation of symbol and ok=false when there is none.
	LastOpenInterest(ctx context.Context, symbol string) (store.OpenInterest, bool, error)
}

// Clock is injected so tests control time.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of time.Ticker the simulator uses, so tests can fire ticks by hand.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock returns a Clock backed by the time package.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }

func (r realTicker) Stop() { r.t.Stop() }

// Config selects what to simulate; zero Interval and Tick mean 5m and 2s.
type Config struct {
	Symbols  []string
	Interval time.Duration
	Tick     time.Duration
	Seed     uint64
}

const (
	defaultInterval = 5 * time.Minute
	defaultTick     = 2 * time.Second
	// A month is what the heatmap can show; backfilling more would only slow startup after a long outage.
	maxBackfill = 30 * 24 * time.Hour
	// Salting the seed keeps the live walk from replaying the regime sequence
	// that demo.Generate used for seeded history with the same seed.
	liveSeedSalt = 0x9e3779b97f4a7c15
)

// Simulator appends and updates demo candles and open interest in a Writer.
type Simulator struct {
	cfg      Config
	interval string
	w        Writer
	clk      Clock
	log      *slog.Logger

	// mu serialises Steps so tests may call Step while Run is going.
	mu     sync.Mutex
	states map[string]*symbolState
}

type symbolState struct {
	walker   *demo.Walker
	lastTick time.Time
}

// New returns a Simulator; a nil logger discards logs.
func New(cfg Config, w Writer, clk Clock, log *slog.Logger) *Simulator {
	if cfg.Interval <= 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.Tick <= 0 {
		cfg.Tick = defaultTick
	}
	if clk == nil {
		clk = RealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Simulator{
		cfg:      cfg,
		interval: demo.IntervalName(cfg.Interval),
		w:        w,
		clk:      clk,
		log:      log,
		states:   make(map[string]*symbolState),
	}
}

// Run steps once at start and then on every tick until ctx is cancelled; store errors are logged, never fatal.
func (s *Simulator) Run(ctx context.Context) error {
	t := s.clk.NewTicker(s.cfg.Tick)
	defer t.Stop()
	s.runStep(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			s.runStep(ctx)
		}
	}
}

func (s *Simulator) runStep(ctx context.Context) {
	// A store that is briefly unavailable must not stop the demo: the next tick retries.
	if err := s.Step(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("simulator step failed", logging.KeyErr, err)
	}
}

// Step backfills missing closed candles and moves the open candle and OI of every symbol once.
func (s *Simulator) Step(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now().UTC()
	var errs []error
	for _, sym := range s.cfg.Symbols {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		// One symbol's failure should not freeze the others.
		if err := s.stepSymbol(ctx, sym, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Simulator) stepSymbol(ctx context.Context, sym string, now time.Time) error {
	iv := s.cfg.Interval
	open := now.Truncate(iv)

	last, ok, err := s.w.LastKline(ctx, sym, s.interval)
	if err != nil {
		return fmt.Errorf("simulator %s: last kline: %w", sym, err)
	}
	if ok && last.OpenTime.After(open) {
		// Someone wrote a candle from our future (clock skew); overwriting around it would break continuity.
		s.log.Warn("simulator: stored candle is ahead of the clock; skipping", logging.KeySymbol, sym, "open_time", last.OpenTime, "now", now)
		return nil
	}

	st := s.states[sym]
	if st == nil {
		st = &symbolState{walker: demo.NewWalker(sym, s.cfg.Seed^liveSeedSalt)}
		s.states[sym] = st
		if !ok {
			s.log.Info("simulator: no stored candles; starting a fresh series", logging.KeySymbol, sym, "interval", s.interval)
		}
	}
	// The store is the source of truth for continuity: it survives restarts,
	// may have been seeded by someone else, and a failed upsert leaves the walker ahead of it.
	if ok && st.walker.Price() != last.Close {
		st.walker.Resume(last.Close)
	}
	lastOI, okOI, err := s.w.LastOpenInterest(ctx, sym)
	if err != nil {
		return fmt.Errorf("simulator %s: last open interest: %w", sym, err)
	}
	if okOI && st.walker.OIValue() != lastOI.OpenInterestValue {
		st.walker.ResumeOI(lastOI.OpenInterestValue)
	}

	var cur store.Kline
	switch {
	case ok && last.OpenTime.Equal(open):
		cur = last
	default:
		if ok {
			if err := s.backfill(ctx, sym, st.walker, last.OpenTime, open); err != nil {
				return err
			}
		}
		p := st.walker.Price()
		cur = store.Kline{Symbol: sym, Interval: s.interval, OpenTime: open, Open: p, High: p, Low: p, Close: p}
	}

	// Scale the move by the real time since the previous tick so price speed
	// does not depend on the tick rate, but never by time before this candle opened.
	dt := s.cfg.Tick
	if !st.lastTick.IsZero() && now.After(st.lastTick) {
		dt = now.Sub(st.lastTick)
	}
	dt = min(dt, now.Sub(open))
	st.lastTick = now

	mv := st.walker.Advance(dt)
	cur.Close = mv.Price
	cur.High = math.Max(cur.High, mv.Price)
	cur.Low = math.Min(cur.Low, mv.Price)
	cur.Volume += mv.Volume

	oi := store.OpenInterest{Symbol: sym, TS: open, OpenInterest: mv.OIValue / mv.Price, OpenInterestValue: mv.OIValue}
	if err := s.w.Upsert(ctx, []store.Kline{cur}, []store.OpenInterest{oi}); err != nil {
		return fmt.Errorf("simulator %s: upsert candle and open interest: %w", sym, err)
	}
	return nil
}

// backfill writes every whole candle between lastOpen and open (exclusive), continuing from the walker's price.
func (s *Simulator) backfill(ctx context.Context, sym string, wk *demo.Walker, lastOpen, open time.Time) error {
	iv := s.cfg.Interval
	from := lastOpen.Truncate(iv).Add(iv)
	if !from.Before(open) {
		return nil
	}
	if limit := open.Add(-maxBackfill); from.Before(limit) {
		s.log.Warn("simulator: gap longer than the backfill cap; continuing the last close from the cap",
			logging.KeySymbol, sym, "last_open", lastOpen, "from", limit, "cap", maxBackfill.String())
		from = limit
	}
	n := int(open.Sub(from) / iv)
	ks := make([]store.Kline, 0, n)
	ois := make([]store.OpenInterest, 0, n)
	for t := from; t.Before(open); t = t.Add(iv) {
		k, oi := wk.Next(t, iv)
		ks = append(ks, k)
		ois = append(ois, oi)
	}
	if err := s.w.Upsert(ctx, ks, ois); err != nil {
		return fmt.Errorf("simulator %s: backfill %d candles and open interest: %w", sym, len(ks), err)
	}
	s.log.Info("simulator: backfilled missing candles", logging.KeySymbol, sym, "candles", len(ks), "from", from, "to", open.Add(-iv))
	return nil
}
