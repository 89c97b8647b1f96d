package app

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/buildinfo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/ingest"
	"github.com/liqstream/liqstream/services/snapshotter/internal/snapshot"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

func TestMetricsExposeBuildInfo(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	rec := httptest.NewRecorder()
	newMetrics(st, nil, nil, 5*time.Second).handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, body)
	}
	want := `build_info{goversion="` + buildinfo.GoVersion() + `",revision="` + buildinfo.Rev() +
		`",service="snapshotter",version="` + buildinfo.Version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %s:\n%s", want, body)
	}
	if !strings.Contains(string(body), `store_rows{table="klines"} 0`) {
		t.Errorf("/metrics lacks the store rows:\n%s", body)
	}
	// Failed writes are exported per op from the start, so a rate sees the
	// first one.
	for _, op := range []string{"upsert", "replace"} {
		if want := `store_write_errors_total{op="` + op + `"} 0`; !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func scrape(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// The loop's metrics: frames published and the newest one's producer
// timestamp per symbol (metrics is a publisher), compute time per symbol
// (OnCompute) and the configured interval.
func TestSnapshotMetrics(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 250_000_000, time.UTC) // 1772600767.25

	for _, tc := range []struct {
		name    string
		act     func(m *metrics)
		want    []string // lines of /metrics
		notWant []string // prefixes that must not appear
	}{
		{"at start", func(*metrics) {},
			[]string{
				"snapshot_interval_seconds 2.5",
				`snapshot_published_total{symbol="BTCUSDT"} 0`,
				`snapshot_published_total{symbol="ETHUSDT"} 0`,
				`snapshot_compute_duration_seconds_count{symbol="ETHUSDT"} 0`,
			},
			[]string{"snapshot_last_published_timestamp_seconds{"}},
		{"frames published", func(m *metrics) {
			m.Publish(context.Background(), snapshot.Frame{Symbol: "BTCUSDT", Seq: 1, Produced: t0.Add(-5 * time.Second)})
			m.Publish(context.Background(), snapshot.Frame{Symbol: "BTCUSDT", Seq: 2, Produced: t0})
		},
			[]string{
				`snapshot_published_total{symbol="BTCUSDT"} 2`,
				`snapshot_published_total{symbol="ETHUSDT"} 0`,
				`snapshot_last_published_timestamp_seconds{symbol="BTCUSDT"} 1.77260076725e+09`,
			},
			[]string{`snapshot_last_published_timestamp_seconds{symbol="ETHUSDT"}`}},
		{"recomputations timed", func(m *metrics) {
			m.observeCompute("ETHUSDT", 3*time.Millisecond)
			m.observeCompute("ETHUSDT", 5*time.Millisecond)
		},
			[]string{
				`snapshot_compute_duration_seconds_count{symbol="ETHUSDT"} 2`,
				`snapshot_compute_duration_seconds_sum{symbol="ETHUSDT"} 0.008`,
				`snapshot_compute_duration_seconds_bucket{symbol="ETHUSDT",le="0.004"} 1`,
				`snapshot_compute_duration_seconds_count{symbol="BTCUSDT"} 0`,
			}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(st, nil, []string{"BTCUSDT", "ETHUSDT"}, 2500*time.Millisecond)
			tc.act(m)
			body := scrape(t, m)
			for _, w := range tc.want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("/metrics lacks %s", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("/metrics has %s", w)
				}
			}
		})
	}
}

// The live source's error kinds are exported at 0 before any error, so an
// error rate exists from the first scrape.
func TestIngestErrorKindsStartAtZero(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := ingest.NewBinance(ingest.BinanceConfig{BaseURL: "http://127.0.0.1:1", Symbols: []string{"BTCUSDT"}}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(st, nil, []string{"BTCUSDT"}, 5*time.Second)
	m.watchBinance(src)
	body := scrape(t, m)
	for _, kind := range []string{"rate_limited", "ip_banned", "forbidden", "server", "client", "network", "decode", "store"} {
		if want := `ingest_errors_total{kind="` + kind + `"} 0`; !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(body, "ingest_polls_total 0\n") {
		t.Errorf("/metrics lacks ingest_polls_total 0")
	}
}
