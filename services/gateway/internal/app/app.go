// Package app assembles the gateway: snapshot source, hub, WebSocket
// endpoint, page and HTTP API, with one lifecycle.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/serve"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/ws"
	"github.com/liqstream/liqstream/services/gateway/web"
)

// Run serves until ctx ends. The HTTP side is up at once; the symbol list and
// frames arrive as soon as the snapshotter answers.
func Run(ctx context.Context, cfg conf.Config, log *slog.Logger) error {
	src, err := bus.NewHTTPSource(cfg.SnapshotterURL, log)
	if err != nil {
		return fmt.Errorf("snapshotter_url: %w", err)
	}
	h := hub.New(nil)
	wss := ws.New(ws.Config{IdleTimeout: cfg.WS.IdleTimeout, MaxFrameBytes: cfg.WS.MaxFrameBytes, MaxSymbols: cfg.WS.MaxSymbols}, h, log)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		syms, err := src.WaitSymbols(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		h.SetSymbols(syms)
		log.Info("serving symbols", "symbols", syms)
		return src.Run(gctx, syms, func(f bus.Frame) { h.Publish(f.Symbol, f.Bytes) })
	})
	g.Go(func() error { return serve.HTTP(gctx, cfg.Listen, Routes(cfg, h, wss), 5*time.Second, log) })
	return g.Wait()
}

// Routes is the gateway's HTTP surface.
func Routes(cfg conf.Config, h *hub.Hub, wss *ws.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(web.FS))
	if cfg.WS.Enabled {
		mux.Handle("GET /ws/heatmap", wss)
	} else {
		mux.HandleFunc("GET /ws/heatmap", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "WebSocket streaming is disabled on this server (ws.enabled=false): poll /api/v1/snapshot/{symbol}")
		})
	}
	mux.HandleFunc("GET /api/v1/snapshot/{symbol}", func(w http.ResponseWriter, r *http.Request) {
		sym := strings.ToUpper(r.PathValue("symbol"))
		f, ok := h.Latest(sym)
		if !ok {
			syms := h.Symbols()
			for _, s := range syms {
				if s == sym {
					writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no snapshot of %s yet", sym))
					return
				}
			}
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown symbol %q; valid symbols: %s", sym, strings.Join(syms, ", ")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(f)
	})
	mux.Handle("GET /liquidations/heatmap-timeseries", historyProxy(cfg.SnapshotterURL))
	mux.HandleFunc("GET /api/v1/symbols", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"symbols": h.Symbols()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		syms := h.Symbols()
		var missing []string
		for _, s := range syms {
			if _, ok := h.Latest(s); !ok {
				missing = append(missing, s)
			}
		}
		if len(syms) == 0 || len(missing) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting", "symbols": syms, "waiting_for": missing})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "symbols": syms})
	})
	return mux
}

// historyProxy forwards the time-series endpoint to the snapshotter, which
// owns the data; the gateway only relays, as it does for frames.
func historyProxy(base string) http.Handler {
	target, err := url.Parse(base)
	if err != nil {
		// conf.Validate has already checked the URL.
		panic(fmt.Sprintf("snapshotter_url %q: %v", base, err))
	}
	p := httputil.NewSingleHostReverseProxy(target)
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		writeError(w, http.StatusBadGateway, "history is served by the snapshotter, which is unreachable: "+err.Error())
	}
	return p
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
