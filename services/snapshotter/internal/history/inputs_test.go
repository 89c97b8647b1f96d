package history

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
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

func TestLiquidationsEndpoint(t *testing.T) {
	st := seeded(t)
	ctx := context.Background()
	t0 := time.Date(2025, 12, 29, 8, 0, 0, 0, time.UTC)
	planted := []store.Liquidation{
		{Symbol: "BTCUSDT", Time: t0, Side: store.SideLong, Price: 93000, Quantity: 0.5, Notional: 46500},
		{Symbol: "BTCUSDT", Time: t0.Add(time.Minute), Side: store.SideShort, Price: 95000, Quantity: 0.01, Notional: 950},
		{Symbol: "BTCUSDT", Time: t0.Add(90 * time.Minute), Side: store.SideLong, Price: 92000, Quantity: 2, Notional: 184000},
		{Symbol: "BTCUSDT", Time: now.Add(-30 * time.Hour), Side: store.SideShort, Price: 96000, Quantity: 1, Notional: 96000},
		{Symbol: "ETHUSDT", Time: t0, Side: store.SideShort, Price: 3000, Quantity: 3, Notional: 9000},
	}
	// Written twice, as a reconnecting feed replays events: stored once.
	for range 2 {
		if err := st.UpsertLiquidations(ctx, planted); err != nil {
			t.Fatal(err)
		}
	}
	in := NewInputs(st, []string{"BTCUSDT", "ETHUSDT"}, "5m", func() time.Time { return now })
	mux := http.NewServeMux()
	in.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	type body struct {
		Symbol string
		Data   []protocol.Liquidation
		Error  string
	}
	row := func(l store.Liquidation) protocol.Liquidation {
		return protocol.Liquidation{Time: protocol.FormatTime(l.Time), Side: l.Side, Price: l.Price, Quantity: l.Quantity, Notional: l.Notional}
	}
	tests := []struct {
		name  string
		query string
		code  int
		want  []store.Liquidation // with code 200
		error string              // with code 400: the message's start
	}{
		{"default: the last 24 hours, oldest first, each once", "symbol=BTCUSDT", 200, planted[:3], ""},
		{"symbol spelt loosely", "symbol=%20btcusdt", 200, planted[:3], ""},
		{"from/to, to exclusive", "symbol=BTCUSDT&from=2025-12-29T08:00:00Z&to=2025-12-29T09:30:00Z", 200, planted[:2], ""},
		{"unix ms and the other endpoints' names", "symbol=BTCUSDT&start_time=1766995260000&end_time=2025-12-29T10:00:00Z", 200, planted[1:3], ""},
		{"a week back", "symbol=BTCUSDT&from=2025-12-22T00:00:00Z", 200, []store.Liquidation{planted[3], planted[0], planted[1], planted[2]}, ""},
		{"min_notional keeps those of at least it", "symbol=BTCUSDT&min_notional=46500", 200, []store.Liquidation{planted[0], planted[2]}, ""},
		{"min_notional above all", "symbol=BTCUSDT&min_notional=1e9", 200, nil, ""},
		{"other symbol", "symbol=ETHUSDT", 200, planted[4:], ""},
		{"none in range", "symbol=BTCUSDT&from=2025-12-01T00:00:00Z&to=2025-12-02T00:00:00Z", 200, nil, ""},
		{"missing symbol", "", 400, nil, "symbol: required"},
		{"unknown symbol", "symbol=DOGEUSDT", 400, nil, `symbol: unknown symbol "DOGEUSDT"`},
		{"bad from", "symbol=BTCUSDT&from=yesterday", 400, nil, "from: want RFC 3339"},
		{"bad to", "symbol=BTCUSDT&to=2025-13-01", 400, nil, "to: want RFC 3339"},
		{"bad start_time", "symbol=BTCUSDT&start_time=soon", 400, nil, "start_time: want RFC 3339"},
		{"from outside the representable range", "symbol=BTCUSDT&from=-9000000000000000000", 400, nil, "from: "},
		{"from equal to to", "symbol=BTCUSDT&from=2025-12-29T08:00:00Z&to=2025-12-29T08:00:00Z", 400, nil, "to: must be after from"},
		{"from after to", "symbol=BTCUSDT&from=2025-12-29T09:00:00Z&to=2025-12-29T08:00:00Z", 400, nil, "to: must be after from"},
		{"both spellings of one", "symbol=BTCUSDT&from=2025-12-29T08:00:00Z&start_time=2025-12-29T08:00:00Z", 400, nil, "start_time: give from or start_time, not both"},
		{"negative min_notional", "symbol=BTCUSDT&min_notional=-1", 400, nil, "min_notional: want a number of USDT, 0 or more"},
		{"non-numeric min_notional", "symbol=BTCUSDT&min_notional=lots", 400, nil, "min_notional: want a number of USDT, 0 or more"},
		{"NaN min_notional", "symbol=BTCUSDT&min_notional=NaN", 400, nil, "min_notional: "},
		{"unknown parameter", "symbol=BTCUSDT&limit=5", 400, nil, "limit: unknown parameter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/data/liquidations?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b body
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b.Error, tc.code)
			}
			if tc.code != 200 {
				if !strings.HasPrefix(b.Error, tc.error) {
					t.Fatalf("error %q, want it to start with %q", b.Error, tc.error)
				}
				return
			}
			if len(b.Data) != len(tc.want) {
				t.Fatalf("%d rows %+v, want %d", len(b.Data), b.Data, len(tc.want))
			}
			for i, l := range tc.want {
				if b.Data[i] != row(l) {
					t.Errorf("row %d: %+v, want %+v", i, b.Data[i], row(l))
				}
			}
		})
	}

	// Past the row cap the range is refused, naming where to narrow it, as
	// a candle range over the cap is: never a silently cut answer.
	in.maxRows = 2
	resp, err := http.Get(srv.URL + "/data/liquidations?symbol=BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"error":"from: the range holds more than 2 liquidations of at least 0 USDT`) {
		t.Fatalf("over the cap: %d %s", resp.StatusCode, b)
	}
	if code := get(t, srv.URL+"/data/liquidations?symbol=BTCUSDT&min_notional=1000"); code != 200 {
		t.Fatalf("at the cap: %d, want 200", code)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
