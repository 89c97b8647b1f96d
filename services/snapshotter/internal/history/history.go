package history

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"golang.org/x/sync/singleflight"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Store is what history reads.
type Store interface {
	Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error)
	Version(symbol string) uint64
	ChangedSince(symbol string, version uint64) (store.Span, uint64, bool)
}

// Level is one bucket of an entry.
type Level struct {
	Price        float64 `json:"price"`
	LongDensity  float64 `json:"long_density"`
	ShortDensity float64 `json:"short_density"`
}

// EntryMeta is per-candle totals.
type EntryMeta struct {
	TotalLongVolume   float64 `json:"total_long_volume"`
	TotalShortVolume  float64 `json:"total_short_volume"`
	PositionsCreated  int     `json:"positions_created"`
	PositionsConsumed int     `json:"positions_consumed"`
}

// Candle is the OHLCV an entry follows, for drawing candles over the heatmap.
type Candle struct {
	Open   float64 `json:"open"`
	High   float64 `json:"high"`
	Low    float64 `json:"low"`
	Close  float64 `json:"close"`
	Volume float64 `json:"volume"`
}

// Entry is the heatmap after one candle.
type Entry struct {
	Timestamp string    `json:"timestamp"`
	Symbol    string    `json:"symbol"`
	Levels    []Level   `json:"levels"`
	Meta      EntryMeta `json:"meta"`
	Candle    Candle    `json:"candle"`
}

// PriceRange spans every level and candle of the response.
type PriceRange struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Meta describes the whole response.
type Meta struct {
	Symbol           string     `json:"symbol"`
	StartTime        string     `json:"start_time"`
	EndTime          string     `json:"end_time"`
	Interval         string     `json:"interval"`
	TotalSnapshots   int        `json:"total_snapshots"`
	PriceRange       PriceRange `json:"price_range"`
	TotalLongVolume  float64    `json:"total_long_volume"`
	TotalShortVolume float64    `json:"total_short_volume"`
	TotalConsumed    int        `json:"total_consumed"`
	PriceBinSize     float64    `json:"price_bin_size"`
	LeverageWeights  string     `json:"leverage_weights"`
	Model            string     `json:"model"`
}

// Response is the endpoint's body.
type Response struct {
	Data []Entry `json:"data"`
	Meta Meta    `json:"meta"`
}

// Cache limits when Defaults leave them zero.
const (
	// DefaultCacheBytes bounds the cache by what it holds, because bodies
	// differ by orders of magnitude: one 14d/5m body at a 1 USD bin is 214 MB.
	DefaultCacheBytes = 256 << 20
	// DefaultComputeTimeout ends a computation no caller can cancel any
	// more, e.g. one stuck on the store; generous, since a slow legitimate
	// one may have many callers waiting for it.
	DefaultComputeTimeout = 2 * time.Minute
)

type cached struct {
	key     string
	body    []byte // gzip
	version uint64
}

// size is what an entry costs the budget: its body, next to which the rest
// is noise.
func (c *cached) size() int64 { return int64(len(c.body)) }

// Handler serves GET /liquidations/heatmap-timeseries.
type Handler struct {
	store    Store
	defaults Defaults
	now      func() time.Time
	log      *slog.Logger

	budget, entryCap int64
	timeout          time.Duration

	group singleflight.Group
	gate  *gate

	mu    sync.Mutex
	lru   *list.List // of *cached, most recently used first
	cache map[string]*list.Element
	bytes int64 // sum of the cached entries' size

	// joined, when set, is called once a caller waits for a computation;
	// tests use it to know a caller has joined one.
	joined func()
}

// New returns the handler; now is the clock.
func New(st Store, d Defaults, now func() time.Time, log *slog.Logger) *Handler {
	h := &Handler{store: st, defaults: d, now: now, log: log,
		budget: d.CacheBytes, entryCap: d.CacheEntryBytes, timeout: d.ComputeTimeout,
		gate: newGate(d.Workers, d.Queue, now),
		lru:  list.New(), cache: map[string]*list.Element{}}
	if h.budget <= 0 {
		h.budget = DefaultCacheBytes
	}
	if h.entryCap <= 0 {
		h.entryCap = h.budget / 8
	}
	if h.timeout <= 0 {
		h.timeout = DefaultComputeTimeout
	}
	return h
}

// Stats is the admission state: computations running, waiting, and refused
// so far.
func (h *Handler) Stats() GateStats { return h.gate.stats() }

