package history

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/services/snapshotter/internal/demo"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

var now = time.Date(2025, 12, 29, 10, 7, 30, 0, time.UTC)

func defaults() Defaults {
	return Defaults{
		Symbols: []string{"BTCUSDT", "ETHUSDT"},
		Params:  map[string]heatmap.Params{"BTCUSDT": heatmap.DefaultParams(), "ETHUSDT": heatmap.DefaultParams()},
		Weights: heatmap.DefaultWeights, Window: "48h", Interval: "15m", MaxSnapshots: 5000, Warmup: 12 * time.Hour,
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name      string
		q         string
		wantParam string
		check     func(t *testing.T, q Query)
	}{
		{"defaults end at the last closed candle", "symbol=btcusdt", "", func(t *testing.T, q Query) {
			end := time.Date(2025, 12, 29, 10, 0, 0, 0, time.UTC)
			if q.Symbol != "BTCUSDT" || q.Interval != "15m" || !q.End.Equal(end) || !q.Start.Equal(end.Add(-48*time.Hour)) {
				t.Fatalf("%+v", q)
			}
		}},
		{"preset and interval", "symbol=ETHUSDT&time_window=7d&interval=1h", "", func(t *testing.T, q Query) {
			if q.Interval != "1h" || q.End.Sub(q.Start) != 7*24*time.Hour || !q.End.Equal(time.Date(2025, 12, 29, 10, 0, 0, 0, time.UTC)) {
				t.Fatalf("%+v", q)
			}
		}},
		{"start/end RFC 3339 and ms, start aligned down", "symbol=BTCUSDT&interval=1h&start_time=2025-12-28T00:30:00Z&end_time=1766916000000", "", func(t *testing.T, q Query) {
			if !q.Start.Equal(time.Date(2025, 12, 28, 0, 0, 0, 0, time.UTC)) || !q.End.Equal(time.UnixMilli(1766916000000).UTC()) {
				t.Fatalf("%+v", q)
			}
		}},
		{"end in the future is clamped to the open candle", "symbol=BTCUSDT&interval=5m&start_time=2025-12-29T09:00:00Z&end_time=2026-01-01T00:00:00Z", "", func(t *testing.T, q Query) {
			if !q.End.Equal(time.Date(2025, 12, 29, 10, 5, 0, 0, time.UTC)) {
				t.Fatalf("end %v", q.End)
			}
		}},
		{"bin and weights", "symbol=BTCUSDT&price_bin_size=250&leverage_weights=10:1,20:1", "", func(t *testing.T, q Query) {
			if q.Params.BinSize != 250 || len(q.Params.Tiers) != 2 || q.Params.Tiers[0].Weight != 0.5 || q.Weights != "10:1,20:1" {
				t.Fatalf("%+v", q.Params)
			}
		}},
		{"binance model", "symbol=BTCUSDT&model=binance", "", func(t *testing.T, q Query) {
			if q.Params.Model != heatmap.ModelBinance {
				t.Fatalf("model %v", q.Params.Model)
			}
		}},
		{"bad model", "symbol=BTCUSDT&model=magic", "model", nil},
		{"missing symbol", "", "symbol", nil},
		{"unknown symbol", "symbol=DOGEUSDT", "symbol", nil},
		{"bad interval", "symbol=BTCUSDT&interval=1m", "interval", nil},
		{"bad window", "symbol=BTCUSDT&time_window=2w", "time_window", nil},
		{"window and range", "symbol=BTCUSDT&time_window=7d&start_time=1", "time_window", nil},
		{"start without end", "symbol=BTCUSDT&start_time=2025-12-28T00:00:00Z", "end_time", nil},
		{"bad start", "symbol=BTCUSDT&start_time=yesterday&end_time=2025-12-28T00:00:00Z", "start_time", nil},
		{"end before start", "symbol=BTCUSDT&start_time=2025-12-28T00:00:00Z&end_time=2025-12-27T00:00:00Z", "end_time", nil},
		{"too many snapshots", "symbol=BTCUSDT&time_window=1y&interval=5m", "interval", nil},
		{"bin out of range", "symbol=BTCUSDT&price_bin_size=5000", "price_bin_size", nil},
		{"bin not a number", "symbol=BTCUSDT&price_bin_size=wide", "price_bin_size", nil},
		{"bad weights", "symbol=BTCUSDT&leverage_weights=10:x", "leverage_weights", nil},
		{"unknown parameter", "symbol=BTCUSDT&colour=red", "colour", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.q)
			q, err := ParseQuery(v, defaults(), now)
			if tc.wantParam != "" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Param != tc.wantParam {
					t.Fatalf("got %v, want a ParamError for %q", err, tc.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, q)
		})
	}
}

