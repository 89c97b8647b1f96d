package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/snapshot"
)

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSnapshotEndpoint(t *testing.T) {
	board := snapshot.NewBoard("ep")
	srv := httptest.NewServer(New(board, []string{"BTCUSDT", "ETHUSDT"}, http.NotFoundHandler(), http.NotFoundHandler()))
	defer srv.Close()
	ctx := context.Background()

	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
	}{
		{"unknown symbol names the valid ones", "/v1/snapshots/DOGEUSDT", 404, "BTCUSDT, ETHUSDT"},
		{"no frame yet", "/v1/snapshots/BTCUSDT", 503, "no snapshot of BTCUSDT yet"},
		{"bad wait", "/v1/snapshots/BTCUSDT?wait=forever", 400, "wait:"},
		{"wait too long", "/v1/snapshots/BTCUSDT?wait=1h", 400, "wait:"},
		{"symbols", "/v1/symbols", 200, `{"symbols":["BTCUSDT","ETHUSDT"]}`},
		{"healthz", "/healthz", 200, "ok"},
		{"readyz before data", "/readyz", 503, "waiting_for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path, nil)
			if resp.StatusCode != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
		})
	}

	board.Publish(ctx, snapshot.Frame{Symbol: "BTCUSDT", Seq: 1, Bytes: []byte(`{"seq":1}`)})
	resp, body := get(t, srv.URL+"/v1/snapshots/btcusdt", nil)
	if resp.StatusCode != 200 || body != `{"seq":1}` || resp.Header.Get("ETag") != `"ep-1"` {
		t.Fatalf("got %d %q etag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	// Unchanged within the wait: 304.
	resp, _ = get(t, srv.URL+"/v1/snapshots/BTCUSDT?wait=50ms", map[string]string{"If-None-Match": `"ep-1"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged long poll: %d, want 304", resp.StatusCode)
	}
	// A long poll returns as soon as a new frame is published.
	type result struct {
		code int
		body string
	}
	done := make(chan result)
	go func() {
		resp, body := get(t, srv.URL+"/v1/snapshots/BTCUSDT?wait=25s", map[string]string{"If-None-Match": `"ep-1"`})
		done <- result{resp.StatusCode, body}
	}()
	// The poller may not be parked yet; publishing either wakes it or is seen on arrival.
	board.Publish(ctx, snapshot.Frame{Symbol: "BTCUSDT", Seq: 2, Bytes: []byte(`{"seq":2}`)})
	select {
	case r := <-done:
		if r.code != 200 || r.body != `{"seq":2}` {
			t.Fatalf("long poll got %d %q", r.code, r.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not return after a publish")
	}
	board.Publish(ctx, snapshot.Frame{Symbol: "ETHUSDT", Seq: 1, Bytes: []byte(`{}`)})
	if resp, _ := get(t, srv.URL+"/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz with every symbol served: %d", resp.StatusCode)
	}
}

// Data warnings are listed in /readyz and /v1/symbols and served by symbol at
// /data/gaps; they do not make /readyz fail.
func TestWarnings(t *testing.T) {
	board := snapshot.NewBoard("w")
	since := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	warn := []Warning{{Symbol: "BTCUSDT", Table: "open_interest", Kind: "no_open_interest", Since: since,
		Message: "BTCUSDT has candles but no open-interest data"}}
	srv := httptest.NewServer(New(board, []string{"BTCUSDT", "ETHUSDT"}, http.NotFoundHandler(), http.NotFoundHandler()).
		WithWarnings(func() []Warning { return warn }))
	defer srv.Close()
	ctx := context.Background()
	board.Publish(ctx, snapshot.Frame{Symbol: "BTCUSDT", Seq: 1, Bytes: []byte(`{}`)})
	board.Publish(ctx, snapshot.Frame{Symbol: "ETHUSDT", Seq: 1, Bytes: []byte(`{}`)})

	for _, tc := range []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"readyz stays ready and lists the warning", "/readyz", 200, `{"status":"ready","warnings":["BTCUSDT has candles but no open-interest data"]}`},
		{"symbols carry the warning", "/v1/symbols", 200, `{"symbols":["BTCUSDT","ETHUSDT"],"warnings":["BTCUSDT has candles but no open-interest data"]}`},
		{"gaps of the symbol", "/data/gaps?symbol=btcusdt", 200, `{"gaps":[{"symbol":"BTCUSDT","table":"open_interest","kind":"no_open_interest","since":"2026-11-24T10:00:00Z","message":"BTCUSDT has candles but no open-interest data"}]}`},
		{"gaps of every symbol", "/data/gaps", 200, `"symbol":"BTCUSDT"`},
		{"no gaps of another symbol", "/data/gaps?symbol=ETHUSDT", 200, `{"gaps":[]}`},
		{"unknown symbol", "/data/gaps?symbol=DOGEUSDT", 404, "BTCUSDT, ETHUSDT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path, nil)
			if resp.StatusCode != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
		})
	}
	warn = nil
	if _, body := get(t, srv.URL+"/readyz", nil); !strings.Contains(body, `"warnings":[]`) {
		t.Fatalf("readyz without warnings: %q, want an empty list", body)
	}
}

// Gateways ask with ?delta=1 and get the delta and the frame, one per line;
// everyone else, and any frame without a delta, gets the frame alone.
func TestSnapshotEndpointDeltaPair(t *testing.T) {
	board := snapshot.NewBoard("ep")
	srv := httptest.NewServer(New(board, []string{"BTCUSDT"}, http.NotFoundHandler(), http.NotFoundHandler()))
	defer srv.Close()
	board.Publish(context.Background(), snapshot.Frame{Symbol: "BTCUSDT", Seq: 1, Bytes: []byte(`{"seq":1}`)})
	if resp, body := get(t, srv.URL+"/v1/snapshots/BTCUSDT?delta=1", nil); resp.Header.Get("Content-Type") != "application/json" || body != `{"seq":1}` {
		t.Fatalf("frame without delta: %s %q", resp.Header.Get("Content-Type"), body)
	}
	board.Publish(context.Background(), snapshot.Frame{Symbol: "BTCUSDT", Seq: 2, Bytes: []byte(`{"seq":2}`), Delta: []byte(`{"seq":2,"base_seq":1}`)})
	if resp, body := get(t, srv.URL+"/v1/snapshots/BTCUSDT?delta=1", nil); resp.Header.Get("Content-Type") != "application/x-ndjson" || body != "{\"seq\":2,\"base_seq\":1}\n{\"seq\":2}\n" {
		t.Fatalf("frame with delta: %s %q", resp.Header.Get("Content-Type"), body)
	}
	if resp, body := get(t, srv.URL+"/v1/snapshots/BTCUSDT", nil); resp.Header.Get("Content-Type") != "application/json" || body != `{"seq":2}` {
		t.Fatalf("without delta=1: %s %q", resp.Header.Get("Content-Type"), body)
	}
}
