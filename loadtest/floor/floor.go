// Package floor is the bare gws broadcaster every load run measures the
// gateway against: the least a process can hold per connection and spend per frame
// while doing the gateway's job with the same library. It upgrades
// /ws/heatmap with the gateway's gws options, subscribes each client to the
// symbols its subscribe message names, reads the same Redis channels as a
// gateway and writes each frame to its subscribers through one
// gws.Broadcaster per frame. No limits, no pacing, no queues, no metrics.
//
// Run it with loadtest/cmd/floor.
package floor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
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

// Options configure a floor server.
type Options struct {
	Listen      string // HTTP address of /ws/heatmap and /readyz
	RedisURL    string // where the frames are published
	DebugListen string // net/http/pprof; empty = off
	Compression bool   // negotiate permessage-deflate when offered (the gateway's default)
}

// Run serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	client, err := bus.NewRedisClient(o.RedisURL)
	if err != nil {
		return err
	}
	defer client.Close()
	var symbols []string
	for symbols == nil {
		if symbols, err = bus.NewRedisSource(client, nil).Symbols(ctx); err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	h := &hub{subs: map[string]map[*gws.Conn]struct{}{}}
	channels := make([]string, len(symbols))
	for i, s := range symbols {
		h.subs[s] = map[*gws.Conn]struct{}{}
		channels[i] = bus.Channel(s)
	}
	var ready atomic.Bool
	subErr := make(chan error, 1)
	go func() {
		ps := client.Subscribe(ctx, channels...)
		defer ps.Close()
		for confirmed := 0; confirmed < len(channels); confirmed++ {
			if _, err := ps.Receive(ctx); err != nil {
				subErr <- fmt.Errorf("subscribe %v: %w", channels, err)
				return
			}
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
		PermessageDeflate:  gws.PermessageDeflate{Enabled: o.Compression, Threshold: 512},
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
	if o.DebugListen != "" {
		dm := http.NewServeMux()
		dm.HandleFunc("/debug/pprof/", pprof.Index)
		dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dl, err := net.Listen("tcp", o.DebugListen)
		if err != nil {
			return fmt.Errorf("debug listen %s: %w", o.DebugListen, err)
		}
		ds := &http.Server{Handler: dm, ReadHeaderTimeout: 10 * time.Second}
		go ds.Serve(dl)
		defer ds.Close()
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("floor listening on %s, symbols %v", o.Listen, symbols)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		srv.Close()
		return nil
	case err := <-subErr:
		srv.Close()
		return err
	case err := <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
