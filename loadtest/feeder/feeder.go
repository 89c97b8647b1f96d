// Package feeder stands in for the snapshotter under load: it publishes a
// spec-shaped snapshot frame of each symbol every interval, stamped at the
// moment it is handed over, both ways a gateway can read them — Redis
// (SET :latest + PUBLISH in one pipeline, as bus.RedisPublisher writes) and
// the snapshotter's HTTP long-poll API (/v1/symbols, /v1/snapshots/{symbol}
// with If-None-Match, ?wait= and ?delta=1, /readyz), which is the embedded
// default.
//
// As the snapshotter does, every frame carries an epoch and comes with the
// delta frame from the round before (published on bus.DeltaChannel just
// before the frame, and in the long poll's ?delta=1 answer) whenever that
// delta is smaller than the frame. Frames evolve as the snapshotter's do:
// each round a handful of levels change, now and then one appears or
// vanishes, and the scalars and the candle move (see evolve). With
// Options.Regenerate every level is drawn afresh each round instead (the
// feeder before deltas); its deltas are no smaller than its frames, so none
// is published.
package feeder

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// Options change how a feeder's frames are made.
type Options struct {
	// Epoch is carried by every frame (protocol.SnapshotFrameEpoch), as a
	// snapshotter's store raises it at every start; 0 takes the unix second
	// the feeder was made.
	Epoch uint64
	// Regenerate draws every level's densities afresh each round, the
	// feeder's behaviour before deltas: every level changes, so the delta is
	// no smaller than the frame and, as the snapshotter does, none is sent.
	Regenerate bool
}

// Feeder produces the frames.
type Feeder struct {
	symbols    []string
	interval   time.Duration
	frameBytes int
	opts       Options
	redis      *redis.Client // nil: HTTP only
	rng        *rand.Rand
	levels     map[string]int     // the level count sized to frameBytes
	prices     map[string]float64 // each symbol's starting price: the level grid's origin
	state      map[string]*book   // the newest payload of each symbol; touched only by round

	mu      sync.Mutex
	seq     uint64
	latest  map[string][]byte
	deltas  map[string][]byte // the delta frame to latest from the frame before; nil: none
	counts  map[string]int    // levels in latest
	dstats  map[string]*sizeStats
	changed chan struct{} // closed and replaced on every round

	ticks       []tickRecord // one per round after the first
	redisErrors atomic.Int64
}

// book is a symbol's evolving snapshot.
type book struct {
	data protocol.SnapshotData
	// grid[i] is the grid index of data.Levels[i]: a level's price is
	// fixed by its index, so a level that vanishes and comes back has the
	// same price, as the snapshotter's bins do.
	grid []int
}

// sizeStats sums the sizes of one symbol's delta frames.
type sizeStats struct{ n, sum, min, max int }

