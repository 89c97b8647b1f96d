// Package protocol holds the WebSocket wire format of /ws/heatmap (docs/API.md):
// the client actions the gateway decodes and the frames it sends.
//
// The gateway never decodes a snapshot: the snapshotter encodes each one once
// with EncodeSnapshot and every hop after that relays the bytes.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Actions a client may send.
const (
	ActionSubscribe   = "subscribe"
	ActionUnsubscribe = "unsubscribe"
	ActionPing        = "ping"
)

// Frame types the server sends.
const (
	TypeSnapshot = "snapshot"
	TypeError    = "error"
	TypeWarning  = "warning"
	TypePong     = "pong"
)

// Error codes of an error frame.
const (
	CodeInvalidSymbol  = "INVALID_SYMBOL"
	CodeInvalidAction  = "INVALID_ACTION"
	CodeInvalidMessage = "INVALID_MESSAGE"
	CodeRateLimited    = "RATE_LIMITED"
	CodeServerError    = "SERVER_ERROR"
)

// Warning codes of a warning frame.
const (
	WarnSlowConsumer       = "SLOW_CONSUMER"
	WarnConnectionUnstable = "CONNECTION_UNSTABLE"
)

// Update interval bounds in seconds; out-of-range values are clamped, not refused,
// because old clients send whatever they were built with.
const (
	MinUpdateInterval     = 1
	MaxUpdateInterval     = 60
	DefaultUpdateInterval = 5
	// MaxSymbolsPerMessage bounds one subscribe/unsubscribe list.
	MaxSymbolsPerMessage = 10
)

// TimeFormat is RFC 3339 UTC with nanoseconds, so latency can be measured from any frame.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime renders t the way every frame carries it.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ClientMessage is a decoded, validated client action.
type ClientMessage struct {
	Action  string
	Symbols []string
	// UpdateInterval is in seconds, already clamped to [MinUpdateInterval, MaxUpdateInterval].
	UpdateInterval int
	// Encoding is EncodingFull (the default) or EncodingDelta: after a
	// full snapshot, delta frames while the client's chain is unbroken.
	Encoding string
}

// DecodeError is a client message the server refuses; Code is the error frame's code.
type DecodeError struct {
	Code    string
	Message string
}

func (e *DecodeError) Error() string { return e.Code + ": " + e.Message }

type rawClientMessage struct {
	Action         *string         `json:"action"`
	Symbols        json.RawMessage `json:"symbols"`
	UpdateInterval json.RawMessage `json:"update_interval"`
	Encoding       json.RawMessage `json:"encoding"`
}

// DecodeClientMessage parses one client frame. Symbols are upper-cased and
// de-duplicated; whether they exist is the caller's question.
func DecodeClientMessage(b []byte) (ClientMessage, error) {
	var raw rawClientMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return ClientMessage{}, &DecodeError{CodeInvalidMessage, "message is not a JSON object: " + jsonErrText(err)}
	}
	if dec.More() {
		return ClientMessage{}, &DecodeError{CodeInvalidMessage, "message has trailing data after the JSON object"}
	}
	if raw.Action == nil {
		return ClientMessage{}, &DecodeError{CodeInvalidMessage, `message has no "action" field`}
	}
	m := ClientMessage{Action: *raw.Action}
	switch m.Action {
	case ActionPing:
		return m, nil
	case ActionSubscribe, ActionUnsubscribe:
	default:
		return ClientMessage{}, &DecodeError{CodeInvalidAction, fmt.Sprintf("unknown action %q: use subscribe, unsubscribe or ping", truncate(m.Action, 32))}
	}
	syms, err := decodeSymbols(raw.Symbols)
	if err != nil {
		return ClientMessage{}, err
	}
	m.Symbols = syms
	if m.Action == ActionSubscribe {
		iv, err := decodeInterval(raw.UpdateInterval)
		if err != nil {
			return ClientMessage{}, err
		}
		m.UpdateInterval = iv
		enc, err := decodeEncoding(raw.Encoding)
		if err != nil {
			return ClientMessage{}, err
		}
		m.Encoding = enc
	}
	return m, nil
}

