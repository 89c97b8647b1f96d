package app

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
)

// The publish path records each frame's producer timestamp, peeked from the
// envelope, and /metrics shows it with the configured connection limit.
func TestPublishRecordsTheProducerTimestamp(t *testing.T) {
	cfg := conf.Default()
	cfg.WS.MaxConns = 1234
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	syms := []string{"BTCUSDT", "ETHUSDT"}
	g.hub.SetSymbols(syms)
	g.metrics.SetSymbols(syms)

	produced := time.Date(2026, 3, 4, 5, 6, 7, 250_000_000, time.UTC)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  float64
	}{
		{"first frame", protocol.SnapshotFrame("BTCUSDT", 1, produced, []byte(`{}`)), 1772600767.25},
		{"newer frame", protocol.SnapshotFrame("BTCUSDT", 2, produced.Add(5*time.Second), []byte(`{}`)), 1772600772.25},
		{"older frame keeps the newest", protocol.SnapshotFrame("BTCUSDT", 3, produced, []byte(`{}`)), 1772600772.25},
	} {
		g.publish(bus.Frame{Symbol: "BTCUSDT", Bytes: tc.frame})
		if got := testutil.ToFloat64(g.metrics.LastFrame.WithLabelValues("BTCUSDT")); got != tc.want {
			t.Errorf("%s: gateway_last_frame_timestamp_seconds = %v, want %v", tc.name, got, tc.want)
		}
	}

	rec := httptest.NewRecorder()
	g.Routes().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`gateway_last_frame_timestamp_seconds{symbol="BTCUSDT"} 1.77260077225e+09`,
		"ws_max_connections 1234",
		`ws_disconnects_total{reason="slow_consumer"} 0`,
		`ws_frames_dropped_total{reason="queue_full"} 0`,
		`gateway_frames_received_total{symbol="BTCUSDT"} 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `gateway_last_frame_timestamp_seconds{symbol="ETHUSDT"}`) {
		t.Error("/metrics has a last-frame timestamp for ETHUSDT, which got no frame")
	}
}
