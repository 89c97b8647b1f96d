package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/services/gateway/internal/conf"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/ws"
)

func server(t *testing.T, wsEnabled bool) (*hub.Hub, *httptest.Server) {
	t.Helper()
	cfg := conf.Default()
	cfg.WS.Enabled = wsEnabled
	h := hub.New([]string{"BTCUSDT", "ETHUSDT"})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wss := ws.New(ws.Config{IdleTimeout: cfg.WS.IdleTimeout, MaxFrameBytes: cfg.WS.MaxFrameBytes, MaxSymbols: cfg.WS.MaxSymbols}, h, log)
	srv := httptest.NewServer(Routes(cfg, h, wss))
	t.Cleanup(srv.Close)
	return h, srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	h, srv := server(t, true)
	tests := []struct {
		name, path string
		code       int
		want       string
	}{
		{"page", "/", 200, "liqstream"},
		{"not ready without frames", "/readyz", 503, `"waiting_for":["BTCUSDT","ETHUSDT"]`},
		{"known symbol without frame", "/api/v1/snapshot/BTCUSDT", 503, "no snapshot of BTCUSDT yet"},
		{"unknown symbol", "/api/v1/snapshot/XRPUSDT", 404, `unknown symbol \"XRPUSDT\"; valid symbols: BTCUSDT, ETHUSDT`},
		{"plain GET on the socket path is refused by the upgrader", "/ws/heatmap", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv.URL+tc.path)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	h.Publish("BTCUSDT", []byte(`{"type":"snapshot","symbol":"BTCUSDT"}`))
	h.Publish("ETHUSDT", []byte(`{"type":"snapshot","symbol":"ETHUSDT"}`))
	if code, body := get(t, srv.URL+"/api/v1/snapshot/btcusdt"); code != 200 || body != `{"type":"snapshot","symbol":"BTCUSDT"}` {
		t.Fatalf("snapshot: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz with frames: %d", code)
	}
}

func TestWebSocketDisabledAnswers503(t *testing.T) {
	_, srv := server(t, false)
	code, body := get(t, srv.URL+"/ws/heatmap")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "ws.enabled=false") {
		t.Fatalf("got %d %q, want 503 naming ws.enabled", code, body)
	}
}
