package ws

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
	"github.com/liqstream/liqstream/services/gateway/internal/hub"
)

const wait = 5 * time.Second

func start(t *testing.T, cfg Config) (*hub.Hub, *Server, string) {
	t.Helper()
	h := hub.New([]string{"BTCUSDT", "ETHUSDT"})
	s := New(cfg, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return h, s, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) *wsclient.Client {
	t.Helper()
	c, _, err := wsclient.Dial(url, wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func defaults() Config { return Config{IdleTimeout: time.Minute, MaxFrameBytes: 4096, MaxSymbols: 10} }

func TestSubscribeGetsLatestAtOnceThenUpdates(t *testing.T) {
	h, s, url := start(t, defaults())
	h.Publish("BTCUSDT", []byte(`{"type":"snapshot","symbol":"BTCUSDT","seq":1}`))
	c := dial(t, url)
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"btcusdt"}}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Next(wait)
	if err != nil || string(f.Bytes) != `{"type":"snapshot","symbol":"BTCUSDT","seq":1}` {
		t.Fatalf("first frame %q %v: want the latest snapshot relayed byte for byte", f.Bytes, err)
	}
	h.Publish("ETHUSDT", []byte(`{"seq":"eth"}`)) // not subscribed
	h.Publish("BTCUSDT", []byte(`{"seq":2}`))
	if f, err := c.Next(wait); err != nil || string(f.Bytes) != `{"seq":2}` {
		t.Fatalf("update %q %v", f.Bytes, err)
	}
	if s.Active() != 1 {
		t.Fatalf("active %d, want 1", s.Active())
	}
}

func TestBadInputGetsErrorAndConnectionLives(t *testing.T) {
	_, _, url := start(t, defaults())
	c := dial(t, url)
	tests := []struct {
		name     string
		send     string
		wantCode string
		wantText string
	}{
		{"not json", `subscribe me`, "INVALID_MESSAGE", "not a JSON object"},
		{"unknown action", `{"action":"dance"}`, "INVALID_ACTION", `"dance"`},
		{"unknown symbol names valid ones", `{"action":"subscribe","symbols":["DOGEUSDT"]}`, "INVALID_SYMBOL", "DOGEUSDT; valid symbols: BTCUSDT, ETHUSDT"},
		{"no symbols", `{"action":"subscribe"}`, "INVALID_MESSAGE", "symbols"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.SendRaw([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			m, err := c.NextJSON(wait)
			if err != nil {
				t.Fatal(err)
			}
			if m["type"] != "error" || m["code"] != tc.wantCode || !strings.Contains(m["message"].(string), tc.wantText) {
				t.Fatalf("got %v, want error %s containing %q", m, tc.wantCode, tc.wantText)
			}
		})
	}
	// Still open and serving: a ping is answered.
	if err := c.Send(map[string]string{"action": "ping"}); err != nil {
		t.Fatal(err)
	}
	m, err := c.NextJSON(wait)
	if err != nil || m["type"] != "pong" {
		t.Fatalf("after bad input: %v %v, want pong", m, err)
	}
	if _, err := time.Parse(time.RFC3339Nano, m["timestamp"].(string)); err != nil {
		t.Fatalf("pong timestamp: %v", err)
	}
}

func TestOversizeFrameCloses(t *testing.T) {
	cfg := defaults()
	cfg.MaxFrameBytes = 256
	_, _, url := start(t, cfg)
	c := dial(t, url)
	if err := c.SendRaw([]byte(`{"action":"ping","pad":"` + strings.Repeat("x", 1000) + `"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		var ce *wsclient.CloseError
		if err := c.Err(); err == nil || !asClose(err, &ce) || ce.Code != 1009 {
			t.Fatalf("close reason %v, want 1009 (message too big)", c.Err())
		}
	case <-time.After(wait):
		t.Fatal("oversize frame did not close the connection")
	}
}

func TestIdlePeerIsClosed(t *testing.T) {
	cfg := defaults()
	cfg.IdleTimeout = 300 * time.Millisecond
	_, s, url := start(t, cfg)
	c := dial(t, url)
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("a silent peer was not closed")
	}
	deadline := time.Now().Add(wait)
	for s.Active() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("active %d after the idle close, want 0", s.Active())
		}
		time.Sleep(10 * time.Millisecond) // polling a counter the server updates asynchronously
	}
}
