// Command floor is the bare gws broadcaster connmem measures the gateway
// against: the least a process can hold per connection and spend per frame
// while doing the gateway's job with the same library. It upgrades
// /ws/heatmap with the gateway's gws options, subscribes each client to the
// symbols its subscribe message names, reads the same Redis channels as a
// gateway and writes each frame to its subscribers through one
// gws.Broadcaster per frame. No limits, no pacing, no queues, no metrics.
//
//	floor -listen 127.0.0.1:8090 -redis_url redis://127.0.0.1:6379/0 [-debug_listen 127.0.0.1:6061]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"

	"github.com/liqstream/liqstream/pkg/bus"
)

type hub struct {
	mu   sync.RWMutex
	subs map[string]map[*gws.Conn]struct{} // symbol -> subscribers; fixed key set
}

func (h *hub) subscribe(c *gws.Conn, symbols []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range symbols {
		if m, ok := h.subs[s]; ok {
			m[c] = struct{}{}
		}
	}
}

func (h *hub) remove(c *gws.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		delete(m, c)
	}
}

// publish is gws's broadcast example: one Broadcaster per frame, closed once
// every write is queued.
func (h *hub) publish(symbol string, payload []byte) {
	b := gws.NewBroadcaster(gws.OpcodeText, payload)
	h.mu.RLock()
	for c := range h.subs[symbol] {
		_ = b.Broadcast(c, nil)
	}
	h.mu.RUnlock()
	b.Close()
}

type handler struct {
	gws.BuiltinEventHandler
	h *hub
}

func (e *handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg struct {
		Action  string   `json:"action"`
		Symbols []string `json:"symbols"`
	}
	if json.Unmarshal(m.Bytes(), &msg) == nil && msg.Action == "subscribe" {
		e.h.subscribe(c, msg.Symbols)
	}
}

func (e *handler) OnClose(c *gws.Conn, _ error) { e.h.remove(c) }

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "HTTP listen address of /ws/heatmap and /readyz")
	redisURL := flag.String("redis_url", "redis://127.0.0.1:6379/0", "Redis the snapshotter publishes to")
	debug := flag.String("debug_listen", "", "serve net/http/pprof on this address (empty = off)")
	compression := flag.Bool("compression", true, "negotiate permessage-deflate when offered (the gateway's default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	client, err := bus.NewRedisClient(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	var symbols []string
	for symbols == nil {
		if symbols, err = bus.NewRedisSource(client, nil).Symbols(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	h := &hub{subs: map[string]map[*gws.Conn]struct{}{}}
	channels := make([]string, len(symbols))
	for i, s := range symbols {
		h.subs[s] = map[*gws.Conn]struct{}{}
		channels[i] = bus.Channel(s)
	}
	var ready atomic.Bool
	go func() {
		ps := client.Subscribe(ctx, channels...)
		defer ps.Close()
		for confirmed := 0; confirmed < len(channels); {
			if _, err := ps.Receive(ctx); err != nil {
				log.Fatalf("subscribe: %v", err)
			}
			confirmed++
		}
		ready.Store(true)
		for {
			m, err := ps.ReceiveMessage(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // go-redis resubscribes by itself
				continue
			}
			h.publish(m.Channel[len("heatmap:"):], []byte(m.Payload))
		}
	}()

	// The gateway's options (services/gateway/internal/ws.New with its defaults).
	up := gws.NewUpgrader(&handler{h: h}, &gws.ServerOption{
		ReadMaxPayloadSize: 4096,
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   5 * time.Second,
		PermessageDeflate:  gws.PermessageDeflate{Enabled: *compression, Threshold: 512},
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/heatmap", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	if *debug != "" {
		dm := http.NewServeMux()
		dm.HandleFunc("/debug/pprof/", pprof.Index)
		dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { log.Println(http.ListenAndServe(*debug, dm)) }()
	}
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Printf("floor listening on %s, symbols %v", *listen, symbols)
	if err := srv.ListenAndServe(); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