// Admit waits for a history worker for a computation other than the time
// series (model accuracy), so that every replay of stored candles shares one
// bound on workers and queue and none can starve the live loop. It returns a
// *BusyError at once when the queue is full; release must be called when the
// computation ends.
func (h *Handler) Admit(ctx context.Context) (release func(), err error) { return h.gate.enter(ctx) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), h.defaults, h.now())
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	body, hit, err := h.Get(r.Context(), q)
	if err != nil {
		var busy *BusyError
		switch {
		case r.Context().Err() != nil:
			// The client left; nobody reads an answer, and it is no server fault.
			h.log.Debug("heatmap timeseries caller left", logging.KeySymbol, q.Symbol, logging.KeyErr, err)
		case errors.As(err, &busy):
			w.Header().Set("Retry-After", strconv.Itoa(busy.RetryAfterSeconds()))
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			h.log.Error("heatmap timeseries failed", logging.KeySymbol, q.Symbol, logging.KeyErr, err)
			writeError(w, http.StatusInternalServerError, "computing the heatmap time series failed: "+err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept-Encoding")
	if hit {
		w.Header().Set("X-Cache", "hit")
	} else {
		w.Header().Set("X-Cache", "miss")
	}
	if AcceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	// Inflated as it is written: the plain body (ten times the stored one)
	// never sits in memory whole.
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err == nil {
		_, err = io.Copy(w, zr)
	}
	if err != nil && r.Context().Err() == nil {
		h.log.Error("heatmap timeseries write failed", logging.KeySymbol, q.Symbol, logging.KeyErr, err)
	}
}

// AcceptsGzip reports whether r's Accept-Encoding allows gzip (q above 0).
func AcceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if name = strings.TrimSpace(name); name != "gzip" && name != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			if qv, ok := strings.CutPrefix(q, "q="); ok {
				if f, err := strconv.ParseFloat(qv, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// Get returns the gzip-encoded response of q and whether it came from the
// cache. A cached body stays valid until a write touches its window. Callers
// of the same query share one computation, which runs detached from all of
// them: a caller whose ctx ends leaves with ctx's error, and the others, and
// the cache, still get the result. A new computation past the workers and
// queue is refused with a *BusyError.
func (h *Handler) Get(ctx context.Context, q Query) ([]byte, bool, error) {
	key := q.Key()
	if body, ok := h.lookup(key, q); ok {
		return body, true, nil
	}
	ch := h.group.DoChan(key, func() (v any, err error) {
		// DoChan re-panics on its own goroutine, which would take the
		// process down; a panic is one request's failure, as in net/http.
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("heatmap time series %s panicked: %v", q.Symbol, p)
			}
		}()
		// The timeout covers the wait for a worker too: a queued request
		// nobody will read in two minutes is not worth a worker.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
		defer cancel()
		release, err := h.gate.enter(cctx)
		if err != nil {
			return nil, err
		}
		defer release()
		// Read the version before the data: a write landing in between makes
		// the entry look stale, never fresh.
		version := h.store.Version(q.Symbol)
		body, err := h.compute(cctx, q)
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			// Both wrapped: the store's error need not wrap the deadline.
			return nil, fmt.Errorf("heatmap time series %s: gave up after %s (%w): %w", q.Symbol, h.timeout, cctx.Err(), err)
		}
		if err != nil {
			return nil, err
		}
		h.put(&cached{key: key, body: body, version: version})
		return body, nil
	})
	if h.joined != nil {
		h.joined()
	}
	select {
	case <-ctx.Done():
		return nil, false, fmt.Errorf("waiting for the %s time series: %w", q.Symbol, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, false, r.Err
		}
		return r.Val.([]byte), false, nil
	}
}

// lookup returns the cached body of key if no write has touched q's window
// since it was computed, and drops a stale one.
func (h *Handler) lookup(key string, q Query) ([]byte, bool) {
	h.mu.Lock()
	e, ok := h.cache[key]
	h.mu.Unlock()
	if !ok {
		return nil, false
	}
	c := e.Value.(*cached)
	span, _, complete := h.store.ChangedSince(q.Symbol, c.version)
	fresh := complete && !span.Overlaps(q.Warm, q.End)
	h.mu.Lock()
	defer h.mu.Unlock()
	// The entry may have been evicted or replaced while the lock was free.
	if h.cache[key] == e {
		if fresh {
			h.lru.MoveToFront(e)
		} else {
			h.remove(e)
		}
	}
	return c.body, fresh
}

// put caches c unless it is over the per-entry cap, evicting the least
// recently used entries until the budget holds.
func (h *Handler) put(c *cached) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.cache[c.key]; ok {
		h.remove(old)
	}
	if c.size() > h.entryCap {
		h.log.Debug("heatmap timeseries too large to cache", "key", c.key, "bytes", c.size(), "max", h.entryCap)
		return
	}
	h.cache[c.key] = h.lru.PushFront(c)
	h.bytes += c.size()
	for h.bytes > h.budget {
		h.remove(h.lru.Back())
	}
}