func decodeEncoding(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return EncodingFull, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || (s != EncodingFull && s != EncodingDelta) {
		return "", &DecodeError{CodeInvalidMessage, `"encoding" must be "full" or "delta"`}
	}
	return s, nil
}

func decodeSymbols(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, &DecodeError{CodeInvalidMessage, `"symbols" is required: a list of 1 to 10 symbols`}
	}
	var in []string
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, &DecodeError{CodeInvalidMessage, `"symbols" must be a list of strings`}
	}
	if len(in) == 0 || len(in) > MaxSymbolsPerMessage {
		return nil, &DecodeError{CodeInvalidMessage, fmt.Sprintf(`"symbols" must hold 1 to %d symbols, got %d`, MaxSymbolsPerMessage, len(in))}
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		s = strings.ToUpper(strings.TrimSpace(s))
		if s == "" || len(s) > 20 {
			return nil, &DecodeError{CodeInvalidSymbol, fmt.Sprintf("invalid symbol %q", truncate(s, 24))}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func decodeInterval(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DefaultUpdateInterval, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, &DecodeError{CodeInvalidMessage, `"update_interval" must be a number of seconds`}
	}
	return ClampUpdateInterval(f), nil
}

// ClampUpdateInterval rounds seconds to a whole number within the allowed range.
func ClampUpdateInterval(sec float64) int {
	switch {
	case sec != sec || sec < MinUpdateInterval: // NaN included
		return MinUpdateInterval
	case sec > MaxUpdateInterval:
		return MaxUpdateInterval
	}
	return int(sec + 0.5)
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "expected an object, got " + te.Value
	}
	return err.Error()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Level is one price bucket of a snapshot.
type Level struct {
	Price        float64 `json:"price"`
	LongDensity  float64 `json:"long_density"`
	ShortDensity float64 `json:"short_density"`
}

// Candle is the candle a snapshot was computed after.
type Candle struct {
	OpenTime string  `json:"open_time"`
	Open     float64 `json:"open"`
	High     float64 `json:"high"`
	Low      float64 `json:"low"`
	Close    float64 `json:"close"`
	Volume   float64 `json:"volume"`
}

// SnapshotData is the payload of a snapshot frame. The first four fields are the
// spec's; the rest are liqstream's additions (add fields, never change one).
type SnapshotData struct {
	Levels            []Level `json:"levels"`
	CurrentPrice      float64 `json:"current_price"`
	PositionsCreated  int     `json:"positions_created"`
	PositionsConsumed int     `json:"positions_consumed"`
	TotalLongVolume   float64 `json:"total_long_volume"`
	TotalShortVolume  float64 `json:"total_short_volume"`
	BinSize           float64 `json:"bin_size"`
	Model             string  `json:"model"`
	Interval          string  `json:"interval"`
	WindowStart       string  `json:"window_start"`
	Candle            Candle  `json:"candle"`
	// Liquidations are the realised liquidations of the candle in Candle,
	// oldest first; absent when there are none or no source reports them.
	Liquidations []Liquidation `json:"liquidations,omitempty"`
}

// Liquidation is one realised liquidation: the exchange closing a position.
type Liquidation struct {
	Time     string  `json:"time"`
	Side     string  `json:"side"` // "long" or "short": the position liquidated
	Price    float64 `json:"price"`
	Quantity float64 `json:"quantity"`
	Notional float64 `json:"notional"` // USDT
}

// Snapshot is a whole snapshot frame.
type Snapshot struct {
	Type      string       `json:"type"`
	Symbol    string       `json:"symbol"`
	Timestamp string       `json:"timestamp"`
	Seq       uint64       `json:"seq"`
	Data      SnapshotData `json:"data"`
}

// EncodeSnapshotData encodes a snapshot payload once; its bytes are both the
// content hash input (unchanged data is not re-sent) and part of the frame.
func EncodeSnapshotData(d SnapshotData) ([]byte, error) {
	if d.Levels == nil {
		d.Levels = []Level{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot data: %w", err)
	}
	return b, nil
}

// SnapshotFrame wraps already-encoded data into a frame produced at ts, so the
// payload is not encoded a second time. symbol must be a plain ticker.
func SnapshotFrame(symbol string, seq uint64, ts time.Time, data []byte) []byte {
	return SnapshotFrameEpoch(symbol, 0, seq, ts, data)
}

// SnapshotFrameEpoch is SnapshotFrame with the producer's epoch: a number its
// store raises at every start. Frames order by (epoch, seq), which needs no
// agreement between the clocks of a producer and its successor; epoch 0 is
// left out of the frame (a producer without one orders by timestamp).
func SnapshotFrameEpoch(symbol string, epoch, seq uint64, ts time.Time, data []byte) []byte {
	b := appendHead(make([]byte, 0, len(data)+144), TypeSnapshot, symbol, epoch, seq, ts)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// appendHead appends a frame's envelope up to (not including) "data": the
// fields relays peek, in the order the Peek functions rely on.
func appendHead(b []byte, typ, symbol string, epoch, seq uint64, ts time.Time) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","symbol":`...)
	b = strconv.AppendQuote(b, symbol)
	b = append(b, `,"timestamp":"`...)
	b = append(b, FormatTime(ts)...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if epoch > 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, epoch, 10)
	}
	return b
}

// EncodeSnapshot encodes a whole snapshot frame produced at ts.
func EncodeSnapshot(symbol string, seq uint64, ts time.Time, d SnapshotData) ([]byte, error) {
	data, err := EncodeSnapshotData(d)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot %s: %w", symbol, err)
	}
	return SnapshotFrame(symbol, seq, ts, data), nil
}

