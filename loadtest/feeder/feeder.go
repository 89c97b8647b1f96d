// Package feeder stands in for the snapshotter under load: it publishes a
// spec-shaped snapshot frame of each symbol every interval, stamped at the
// moment it is handed over, both ways a gateway can read them — Redis
// (SET :latest + PUBLISH in one pipeline, as bus.RedisPublisher writes) and
// the snapshotter's HTTP long-poll API (/v1/symbols, /v1/snapshots/{symbol}
// with If-None-Match and ?wait=, /readyz), which is the embedded default.
package feeder

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// Feeder produces the frames.
type Feeder struct {
	symbols    []string
	interval   time.Duration
	frameBytes int
	redis      *redis.Client // nil: HTTP only
	rng        *rand.Rand
	levels     map[string]int
	prices     map[string]float64

	mu      sync.Mutex
	seq     uint64
	latest  map[string][]byte
	changed chan struct{} // closed and replaced on every round

	ticks, late, maxLate atomic.Int64
	redisErrors          atomic.Int64
}

// New returns a feeder of symbols, frames of about frameBytes every
// interval; rc may be nil to serve only the HTTP API.
func New(symbols []string, interval time.Duration, frameBytes int, rc *redis.Client) (*Feeder, error) {
	if len(symbols) == 0 || interval <= 0 || frameBytes < 200 {
		return nil, fmt.Errorf("feeder: want symbols, an interval > 0 and frames of at least 200 bytes (got %v, %s, %d)", symbols, interval, frameBytes)
	}
	f := &Feeder{symbols: symbols, interval: interval, frameBytes: frameBytes, redis: rc,
		rng: rand.New(rand.NewPCG(1, 2)), levels: map[string]int{}, prices: map[string]float64{},
		latest: map[string][]byte{}, changed: make(chan struct{})}
	for i, s := range symbols {
		f.prices[s] = map[string]float64{"BTCUSDT": 67012.5, "ETHUSDT": 3456.78}[s]
		if f.prices[s] == 0 {
			f.prices[s] = 100 * float64(i+1)
		}
		f.levels[s] = f.sizeLevels(s)
	}
	return f, nil
}

// data is a spec-shaped snapshot payload around price with n levels.
func (f *Feeder) data(price float64, n int) []byte {
	now := time.Now()
	d := protocol.SnapshotData{CurrentPrice: price, BinSize: price / 2000, Model: "classic", Interval: "5m",
		PositionsCreated: 1200 + f.rng.IntN(100), PositionsConsumed: 300 + f.rng.IntN(50),
		WindowStart: protocol.FormatTime(now.Add(-7 * 24 * time.Hour)),
		Candle: protocol.Candle{OpenTime: protocol.FormatTime(now.Truncate(5 * time.Minute)), Open: price,
			High: price * 1.001, Low: price * 0.999, Close: price, Volume: 1234.5}}
	for i := range n {
		p := price * (1 + float64(i-n/2)*0.0005)
		l := protocol.Level{Price: math.Round(p*100) / 100, LongDensity: f.rng.Float64() * 1e6, ShortDensity: f.rng.Float64() * 1e6}
		d.TotalLongVolume += l.LongDensity
		d.TotalShortVolume += l.ShortDensity
		d.Levels = append(d.Levels, l)
	}
	b, _ := protocol.EncodeSnapshotData(d)
	return b
}

// sizeLevels finds the level count whose frame comes out near frameBytes.
func (f *Feeder) sizeLevels(sym string) int {
	p := f.prices[sym]
	perLevel := float64(len(f.data(p, 200))-len(f.data(p, 100))) / 100
	n := 200
	for range 3 {
		fr := protocol.SnapshotFrame(sym, 1, time.Now(), f.data(p, n))
		n = max(1, n+int(float64(f.frameBytes-len(fr))/perLevel))
	}
	return n
}

// Sizes describes one round's frames, e.g. "BTCUSDT 18,001 bytes (201 levels)".
func (f *Feeder) Sizes() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.symbols {
		out = append(out, fmt.Sprintf("%s %d bytes (%d levels)", s, len(f.latest[s]), f.levels[s]))
	}
	return strings.Join(out, ", ")
}

