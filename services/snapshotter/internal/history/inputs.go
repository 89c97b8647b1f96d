package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// InputStore is what the input endpoints read.
type InputStore interface {
	Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error)
	DateRange(ctx context.Context, symbol, interval string) (first, last time.Time, n int64, err error)
	Liquidations(ctx context.Context, q store.LiquidationQuery) ([]store.Liquidation, error)
}

// Inputs serves the model's inputs as stored, compatible with the system
// liqstream replaces: /prices/klines, /data/open-interest, /data/date-range;
// and the realised liquidations the model is measured against,
// /data/liquidations.
type Inputs struct {
	store   InputStore
	symbols []string
	base    string // stored interval the date range reports
	now     func() time.Time
	maxRows int
}

// NewInputs returns the handlers' owner; base is the stored candle interval.
func NewInputs(st InputStore, symbols []string, base string, now func() time.Time) *Inputs {
	return &Inputs{store: st, symbols: symbols, base: base, now: now, maxRows: 10000}
}

// Register mounts the four endpoints on mux.
func (in *Inputs) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /prices/klines", in.klines)
	mux.HandleFunc("GET /data/open-interest", in.openInterest)
	mux.HandleFunc("GET /data/date-range", in.dateRange)
	mux.HandleFunc("GET /data/liquidations", in.liquidations)
}

type rangeQuery struct {
	symbol, interval string
	start, end       time.Time
}

// parseRange reads symbol, interval (default 5m) and start_time/end_time
// (default: the last 24 hours).
func (in *Inputs) parseRange(v url.Values) (rangeQuery, error) {
	for k := range v {
		if !slices.Contains([]string{"symbol", "interval", "start_time", "end_time"}, k) {
			return rangeQuery{}, &ParamError{k, "unknown parameter; accepted: symbol, interval, start_time, end_time"}
		}
	}
	q := rangeQuery{symbol: normSymbol(v.Get("symbol")), interval: v.Get("interval")}
	if err := in.checkSymbol(q.symbol); err != nil {
		return q, err
	}
	if q.interval == "" {
		q.interval = "5m"
	}
	step, err := store.IntervalDuration(q.interval)
	if err != nil || !slices.Contains(Intervals, q.interval) {
		return q, &ParamError{"interval", fmt.Sprintf("%q is not one of %s", q.interval, strings.Join(Intervals, ", "))}
	}
	q.end, q.start = in.now().UTC(), in.now().UTC().Add(-24*time.Hour)
	if s := v.Get("start_time"); s != "" {
		if q.start, err = parseTime(s); err != nil {
			return q, &ParamError{"start_time", err.Error()}
		}
	}
	if s := v.Get("end_time"); s != "" {
		if q.end, err = parseTime(s); err != nil {
			return q, &ParamError{"end_time", err.Error()}
		}
	}
	q.start = q.start.Truncate(step)
	if !q.end.After(q.start) {
		return q, &ParamError{"end_time", "must be after start_time"}
	}
	if n := q.end.Sub(q.start) / step; int(n) > in.maxRows {
		return q, &ParamError{"start_time", fmt.Sprintf("the range holds %d %s candles, more than %d; narrow it or use a longer interval", n, q.interval, in.maxRows)}
	}
	return q, nil
}

func (in *Inputs) checkSymbol(sym string) error {
	_, err := ParseSymbol(sym, in.symbols)
	return err
}

func (in *Inputs) klines(w http.ResponseWriter, r *http.Request) {
	q, cs, ok := in.load(w, r)
	if !ok {
		return
	}
	// The wire shape of a candle is the snapshot frame's: one definition.
	rows := make([]protocol.Candle, len(cs))
	for i, c := range cs {
		rows[i] = protocol.Candle{OpenTime: protocol.FormatTime(c.OpenTime), Open: c.Open, High: c.High, Low: c.Low, Close: c.Close, Volume: c.Volume}
	}
	writeJSON(w, map[string]any{"symbol": q.symbol, "interval": q.interval, "data": rows})
}

type oiRow struct {
	Timestamp         string   `json:"timestamp"`
	OpenInterestValue *float64 `json:"open_interest_value"` // null: no observation in the candle
}

func (in *Inputs) openInterest(w http.ResponseWriter, r *http.Request) {
	q, cs, ok := in.load(w, r)
	if !ok {
		return
	}
	rows := make([]oiRow, len(cs))
	for i, c := range cs {
		rows[i].Timestamp = protocol.FormatTime(c.OpenTime)
		if c.HasOI {
			v := c.OIValue
			rows[i].OpenInterestValue = &v
		}
	}
	writeJSON(w, map[string]any{"symbol": q.symbol, "interval": q.interval, "data": rows})
}

