// Package api is the snapshotter's HTTP face: the latest frame of each symbol
// (long-polled by gateways in the embedded default and in Redis fallback), the
// symbol list, and health.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/services/snapshotter/internal/snapshot"
)

// MaxWait bounds a long poll so proxies with 60 s idle timeouts never cut one.
const MaxWait = 30 * time.Second

// Registrar mounts a group of endpoints.
type Registrar interface{ Register(*http.ServeMux) }

// Handler serves the snapshotter's endpoints.
type Handler struct {
	board    *snapshot.Board
	symbols  []string
	mux      *http.ServeMux
	warnings func() []Warning // nil: no data check
}

// Warning is a stretch of a symbol's data its heatmap cannot be built from,
// e.g. candles without open interest: the map of such a symbol is empty or
// wrong although the process is healthy.
type Warning struct {
	Symbol  string    `json:"symbol"`
	Table   string    `json:"table"` // whose rows are missing: open_interest
	Kind    string    `json:"kind"`  // no_open_interest, open_interest_stale, open_interest_gap
	Since   time.Time `json:"since"`
	Message string    `json:"message"` // a sentence for people
}

// WithWarnings adds the data warnings warn returns (those of the last data
// check) to /readyz and /v1/symbols, as a "warnings" list of sentences, and
// serves them by symbol at GET /data/gaps. They do not make /readyz fail: a
// gap in the data is not something a restart or another replica fixes.
func (h *Handler) WithWarnings(warn func() []Warning) *Handler {
	h.warnings = warn
	h.mux.HandleFunc("GET /data/gaps", h.gaps)
	return h
}

// sentences returns the messages of the current warnings, [] when none;
// nil without a data check.
func (h *Handler) sentences() []string {
	if h.warnings == nil {
		return nil
	}
	out := []string{}
	for _, w := range h.warnings() {
		out = append(out, w.Message)
	}
	return out
}

// gaps answers {"gaps": [...]}: the warnings of ?symbol= or, without it,
// of every symbol.
func (h *Handler) gaps(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(strings.TrimSpace(r.URL.Query().Get("symbol")))
	if sym != "" && !slices.Contains(h.symbols, sym) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown symbol %q; this snapshotter serves %s", sym, strings.Join(h.symbols, ", ")))
		return
	}
	out := []Warning{}
	for _, g := range h.warnings() {
		if sym == "" || g.Symbol == sym {
			out = append(out, g)
		}
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, map[string][]Warning{"gaps": out})
}

// New returns the handler for the given symbols; history serves the
// time-series endpoint.
func New(board *snapshot.Board, symbols []string, history, metrics http.Handler, more ...Registrar) *Handler {
	h := &Handler{board: board, symbols: symbols, mux: http.NewServeMux()}
	for _, m := range more {
		m.Register(h.mux)
	}
	h.mux.Handle("GET /metrics", metrics)
	h.mux.Handle("GET /liquidations/heatmap-timeseries", history)
	h.mux.HandleFunc("GET /v1/snapshots/{symbol}", h.snapshot)
	h.mux.HandleFunc("GET /v1/symbols", h.listSymbols)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.ready)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// snapshot answers with the newest frame. With If-None-Match and ?wait=D it
// holds the request until a different frame exists or D passes (then 304).
func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(r.PathValue("symbol"))
	if !slices.Contains(h.symbols, sym) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown symbol %q; this snapshotter serves %s", sym, strings.Join(h.symbols, ", ")))
		return
	}
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > MaxWait {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("wait: want a duration between 0s and %s, got %q", MaxWait, s))
			return
		}
		wait = d
	}
	etag := r.Header.Get("If-None-Match")
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	f, ok := h.board.Wait(ctx, sym, etag)
	if !ok {
		if cur, have := h.board.Latest(sym); have {
			w.Header().Set("ETag", h.board.ETag(cur))
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no snapshot of %s yet: the snapshotter is still computing", sym))
		return
	}
	w.Header().Set("ETag", h.board.ETag(f))
	w.Header().Set("Cache-Control", "no-cache")
	// ?delta=1 (gateways) also gets the delta from the frame before: both,
	// one per line. Without it, or without a delta, the frame as it is.
	if r.URL.Query().Get("delta") == "1" && f.Delta != nil {
		w.Header().Set("Content-Type", bus.NDJSON)
		w.Write(bus.JoinPair(f.Delta, f.Bytes))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(f.Bytes)
}

func (h *Handler) listSymbols(w http.ResponseWriter, _ *http.Request) {
	if warn := h.sentences(); warn != nil {
		writeJSON(w, http.StatusOK, map[string][]string{"symbols": h.symbols, "warnings": warn})
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"symbols": h.symbols})
}

// ready is true once every symbol has a frame to serve. Data warnings are
// listed but do not change the verdict: a symbol whose data has a gap still
// has a frame (an empty map), and no restart would fill the gap.
func (h *Handler) ready(w http.ResponseWriter, _ *http.Request) {
	var missing []string
	for _, s := range h.symbols {
		if _, ok := h.board.Latest(s); !ok {
			missing = append(missing, s)
		}
	}
	body := map[string]any{"status": "ready"}
	if warn := h.sentences(); warn != nil {
		body["warnings"] = warn
	}
	if len(missing) > 0 {
		body["status"], body["waiting_for"] = "starting", missing
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
