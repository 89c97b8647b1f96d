package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeClientMessage(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     ClientMessage
		wantCode string
		wantText string
	}{
		{"subscribe default interval", `{"action":"subscribe","symbols":["btcusdt","ETHUSDT","BTCUSDT"]}`,
			ClientMessage{Action: "subscribe", Symbols: []string{"BTCUSDT", "ETHUSDT"}, UpdateInterval: 5, Encoding: "full"}, "", ""},
		{"subscribe clamps high", `{"action":"subscribe","symbols":["BTCUSDT"],"update_interval":600}`,
			ClientMessage{Action: "subscribe", Symbols: []string{"BTCUSDT"}, UpdateInterval: 60, Encoding: "full"}, "", ""},
		{"subscribe clamps low", `{"action":"subscribe","symbols":["BTCUSDT"],"update_interval":0}`,
			ClientMessage{Action: "subscribe", Symbols: []string{"BTCUSDT"}, UpdateInterval: 1, Encoding: "full"}, "", ""},
		{"subscribe delta", `{"action":"subscribe","symbols":["BTCUSDT"],"encoding":"delta"}`,
			ClientMessage{Action: "subscribe", Symbols: []string{"BTCUSDT"}, UpdateInterval: 5, Encoding: "delta"}, "", ""},
		{"subscribe explicit full", `{"action":"subscribe","symbols":["BTCUSDT"],"encoding":"full"}`,
			ClientMessage{Action: "subscribe", Symbols: []string{"BTCUSDT"}, UpdateInterval: 5, Encoding: "full"}, "", ""},
		{"unsubscribe", `{"action":"unsubscribe","symbols":["ETHUSDT"]}`,
			ClientMessage{Action: "unsubscribe", Symbols: []string{"ETHUSDT"}}, "", ""},
		{"ping", `{"action":"ping"}`, ClientMessage{Action: "ping"}, "", ""},
		{"not json", `hello`, ClientMessage{}, CodeInvalidMessage, "not a JSON object"},
		{"json array", `[1,2]`, ClientMessage{}, CodeInvalidMessage, "expected an object"},
		{"trailing data", `{"action":"ping"} {}`, ClientMessage{}, CodeInvalidMessage, "trailing data"},
		{"no action", `{"symbols":["BTCUSDT"]}`, ClientMessage{}, CodeInvalidMessage, `no "action"`},
		{"unknown action", `{"action":"launch"}`, ClientMessage{}, CodeInvalidAction, `"launch"`},
		{"symbols missing", `{"action":"subscribe"}`, ClientMessage{}, CodeInvalidMessage, `"symbols" is required`},
		{"symbols wrong type", `{"action":"subscribe","symbols":"BTCUSDT"}`, ClientMessage{}, CodeInvalidMessage, "list of strings"},
		{"symbols empty", `{"action":"subscribe","symbols":[]}`, ClientMessage{}, CodeInvalidMessage, "got 0"},
		{"symbols too many", `{"action":"subscribe","symbols":["A","B","C","D","E","F","G","H","I","J","K"]}`, ClientMessage{}, CodeInvalidMessage, "got 11"},
		{"blank symbol", `{"action":"subscribe","symbols":[" "]}`, ClientMessage{}, CodeInvalidSymbol, "invalid symbol"},
		{"unknown encoding", `{"action":"subscribe","symbols":["BTCUSDT"],"encoding":"gzip"}`, ClientMessage{}, CodeInvalidMessage, `"encoding" must be "full" or "delta"`},
		{"encoding not a string", `{"action":"subscribe","symbols":["BTCUSDT"],"encoding":1}`, ClientMessage{}, CodeInvalidMessage, `"encoding" must be`},
		{"interval not number", `{"action":"subscribe","symbols":["BTCUSDT"],"update_interval":"5"}`, ClientMessage{}, CodeInvalidMessage, "update_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeClientMessage([]byte(tc.in))
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("want DecodeError %s, got %v", tc.wantCode, err)
			}
			if de.Code != tc.wantCode || !strings.Contains(de.Message, tc.wantText) {
				t.Fatalf("got %s %q, want %s containing %q", de.Code, de.Message, tc.wantCode, tc.wantText)
			}
		})
	}
}

