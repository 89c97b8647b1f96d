package fakebinance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestMarketIsContinuousAndPlausible(t *testing.T) {
	fx := New(Config{Symbols: []string{"BTCUSDT", "S001USDT"}, Start: t0.Add(-24 * time.Hour), Now: t0.Add(90 * time.Second), Seed: 1})
	for _, sym := range []string{"BTCUSDT", "S001USDT"} {
		ks := fx.Klines(sym)
		if len(ks) != 289 {
			t.Fatalf("%s: %d candles for a day and 90 s, want 288 closed and the open one", sym, len(ks))
		}
		for i, k := range ks {
			if !(k.L > 0 && k.L <= k.O && k.L <= k.C && k.H >= k.O && k.H >= k.C && k.V >= 0) {
				t.Fatalf("%s candle %d: %+v is not a candle", sym, i, k)
			}
			if i > 0 && k.O != ks[i-1].C {
				t.Fatalf("%s candle %d opens at %g, the previous closed at %g", sym, i, k.O, ks[i-1].C)
			}
			if k.Final != (i < len(ks)-1) {
				t.Fatalf("%s candle %d: final %t", sym, i, k.Final)
			}
		}
		// The same market asked again, and by a second server with the
		// same seed, is the same.
		again := New(Config{Symbols: []string{sym}, Start: t0.Add(-24 * time.Hour), Now: t0.Add(90 * time.Second), Seed: 1}).Klines(sym)
		if fmt.Sprint(again) != fmt.Sprint(ks) {
			t.Fatalf("%s: a second server with the same seed made another market", sym)
		}
	}
}

func get(t *testing.T, url string, v any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, resp.Header
}

func TestRESTServesTheMarket(t *testing.T) {
	fx := New(Config{Symbols: []string{"BTCUSDT"}, Start: t0.Add(-2 * time.Hour), Now: t0})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	var rows [][]any
	ms := func(at time.Time) string { return strconv.FormatInt(at.UnixMilli(), 10) }
	if code, _ := get(t, srv.URL+"/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=3&startTime="+ms(t0.Add(-10*time.Minute)), &rows); code != 200 {
		t.Fatalf("klines: %d", code)
	}
	want := fx.Klines("BTCUSDT")[22:]
	if len(rows) != 3 || int64(rows[0][0].(float64)) != want[0].Open.UnixMilli() || rows[2][4].(string) != strconv.FormatFloat(want[2].C, 'f', -1, 64) {
		t.Fatalf("klines from 11:50: %v, want the candles of 11:50, 11:55 and the open 12:00 (%+v)", rows, want)
	}
	var oi []map[string]any
	get(t, srv.URL+"/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=500&startTime="+ms(t0.Add(-time.Hour))+"&endTime="+ms(t0), &oi)
	if len(oi) != 13 || int64(oi[12]["timestamp"].(float64)) != t0.UnixMilli() {
		t.Fatalf("%d open interest rows for the last hour, want 13 ending at 12:00: %v", len(oi), oi)
	}
	for _, tc := range []struct {
		url  string
		code int
	}{
		{"/fapi/v1/klines?symbol=NOPE&interval=5m", 400},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m", 400},
		{"/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&startTime=" + ms(t0.Add(-31*24*time.Hour)), 400},
	} {
		if code, _ := get(t, srv.URL+tc.url, nil); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.url, code, tc.code)
		}
	}
	fx.FailREST(1, 418, 7)
	code, h := get(t, srv.URL+"/fapi/v1/klines?symbol=BTCUSDT&interval=5m", nil)
	if code != 418 || h.Get("Retry-After") != "7" {
		t.Fatalf("injected failure: %d Retry-After %q, want 418 and 7", code, h.Get("Retry-After"))
	}
	if code, _ := get(t, srv.URL+"/fapi/v1/klines?symbol=BTCUSDT&interval=5m", &rows); code != 200 {
		t.Fatalf("after the injected failure: %d", code)
	}
}

func TestStreamHandshakeLimits(t *testing.T) {
	fx := New(Config{Symbols: []string{"AAUSDT", "BBUSDT", "CCUSDT"}, Start: t0, MaxStreams: 2})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	streams := []string{"!forceOrder@arr", "aausdt@kline_5m", "bbusdt@kline_5m"}
	for _, tc := range []struct {
		n    int
		code int
	}{{2, http.StatusSwitchingProtocols}, {3, http.StatusBadRequest}} {
		req, _ := http.NewRequest("GET", srv.URL+"/stream?streams="+strings.Join(streams[:tc.n], "/"), nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("%d streams: %d, want %d", tc.n, resp.StatusCode, tc.code)
		}
	}
}

// Superseded is when the next state of a candle was first pushed: the market
// moves once a second while pushes come every UpdateEvery, so a state is
// pushed several times and is only out of date once the next one comes.
func TestSupersededIsTheNextStatesFirstPush(t *testing.T) {
	fx := New(Config{Symbols: []string{"AAUSDT"}, Start: t0.Add(-time.Hour), Now: t0, UpdateEvery: 250 * time.Millisecond})
	srv := httptest.NewServer(fx)
	defer srv.Close()
	c, _, err := wsclient.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/stream?streams=aausdt@kline_5m", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); fx.Stats().Open != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream connection was never registered")
		}
	}
	type state struct {
		open time.Time
		v    float64
	}
	var order []state
	pushes := 0
	for range 12 {
		fx.Advance(fx.Now().Add(250 * time.Millisecond))
		f, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Data struct {
				// "T" and "V" are fields of their own: encoding/json would
				// fill t and v from them, case-insensitively, last one wins.
				K struct {
					T      int64  `json:"t"`
					V      string `json:"v"`
					CloseT int64  `json:"T"`
					QuoteV string `json:"V"`
				} `json:"k"`
			} `json:"data"`
		}
		if err := json.Unmarshal(f.Bytes, &m); err != nil {
			t.Fatalf("%s: %v", f.Bytes, err)
		}
		v, _ := strconv.ParseFloat(m.Data.K.V, 64)
		st := state{time.UnixMilli(m.Data.K.T).UTC(), v}
		pushes++
		if len(order) == 0 || order[len(order)-1] != st {
			order = append(order, st)
		}
	}
	if len(order) < 2 || len(order) >= pushes {
		t.Fatalf("%d distinct states in %d pushes 250 ms apart: want the market to move once a second", len(order), pushes)
	}
	for i, st := range order {
		at, ok := fx.Superseded("AAUSDT", st.open, st.v)
		if i == len(order)-1 {
			if ok {
				t.Fatalf("the newest state was superseded at %s", at)
			}
			break
		}
		next, _ := fx.Pushed("AAUSDT", order[i+1].open, order[i+1].v)
		if !ok || !at.Equal(next) {
			t.Fatalf("state %d superseded at %v (%v), want the next state's first push %v", i, at, ok, next)
		}
	}
}