// New returns a feeder of symbols, frames of about frameBytes every
// interval; rc may be nil to serve only the HTTP API.
func New(symbols []string, interval time.Duration, frameBytes int, rc *redis.Client) (*Feeder, error) {
	return NewWithOptions(symbols, interval, frameBytes, rc, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(symbols []string, interval time.Duration, frameBytes int, rc *redis.Client, o Options) (*Feeder, error) {
	if len(symbols) == 0 || interval <= 0 || frameBytes < 200 {
		return nil, fmt.Errorf("feeder: want symbols, an interval > 0 and frames of at least 200 bytes (got %v, %s, %d)", symbols, interval, frameBytes)
	}
	if o.Epoch == 0 {
		o.Epoch = uint64(time.Now().Unix())
	}
	f := &Feeder{symbols: symbols, interval: interval, frameBytes: frameBytes, opts: o, redis: rc,
		rng: rand.New(rand.NewPCG(1, 2)), levels: map[string]int{}, prices: map[string]float64{}, state: map[string]*book{},
		latest: map[string][]byte{}, deltas: map[string][]byte{}, counts: map[string]int{}, dstats: map[string]*sizeStats{}, changed: make(chan struct{})}
	for i, s := range symbols {
		f.prices[s] = map[string]float64{"BTCUSDT": 67012.5, "ETHUSDT": 3456.78}[s]
		if f.prices[s] == 0 {
			f.prices[s] = 100 * float64(i+1)
		}
		f.levels[s] = f.sizeLevels(s)
		f.dstats[s] = &sizeStats{}
	}
	return f, nil
}

// Epoch is the epoch every frame carries.
func (f *Feeder) Epoch() uint64 { return f.opts.Epoch }

// gridStep is the distance between two levels, relative to the start price.
const gridStep = 0.0005

// levelPrice is the price of grid index i around price: the same index
// always gives the same price.
func levelPrice(price float64, i int) float64 {
	return math.Round(price*(1+float64(i)*gridStep)*100) / 100
}

// fresh is a spec-shaped snapshot around price with n levels, every
// density drawn at random.
func (f *Feeder) fresh(price float64, n int) *book {
	now := time.Now()
	b := &book{data: protocol.SnapshotData{CurrentPrice: price, BinSize: price / 2000, Model: "classic", Interval: "5m",
		PositionsCreated: 1200 + f.rng.IntN(100), PositionsConsumed: 300 + f.rng.IntN(50),
		WindowStart: protocol.FormatTime(now.Add(-7 * 24 * time.Hour)),
		Candle: protocol.Candle{OpenTime: protocol.FormatTime(now.Truncate(5 * time.Minute)), Open: price,
			High: price * 1.001, Low: price * 0.999, Close: price, Volume: 1234.5}}}
	for i := range n {
		l := protocol.Level{Price: levelPrice(price, i-n/2), LongDensity: f.rng.Float64() * 1e6, ShortDensity: f.rng.Float64() * 1e6}
		b.data.Levels = append(b.data.Levels, l)
		b.grid = append(b.grid, i-n/2)
	}
	b.totals()
	return b
}

func (b *book) totals() {
	b.data.TotalLongVolume, b.data.TotalShortVolume = 0, 0
	for _, l := range b.data.Levels {
		b.data.TotalLongVolume += l.LongDensity
		b.data.TotalShortVolume += l.ShortDensity
	}
}

// data is fresh's payload, encoded.
func (f *Feeder) data(price float64, n int) []byte {
	b, _ := protocol.EncodeSnapshotData(f.fresh(price, n).data)
	return b
}

// sizeLevels finds the level count whose frame comes out near frameBytes.
func (f *Feeder) sizeLevels(sym string) int {
	p := f.prices[sym]
	perLevel := float64(len(f.data(p, 200))-len(f.data(p, 100))) / 100
	n := 200
	for range 3 {
		fr := protocol.SnapshotFrameEpoch(sym, f.opts.Epoch, 1, time.Now(), f.data(p, n))
		n = max(1, n+int(float64(f.frameBytes-len(fr))/perLevel))
	}
	return n
}

// evolve moves b on by one round the way the snapshotter's frames move
// between two candles (issue 16 measured 5–10 of ~430 levels changing per
// frame on make run): 5 to 10 levels get new densities, one time in five a
// level appears or vanishes (keeping the count within 5 of n), the price
// walks a little, and the counters, totals and candle follow. The bin size
// stays, as it does until the price range moves. b's slices are replaced,
// never changed in place: the previous payload stays valid for Diff.
func (f *Feeder) evolve(b *book, origin float64, n int, now time.Time) {
	d := &b.data
	levels := slices.Clone(d.Levels)
	grid := slices.Clone(b.grid)
	for range 5 + f.rng.IntN(6) {
		i := f.rng.IntN(len(levels))
		levels[i].LongDensity *= 0.7 + 0.6*f.rng.Float64()
		levels[i].ShortDensity *= 0.7 + 0.6*f.rng.Float64()
	}
	if f.rng.IntN(5) == 0 {
		grow := f.rng.IntN(2) == 0
		if len(levels) <= n-5 {
			grow = true
		} else if len(levels) >= n+5 {
			grow = false
		}
		if grow {
			// A new level just outside the range or in a hole within it.
			free := []int{grid[0] - 1, grid[len(grid)-1] + 1}
			for i := 1; i < len(grid); i++ {
				for k := grid[i-1] + 1; k < grid[i]; k++ {
					free = append(free, k)
				}
			}
			k := free[f.rng.IntN(len(free))]
			i, _ := slices.BinarySearch(grid, k)
			grid = slices.Insert(grid, i, k)
			levels = slices.Insert(levels, i, protocol.Level{Price: levelPrice(origin, k), LongDensity: f.rng.Float64() * 1e6, ShortDensity: f.rng.Float64() * 1e6})
		} else if len(levels) > 1 {
			i := f.rng.IntN(len(levels))
			grid = slices.Delete(grid, i, i+1)
			levels = slices.Delete(levels, i, i+1)
		}
	}
	d.Levels, b.grid = levels, grid
	b.totals()
	price := math.Round(d.CurrentPrice*(1+(f.rng.Float64()-0.5)*0.0004)*100) / 100
	d.CurrentPrice = price
	d.PositionsCreated += f.rng.IntN(6)
	d.PositionsConsumed += f.rng.IntN(3)
	d.WindowStart = protocol.FormatTime(now.Add(-7 * 24 * time.Hour).Truncate(5 * time.Minute))
	c := &d.Candle
	if open := protocol.FormatTime(now.Truncate(5 * time.Minute)); open != c.OpenTime {
		*c = protocol.Candle{OpenTime: open, Open: price, High: price, Low: price, Close: price}
	}
	c.High, c.Low, c.Close = max(c.High, price), min(c.Low, price), price
	c.Volume = math.Round((c.Volume+f.rng.Float64()*20)*1000) / 1000
}

// next is symbol s's payload for this round.
func (f *Feeder) next(s string, now time.Time) *book {
	prev := f.state[s]
	if prev == nil || f.opts.Regenerate {
		return f.fresh(f.prices[s], f.levels[s])
	}
	b := &book{data: prev.data, grid: prev.grid}
	f.evolve(b, f.prices[s], f.levels[s], now)
	return b
}

// Sizes describes the frames, e.g. "BTCUSDT 18001 bytes (201 levels) with
// deltas of 1102 bytes (mean of 30; 905–1310)".
func (f *Feeder) Sizes() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.symbols {
		line := fmt.Sprintf("%s %d bytes (%d levels)", s, len(f.latest[s]), f.counts[s])
		if st := f.dstats[s]; st.n > 0 {
			line += fmt.Sprintf(" with deltas of %d bytes (mean of %d; %d–%d)", st.sum/st.n, st.n, st.min, st.max)
		}
		out = append(out, line)
	}
	return strings.Join(out, ", ")
}

// round publishes one frame of every symbol, with its delta.
func (f *Feeder) round(ctx context.Context) error {
	type out struct {
		prev  *book
		next  *book
		data  []byte
		delta []byte // encoded delta data; nil: none
	}
	outs := make(map[string]*out, len(f.symbols))
	now := time.Now()
	for _, s := range f.symbols {
		o := &out{prev: f.state[s], next: f.next(s, now)}
		o.data, _ = protocol.EncodeSnapshotData(o.next.data)
		if o.prev != nil {
			o.delta, _ = protocol.EncodeDeltaData(protocol.Diff(o.prev.data, o.next.data))
		}
		f.state[s] = o.next
		outs[s] = o
	}
	f.mu.Lock()
	f.seq++
	seq := f.seq
	frames := make(map[string][]byte, len(f.symbols))
	deltas := make(map[string][]byte, len(f.symbols))
	now = time.Now()
	for _, s := range f.symbols {
		frames[s] = protocol.SnapshotFrameEpoch(s, f.opts.Epoch, seq, now, outs[s].data)
		f.latest[s], f.counts[s] = frames[s], len(outs[s].next.data.Levels)
		f.deltas[s] = nil
		if outs[s].delta != nil {
			// Only when smaller than the frame, as the snapshotter decides.
			if d := protocol.DeltaFrame(s, f.opts.Epoch, seq, seq-1, now, outs[s].delta); len(d) < len(frames[s]) {
				deltas[s], f.deltas[s] = d, d
				st := f.dstats[s]
				if st.n == 0 {
					st.min, st.max = len(d), len(d)
				}
				st.n, st.sum, st.min, st.max = st.n+1, st.sum+len(d), min(st.min, len(d)), max(st.max, len(d))
			}
		}
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
		if deltas[s] != nil {
			// Before its frame, as bus.RedisPublisher does: a gateway pairs
			// the delta it holds with the frame that follows.
			pipe.Publish(ctx, bus.DeltaChannel(s), deltas[s])
		}
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
		var prev time.Time
		for {
			var tick time.Time
			select {
			case <-ctx.Done():
				return
			case tick = <-t.C:
			}
			// tick is the time the ticker was due: how late this round is
			// stamped against the schedule. A ticker drops the ticks of a
			// receiver more than an interval behind: those rounds are skipped.
			f.recordTick(tick, time.Since(tick), prev)
			prev = tick
			_ = f.round(ctx) // counted in redisErrors; the next round tries again
		}
	}()
	return nil
}

// tickRecord is one round's punctuality.
type tickRecord struct {
	at      time.Time // when it was due
	late    time.Duration
	skipped int64 // rounds dropped since the one before
}

func (f *Feeder) recordTick(due time.Time, late time.Duration, prev time.Time) {
	r := tickRecord{at: due, late: late}
	if !prev.IsZero() {
		r.skipped = max(0, int64(math.Round(float64(due.Sub(prev))/float64(f.interval)))-1)
	}
	f.mu.Lock()
	f.ticks = append(f.ticks, r)
	f.mu.Unlock()
}

// Punctuality is how late the feeder stamped its rounds.
type Punctuality struct {
	Ticks        int64   `json:"ticks"`
	LateTicks    int64   `json:"late_ticks"` // more than a tenth of the interval late
	SkippedTicks int64   `json:"skipped_ticks,omitempty"`
	MaxLateMs    float64 `json:"max_late_ms"`
	RedisErrors  int64   `json:"redis_errors"`
}

// Punctuality so far.
func (f *Feeder) Punctuality() Punctuality { return f.PunctualitySince(time.Time{}) }

// PunctualitySince is the punctuality of the rounds due since t (a
// measurement window's start); RedisErrors counts every round.
func (f *Feeder) PunctualitySince(t time.Time) Punctuality {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := Punctuality{RedisErrors: f.redisErrors.Load()}
	var maxLate time.Duration
	for _, r := range f.ticks {
		if r.at.Before(t) {
			continue
		}
		p.Ticks++
		p.SkippedTicks += r.skipped
		if r.late > f.interval/10 {
			p.LateTicks++
		}
		maxLate = max(maxLate, r.late)
	}
	p.MaxLateMs = math.Round(float64(maxLate)/1e5) / 10
	return p
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
// ETag equals If-None-Match, up to ?wait. With ?delta=1 (gateways) and a
// delta, the answer is the delta and the frame, one per line, as the
// snapshotter's.
func (f *Feeder) snapshot(w http.ResponseWriter, r *http.Request, sym string) {
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || wait > maxWait {
		wait = 0
	}
	timeout := time.After(wait)
	for {
		f.mu.Lock()
		b, ok := f.latest[sym]
		delta := f.deltas[sym]
		tag, changed := etag(f.seq), f.changed
		f.mu.Unlock()
		if !ok {
			http.Error(w, fmt.Sprintf(`{"error":"unknown symbol %q"}`, sym), http.StatusNotFound)
			return
		}
		if tag != r.Header.Get("If-None-Match") {
			w.Header().Set("ETag", tag)
			if r.URL.Query().Get("delta") == "1" && delta != nil {
				w.Header().Set("Content-Type", bus.NDJSON)
				w.Write(bus.JoinPair(delta, b))
				return
			}
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
