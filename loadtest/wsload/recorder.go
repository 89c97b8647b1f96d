package wsload

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// recorder keeps every latency sample of a window, sharded by client so the
// read loops rarely meet on a lock.
type recorder struct {
	recording atomic.Bool
	shards    [64]struct {
		mu   sync.Mutex
		fast []int64 // microseconds
		slow []int64
	}
	slowClass *class
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) add(c *class, idx int, d time.Duration) {
	if !r.recording.Load() {
		return
	}
	sh := &r.shards[idx%len(r.shards)]
	sh.mu.Lock()
	if c == r.slowClass {
		sh.slow = append(sh.slow, d.Microseconds())
	} else {
		sh.fast = append(sh.fast, d.Microseconds())
	}
	sh.mu.Unlock()
}

func (r *recorder) reset() {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sh.fast, sh.slow = sh.fast[:0], sh.slow[:0]
		sh.mu.Unlock()
	}
}

// percentiles of one class's samples.
func (r *recorder) percentiles(c *class) Percentiles {
	var all []int64
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		if c == r.slowClass {
			all = append(all, sh.slow...)
		} else {
			all = append(all, sh.fast...)
		}
		sh.mu.Unlock()
	}
	return percentiles(all)
}

// Percentiles of a sample set, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// percentiles sorts us (microseconds) in place: nearest rank, ms with 0.1 precision.
func percentiles(us []int64) Percentiles {
	if len(us) == 0 {
		return Percentiles{}
	}
	slices.Sort(us)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(us)))) - 1
		return math.Round(float64(us[max(0, min(len(us)-1, i))])/100) / 10
	}
	return Percentiles{Count: len(us), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: at(1)}
}
