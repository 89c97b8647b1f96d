package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// Channel is the pub/sub channel of symbol's frames.
func Channel(symbol string) string { return "heatmap:" + symbol }

// DeltaChannel carries symbol's delta frames, each published just before
// the full frame of the same seq on Channel: a subscriber of both pairs them
// up, and one of Channel alone (an older gateway) is unaffected.
func DeltaChannel(symbol string) string { return "heatmap:" + symbol + ":delta" }

// LatestKey holds symbol's newest frame, so a fresh gateway serves it at once.
func LatestKey(symbol string) string { return "heatmap:" + symbol + ":latest" }

// SymbolsKey holds the JSON list of symbols the snapshotter serves.
const SymbolsKey = "heatmap:symbols"

// NewRedisClient parses a redis:// URL into a client with short timeouts: a
// slow Redis must degrade to the fallback, not stall the caller.
func NewRedisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", url, err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.MaxRetries = 0 // the callers retry with their own backoff
	return redis.NewClient(opt), nil
}

// RedisPublisher sends the snapshotter's frames to Redis without ever
// blocking the compute loop: Publish only records the newest frame per
// symbol; Run writes them (SET latest + PUBLISH in one pipeline) and retries
// after failures with backoff.
type RedisPublisher struct {
	client  *redis.Client
	symbols []string
	log     *slog.Logger

	mu      sync.Mutex
	pending map[string]Frame
	wake    chan struct{}

	// Published and Failures count frames written and failed rounds, for metrics.
	Published atomic.Int64
	Failures  atomic.Int64
	up        atomic.Bool
}

// NewRedisPublisher returns a publisher for the given symbols.
func NewRedisPublisher(client *redis.Client, symbols []string, log *slog.Logger) *RedisPublisher {
	return &RedisPublisher{client: client, symbols: symbols, log: log, pending: map[string]Frame{}, wake: make(chan struct{}, 1)}
}

// Up reports whether the last write round succeeded.
func (p *RedisPublisher) Up() bool { return p.up.Load() }

// Publish records f as its symbol's next frame to write; an older frame not
// yet written is replaced, since subscribers only want the newest.
func (p *RedisPublisher) Publish(f Frame) {
	p.mu.Lock()
	p.pending[f.Symbol] = f
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run writes pending frames until ctx ends.
func (p *RedisPublisher) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	symbolsWritten := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-retry.C:
		}
		p.mu.Lock()
		batch := p.pending
		p.pending = map[string]Frame{}
		p.mu.Unlock()
		err := p.write(ctx, batch, !symbolsWritten)
		if err == nil {
			symbolsWritten = true
			if !p.up.Swap(true) {
				p.log.Info("redis publishing", "addr", p.client.Options().Addr)
			}
			delay = 100 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		p.Failures.Add(1)
		symbolsWritten = false
		if p.up.Swap(false) || p.Failures.Load() == 1 {
			p.log.Warn("redis publish failing; retrying", "err", err)
		}
		// Put the batch back unless a newer frame arrived meanwhile.
		p.mu.Lock()
		for sym, f := range batch {
			if _, newer := p.pending[sym]; !newer {
				p.pending[sym] = f
			}
		}
		p.mu.Unlock()
		retry.Reset(delay)
		delay = min(delay*2, 5*time.Second)
	}
}

