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
)

func server(t *testing.T, wsEnabled bool) (*hub.Hub, *httptest.Server) {
	t.Helper()
	return serverWith(t, wsEnabled, "http://127.0.0.1:1")
}

func serverWith(t *testing.T, wsEnabled bool, snapshotterURL string) (*hub.Hub, *httptest.Server) {
	t.Helper()
	cfg := conf.Default()
	cfg.SnapshotterURL = snapshotterURL
	cfg.WSEnabled = wsEnabled
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	g.hub.SetSymbols([]string{"BTCUSDT", "ETHUSDT"})
	srv := httptest.NewServer(g.Routes())
	t.Cleanup(srv.Close)
	return g.hub, srv
}

// serverWithout is a gateway that has not yet learnt its symbol list.
func serverWithout(t *testing.T) (*hub.Hub, *httptest.Server) {
	t.Helper()
	g, err := New(conf.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Routes())
	t.Cleanup(srv.Close)
	return g.hub, srv
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
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "ws_enabled=false") {
		t.Fatalf("got %d %q, want 503 naming ws.enabled", code, body)
	}
}

func TestHistoryIsProxiedToTheSnapshotter(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cache", "hit")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, r.URL.Path+"?"+r.URL.RawQuery)
	}))
	_, srv := serverWith(t, true, up.URL)
	resp, err := http.Get(srv.URL + "/liquidations/heatmap-timeseries?symbol=BTCUSDT&interval=1h")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(b) != "/liquidations/heatmap-timeseries?symbol=BTCUSDT&interval=1h" || resp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("proxied answer %d %q %v: status, body and headers must pass through", resp.StatusCode, b, resp.Header)
	}
	up.Close()
	code, body := get(t, srv.URL+"/liquidations/heatmap-timeseries?symbol=BTCUSDT")
	if code != http.StatusBadGateway || !strings.Contains(body, "snapshotter, which is unreachable") {
		t.Fatalf("with the snapshotter down: %d %q", code, body)
	}
}

// The page asks for a symbol's data gaps, its realised liquidations and the
// models' accuracy through the gateway, which relays the snapshotter's
// answer as it is.
func TestDataGapsAreProxiedToTheSnapshotter(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+"?"+r.URL.RawQuery)
	}))
	t.Cleanup(up.Close)
	_, srv := serverWith(t, true, up.URL)
	for _, path := range []string{
		"/data/gaps?symbol=BTCUSDT",
		"/data/liquidations?symbol=BTCUSDT&from=2026-11-30T00:00:00Z&min_notional=1000",
		"/data/model-accuracy?symbol=BTCUSDT&model=binance&from=2026-11-24&to=2026-12-01",
	} {
		if code, body := get(t, srv.URL+path); code != http.StatusOK || body != path {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}
}

func TestAPIIsRateLimitedPerClientAddress(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "{}")
	}))
	t.Cleanup(up.Close)
	cfg := conf.Default()
	cfg.SnapshotterURL = up.URL
	cfg.API.RatePerAddress, cfg.API.Burst = 0.1, 2
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Routes())
	t.Cleanup(srv.Close)

	for i, path := range []string{"/api/v1/symbols", "/data/gaps?symbol=BTCUSDT"} {
		if code, body := get(t, srv.URL+path); code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, code, body)
		}
	}
	// Every API path shares the client's bucket.
	for _, path := range []string{"/liquidations/heatmap-timeseries?symbol=BTCUSDT", "/api/v1/snapshot/BTCUSDT", "/prices/klines"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" || !strings.Contains(string(b), "too many requests from 127.0.0.1") {
			t.Fatalf("%s past the burst: %d Retry-After %q %s", path, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	// The page, probes and the socket are not the API: never limited.
	for _, path := range []string{"/", "/liqstream.js", "/healthz", "/readyz", "/metrics"} {
		if code, body := get(t, srv.URL+path); code == http.StatusTooManyRequests {
			t.Fatalf("%s was rate-limited: %s", path, body)
		}
	}
	if _, body := get(t, srv.URL+"/metrics"); !strings.Contains(body, "gateway_api_rate_limited_total 3") {
		t.Fatalf("metrics lack gateway_api_rate_limited_total 3")
	}
}

func TestResponsesAreCompressedOnce(t *testing.T) {
	// The snapshotter compresses history itself; the gateway must relay
	// that body as it is, not compress it again.
	pre := []byte("\x1f\x8b pretend gzip")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("the snapshotter was asked with Accept-Encoding %q, want the client's", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(pre, strings.Repeat(" ", 4096)...))
	}))
	t.Cleanup(up.Close)
	_, srv := serverWith(t, true, up.URL)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fetch := func(path, enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, plain := fetch("/liqstream.js", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || len(plain) < 4096 {
		t.Fatalf("plain page script: %d %v, %d bytes", resp.StatusCode, resp.Header, len(plain))
	}
	resp, zipped := fetch("/liqstream.js", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || len(zipped)*3 > len(plain) {
		t.Fatalf("gzip page script: %v, %d bytes for %d plain", resp.Header, len(zipped), len(plain))
	}
	resp, relayed := fetch("/liquidations/heatmap-timeseries?symbol=BTCUSDT", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(string(relayed), string(pre)) {
		t.Fatalf("relayed history: %v %.40q, want the snapshotter's body untouched", resp.Header, relayed)
	}
}
