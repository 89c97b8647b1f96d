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

	order *Ordered
}

// Ordered passes a frame on only if its producer timestamp is newer than the
// last one passed for its symbol, so sources that overlap (Redis and the HTTP
// fallback, or a source restarted for a new symbol list) never hand on a
// duplicate or an older frame. Safe for concurrent use.
type Ordered struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// NewOrdered returns an empty Ordered.
func NewOrdered() *Ordered { return &Ordered{last: map[string]time.Time{}} }

// Pass calls deliver with fr if fr is newer than every frame of its symbol
// passed before. The check and the delivery happen under one lock: checked
// apart, a newer frame could overtake an older one between them.
func (o *Ordered) Pass(fr Frame, deliver func(Frame)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ts, ok := protocol.PeekTimestamp(fr.Bytes); ok {
		if !ts.After(o.last[fr.Symbol]) {
			return
		}
		o.last[fr.Symbol] = ts
	}
	deliver(fr)
}

// NewFailover combines a Redis source with an HTTP fallback.
func NewFailover(r *RedisSource, h *HTTPSource, log *slog.Logger) *Failover {
	return &Failover{redis: r, http: h, log: log, order: NewOrdered()}
}

// Fallback reports whether frames currently come over HTTP.
func (f *Failover) Fallback() bool { return f.fallback.Load() }

// RedisUp reports whether the Redis subscription is complete.
func (f *Failover) RedisUp() bool { return f.redisUp.Load() }

// Run delivers frames until ctx ends.
func (f *Failover) Run(ctx context.Context, symbols []string, deliver func(Frame)) error {
	pass := func(fr Frame) { f.order.Pass(fr, deliver) }
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
