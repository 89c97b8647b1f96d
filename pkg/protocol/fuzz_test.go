package protocol

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeClientMessage: whatever a client sends, the decoder returns
// either a valid message or a DecodeError with a protocol code — it never
// panics and never lets an out-of-range value through.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"],"update_interval":5}`,
		`{"action":"unsubscribe","symbols":["ETHUSDT"]}`,
		`{"action":"ping"}`,
		`{"action":"subscribe","symbols":["btcusdt"],"update_interval":1e308}`,
		`{"action":"subscribe","symbols":[],"update_interval":-1}`,
		`{"action":"subscribe","symbols":null}`,
		`{"action":1}`,
		`[]`, `null`, ``, `{`, `{"action":"ping"} trailing`,
		"{\"action\":\"subscribe\",\"symbols\":[\"\xff\"]}",
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{CodeInvalidMessage: true, CodeInvalidAction: true, CodeInvalidSymbol: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeClientMessage(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !codes[de.Code] || de.Message == "" {
				t.Fatalf("error %v is not a DecodeError with a protocol code", err)
			}
			return
		}
		switch m.Action {
		case ActionPing:
			if m.Symbols != nil {
				t.Fatalf("ping carries symbols %v", m.Symbols)
			}
		case ActionSubscribe, ActionUnsubscribe:
			if len(m.Symbols) < 1 || len(m.Symbols) > MaxSymbolsPerMessage {
				t.Fatalf("%d symbols accepted", len(m.Symbols))
			}
			seen := map[string]bool{}
			for _, s := range m.Symbols {
				if s == "" || s != strings.ToUpper(s) || seen[s] || len(s) > 20 {
					t.Fatalf("symbol %q accepted in %v", s, m.Symbols)
				}
				seen[s] = true
			}
			if m.Action == ActionSubscribe && (m.UpdateInterval < MinUpdateInterval || m.UpdateInterval > MaxUpdateInterval) {
				t.Fatalf("update_interval %d accepted", m.UpdateInterval)
			}
		default:
			t.Fatalf("action %q accepted", m.Action)
		}
	})
}
