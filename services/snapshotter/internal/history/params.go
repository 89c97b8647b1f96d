// Package history serves the time-evolving heatmap: one snapshot per candle
// of a window (GET /liquidations/heatmap-timeseries), cached until a write
// touches the window.
package history

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Windows are the accepted time_window presets.
var Windows = map[string]time.Duration{
	"48h": 48 * time.Hour, "3d": 3 * 24 * time.Hour, "7d": 7 * 24 * time.Hour, "14d": 14 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour, "60d": 60 * 24 * time.Hour, "90d": 90 * 24 * time.Hour,
	"180d": 180 * 24 * time.Hour, "1y": 365 * 24 * time.Hour,
}

var windowNames = []string{"48h", "3d", "7d", "14d", "30d", "60d", "90d", "180d", "1y"}

// Intervals are the accepted candle intervals, 5m to 1d.
var Intervals = []string{"5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"}

// Defaults are what a request that leaves a parameter out gets, and the
// handler's limits; a zero limit means its default.
type Defaults struct {
	Symbols      []string
	Params       map[string]heatmap.Params // per symbol
	Weights      string                    // the configured leverage_weights, echoed in meta
	Window       string
	Interval     string
	MaxSnapshots int
	// Warmup is how far before a window's start positions are replayed, so
	// the first snapshot already holds the positions the live stream (whose
	// window reaches back the snapshot lookback) holds.
	Warmup time.Duration
	// CacheBytes is what all cached bodies may hold together; DefaultCacheBytes.
	CacheBytes int64
	// CacheEntryBytes is the largest body worth caching: one bigger would
	// push out many smaller ones, each as likely to be asked for again;
	// CacheBytes/8.
	CacheEntryBytes int64
	// ComputeTimeout bounds one computation, which no caller's hang-up ends
	// because others may be waiting for it; DefaultComputeTimeout.
	ComputeTimeout time.Duration
	// Workers is how many computations run at once; DefaultWorkers.
	Workers int
	// Queue is how many distinct computations may wait for a worker before
	// requests are refused with 503; DefaultQueue.
	Queue int
}

// Query is a validated request.
type Query struct {
	Symbol   string
	Interval string
	Step     time.Duration
	Start    time.Time // inclusive candle open time
	Warm     time.Time // replay starts here; snapshots start at Start
	End      time.Time // exclusive
	Params   heatmap.Params
	Weights  string
}

// Key identifies a query for the cache.
func (q Query) Key() string {
	return fmt.Sprintf("%s|%s|%d|%d|%g|%s|%g|%s", q.Symbol, q.Interval, q.Start.UnixMicro(), q.End.UnixMicro(), q.Params.BinSize, q.Weights, q.Params.MMR, q.Params.Model)
}

// ParamError is a bad request parameter; the message names it.
type ParamError struct{ Param, Msg string }

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