// remove drops e; h.mu must be held.
func (h *Handler) remove(e *list.Element) {
	c := h.lru.Remove(e).(*cached)
	delete(h.cache, c.key)
	h.bytes -= c.size()
}

// ctxEvery is how many candles are replayed between looks at ctx: often
// enough that a timeout ends a long replay within milliseconds.
const ctxEvery = 256

// compute replays q's window and encodes the response gzip-compressed as it
// goes, one entry at a time: a computation holds the engine, the candles and
// the compressed body, never every snapshot nor the plain JSON, which for a
// week of 5m candles is tens of MB per request.
func (h *Handler) compute(ctx context.Context, q Query) ([]byte, error) {
	candles, err := h.store.Candles(ctx, q.Symbol, q.Interval, q.Warm, q.End)
	if err != nil {
		return nil, err
	}
	eng, err := heatmap.NewEngine(q.Params)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", q.Symbol, err)
	}
	var buf bytes.Buffer
	// BestSpeed: the body is compressed once and cached; the replay, not
	// the compressor, should be what a computation's time goes to. It still
	// shrinks the JSON about tenfold.
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(zw)
	meta := Meta{
		Symbol: q.Symbol, StartTime: protocol.FormatTime(q.Start), EndTime: protocol.FormatTime(q.End),
		Interval: q.Interval, PriceBinSize: q.Params.BinSize,
		LeverageWeights: q.Weights, Model: string(q.Params.Model),
	}
	io.WriteString(zw, `{"data":[`)
	lo, hi := math.Inf(1), math.Inf(-1)
	levels := make([]Level, 0, 512)
	var last heatmap.Snapshot
	for i, c := range candles {
		if i%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("replay %s: %w", q.Symbol, err)
			}
		}
		// Warm-up candles only build positions; snapshots begin at Start.
		if c.OpenTime.Before(q.Start) {
			if _, err := eng.ApplyNoLevels(c); err != nil {
				return nil, fmt.Errorf("replay %s: %w", q.Symbol, err)
			}
			continue
		}
		s, err := eng.Apply(c)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", q.Symbol, err)
		}
		levels = levels[:0]
		for _, l := range s.Levels {
			levels = append(levels, Level{Price: l.Price, LongDensity: l.LongDensity, ShortDensity: l.ShortDensity})
		}
		if n := len(levels); n > 0 {
			lo, hi = math.Min(lo, levels[0].Price), math.Max(hi, levels[n-1].Price+q.Params.BinSize)
		}
		sc := s.Candle
		lo, hi = math.Min(lo, sc.Low), math.Max(hi, sc.High)
		if meta.TotalSnapshots > 0 {
			io.WriteString(zw, ",")
		}
		// The encoder's newline after each entry is JSON whitespace.
		if err := enc.Encode(Entry{
			Timestamp: protocol.FormatTime(sc.OpenTime), Symbol: q.Symbol, Levels: levels,
			Meta: EntryMeta{
				TotalLongVolume: s.TotalLongVolume, TotalShortVolume: s.TotalShortVolume,
				PositionsCreated: s.PositionsCreated, PositionsConsumed: s.PositionsConsumed,
			},
			Candle: Candle{Open: sc.Open, High: sc.High, Low: sc.Low, Close: sc.Close, Volume: sc.Volume},
		}); err != nil {
			return nil, fmt.Errorf("encode %s time series: %w", q.Symbol, err)
		}
		meta.TotalSnapshots++
		meta.TotalConsumed += s.PositionsConsumed
		last = s
	}
	if meta.TotalSnapshots > 0 {
		meta.PriceRange = PriceRange{Min: lo, Max: hi}
		meta.TotalLongVolume = last.TotalLongVolume
		meta.TotalShortVolume = last.TotalShortVolume
	}
	io.WriteString(zw, `],"meta":`)
	if err := enc.Encode(meta); err != nil {
		return nil, fmt.Errorf("encode %s time series: %w", q.Symbol, err)
	}
	io.WriteString(zw, "}")
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress %s time series: %w", q.Symbol, err)
	}
	return buf.Bytes(), nil
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
