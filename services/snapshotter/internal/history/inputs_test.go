package history

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
)

func TestInputEndpoints(t *testing.T) {
	st := seeded(t) // 3 days of BTCUSDT 5m candles ending before `now`
	mux := http.NewServeMux()
	NewInputs(st, []string{"BTCUSDT", "ETHUSDT"}, "5m", func() time.Time { return now }).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path string
		code int
		want string
	}{
		{"/prices/klines?symbol=BTCUSDT&interval=1h&start_time=2025-12-29T00:00:00Z&end_time=2025-12-29T03:00:00Z", 200, `"open_time":"2025-12-29T02:00:00.000000000Z"`},
		{"/data/open-interest?symbol=btcusdt&interval=15m&start_time=2025-12-29T00:00:00Z&end_time=2025-12-29T00:30:00Z", 200, `"open_interest_value":`},
		{"/data/date-range?symbol=BTCUSDT", 200, `"candles":864`},
		{"/data/date-range?symbol=ETHUSDT", 200, `"first":null`},
		{"/prices/klines?symbol=NOPE", 400, "symbol: unknown symbol"},
		{"/prices/klines?symbol=BTCUSDT&interval=2m", 400, "interval:"},
		{"/prices/klines?symbol=BTCUSDT&start_time=soon", 400, "start_time:"},
		{"/prices/klines?symbol=BTCUSDT&start_time=2020-01-01T00:00:00Z", 400, "start_time: the range holds"},
		{"/data/open-interest?symbol=BTCUSDT&limit=5", 400, "limit: unknown parameter"},
		{"/data/date-range", 400, "symbol: required"},
	}
	for _, tc := range tests {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			body.Write(buf[:n])
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(body.String(), tc.want) {
			t.Errorf("%s: %d %.300s, want %d containing %q", tc.path, resp.StatusCode, body.String(), tc.code, tc.want)
		}
	}

	// Hourly candles are the aggregate of the stored 5m ones.
	resp, _ := http.Get(srv.URL + "/prices/klines?symbol=BTCUSDT&interval=1h&start_time=2025-12-29T00:00:00Z&end_time=2025-12-29T01:00:00Z")
	var hourly struct{ Data []protocol.Candle }
	json.NewDecoder(resp.Body).Decode(&hourly)
	resp.Body.Close()
	resp, _ = http.Get(srv.URL + "/prices/klines?symbol=BTCUSDT&interval=5m&start_time=2025-12-29T00:00:00Z&end_time=2025-12-29T01:00:00Z")
	var fine struct{ Data []protocol.Candle }
	json.NewDecoder(resp.Body).Decode(&fine)
	resp.Body.Close()
	if len(hourly.Data) != 1 || len(fine.Data) != 12 {
		t.Fatalf("got %d hourly and %d 5m candles, want 1 and 12", len(hourly.Data), len(fine.Data))
	}
	h := hourly.Data[0]
	hi, lo, vol := fine.Data[0].High, fine.Data[0].Low, 0.0
	for _, k := range fine.Data {
		hi, lo, vol = max(hi, k.High), min(lo, k.Low), vol+k.Volume
	}
	if h.Open != fine.Data[0].Open || h.Close != fine.Data[11].Close || h.High != hi || h.Low != lo || abs(h.Volume-vol) > 1e-6*vol || h.OpenTime != protocol.FormatTime(time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("hourly %+v is not the aggregate of its 5m candles", h)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
