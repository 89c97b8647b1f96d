package app

// Regression tests for the review of issue 10; each is named after its item.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
)

// fakeSnapshotter answers the two calls a gateway makes of the snapshotter:
// the symbol list and the long-poll of each symbol's latest frame.
type fakeSnapshotter struct {
	mu      sync.Mutex
	symbols []string
}

func (f *fakeSnapshotter) set(syms ...string) {
	f.mu.Lock()
	f.symbols = syms
	f.mu.Unlock()
}

func (f *fakeSnapshotter) serves(sym string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.symbols), slices.Contains(f.symbols, sym)
}

func (f *fakeSnapshotter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/symbols" {
		syms, _ := f.serves("")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"symbols":["%s"]}`, strings.Join(syms, `","`))
		return
	}
	sym := strings.TrimPrefix(r.URL.Path, "/v1/snapshots/")
	if _, ok := f.serves(sym); !ok {
		http.Error(w, "unknown symbol", http.StatusNotFound)
		return
	}
	etag := `"` + sym + `-1"`
	if r.Header.Get("If-None-Match") == etag {
		// Nothing new: answer as a long poll that timed out, soon.
		select {
		case <-r.Context().Done():
		case <-time.After(50 * time.Millisecond):
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write(protocol.SnapshotFrame(sym, 1, time.Now(), []byte(`{"levels":[]}`)))
}

// runGateway runs a whole gateway against the snapshotter at url.
func runGateway(t *testing.T, url string, edit func(*conf.Config)) string {
	t.Helper()
	cfg := conf.Default()
	cfg.SnapshotterURL = url
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	})
	base := "http://" + cfg.Listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Until the gateway knows which symbols exist it cannot tell a bad symbol
// from a good one, so it must not answer as if every symbol were unknown.
func TestReview6NotReadyUntilSymbolsAreKnown(t *testing.T) {
	_, srv := serverWithout(t)
	code, body := get(t, srv.URL+"/api/v1/snapshot/BTCUSDT")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "symbol list") {
		t.Fatalf("snapshot before the symbol list: %d %q, want 503 saying the symbol list is not known yet", code, body)
	}
	c, resp, err := wsclient.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/heatmap", wsclient.Options{})
	if err == nil {
		c.Close()
		t.Fatal("WebSocket upgrade before the symbol list: admitted, want 503")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket upgrade before the symbol list: %v %v, want 503", resp, err)
	}
}

// A symbol the snapshotter stops serving is noticed by a running gateway,
// its subscribers are told, and a symbol it adds can be subscribed to.
func TestReview7SymbolListIsFollowedLive(t *testing.T) {
	snap := &fakeSnapshotter{}
	snap.set("BTCUSDT", "ETHUSDT")
	up := httptest.NewServer(snap)
	defer up.Close()
	base := runGateway(t, up.URL, func(c *conf.Config) { c.SymbolsRefresh = 50 * time.Millisecond })
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws/heatmap"

	var c *wsclient.Client
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		cc, _, err := wsclient.Dial(wsURL, wsclient.Options{})
		if err == nil {
			c = cc
		} else if time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		} else {
			time.Sleep(20 * time.Millisecond) // the gateway is still reading the symbol list
		}
	}
	defer c.Close()
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"ETHUSDT"}}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.NextOfType("snapshot", 10*time.Second); err != nil || m["symbol"] != "ETHUSDT" {
		t.Fatalf("first snapshot: %v %v", m, err)
	}

	snap.set("BTCUSDT", "SOLUSDT")
	m, err := c.NextOfType("error", 10*time.Second)
	if err != nil {
		t.Fatalf("the subscriber of a removed symbol was not told: %v", err)
	}
	syms, _ := m["symbols"].([]any)
	if m["code"] != "INVALID_SYMBOL" || len(syms) != 1 || syms[0] != "ETHUSDT" || !strings.Contains(m["message"].(string), "no longer served") {
		t.Fatalf("removal notice %v, want INVALID_SYMBOL for ETHUSDT saying it is no longer served", m)
	}
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"SOLUSDT"}}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.NextOfType("snapshot", 10*time.Second); err != nil || m["symbol"] != "SOLUSDT" {
		t.Fatalf("the added symbol: %v %v", m, err)
	}
}