// ParseQuery validates the request parameters against d. now decides where
// a time_window ends: at the last closed candle, because the open one keeps
// moving and is streamed live instead.
func ParseQuery(v url.Values, d Defaults, now time.Time) (Query, error) {
	for k := range v {
		switch k {
		case "symbol", "time_window", "start_time", "end_time", "interval", "price_bin_size", "leverage_weights", "model":
		default:
			return Query{}, &ParamError{k, "unknown parameter; accepted: symbol, time_window, start_time, end_time, interval, price_bin_size, leverage_weights, model"}
		}
	}
	var q Query
	q.Symbol = normSymbol(v.Get("symbol"))
	if q.Symbol == "" {
		return Query{}, &ParamError{"symbol", "required, one of " + strings.Join(d.Symbols, ", ")}
	}
	if !slices.Contains(d.Symbols, q.Symbol) {
		return Query{}, &ParamError{"symbol", fmt.Sprintf("unknown symbol %q; valid symbols: %s", q.Symbol, strings.Join(d.Symbols, ", "))}
	}
	q.Interval = d.Interval
	if s := v.Get("interval"); s != "" {
		q.Interval = s
	}
	if !slices.Contains(Intervals, q.Interval) {
		return Query{}, &ParamError{"interval", fmt.Sprintf("%q is not one of %s", q.Interval, strings.Join(Intervals, ", "))}
	}
	q.Step, _ = store.IntervalDuration(q.Interval)

	last := now.UTC().Truncate(q.Step) // open time of the still-open candle
	tw, st, et := v.Get("time_window"), v.Get("start_time"), v.Get("end_time")
	switch {
	case tw != "" && (st != "" || et != ""):
		return Query{}, &ParamError{"time_window", "give either time_window or start_time/end_time, not both"}
	case st != "" || et != "":
		if st == "" || et == "" {
			p := "start_time"
			if st != "" {
				p = "end_time"
			}
			return Query{}, &ParamError{p, "required together with the other of start_time/end_time"}
		}
		start, err := parseTime(st)
		if err != nil {
			return Query{}, &ParamError{"start_time", err.Error()}
		}
		end, err := parseTime(et)
		if err != nil {
			return Query{}, &ParamError{"end_time", err.Error()}
		}
		if !end.After(start) {
			return Query{}, &ParamError{"end_time", "must be after start_time"}
		}
		q.Start = start.Truncate(q.Step)
		if !q.Start.Before(last) {
			return Query{}, &ParamError{"start_time", fmt.Sprintf("must be before the still-open %s candle, which opened at %s", q.Interval, protocol.FormatTime(last))}
		}
		// Whole candles only, like the start: a candle cut at the end would
		// carry part of its volume and a close from mid-candle under the full
		// candle's label, and be cached as such.
		q.End = end.Truncate(q.Step)
		if q.End.After(last) {
			q.End = last
		}
		if !q.End.After(q.Start) {
			return Query{}, &ParamError{"end_time", fmt.Sprintf("no whole %s candle lies between start_time and end_time: both fall in the one opening at %s", q.Interval, protocol.FormatTime(q.Start))}
		}
	default:
		if tw == "" {
			tw = d.Window
		}
		w, ok := Windows[tw]
		if !ok {
			return Query{}, &ParamError{"time_window", fmt.Sprintf("%q is not one of %s", tw, strings.Join(windowNames, ", "))}
		}
		q.End = last
		q.Start = last.Add(-w)
	}
	q.Warm = q.Start.Add(-d.Warmup).Truncate(q.Step)
	if n := int(q.End.Sub(q.Start) / q.Step); n > d.MaxSnapshots {
		return Query{}, &ParamError{"interval", fmt.Sprintf("the window holds %d %s candles, more than the %d snapshots one response may carry; use a longer interval or a shorter window", n, q.Interval, d.MaxSnapshots)}
	}

	q.Params = d.Params[q.Symbol]
	q.Weights = d.Weights
	if s := v.Get("price_bin_size"); s != "" {
		b, err := strconv.ParseFloat(s, 64)
		if err != nil || b < heatmap.MinBinSize || b > heatmap.MaxBinSize {
			return Query{}, &ParamError{"price_bin_size", fmt.Sprintf("want a number of USD between %g and %g, got %q", heatmap.MinBinSize, heatmap.MaxBinSize, s)}
		}
		q.Params.BinSize = b
	}
	if s := v.Get("leverage_weights"); s != "" {
		tiers, err := heatmap.ParseWeights(s)
		if err != nil {
			return Query{}, &ParamError{"leverage_weights", err.Error()}
		}
		q.Params.Tiers = tiers
		q.Weights = s
	}
	if s := v.Get("model"); s != "" {
		m, err := heatmap.ParseModel(s)
		if err != nil {
			return Query{}, &ParamError{"model", err.Error()}
		}
		q.Params.Model = m
	}
	if err := q.Params.Validate(); err != nil {
		return Query{}, &ParamError{"parameters", err.Error()}
	}
	return q, nil
}

// Times outside [minTime, maxTime] are refused: no market data lies there, and
// DuckDB cannot even represent the far ends of what Unix milliseconds can say.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// parseTime accepts RFC 3339 or Unix milliseconds, as Binance-style clients send.
func parseTime(s string) (time.Time, error) {
	t, err := parseAnyTime(s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("%q is outside %s to %s", s, protocol.FormatTime(minTime), protocol.FormatTime(maxTime))
	}
	return t, nil
}

func parseAnyTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2025-12-29T10:00:00Z) or Unix milliseconds, got %q", s)
	}
	return t.UTC(), nil
}

// normSymbol is how every endpoint reads a symbol, so that all accept the
// same spellings.
func normSymbol(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// ParseSymbol reads a symbol parameter as every endpoint does (case and
// surrounding spaces ignored) and checks it is one of symbols; otherwise a
// *ParamError naming "symbol" that lists the valid ones.
func ParseSymbol(raw string, symbols []string) (string, error) {
	sym := normSymbol(raw)
	if sym == "" {
		return "", &ParamError{"symbol", "required, one of " + strings.Join(symbols, ", ")}
	}
	if !slices.Contains(symbols, sym) {
		return "", &ParamError{"symbol", fmt.Sprintf("unknown symbol %q; valid symbols: %s", sym, strings.Join(symbols, ", "))}
	}
	return sym, nil
}
