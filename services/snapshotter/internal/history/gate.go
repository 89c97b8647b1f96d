package history

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Admission limits when Defaults leave them zero.
const (
	// DefaultWorkers is how many history computations run at once. One
	// leaves the second core of a small machine to the live snapshot loop,
	// which must never wait behind a replay of someone's week of candles.
	DefaultWorkers = 1
	// DefaultQueue is how many distinct computations may wait for a worker;
	// past it a request is refused at once instead of holding memory and a
	// connection for minutes.
	DefaultQueue = 8
)

// BusyError is a refused computation: every worker is busy and the queue is
// full. It is the server's overload, not the caller's fault: 503 with
// Retry-After.
type BusyError struct {
	Running, Queued int
	RetryAfter      time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("history is busy: %d computations running and %d queued, the most history.workers and history.queue allow; retry after %s",
		e.Running, e.Queued, e.RetryAfter)
}

// RetryAfterSeconds is the Retry-After header's value: whole seconds, at least 1.
func (e *BusyError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// gate admits computations: at most workers run, at most queue wait, the
// rest are refused with a BusyError.
type gate struct {
	slots chan struct{}
	queue int

	mu       sync.Mutex
	admitted int           // running + waiting
	mean     time.Duration // moving average of a computation's run time
	refused  atomic.Uint64
	now      func() time.Time
}

func newGate(workers, queue int, now func() time.Time) *gate {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	if queue <= 0 {
		queue = DefaultQueue
	}
	// Until one has run, guess a second: long enough that a refused client
	// does not come straight back into the same queue.
	return &gate{slots: make(chan struct{}, workers), queue: queue, mean: time.Second, now: now}
}

// enter waits for a worker; release must be called when the computation
// ends. ctx bounds the wait.
func (g *gate) enter(ctx context.Context) (release func(), err error) {
	g.mu.Lock()
	if g.admitted >= cap(g.slots)+g.queue {
		running := len(g.slots)
		e := &BusyError{Running: running, Queued: g.admitted - running, RetryAfter: g.retryAfter()}
		g.mu.Unlock()
		g.refused.Add(1)
		return nil, e
	}
	g.admitted++
	g.mu.Unlock()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		g.mu.Lock()
		g.admitted--
		g.mu.Unlock()
		return nil, fmt.Errorf("waiting for a history worker: %w", ctx.Err())
	}
	began := g.now()
	return func() {
		took := g.now().Sub(began)
		<-g.slots
		g.mu.Lock()
		g.admitted--
		// A quarter of each new sample: follows a change of load within a
		// few computations without jumping on one outlier.
		g.mean += (took - g.mean) / 4
		g.mu.Unlock()
	}, nil
}

// retryAfter is how long until the queue has drained a place: everything
// admitted, spread over the workers, at the mean run time; between 1 s and
// a minute. g.mu must be held.
func (g *gate) retryAfter() time.Duration {
	rounds := (g.admitted + cap(g.slots) - 1) / cap(g.slots)
	d := time.Duration(rounds) * g.mean
	return min(max(d, time.Second), time.Minute)
}

// GateStats is the admission state, for metrics.
type GateStats struct {
	Running, Queued int
	Refused         uint64
}

func (g *gate) stats() GateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	running := len(g.slots)
	return GateStats{Running: running, Queued: max(0, g.admitted-running), Refused: g.refused.Load()}
}
