// Package accuracy scores the heatmap models against realised liquidations
// (GET /data/model-accuracy): per UTC day, the share of the liquidated
// notional that fell in the buckets a model ranked in its top decile, next
// to two baselines that know nothing of positions.
package accuracy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/history"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Limits of a request.
const (
	// MaxDays is the longest range one request may score: each day is a
	// replay of the live window before it, per model.
	MaxDays = 31
	// DefaultDays is the default range: the last 7 complete UTC days and
	// today so far.
	DefaultDays = 8
	// maxCached bounds the cache: per symbol and model a day is a few
	// numbers, so this is years of days.
	maxCached = 8192
)

// Models are the models scored, in the order they are listed.
var Models = []heatmap.Model{heatmap.ModelClassic, heatmap.ModelBinance}

// Store is what scoring reads.
type Store interface {
	Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error)
	Liquidations(ctx context.Context, q store.LiquidationQuery) ([]store.Liquidation, error)
	Version(symbol string) uint64
	ChangedSince(symbol string, version uint64) (store.Span, uint64, bool)
	LiquidationVersion(symbol string) uint64
}

// Gate admits a computation or refuses it with a *history.BusyError; the
// time series' (history.Handler.Admit), so that scoring and the time series
// together never use more than history.workers.
type Gate interface {
	Admit(ctx context.Context) (release func(), err error)
}

// Config is what scoring must share with the live loop so that the levels it
// scores are the ones the stream showed.
type Config struct {
	Symbols []string
	Params  map[string]heatmap.Params // per symbol, as the live loop runs them
	// Interval is the live loop's candle interval.
	Interval string
	// Lookback is the live loop's window: each day is replayed from this
	// long before its start.
	Lookback time.Duration
	// Timeout bounds one computation, the wait for a worker included;
	// history.DefaultComputeTimeout when 0.
	Timeout time.Duration
}

// Scores are the shares of a day's liquidated notional each scorer's top
// held; a model not asked for is absent.
type Scores struct {
	Classic  *float64 `json:"classic,omitempty"`
	Binance  *float64 `json:"binance,omitempty"`
	Uniform  float64  `json:"uniform"`
	Distance float64  `json:"distance"`
}

// Day is one UTC day: its liquidations and, when it had any, the scores.
type Day struct {
	Date         string  `json:"date"`
	Liquidations int     `json:"liquidations"`
	Notional     float64 `json:"notional"`
	Scores       *Scores `json:"scores,omitempty"`
}

// Total is the days together, each weighted by its notional.
type Total struct {
	Liquidations int     `json:"liquidations"`
	Notional     float64 `json:"notional"`
	Scores       *Scores `json:"scores,omitempty"`
}

