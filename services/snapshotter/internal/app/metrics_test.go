package app

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/pkg/buildinfo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

func TestMetricsExposeBuildInfo(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	rec := httptest.NewRecorder()
	newMetrics(st, nil).handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
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
}
