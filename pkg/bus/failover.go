package bus

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// Failover feeds a gateway from Redis and falls back to long-polling the
// snapshotter over HTTP while Redis is unreachable, so a Redis outage costs
// latency, never availability. It switches back when the subscription is
// restored. Frames are passed on only if newer (by their producer
// timestamp) than the last one of their symbol, so the overlap of the two
// paths never sends a client a duplicate or an older frame.
type Failover struct {
	redis *RedisSource
	http  *HTTPSource
	log   *slog.Logger

	fallback atomic.Bool
	redisUp  atomic.Bool
	// Switches counts entries into fallback, for metrics.
	Switches atomic.Int64

	mu   sync.Mutex
	last map[string]time.Time
}

// NewFailover combines a Redis source with an HTTP fallback.
func NewFailover(r *RedisSource, h *HTTPSource, log *slog.Logger) *Failover {
	return &Failover{redis: r, http: h, log: log, last: map[string]time.Time{}}
}

// Fallback reports whether frames currently come over HTTP.
func (f *Failover) Fallback() bool { return f.fallback.Load() }

// RedisUp reports whether the Redis subscription is complete.
func (f *Failover) RedisUp() bool { return f.redisUp.Load() }

// Run delivers frames until ctx ends.
func (f *Failover) Run(ctx context.Context, symbols []string, deliver func(Frame)) error {
	pass := func(fr Frame) {
		if ts, ok := protocol.PeekTimestamp(fr.Bytes); ok {
			f.mu.Lock()
			if !ts.After(f.last[fr.Symbol]) {
				f.mu.Unlock()
				return
			}
			f.last[fr.Symbol] = ts
			f.mu.Unlock()
		}
		deliver(fr)
	}
	events := make(chan bool, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.redis.Run(ctx, symbols, pass, func(up bool) {
			select {
			case events <- up:
			case <-ctx.Done():
			}
		})
	}()

	var stopHTTP context.CancelFunc
	var httpDone chan struct{}
	startHTTP := func() {
		hctx, cancel := context.WithCancel(ctx)
		stopHTTP, httpDone = cancel, make(chan struct{})
		done := httpDone
		go func() {
			defer close(done)
			f.http.Run(hctx, symbols, pass)
		}()
		f.fallback.Store(true)
	}
	stop := func() {
		if stopHTTP != nil {
			stopHTTP()
			<-httpDone
			stopHTTP = nil
		}
		f.fallback.Store(false)
	}
	// Until Redis confirms the subscription, the snapshotter is the source.
	startHTTP()
	for {
		select {
		case <-ctx.Done():
			stop()
			wg.Wait()
			return nil
		case up := <-events:
			f.redisUp.Store(up)
			switch {
			case up && stopHTTP != nil:
				stop()
				f.log.Info("redis up: fallback off")
			case !up && stopHTTP == nil:
				f.Switches.Add(1)
				f.log.Warn("redis down: falling back to the snapshotter over HTTP")
				startHTTP()
			}
		}
	}
}
