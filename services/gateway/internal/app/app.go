// Package app assembles the gateway: snapshot source, hub, WebSocket
// endpoint, page and HTTP API, with one lifecycle including the drain.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/serve"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
	"github.com/liqstream/liqstream/services/gateway/internal/ratelimit"
	"github.com/liqstream/liqstream/services/gateway/internal/rebalance"
	"github.com/liqstream/liqstream/services/gateway/internal/ws"
	"github.com/liqstream/liqstream/services/gateway/web"
)

// Gateway is the assembled service.
type Gateway struct {
	cfg      conf.Config
	log      *slog.Logger
	hub      *hub.Hub
	ws       *ws.Server
	metrics  *metrics.Metrics
	src      *bus.HTTPSource
	redis    *bus.RedisSource // nil without redis_url
	failover *bus.Failover
	order    *bus.Ordered          // without Redis: one frame source, restarted per symbol list
	rebal    *rebalance.Rebalancer // nil unless rebalance.enabled
	limit    *ratelimit.Limiter    // nil when api.rate_per_address is 0
	draining atomic.Bool
}

// New builds the gateway from cfg.
func New(cfg conf.Config, log *slog.Logger) (*Gateway, error) {
	src, err := bus.NewHTTPSource(cfg.SnapshotterURL, log)
	if err != nil {
		return nil, fmt.Errorf("snapshotter_url: %w", err)
	}
	m := metrics.New()
	m.MaxConnections.Set(float64(cfg.WS.MaxConns))
	h := hub.New(nil)
	if cfg.InstanceID == "" {
		cfg.InstanceID = logging.DefaultInstance()
	}
	// log carries instance: main builds it from cfg.InstanceID (logging.New).
	wss, err := ws.New(cfg.WS, h, m, log, http.Header{"X-Liqstream-Gateway": {cfg.InstanceID}})
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, hub: h, ws: wss, metrics: m, src: src, order: bus.NewOrdered()}
	if cfg.RedisURL != "" {
		client, err := bus.NewRedisClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		g.redis = bus.NewRedisSource(client, log)
		g.failover = bus.NewFailover(g.redis, src, log)
		m.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gateway_redis_up", Help: "1 while the Redis subscription is complete."},
				func() float64 { return b2f(g.failover.RedisUp()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gateway_fallback_active", Help: "1 while frames come from the snapshotter over HTTP because Redis is down."},
				func() float64 { return b2f(g.failover.Fallback()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gateway_redis_reconnects_total", Help: "Redis subscriptions restored after a loss."},
				func() float64 { return float64(g.redis.Reconnects.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gateway_fallback_switches_total", Help: "Times the gateway fell back to HTTP."},
				func() float64 { return float64(g.failover.Switches.Load()) }),
		)
	}
	if cfg.API.RatePerAddress > 0 {
		g.limit = ratelimit.New(cfg.API.RatePerAddress, cfg.API.Burst, time.Now)
		m.Registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gateway_api_rate_limited_total", Help: "API requests answered 429 because their client address was over api.rate_per_address."},
				func() float64 { return float64(g.limit.Refused.Load()) }),
		)
	}
	if cfg.Rebalance.Enabled {
		// A client of its own: the subscription's connection must not wait
		// behind a registry round, nor the other way round.
		client, err := bus.NewRedisClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		g.rebal = rebalance.New(cfg.Rebalance, cfg.InstanceID, rebalance.NewRedisRegistry(client), wss, g.serving, log)
		m.Registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gateway_rebalance_shed_total", Help: "Clients closed with 1012 to rebalance the fleet."},
				func() float64 { return float64(g.rebal.Shed.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gateway_rebalance_peers", Help: "Other gateways counted in the last rebalancing round."},
				func() float64 { return float64(g.rebal.Peers.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gateway_rebalance_fleet_mean_connections", Help: "Mean WebSocket connections per gateway of the fleet in the last round."},
				func() float64 { return float64(g.rebal.Mean.Load()) }),
		)
	}
	return g, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// listSymbols asks Redis (when configured), then the snapshotter, for the
// symbol list, once.
func (g *Gateway) listSymbols(ctx context.Context) ([]string, error) {
	if g.redis != nil {
		if syms, err := g.redis.Symbols(ctx); err == nil {
			return syms, nil
		}
	}
	return g.src.Symbols(ctx)
}

// symbols asks for the symbol list until one source answers, so a gateway
// may start before either.
func (g *Gateway) symbols(ctx context.Context) ([]string, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		syms, err := g.listSymbols(ctx)
		if err == nil {
			return syms, nil
		}
		if attempt == 1 || attempt%20 == 0 {
			g.log.Warn("waiting for the symbol list from redis or the snapshotter", logging.KeyErr, err, "attempt", attempt)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// follow serves the snapshotter's symbols until ctx ends, re-reading the list
// every symbols_refresh: on a change the frame source restarts with the new
// list and the subscribers of a removed symbol are told.
func (g *Gateway) follow(ctx context.Context) error {
	syms, err := g.symbols(ctx)
	if err != nil {
		return nil // only a cancelled context ends the wait
	}
	for {
		// The old source is stopped before the list changes, so no frame of
		// a new symbol arrives before the hub serves it.
		g.ws.SymbolsRemoved(g.hub.SetSymbols(syms))
		g.metrics.SetSymbols(syms)
		g.log.Info("serving symbols", "symbols", syms, "redis", g.redis != nil)
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if g.failover != nil {
				g.failover.Run(sctx, syms, g.publish)
				return
			}
			g.src.Run(sctx, syms, func(f bus.Frame) { g.order.Pass(f, g.publish) })
		}()
		next, err := g.watchSymbols(ctx, syms)
		stop()
		<-done
		if err != nil {
			return nil
		}
		syms = next
	}
}

// watchSymbols returns the symbol list once it differs from current. A failed
// read keeps the current list: the sources may be down, the symbols are not gone.
func (g *Gateway) watchSymbols(ctx context.Context, current []string) ([]string, error) {
	t := time.NewTicker(g.cfg.SymbolsRefresh)
	defer t.Stop()
	want := sortedSet(current)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		syms, err := g.listSymbols(ctx)
		if err != nil {
			g.log.Debug("symbol list refresh failed; keeping the current list", logging.KeyErr, err)
			continue
		}
		if !slices.Equal(sortedSet(syms), want) {
			g.log.Info("symbol list changed", "from", current, "to", syms)
			return syms, nil
		}
	}
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// Run serves until ctx ends, then drains: /readyz turns false, upgrades are
// refused, clients are closed with 1012, and the process returns once they
// are gone or drain_timeout passes.
func (g *Gateway) Run(ctx context.Context) error {
	eg, gctx := errgroup.WithContext(ctx)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	eg.Go(func() error {
		<-gctx.Done()
		g.draining.Store(true)
		dctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout)
		defer cancel()
		n, start := g.ws.Active(), time.Now()
		if err := g.ws.Drain(dctx); err != nil {
			g.log.Warn("drain incomplete", logging.KeyErr, err, logging.DurationMS(time.Since(start)))
		} else {
			g.log.Info("drained", "connections", n, logging.DurationMS(time.Since(start)))
		}
		stopRun()
		return nil
	})
	eg.Go(func() error { return g.follow(runCtx) })
	if g.rebal != nil {
		// On gctx, not runCtx: a draining gateway leaves the registry at
		// once, so its peers stop counting the clients it is letting go.
		eg.Go(func() error { return g.rebal.Run(gctx) })
	}
	eg.Go(func() error { return g.ws.Run(runCtx) })
	eg.Go(func() error {
		g.runSummary(runCtx, newSummary(g.metrics, time.Now), g.cfg.LogSummary)
		return nil
	})
	eg.Go(func() error { return serve.HTTP(runCtx, g.cfg.Listen, g.Routes(), 5*time.Second, g.log) })
	if g.cfg.DebugListen != "" {
		eg.Go(func() error { return g.serveDebug(runCtx) })
	}
	return eg.Wait()
}

// serveDebug serves net/http/pprof on debug_listen until ctx ends. It is a
// server of its own, off the public mux, and logs "debug listening" rather
// than serve.ListeningMsg: scripts read the public address from that line.
func (g *Gateway) serveDebug(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.DebugListen)
	if err != nil {
		return fmt.Errorf("debug_listen %s: %w", g.cfg.DebugListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.log.Info("debug listening", "debug_addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("debug server %s: %w", g.cfg.DebugListen, err)
	case <-ctx.Done():
	}
	return srv.Close()
}

// publish hands one frame from the bus to the hub and records how long the
// fan-out enqueue took.
func (g *Gateway) publish(f bus.Frame) {
	start := time.Now()
	g.hub.PublishDelta(f.Symbol, f.Bytes, f.Delta)
	sym := g.metrics.Symbol(f.Symbol)
	g.metrics.BroadcastDuration.WithLabelValues(sym).Observe(time.Since(start).Seconds())
	g.metrics.FrameBytes.Observe(float64(len(f.Bytes)))
	// The envelope's producer timestamp, peeked as the hub does: the
	// gateway never decodes the heatmap itself.
	stamp, _ := protocol.PeekTimestamp(f.Bytes)
	g.metrics.FrameReceived(f.Symbol, stamp)
}

// Routes is the gateway's HTTP surface.
func (g *Gateway) Routes() http.Handler {
	mux := http.NewServeMux()
	// Compressed when the client accepts it: the page's script and the
	// API's JSON shrink five to ten times. The WebSocket has its own
	// (permessage-deflate) and /metrics negotiates its own.
	gz, err := gzhttp.NewWrapper(gzhttp.MinSize(1024))
	if err != nil {
		panic(fmt.Sprintf("gzip wrapper: %v", err)) // only bad options fail
	}
	// The API is rate-limited per client address before anything is
	// compressed or relayed.
	api := func(h http.Handler) http.Handler {
		if g.limit == nil {
			return gz(h)
		}
		return g.limit.Handler(g.ws.ClientIP, gz(h))
	}
	mux.Handle("GET /", gz(http.FileServerFS(web.FS)))
	if g.cfg.WSEnabled {
		mux.Handle("GET /ws/heatmap", g.ws)
	} else {
		mux.HandleFunc("GET /ws/heatmap", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "WebSocket streaming is disabled on this server (ws_enabled=false): poll /api/v1/snapshot/{symbol}")
		})
	}
	mux.HandleFunc("GET /ws/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, g.ws.Stats())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /api/v1/snapshot/{symbol}", api(http.HandlerFunc(g.snapshot)))
	// History, the model's inputs and the gaps in them (/data/gaps, which
	// the page shows instead of an empty map), the realised liquidations and
	// the models' accuracy against them are the snapshotter's data; the
	// gateway relays.
	proxy := historyProxy(g.cfg.SnapshotterURL)
	for _, path := range []string{"/liquidations/heatmap-timeseries", "/prices/klines", "/data/open-interest", "/data/date-range", "/data/gaps",
		"/data/liquidations", "/data/model-accuracy"} {
		mux.Handle("GET "+path, api(proxy))
	}
	mux.Handle("GET /api/v1/symbols", api(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"symbols": g.hub.Symbols()})
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.ready)
	return mux
}

// snapshot is the polling fallback: the latest frame, exactly as streamed.
func (g *Gateway) snapshot(w http.ResponseWriter, r *http.Request) {
	sym := strings.ToUpper(strings.TrimSpace(r.PathValue("symbol")))
	if !g.hub.Known() {
		writeError(w, http.StatusServiceUnavailable, "server is starting: the symbol list is not known yet; retry shortly")
		return
	}
	f, ok := g.hub.Latest(sym)
	if !ok {
		syms := g.hub.Symbols()
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
}

// serving is /readyz's verdict: not draining, and a snapshot of every symbol held.
func (g *Gateway) serving() bool {
	if g.draining.Load() {
		return false
	}
	syms := g.hub.Symbols()
	for _, s := range syms {
		if _, ok := g.hub.Latest(s); !ok {
			return false
		}
	}
	return len(syms) > 0
}

// ready is true while the gateway can serve: not draining and holding a
// snapshot of every symbol.
func (g *Gateway) ready(w http.ResponseWriter, _ *http.Request) {
	if g.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	syms := g.hub.Symbols()
	missing := []string{}
	for _, s := range syms {
		if _, ok := g.hub.Latest(s); !ok {
			missing = append(missing, s)
		}
	}
	source := "snapshotter"
	if g.failover != nil {
		source = "redis"
		if g.failover.Fallback() {
			source = "snapshotter (redis down: fallback)"
		}
	}
	if len(syms) == 0 || len(missing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "starting", "symbols": syms, "waiting_for": missing, "source": source})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "symbols": syms, "source": source})
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