func (p *RedisPublisher) write(ctx context.Context, batch map[string]Frame, withSymbols bool) error {
	if len(batch) == 0 && !withSymbols {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	pipe := p.client.Pipeline()
	if withSymbols {
		b, _ := json.Marshal(p.symbols)
		pipe.Set(ctx, SymbolsKey, b, 0)
	}
	for sym, f := range batch {
		// SET before PUBLISH: a gateway that (re)subscribes and reads
		// :latest in between gets this frame either way.
		pipe.Set(ctx, LatestKey(sym), f.Bytes, 0)
		if f.Delta != nil {
			// Before the frame: Redis delivers one connection's publishes
			// in order, so the subscriber holds the delta when its frame comes.
			pipe.Publish(ctx, DeltaChannel(sym), f.Delta)
		}
		pipe.Publish(ctx, Channel(sym), f.Bytes)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d frames to redis: %w", len(batch), err)
	}
	p.Published.Add(int64(len(batch)))
	return nil
}

// RedisSource subscribes a gateway to the frames of its symbols. On every
// (re)subscription it reads each symbol's :latest key, so a new or
// reconnected gateway never waits a whole interval nor keeps a stale frame.
type RedisSource struct {
	client *redis.Client
	log    *slog.Logger
	// Reconnects counts subscriptions after the first, for metrics.
	Reconnects atomic.Int64
	// Health is how long a silent subscription may go before it is pinged.
	Health time.Duration
}

// NewRedisSource returns a source over client.
func NewRedisSource(client *redis.Client, log *slog.Logger) *RedisSource {
	return &RedisSource{client: client, log: log, Health: 5 * time.Second}
}

// Symbols reads the symbol list the snapshotter published.
func (s *RedisSource) Symbols(ctx context.Context) ([]string, error) {
	b, err := s.client.Get(ctx, SymbolsKey).Bytes()
	if err != nil {
		return nil, fmt.Errorf("read %s from redis: %w", SymbolsKey, err)
	}
	var syms []string
	if err := json.Unmarshal(b, &syms); err != nil || len(syms) == 0 {
		return nil, fmt.Errorf("read %s from redis: not a list of symbols: %q", SymbolsKey, b)
	}
	return syms, nil
}

// Run delivers frames until ctx ends. up is called with true once every
// channel is subscribed and its latest frame read, and with false when the
// subscription breaks; go-redis reconnects and resubscribes by itself.
func (s *RedisSource) Run(ctx context.Context, symbols []string, deliver func(Frame), up func(bool)) error {
	channels := make([]string, 0, 2*len(symbols))
	bySym := make(map[string]string, len(symbols))
	deltaSym := make(map[string]string, len(symbols))
	for _, sym := range symbols {
		channels = append(channels, Channel(sym), DeltaChannel(sym))
		bySym[Channel(sym)] = sym
		deltaSym[DeltaChannel(sym)] = sym
	}
	// The delta waiting for its frame, per symbol.
	deltas := make(map[string][]byte, len(symbols))
	// ps is replaced after a half-open link (see below); psMu guards it
	// against the closer.
	var psMu sync.Mutex
	ps := s.client.Subscribe(ctx, channels...)
	defer func() { psMu.Lock(); ps.Close(); psMu.Unlock() }()
	// go-redis bounds its reads with deadlines, not the context, and one of
	// them (its push-notification peek) has none: closing the subscription
	// is what ends a read in progress, so a cancelled Run returns at once
	// and a gateway exits right after its drain.
	stop := context.AfterFunc(ctx, func() { psMu.Lock(); ps.Close(); psMu.Unlock() })
	defer stop()
	confirmed := map[string]bool{}
	isUp, everUp := false, false
	setUp := func(v bool) {
		if v != isUp {
			isUp = v
			up(v)
		}
	}
	delay := 100 * time.Millisecond
	// pinged is set while a ping sent on a silent subscription awaits its
	// pong. The ping's write succeeds even on a half-open link (the kernel
	// buffers it), so only the answer tells quiet from dead.
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.Health)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					// Quiet is fine (no frames yet); a ping tells quiet from dead.
					if perr := ps.Ping(ctx); perr == nil {
						pinged = true
						continue
					}
				} else {
					// No pong within a health interval: the link is half-open.
					// go-redis keeps a connection that only times out, so
					// subscribe afresh on a new one.
					err = fmt.Errorf("no answer to a ping within %s (half-open link?): %w", s.Health, err)
					psMu.Lock()
					ps.Close()
					ps = s.client.Subscribe(ctx, channels...)
					psMu.Unlock()
				}
			}
			pinged = false
			if isUp {
				s.log.Warn("redis subscription lost", "err", err)
			}
			setUp(false)
			clear(confirmed)
			clear(deltas)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(delay*2, 2*time.Second)
			continue
		}
		pinged = false // anything read, a pong included, shows the link alive
		delay = 100 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if sym, ok := bySym[m.Channel]; ok {
				if err := s.readLatest(ctx, sym, deliver); err != nil {
					s.log.Warn("redis read latest failed", "symbol", sym, "err", err)
				}
			} else if _, ok := deltaSym[m.Channel]; !ok {
				continue
			}
			confirmed[m.Channel] = true
			if len(confirmed) == len(channels) {
				if everUp {
					s.Reconnects.Add(1)
					s.log.Info("redis subscription restored")
				}
				everUp = true
				setUp(true)
			}
		case *redis.Message:
			if sym, ok := deltaSym[m.Channel]; ok {
				deltas[sym] = []byte(m.Payload)
				continue
			}
			if sym, ok := bySym[m.Channel]; ok {
				f := Frame{Symbol: sym, Bytes: []byte(m.Payload)}
				if d := deltas[sym]; d != nil && SameFrame(d, f.Bytes) {
					f.Delta = d
				}
				delete(deltas, sym)
				deliver(f)
			}
		case *redis.Pong:
		}
	}
}

func (s *RedisSource) readLatest(ctx context.Context, sym string, deliver func(Frame)) error {
	b, err := s.client.Get(ctx, LatestKey(sym)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil // the snapshotter has not published this symbol yet
	}
	if err != nil {
		return err
	}
	deliver(Frame{Symbol: sym, Bytes: b})
	return nil
}

// IsRedisURL reports whether s looks like a Redis URL, for config validation.
func IsRedisURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://") || strings.HasPrefix(s, "unix://")
}

// SameFrame reports whether a delta frame is the delta of full: the same
// epoch and seq, read from both envelopes.
func SameFrame(delta, full []byte) bool {
	de, ds, dok := protocol.PeekEpochSeq(delta)
	fe, fs, fok := protocol.PeekEpochSeq(full)
	return dok && fok && de == fe && ds == fs
}