func TestEncodeSnapshotWireFormat(t *testing.T) {
	ts := time.Date(2025, 12, 29, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	b, err := EncodeSnapshot("BTCUSDT", 7, ts, SnapshotData{
		Levels:       []Level{{Price: 98000, LongDensity: 1500000, ShortDensity: 200000}},
		CurrentPrice: 98450, PositionsCreated: 450, PositionsConsumed: 120,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Decode generically: this is what the spec's existing clients see.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "snapshot" || m["symbol"] != "BTCUSDT" || m["seq"] != float64(7) {
		t.Fatalf("header fields wrong: %s", b)
	}
	if m["timestamp"] != "2025-12-29T09:00:00.123456789Z" {
		t.Fatalf("timestamp %v, want UTC with nanoseconds", m["timestamp"])
	}
	data := m["data"].(map[string]any)
	lv := data["levels"].([]any)[0].(map[string]any)
	if lv["price"] != 98000.0 || lv["long_density"] != 1500000.0 || lv["short_density"] != 200000.0 {
		t.Fatalf("level fields wrong: %v", lv)
	}
	for _, k := range []string{"current_price", "positions_created", "positions_consumed"} {
		if _, ok := data[k]; !ok {
			t.Fatalf("data lacks %q: %s", k, b)
		}
	}
}

func TestEncodeSnapshotEmptyLevelsIsList(t *testing.T) {
	b, err := EncodeSnapshot("X", 1, time.Unix(0, 0), SnapshotData{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"levels":[]`) {
		t.Fatalf("levels must encode as a list, got %s", b)
	}
}

func TestSmallFrames(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"error", EncodeError(CodeInvalidSymbol, `unknown symbol "X"`), `{"type":"error","code":"INVALID_SYMBOL","message":"unknown symbol \"X\""}`},
		{"warning", EncodeWarning(WarnSlowConsumer, "slow", 3), `{"type":"warning","code":"SLOW_CONSUMER","message":"slow","dropped_messages":3}`},
		{"pong", EncodePong(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)), `{"type":"pong","timestamp":"2025-01-02T03:04:05.000000000Z"}`},
	}
	for _, tc := range tests {
		if string(tc.b) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, tc.b, tc.want)
		}
	}
}

func TestSnapshotFrameMatchesStructEncoding(t *testing.T) {
	ts := time.Date(2025, 12, 29, 10, 0, 0, 5, time.UTC)
	d := SnapshotData{Levels: []Level{{Price: 1, LongDensity: 2}}, CurrentPrice: 3, Model: "classic"}
	got, err := EncodeSnapshot("ETHUSDT", 42, ts, d)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(Snapshot{Type: "snapshot", Symbol: "ETHUSDT", Timestamp: FormatTime(ts), Seq: 42, Data: d})
	if string(got) != string(want) {
		t.Fatalf("hand-built frame differs from struct encoding:\n got %s\nwant %s", got, want)
	}
	var back Snapshot
	if err := json.Unmarshal(got, &back); err != nil || back.Seq != 42 || back.Data.CurrentPrice != 3 {
		t.Fatalf("frame does not round-trip: %v %+v", err, back)
	}
}

func TestPeekTimestamp(t *testing.T) {
	ts := time.Date(2025, 12, 29, 10, 0, 0, 123456789, time.UTC)
	frame := SnapshotFrame("BTCUSDT", 3, ts, []byte(`{"levels":[]}`))
	got, ok := PeekTimestamp(frame)
	if !ok || !got.Equal(ts) {
		t.Fatalf("got %v %v, want %v", got, ok, ts)
	}
	for _, bad := range []string{``, `{"type":"pong"}`, `{"timestamp":"yesterday"}`, `{"timestamp":"2025-12-29T10:00:00Z`} {
		if _, ok := PeekTimestamp([]byte(bad)); ok {
			t.Errorf("%q: peeked a timestamp", bad)
		}
	}
}

func TestPeekEpochSeq(t *testing.T) {
	ts := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name               string
		frame              []byte
		wantEpoch, wantSeq uint64
		wantOK             bool
	}{
		{"with epoch", SnapshotFrameEpoch("BTCUSDT", 3, 41, ts, []byte(`{}`)), 3, 41, true},
		{"without epoch", SnapshotFrame("BTCUSDT", 41, ts, []byte(`{}`)), 0, 41, false},
		{"an epoch key in the payload is not the envelope's", SnapshotFrame("BTCUSDT", 5, ts, []byte(`{"epoch":9}`)), 0, 5, false},
		{"not a frame", []byte(`{"type":"error"}`), 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, s, ok := PeekEpochSeq(tc.frame)
			if ok != tc.wantOK || (ok && (e != tc.wantEpoch || s != tc.wantSeq)) {
				t.Fatalf("PeekEpochSeq(%s) = %d, %d, %v; want %d, %d, %v", tc.frame, e, s, ok, tc.wantEpoch, tc.wantSeq, tc.wantOK)
			}
		})
	}
}