// Response is the body of GET /data/model-accuracy.
type Response struct {
	Symbol   string   `json:"symbol"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	TopShare float64  `json:"top_share"`
	Models   []string `json:"models"`
	Days     []Day    `json:"days"`
	Total    Total    `json:"total"`
}

// Query is a validated request.
type Query struct {
	Symbol   string
	Models   []heatmap.Model
	From, To time.Time // UTC midnights, both days included
}

func (q Query) key() string {
	return fmt.Sprintf("%s|%v|%d|%d", q.Symbol, q.Models, q.From.Unix(), q.To.Unix())
}

type cacheKey struct {
	symbol string
	model  heatmap.Model
	day    int64 // Unix seconds of the day's start
}

// entry is one finished day of one model, valid while no candle of the
// day's replay (warm-up included) has been written and its liquidations are
// the same.
type entry struct {
	tally      Tally
	version    uint64   // candle version read before the candles
	liqVersion uint64   // liquidation version read before the liquidations
	digest     [32]byte // of the day's liquidations
	used       uint64   // for eviction: the use counter when last read
}

// Handler serves GET /data/model-accuracy.
type Handler struct {
	store Store
	gate  Gate
	cfg   Config
	step  time.Duration
	now   func() time.Time
	log   *slog.Logger

	models map[string][]heatmap.Model // per symbol: the models its parameters can run
	unfit  map[string]map[heatmap.Model]error

	group singleflight.Group

	mu    sync.Mutex
	cache map[cacheKey]*entry
	uses  uint64
}

// New returns the handler; now is the clock. It fails when the candle
// interval is unknown or a symbol has no parameters.
func New(st Store, gate Gate, cfg Config, now func() time.Time, log *slog.Logger) (*Handler, error) {
	step, err := store.IntervalDuration(cfg.Interval)
	if err != nil {
		return nil, fmt.Errorf("model accuracy: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = history.DefaultComputeTimeout
	}
	h := &Handler{store: st, gate: gate, cfg: cfg, step: step, now: now, log: log,
		models: map[string][]heatmap.Model{}, unfit: map[string]map[heatmap.Model]error{}, cache: map[cacheKey]*entry{}}
	for _, sym := range cfg.Symbols {
		p, ok := cfg.Params[sym]
		if !ok {
			return nil, fmt.Errorf("model accuracy %s: no heatmap parameters configured", sym)
		}
		h.unfit[sym] = map[heatmap.Model]error{}
		// The other model runs with the symbol's parameters, Model switched;
		// a leverage the binance brackets refuse leaves that model out.
		for _, m := range Models {
			p.Model = m
			if err := p.Validate(); err != nil {
				h.unfit[sym][m] = err
				continue
			}
			h.models[sym] = append(h.models[sym], m)
		}
	}
	return h, nil
}

// Register mounts the endpoint on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /data/model-accuracy", h.serve)
}

const dateLayout = "2006-01-02"

// ParseQuery validates the request parameters; now decides what today is.
func (h *Handler) ParseQuery(v url.Values, now time.Time) (Query, error) {
	for k := range v {
		if !slices.Contains([]string{"symbol", "model", "from", "to"}, k) {
			return Query{}, &history.ParamError{Param: k, Msg: "unknown parameter; accepted: symbol, model, from, to"}
		}
	}
	var q Query
	var err error
	if q.Symbol, err = history.ParseSymbol(v.Get("symbol"), h.cfg.Symbols); err != nil {
		return q, err
	}
	q.Models = h.models[q.Symbol]
	if s := strings.ToLower(strings.TrimSpace(v.Get("model"))); s != "" {
		m := heatmap.Model(s)
		if !slices.Contains(Models, m) {
			return q, &history.ParamError{Param: "model", Msg: fmt.Sprintf("%q is not one of classic, binance", v.Get("model"))}
		}
		if err := h.unfit[q.Symbol][m]; err != nil {
			return q, &history.ParamError{Param: "model", Msg: fmt.Sprintf("%s cannot run with %s's configured parameters: %v", m, q.Symbol, err)}
		}
		q.Models = []heatmap.Model{m}
	}
	today := now.UTC().Truncate(24 * time.Hour)
	q.To = today
	if s := v.Get("to"); s != "" {
		if q.To, err = parseDate(s); err != nil {
			return q, &history.ParamError{Param: "to", Msg: err.Error()}
		}
		// Days to come have nothing to score yet; like the time series'
		// end, a later to is clamped rather than refused.
		if q.To.After(today) {
			q.To = today
		}
	}
	q.From = q.To.AddDate(0, 0, -(DefaultDays - 1))
	if s := v.Get("from"); s != "" {
		if q.From, err = parseDate(s); err != nil {
			return q, &history.ParamError{Param: "from", Msg: err.Error()}
		}
		if q.From.After(today) {
			return q, &history.ParamError{Param: "from", Msg: fmt.Sprintf("%s is after today (%s UTC): nothing to score yet", s, today.Format(dateLayout))}
		}
	}
	if q.To.Before(q.From) {
		return q, &history.ParamError{Param: "to", Msg: fmt.Sprintf("%s is before from (%s)", q.To.Format(dateLayout), q.From.Format(dateLayout))}
	}
	if n := days(q.From, q.To); n > MaxDays {
		return q, &history.ParamError{Param: "from", Msg: fmt.Sprintf("the range holds %d days, at most %d; narrow it", n, MaxDays)}
	}
	return q, nil
}

func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("want a UTC date YYYY-MM-DD, got %q", s)
	}
	return t, nil
}

// days counts the days from..to, both included.
func days(from, to time.Time) int { return int(to.Sub(from)/(24*time.Hour)) + 1 }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	q, err := h.ParseQuery(r.URL.Query(), h.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := h.Get(r.Context(), q)
	if err != nil {
		var busy *history.BusyError
		switch {
		case r.Context().Err() != nil:
			h.log.Debug("model accuracy caller left", logging.KeySymbol, q.Symbol, logging.KeyErr, err)
		case errors.As(err, &busy):
			w.Header().Set("Retry-After", strconv.Itoa(busy.RetryAfterSeconds()))
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			h.log.Error("model accuracy failed", logging.KeySymbol, q.Symbol, logging.KeyErr, err)
			writeError(w, http.StatusInternalServerError, "computing the model accuracy failed: "+err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// Get scores q. When every day is a finished one already cached and nothing
// was written since, it answers at once; otherwise the computation waits for
// a worker of the gate (a *history.BusyError when the queue is full) and is
// shared by identical concurrent requests, detached from each of them as the
// time series' is: a caller whose ctx ends leaves, the others and the cache
// still get the result.
func (h *Handler) Get(ctx context.Context, q Query) (Response, error) {
	if tallies, ok := h.cachedOnly(q); ok {
		return h.response(q, tallies), nil
	}
	ch := h.group.DoChan(q.key(), func() (v any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("model accuracy %s panicked: %v", q.Symbol, p)
			}
		}()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Timeout)
		defer cancel()
		release, err := h.gate.Admit(cctx)
		if err != nil {
			return nil, err
		}
		defer release()
		tallies, err := h.compute(cctx, q)
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("model accuracy %s: gave up after %s (%w): %w", q.Symbol, h.cfg.Timeout, cctx.Err(), err)
		}
		if err != nil {
			return nil, err
		}
		return tallies, nil
	})
	select {
	case <-ctx.Done():
		return Response{}, fmt.Errorf("waiting for the %s model accuracy: %w", q.Symbol, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return Response{}, r.Err
		}
		return h.response(q, r.Val.(dayTallies)), nil
	}
}

// dayTallies is per day of q (in order) one Tally per model of q.
type dayTallies = [][]Tally

// finished reports whether day d is over at now: only finished days are
// cached, today's keeps changing.
func (h *Handler) finished(d time.Time) bool { return !d.AddDate(0, 0, 1).After(h.now()) }

// warm is where day d's replay starts: the live loop's window before it.
func (h *Handler) warm(d time.Time) time.Time { return d.Add(-h.cfg.Lookback).Truncate(h.step) }

// fresh reports whether e still holds for day d of symbol as far as the
// candles go: no write since touched its replay, warm-up included.
func (h *Handler) fresh(symbol string, d time.Time, e entry) bool {
	span, _, complete := h.store.ChangedSince(symbol, e.version)
	return complete && !span.Overlaps(h.warm(d), d.AddDate(0, 0, 1))
}

// lookup returns a copy of k's entry: entries change under h.mu.
func (h *Handler) lookup(k cacheKey) (entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.cache[k]
	if !ok {
		return entry{}, false
	}
	h.uses++
	e.used = h.uses
	return *e, true
}

// confirm records that k's entry still holds at liquidation version liqVer.
func (h *Handler) confirm(k cacheKey, liqVer uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.cache[k]; ok {
		e.liqVersion = max(e.liqVersion, liqVer)
	}
}

// cachedOnly answers q from the cache alone when every day is finished,
// cached for every model, and neither candles nor liquidations were written
// since; it touches no data.
func (h *Handler) cachedOnly(q Query) (dayTallies, bool) {
	liqVer := h.store.LiquidationVersion(q.Symbol)
	var out dayTallies
	for d := q.From; !d.After(q.To); d = d.AddDate(0, 0, 1) {
		if !h.finished(d) {
			return nil, false
		}
		row := make([]Tally, len(q.Models))
		for i, m := range q.Models {
			e, ok := h.lookup(cacheKey{q.Symbol, m, d.Unix()})
			if !ok || e.liqVersion != liqVer || !h.fresh(q.Symbol, d, e) {
				return nil, false
			}
			row[i] = e.tally
		}
		out = append(out, row)
	}
	return out, true
}

// compute scores every day of q not validly cached and caches the finished
// ones. A day whose liquidations were rewritten identically, or whose
// liquidation version moved for another day, keeps its entry: the digest
// says its liquidations are the same. One day's liquidations are held at a
// time: a volatile month can hold millions.
func (h *Handler) compute(ctx context.Context, q Query) (dayTallies, error) {
	// Versions before the data: a write landing in between makes an entry
	// look stale, never fresh.
	version := h.store.Version(q.Symbol)
	liqVer := h.store.LiquidationVersion(q.Symbol)
	type job struct {
		day    int
		models []int // indices into q.Models
	}
	var jobs []job
	out := make(dayTallies, days(q.From, q.To))
	for di := range out {
		d := q.From.AddDate(0, 0, di)
		ls, err := h.dayLiquidations(ctx, q.Symbol, d)
		if err != nil {
			return nil, err
		}
		sum := digest(ls)
		out[di] = make([]Tally, len(q.Models))
		var need []int
		for mi, m := range q.Models {
			k := cacheKey{q.Symbol, m, d.Unix()}
			if e, ok := h.lookup(k); ok && e.digest == sum && h.fresh(q.Symbol, d, e) {
				h.confirm(k, liqVer)
				out[di][mi] = e.tally
				continue
			}
			if len(ls) == 0 {
				// Nothing to score, nothing to replay.
				h.put(k, d, &entry{version: version, liqVersion: liqVer, digest: sum})
				continue
			}
			need = append(need, mi)
		}
		if len(need) > 0 {
			jobs = append(jobs, job{di, need})
		}
	}
	if len(jobs) == 0 {
		return out, nil
	}
	// One read for every day that needs a replay, warm-ups included; each
	// day then replays its own slice, so a day's result does not depend on
	// the range it was asked in.
	first, last := q.From.AddDate(0, 0, jobs[0].day), q.From.AddDate(0, 0, jobs[len(jobs)-1].day)
	candles, err := h.store.Candles(ctx, q.Symbol, h.cfg.Interval, h.warm(first), last.AddDate(0, 0, 1))
	if err != nil {
		return nil, fmt.Errorf("model accuracy %s: %w", q.Symbol, err)
	}
	openingAt := func(t time.Time) int {
		i, _ := slices.BinarySearchFunc(candles, t, func(c heatmap.Candle, t time.Time) int { return c.OpenTime.Compare(t) })
		return i
	}
	for _, j := range jobs {
		d := q.From.AddDate(0, 0, j.day)
		ls, err := h.dayLiquidations(ctx, q.Symbol, d)
		if err != nil {
			return nil, err
		}
		sum := digest(ls)
		window := candles[openingAt(h.warm(d)):openingAt(d.AddDate(0, 0, 1))]
		for _, mi := range j.models {
			p := h.cfg.Params[q.Symbol]
			p.Model = q.Models[mi]
			t, err := scoreDay(ctx, p, h.step, window, ls)
			if err != nil {
				return nil, fmt.Errorf("model accuracy %s %s: %w", q.Symbol, d.Format(dateLayout), err)
			}
			out[j.day][mi] = t
			h.put(cacheKey{q.Symbol, p.Model, d.Unix()}, d, &entry{tally: t, version: version, liqVersion: liqVer, digest: sum})
		}
	}
	return out, nil
}

// dayLiquidations reads the liquidations of the UTC day d, oldest first.
func (h *Handler) dayLiquidations(ctx context.Context, symbol string, d time.Time) ([]store.Liquidation, error) {
	ls, err := h.store.Liquidations(ctx, store.LiquidationQuery{Symbol: symbol, From: d, To: d.AddDate(0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("model accuracy %s %s: %w", symbol, d.Format(dateLayout), err)
	}
	return ls, nil
}

// digest identifies a day's liquidations: equal digests, equal scores.
func digest(ls []store.Liquidation) [32]byte {
	hs := sha256.New()
	var b [8]byte
	for _, l := range ls {
		binary.LittleEndian.PutUint64(b[:], uint64(l.Time.UnixNano()))
		hs.Write(b[:])
		side := byte(0)
		if l.Side == store.SideShort {
			side = 1
		}
		hs.Write([]byte{side})
		for _, f := range [...]float64{l.Price, l.Quantity, l.Notional} {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(f))
			hs.Write(b[:])
		}
	}
	var out [32]byte
	hs.Sum(out[:0])
	return out
}

// put caches a finished day's entry, dropping the least recently used one
// when the cache is full.
func (h *Handler) put(k cacheKey, d time.Time, e *entry) {
	if !h.finished(d) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.cache[k]; !ok && len(h.cache) >= maxCached {
		var oldest cacheKey
		var used uint64
		first := true
		for ck, ce := range h.cache {
			if first || ce.used < used {
				oldest, used, first = ck, ce.used, false
			}
		}
		delete(h.cache, oldest)
	}
	h.uses++
	e.used = h.uses
	h.cache[k] = e
}

// response assembles the body; per day and in total a score is the scorer's
// hit notional over all the notional.
func (h *Handler) response(q Query, tallies dayTallies) Response {
	resp := Response{Symbol: q.Symbol, From: q.From.Format(dateLayout), To: q.To.Format(dateLayout), TopShare: TopShare,
		Days: make([]Day, 0, len(tallies))}
	for _, m := range q.Models {
		resp.Models = append(resp.Models, string(m))
	}
	total := make([]Tally, len(q.Models))
	for di, row := range tallies {
		day := Day{Date: q.From.AddDate(0, 0, di).Format(dateLayout)}
		if len(row) > 0 {
			day.Liquidations, day.Notional, day.Scores = row[0].Count, row[0].Notional, scores(q.Models, row)
		}
		for mi, t := range row {
			total[mi] = add(total[mi], t)
		}
		resp.Days = append(resp.Days, day)
	}
	if len(total) > 0 {
		resp.Total = Total{Liquidations: total[0].Count, Notional: total[0].Notional, Scores: scores(q.Models, total)}
	}
	return resp
}

func add(a, b Tally) Tally {
	return Tally{Count: a.Count + b.Count, Notional: a.Notional + b.Notional, Model: a.Model + b.Model,
		Uniform: a.Uniform + b.Uniform, Distance: a.Distance + b.Distance}
}

// scores turns per-model tallies of the same liquidations into shares; nil
// when there was nothing to score. The baselines do not depend on the model
// (same candles, so the same prices and universes), so the first model's
// are taken.
func scores(models []heatmap.Model, row []Tally) *Scores {
	if row[0].Count == 0 || !(row[0].Notional > 0) {
		return nil
	}
	n := row[0].Notional
	s := &Scores{Uniform: row[0].Uniform / n, Distance: row[0].Distance / n}
	for i, m := range models {
		v := row[i].Model / n
		switch m {
		case heatmap.ModelClassic:
			s.Classic = &v
		case heatmap.ModelBinance:
			s.Binance = &v
		}
	}
	return s
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
