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

// Ordered passes a frame on only if it is newer than the last one passed for
// its symbol, so sources that overlap (Redis and the HTTP fallback, or a
// source restarted for a new symbol list) never hand on a duplicate or an
// older frame. Newer is by (epoch, seq) when both frames carry the
// producer's epoch: a snapshotter that restarts raises its epoch, so its
// frames follow the old run's whatever the two machines' clocks say. Frames
// without an epoch fall back to the producer timestamp. Safe for concurrent use.
type Ordered struct {
	mu   sync.Mutex
	last map[string]position
}

// position is where a symbol's stream stands.
type position struct {
	ts         time.Time
	epoch, seq uint64 // epoch 0: the frame carried none
}

// after reports whether p comes after q.
func (p position) after(q position) bool {
	if p.epoch > 0 && q.epoch > 0 {
		return p.epoch > q.epoch || (p.epoch == q.epoch && p.seq > q.seq)
	}
	return p.ts.After(q.ts)
}

// NewOrdered returns an empty Ordered.
func NewOrdered() *Ordered { return &Ordered{last: map[string]position{}} }

// Pass calls deliver with fr if fr is newer than every frame of its symbol
// passed before. The check and the delivery happen under one lock: checked
// apart, a newer frame could overtake an older one between them.
func (o *Ordered) Pass(fr Frame, deliver func(Frame)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ts, ok := protocol.PeekTimestamp(fr.Bytes); ok {
		p := position{ts: ts}
		p.epoch, p.seq, _ = protocol.PeekEpochSeq(fr.Bytes)
		if last, seen := o.last[fr.Symbol]; seen && !p.after(last) {
			return
		}
		o.last[fr.Symbol] = p
	}
	deliver(fr)
}

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
