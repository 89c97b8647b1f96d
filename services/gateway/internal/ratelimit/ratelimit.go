// Package ratelimit bounds how many API requests one client address may
// make: a token bucket per address, so a page's burst of requests at load
// passes and a script hammering the history endpoint is turned away at the
// gateway, before it reaches the snapshotter that holds the data.
package ratelimit

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often buckets that have refilled are dropped, so the
// map holds the addresses of the last minutes, not of all time.
const sweepEvery = time.Minute

// Limiter holds a token bucket per key.
type Limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time

	// Refused counts requests answered 429.
	Refused atomic.Uint64
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter of perSecond requests per key with bursts of burst;
// now is the clock.
func New(perSecond float64, burst int, now func() time.Time) *Limiter {
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*bucket{}, lastSweep: now()}
}

// Allow takes a token of key's bucket; when there is none it says how long
// until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		// Not taken: a refused request must not push the next allowed one
		// further away, or a client retrying too early is locked out.
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops the buckets idle long enough to be full again: a new bucket
// for such a key is the same bucket. l.mu must be held.
func (l *Limiter) sweep(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// Len is how many addresses have a bucket.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Handler answers 429 with Retry-After to a key over its rate and passes the
// rest to next. key names the client of a request.
func (l *Limiter) Handler(key func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := key(r)
		ok, wait := l.Allow(k)
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		l.Refused.Add(1)
		secs := max(1, int(math.Ceil(wait.Seconds())))
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(
			"too many requests from %s: the API allows %g per second per client address (bursts of %d); retry after %d s", k, float64(l.rate), l.burst, secs)})
	})
}

// Config is the gateway's api.* keys.
type Config struct {
	RatePerAddress float64 `mapstructure:"rate_per_address" desc:"API requests per second one client address may make (history, inputs, snapshot polls); 0 turns the limit off"`
	Burst          int     `mapstructure:"burst" desc:"API requests one client address may make at once before rate_per_address applies"`
}

// DefaultConfig lets a page load (six requests) and a few setting changes
// through at once, and holds a script to 10 requests a second.
func DefaultConfig() Config { return Config{RatePerAddress: 10, Burst: 40} }

// Validate names the bad key.
func (c Config) Validate() error {
	if c.RatePerAddress != 0 && (c.RatePerAddress < 0.01 || c.RatePerAddress > 100000) {
		return fmt.Errorf("api.rate_per_address: must be 0 (off) or between 0.01 and 100000, got %g", c.RatePerAddress)
	}
	if c.Burst < 1 || c.Burst > 100000 {
		return fmt.Errorf("api.burst: must be between 1 and 100000, got %d", c.Burst)
	}
	return nil
}