func (in *Inputs) load(w http.ResponseWriter, r *http.Request) (rangeQuery, []heatmap.Candle, bool) {
	q, err := in.parseRange(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return q, nil, false
	}
	cs, err := in.store.Candles(r.Context(), q.symbol, q.interval, q.start, q.end)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return q, nil, false
	}
	return q, cs, true
}

func (in *Inputs) dateRange(w http.ResponseWriter, r *http.Request) {
	sym := normSymbol(r.URL.Query().Get("symbol"))
	if err := in.checkSymbol(sym); err != nil {
		badRequest(w, err)
		return
	}
	first, last, n, err := in.store.DateRange(r.Context(), sym, in.base)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := map[string]any{"symbol": sym, "interval": in.base, "candles": n, "first": nil, "last": nil}
	if n > 0 {
		out["first"], out["last"] = protocol.FormatTime(first), protocol.FormatTime(last)
	}
	writeJSON(w, out)
}

type liquidationsQuery struct {
	symbol             string
	start, end         time.Time
	minNotional        float64
	startName, endName string // the spelling the request used, for messages
}

// parseLiquidations reads symbol, from/to (or start_time/end_time, the other
// input endpoints' names; default: the last 24 hours) and min_notional
// (default 0). Unlike candles, liquidations have no interval: the range is
// taken as given, [from, to).
func (in *Inputs) parseLiquidations(v url.Values) (liquidationsQuery, error) {
	for k := range v {
		if !slices.Contains([]string{"symbol", "from", "to", "start_time", "end_time", "min_notional"}, k) {
			return liquidationsQuery{}, &ParamError{k, "unknown parameter; accepted: symbol, from, to (or start_time, end_time), min_notional"}
		}
	}
	q := liquidationsQuery{startName: "from", endName: "to"}
	var err error
	if q.symbol, err = ParseSymbol(v.Get("symbol"), in.symbols); err != nil {
		return q, err
	}
	for _, names := range [...][2]string{{"from", "start_time"}, {"to", "end_time"}} {
		if v.Has(names[0]) && v.Has(names[1]) {
			return q, &ParamError{names[1], fmt.Sprintf("give %s or %s, not both: they are the same parameter", names[0], names[1])}
		}
	}
	if v.Has("start_time") {
		q.startName = "start_time"
	}
	if v.Has("end_time") {
		q.endName = "end_time"
	}
	q.end, q.start = in.now().UTC(), in.now().UTC().Add(-24*time.Hour)
	if s := v.Get(q.startName); s != "" {
		if q.start, err = parseTime(s); err != nil {
			return q, &ParamError{q.startName, err.Error()}
		}
	}
	if s := v.Get(q.endName); s != "" {
		if q.end, err = parseTime(s); err != nil {
			return q, &ParamError{q.endName, err.Error()}
		}
	}
	if !q.end.After(q.start) {
		return q, &ParamError{q.endName, "must be after " + q.startName}
	}
	if s := v.Get("min_notional"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f >= 0) || math.IsInf(f, 1) {
			return q, &ParamError{"min_notional", fmt.Sprintf("want a number of USDT, 0 or more, got %q", s)}
		}
		q.minNotional = f
	}
	return q, nil
}

func (in *Inputs) liquidations(w http.ResponseWriter, r *http.Request) {
	q, err := in.parseLiquidations(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return
	}
	// One row past the cap tells a full answer from a cut one: like a
	// candle range over the cap, a cut one is refused rather than served
	// short, since a client summing it would be silently wrong.
	ls, err := in.store.Liquidations(r.Context(), store.LiquidationQuery{
		Symbol: q.symbol, From: q.start, To: q.end, MinNotional: q.minNotional, Limit: in.maxRows + 1,
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if len(ls) > in.maxRows {
		badRequest(w, &ParamError{q.startName, fmt.Sprintf("the range holds more than %d liquidations of at least %g USDT; narrow it or raise min_notional", in.maxRows, q.minNotional)})
		return
	}
	// The wire shape of a liquidation is the snapshot frame's: one definition.
	rows := make([]protocol.Liquidation, len(ls))
	for i, l := range ls {
		rows[i] = protocol.Liquidation{Time: protocol.FormatTime(l.Time), Side: l.Side, Price: l.Price, Quantity: l.Quantity, Notional: l.Notional}
	}
	writeJSON(w, map[string]any{"symbol": q.symbol, "data": rows})
}

func badRequest(w http.ResponseWriter, err error) {
	var pe *ParamError
	if errors.As(err, &pe) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