func seeded(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, ois := demo.Generate("BTCUSDT", 7, now, 5*time.Minute, 3*288)
	if err := st.UpsertKlines(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertOpenInterest(context.Background(), ois); err != nil {
		t.Fatal(err)
	}
	return st
}

func fetch(t *testing.T, srv *httptest.Server, q string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/?" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache"), b
}

func TestTimeseriesAgreesWithReplayAndCaches(t *testing.T) {
	st := seeded(t)
	h := New(st, defaults(), func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()

	code, cache, body := fetch(t, srv, "symbol=BTCUSDT&time_window=48h&interval=15m")
	if code != 200 || cache != "miss" {
		t.Fatalf("first request: %d %s %s", code, cache, body)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	// 48 h of 15m candles, all closed before 10:00.
	if resp.Meta.TotalSnapshots != 192 || len(resp.Data) != 192 || resp.Meta.Interval != "15m" || resp.Meta.Symbol != "BTCUSDT" {
		t.Fatalf("meta %+v, %d entries", resp.Meta, len(resp.Data))
	}
	// The oracle: the same candles replayed directly.
	q, _ := ParseQuery(url.Values{"symbol": {"BTCUSDT"}, "time_window": {"48h"}, "interval": {"15m"}}, defaults(), now)
	// The oracle replays the warm-up too, and drops its snapshots.
	candles, err := st.Candles(context.Background(), "BTCUSDT", "15m", q.Warm, q.End)
	if err != nil {
		t.Fatal(err)
	}
	all, err := heatmap.Replay(q.Params, candles)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Warm.Equal(q.Start.Add(-12 * time.Hour)) {
		t.Fatalf("warm-up starts %v, want 12h before %v", q.Warm, q.Start)
	}
	snaps := all[len(all)-192:]
	if !snaps[0].Candle.OpenTime.Equal(q.Start) {
		t.Fatalf("first snapshot at %v, want the window start %v", snaps[0].Candle.OpenTime, q.Start)
	}
	consumed := 0
	for i, s := range snaps {
		e := resp.Data[i]
		if e.Timestamp != s.Candle.OpenTime.Format("2006-01-02T15:04:05.000000000Z") || len(e.Levels) != len(s.Levels) || e.Meta.PositionsConsumed != s.PositionsConsumed {
			t.Fatalf("entry %d differs from replay: %+v", i, e.Meta)
		}
		for j := 1; j < len(e.Levels); j++ {
			if e.Levels[j].Price <= e.Levels[j-1].Price {
				t.Fatalf("entry %d levels not sorted by price", i)
			}
		}
		consumed += s.PositionsConsumed
	}
	if resp.Meta.TotalConsumed != consumed || resp.Meta.PriceRange.Min >= resp.Meta.PriceRange.Max {
		t.Fatalf("meta totals %+v, want consumed %d", resp.Meta, consumed)
	}

	if _, cache, again := fetch(t, srv, "symbol=BTCUSDT&time_window=48h&interval=15m"); cache != "hit" || string(again) != string(body) {
		t.Fatalf("second request: cache %s", cache)
	}
	// The simulator writing the open candle (after the window) keeps the cache.
	k, _, _ := st.LastKline(context.Background(), "BTCUSDT", "5m")
	open := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: now.Truncate(5 * time.Minute), Open: k.Close, High: k.Close + 1, Low: k.Close - 1, Close: k.Close}
	if err := st.UpsertKlines(context.Background(), []store.Kline{open}); err != nil {
		t.Fatal(err)
	}
	if _, cache, _ := fetch(t, srv, "symbol=BTCUSDT&time_window=48h&interval=15m"); cache != "hit" {
		t.Fatalf("a write after the window invalidated the cache")
	}
	// A write inside the window does not: move the last 5m candle before 10:00.
	in, err := st.Candles(context.Background(), "BTCUSDT", "5m", q.End.Add(-5*time.Minute), q.End)
	if err != nil || len(in) != 1 {
		t.Fatalf("candle inside the window: %v %v", in, err)
	}
	c := in[0]
	moved := store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: c.OpenTime, Open: c.Open, High: c.High * 1.05, Low: c.Low, Close: c.High * 1.05, Volume: c.Volume}
	if err := st.UpsertKlines(context.Background(), []store.Kline{moved}); err != nil {
		t.Fatal(err)
	}
	if _, cache, changed := fetch(t, srv, "symbol=BTCUSDT&time_window=48h&interval=15m"); cache != "miss" || string(changed) == string(body) {
		t.Fatalf("a write inside the window served the stale body (cache %s)", cache)
	}
}

func TestTimeseriesBadParamIs400(t *testing.T) {
	h := New(seeded(t), defaults(), func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, _, body := fetch(t, srv, "symbol=BTCUSDT&interval=2m")
	if code != 400 || !strings.Contains(string(body), `"error":"interval:`) {
		t.Fatalf("got %d %s", code, body)
	}
}
