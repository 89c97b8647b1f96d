package ingest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Liquidation is one realised liquidation order from Binance USD-M's
// forceOrder stream: the exchange closing a position at its liquidation
// price. Side is the order's side, so "SELL" closes a long and "BUY" a short.
type Liquidation struct {
	Symbol   string
	Side     string // "BUY" or "SELL"
	Price    float64
	Quantity float64
	Notional float64 // average fill price × filled quantity, USDT
	Time     time.Time
}

// Long reports whether the liquidated position was a long.
func (l Liquidation) Long() bool { return l.Side == "SELL" }

// Binance's keys differ only by case ("e" event type, "E" event time; "s"
// symbol, "S" side), and encoding/json matches keys case-insensitively, so
// messages are read as maps of exact keys.
type rawObject map[string]json.RawMessage

// str is o[key] as a string ("" when absent or not a string).
func (o rawObject) str(key string) string {
	var s string
	json.Unmarshal(o[key], &s)
	return s
}

// ParseForceOrder reads one forceOrder message (bare, or as a combined
// stream delivers it). The notional is what was filled, at the average
// price: the part of a liquidation that really happened. An order with
// nothing filled yet is an error, as is any field out of its range, so a
// malformed message is reported and never stored.
func ParseForceOrder(msg []byte) (Liquidation, error) {
	var wrapped struct {
		Stream string          `json:"stream"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(msg, &wrapped); err != nil {
		return Liquidation{}, fmt.Errorf("forceOrder: not a JSON object: %w", err)
	}
	if len(wrapped.Data) > 0 {
		msg = wrapped.Data
	}
	var ev rawObject
	if err := json.Unmarshal(msg, &ev); err != nil {
		return Liquidation{}, fmt.Errorf("forceOrder: %w", err)
	}
	var o rawObject
	if ev.str("e") != "forceOrder" || json.Unmarshal(ev["o"], &o) != nil || o == nil {
		return Liquidation{}, fmt.Errorf("forceOrder: event %q without an order", ev.str("e"))
	}
	var tradeTime int64
	json.Unmarshal(o["T"], &tradeTime) // absent or not a number: 0, refused below
	l := Liquidation{Symbol: strings.ToUpper(o.str("s")), Side: o.str("S"), Time: time.UnixMilli(tradeTime).UTC()}
	if l.Symbol == "" {
		return Liquidation{}, fmt.Errorf("forceOrder: no symbol")
	}
	if l.Side != "BUY" && l.Side != "SELL" {
		return Liquidation{}, fmt.Errorf("forceOrder %s: side %q, want BUY or SELL", l.Symbol, l.Side)
	}
	if tradeTime < minEpochMillis {
		return Liquidation{}, fmt.Errorf("forceOrder %s: trade time %s is not a time in milliseconds", l.Symbol, o["T"])
	}
	var err error
	positive := func(name, s string) float64 {
		if err != nil {
			return 0
		}
		var v float64
		if v, err = parseNumber(name, s); err == nil && v <= 0 {
			err = fmt.Errorf("%s %q must be above 0", name, s)
		}
		return v
	}
	l.Price = positive("price", o.str("p"))
	avg := positive("average price", o.str("ap"))
	l.Quantity = positive("filled quantity", o.str("z"))
	if err != nil {
		return Liquidation{}, fmt.Errorf("forceOrder %s: %w", l.Symbol, err)
	}
	l.Notional = avg * l.Quantity
	return l, nil
}

// Key identifies a liquidation across replays of the stream: the same order
// sent twice (a reconnect, a backfill) has the same key.
func (l Liquidation) Key() string {
	return l.Symbol + "|" + l.Side + "|" + strconv.FormatInt(l.Time.UnixMilli(), 10) + "|" +
		strconv.FormatFloat(l.Price, 'g', -1, 64) + "|" + strconv.FormatFloat(l.Quantity, 'g', -1, 64)
}