// ErrorFrame is an error sent to one client; the connection stays open.
type ErrorFrame struct {
	Type    string   `json:"type"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Symbols []string `json:"symbols,omitempty"`
}

// EncodeError encodes an error frame.
func EncodeError(code, message string) []byte {
	return EncodeErrorSymbols(code, message, nil)
}

// EncodeErrorSymbols encodes an error frame about particular symbols (those
// refused, or no longer served), so a client need not parse the message.
func EncodeErrorSymbols(code, message string, symbols []string) []byte {
	return mustMarshal(ErrorFrame{Type: TypeError, Code: code, Message: message, Symbols: symbols})
}

// WarningFrame tells a client it is missing data.
type WarningFrame struct {
	Type            string `json:"type"`
	Code            string `json:"code"`
	Message         string `json:"message"`
	DroppedMessages int    `json:"dropped_messages"`
}

// EncodeWarning encodes a warning frame.
func EncodeWarning(code, message string, dropped int) []byte {
	return mustMarshal(WarningFrame{Type: TypeWarning, Code: code, Message: message, DroppedMessages: dropped})
}

// PongFrame answers a ping.
type PongFrame struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
}

// EncodePong encodes a pong frame stamped with now.
func EncodePong(now time.Time) []byte {
	return mustMarshal(PongFrame{Type: TypePong, Timestamp: FormatTime(now)})
}

// mustMarshal is for the fixed frame structs above, which cannot fail to encode.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encode %T: %v", v, err))
	}
	return b
}

// PeekTimestamp reads a frame's production timestamp from its envelope
// without decoding the payload, so relays can measure delivery latency.
// It relies on SnapshotFrame's layout: the timestamp precedes "data".
// PeekEpochSeq reads a snapshot frame's epoch and seq without decoding it;
// ok is false when the frame carries no epoch (see SnapshotFrameEpoch).
func PeekEpochSeq(frame []byte) (epoch, seq uint64, ok bool) {
	head := frame[:min(len(frame), 200)]
	// Only the envelope: the payload's own keys must not be mistaken for it.
	if i := bytes.Index(head, []byte(`"data":`)); i >= 0 {
		head = head[:i]
	}
	seq, okSeq := peekUint(head, `"seq":`)
	epoch, okEpoch := peekUint(head, `"epoch":`)
	return epoch, seq, okSeq && okEpoch && epoch > 0
}

func peekUint(head []byte, key string) (uint64, bool) {
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := head[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return n, err == nil
}

func PeekTimestamp(frame []byte) (time.Time, bool) {
	const key = `"timestamp":"`
	head := frame[:min(len(frame), 160)]
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	rest := head[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}
