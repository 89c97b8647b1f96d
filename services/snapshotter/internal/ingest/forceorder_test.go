package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestParseForceOrder(t *testing.T) {
	// Binance's documented example, with a partially different fill.
	const order = `{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9912.5","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}`
	tests := []struct {
		name    string
		msg     string
		want    Liquidation
		wantErr string
	}{
		{"bare event", `{"e":"forceOrder","E":1568014460893,"o":` + order + `}`,
			Liquidation{Symbol: "BTCUSDT", Side: "SELL", Price: 9910, Quantity: 0.014, Notional: 9912.5 * 0.014, Time: time.UnixMilli(1568014460893).UTC()}, ""},
		{"combined stream", `{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1,"o":` + strings.Replace(order, `"S":"SELL"`, `"S":"BUY"`, 1) + `}}`,
			Liquidation{Symbol: "BTCUSDT", Side: "BUY", Price: 9910, Quantity: 0.014, Notional: 9912.5 * 0.014, Time: time.UnixMilli(1568014460893).UTC()}, ""},
		{"not json", `{"e":`, Liquidation{}, "not a JSON object"},
		{"another event", `{"e":"kline","k":{}}`, Liquidation{}, `event "kline" without an order`},
		{"bad side", `{"e":"forceOrder","o":` + strings.Replace(order, `"S":"SELL"`, `"S":"HOLD"`, 1) + `}`, Liquidation{}, `side "HOLD"`},
		{"nothing filled", `{"e":"forceOrder","o":` + strings.Replace(order, `"z":"0.014"`, `"z":"0"`, 1) + `}`, Liquidation{}, `filled quantity "0" must be above 0`},
		{"price not a number", `{"e":"forceOrder","o":` + strings.Replace(order, `"p":"9910"`, `"p":"abc"`, 1) + `}`, Liquidation{}, `price "abc" is not a number`},
		{"seconds, not milliseconds", `{"e":"forceOrder","o":` + strings.Replace(order, `"T":1568014460893`, `"T":1568014460`, 1) + `}`, Liquidation{}, "not a time in milliseconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseForceOrder([]byte(tc.msg))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestLiquidationKeyIsStableAcrossReplays(t *testing.T) {
	msg := []byte(`{"e":"forceOrder","E":5,"o":{"s":"ethusdt","S":"BUY","p":"3000.5","ap":"3001","X":"FILLED","z":"1.5","T":1764547200123}}`)
	a, err := ParseForceOrder(msg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseForceOrder(msg)
	if a.Key() != b.Key() || a.Key() != "ETHUSDT|BUY|1764547200123|3000.5|1.5" || a.Long() {
		t.Fatalf("keys %q %q, long %v", a.Key(), b.Key(), a.Long())
	}
}
