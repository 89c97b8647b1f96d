package wsload

import (
	"math"
	"slices"
	"sync"
	"time"
)

// samples keeps latencies in microseconds, sharded by client so the read
// loops rarely meet on a lock.
type samples struct {
	shards [64]struct {
		mu sync.Mutex
		us []int64
	}
}

func (s *samples) add(idx int, d time.Duration) {
	sh := &s.shards[idx%len(s.shards)]
	sh.mu.Lock()
	sh.us = append(sh.us, d.Microseconds())
	sh.mu.Unlock()
}

func (s *samples) reset() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.us = sh.us[:0]
		sh.mu.Unlock()
	}
}

func (s *samples) percentiles() Percentiles {
	var all []int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		all = append(all, sh.us...)
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