// round publishes one frame of every symbol.
func (f *Feeder) round(ctx context.Context) error {
	payloads := make(map[string][]byte, len(f.symbols))
	for _, s := range f.symbols {
		payloads[s] = f.data(f.prices[s], f.levels[s])
	}
	f.mu.Lock()
	f.seq++
	seq := f.seq
	frames := make(map[string][]byte, len(f.symbols))
	now := time.Now()
	for _, s := range f.symbols {
		frames[s] = protocol.SnapshotFrame(s, seq, now, payloads[s])
		f.latest[s] = frames[s]
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if f.redis == nil {
		return nil
	}
	pipe := f.redis.Pipeline()
	if seq == 1 {
		syms, _ := json.Marshal(f.symbols)
		pipe.Set(ctx, bus.SymbolsKey, syms, 0)
	}
	for _, s := range f.symbols {
		pipe.Set(ctx, bus.LatestKey(s), frames[s], 0)
		pipe.Publish(ctx, bus.Channel(s), frames[s])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		f.redisErrors.Add(1)
		return fmt.Errorf("publish round %d to redis: %w", seq, err)
	}
	return nil
}

// Start publishes the first round, so readers find frames at once, and then
// one every interval until ctx ends. Only the first round's error is returned.
func (f *Feeder) Start(ctx context.Context) error {
	if err := f.round(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(f.interval)
		defer t.Stop()
		start := time.Now()
		for k := int64(1); ; k++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// How late this round is stamped against the schedule: gateways
			// pace on stamps, so a late one shows as latency downstream.
			late := time.Since(start.Add(time.Duration(k) * f.interval))
			f.ticks.Add(1)
			if late > f.interval/10 {
				f.late.Add(1)
			}
			for m := f.maxLate.Load(); int64(late) > m && !f.maxLate.CompareAndSwap(m, int64(late)); m = f.maxLate.Load() {
			}
			_ = f.round(ctx) // counted in redisErrors; the next round tries again
		}
	}()
	return nil
}

// Punctuality is how late the feeder stamped its rounds.
type Punctuality struct {
	Ticks       int64   `json:"ticks"`
	LateTicks   int64   `json:"late_ticks"` // more than a tenth of the interval late
	MaxLateMs   float64 `json:"max_late_ms"`
	RedisErrors int64   `json:"redis_errors"`
}

// Punctuality so far.
func (f *Feeder) Punctuality() Punctuality {
	return Punctuality{Ticks: f.ticks.Load(), LateTicks: f.late.Load(),
		MaxLateMs: math.Round(float64(f.maxLate.Load())/1e5) / 10, RedisErrors: f.redisErrors.Load()}
}

// maxWait bounds a long poll, as the snapshotter does.
const maxWait = 30 * time.Second

// ServeHTTP is the snapshotter's read API for gateways.
func (f *Feeder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/readyz" || r.URL.Path == "/healthz":
		w.Write([]byte(`{"status":"ready"}`))
	case r.URL.Path == "/v1/symbols":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]string{"symbols": f.symbols})
	case strings.HasPrefix(r.URL.Path, "/v1/snapshots/"):
		f.snapshot(w, r, strings.ToUpper(strings.TrimPrefix(r.URL.Path, "/v1/snapshots/")))
	default:
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}
}

func etag(seq uint64) string { return `"feeder-` + strconv.FormatUint(seq, 10) + `"` }

// snapshot answers with the newest frame, holding the request while its
// ETag equals If-None-Match, up to ?wait.
func (f *Feeder) snapshot(w http.ResponseWriter, r *http.Request, sym string) {
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || wait > maxWait {
		wait = 0
	}
	timeout := time.After(wait)
	for {
		f.mu.Lock()
		b, ok := f.latest[sym]
		tag, changed := etag(f.seq), f.changed
		f.mu.Unlock()
		if !ok {
			http.Error(w, fmt.Sprintf(`{"error":"unknown symbol %q"}`, sym), http.StatusNotFound)
			return
		}
		if tag != r.Header.Get("If-None-Match") {
			w.Header().Set("ETag", tag)
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
		select {
		case <-changed:
		case <-timeout:
			w.Header().Set("ETag", tag)
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}
