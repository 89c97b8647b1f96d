package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// syncBuf is a log sink safe for the watch's goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// An interrupted demo seed (candles, no open interest) is warned about, in
// the log, store_gaps and the API's warnings; once open interest arrives the
// next check clears it.
func TestGapWatch(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "g.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	first := now.Add(-100 * 5 * time.Minute)
	var ks []store.Kline
	var ois []store.OpenInterest
	for i := range 100 {
		at := first.Add(time.Duration(i) * 5 * time.Minute)
		for _, sym := range []string{"BTCUSDT", "ETHUSDT", "XRPUSDT"} {
			ks = append(ks, store.Kline{Symbol: sym, Interval: "5m", OpenTime: at, Open: 1, High: 1, Low: 1, Close: 1})
		}
		ois = append(ois, store.OpenInterest{Symbol: "ETHUSDT", TS: at, OpenInterest: 1, OpenInterestValue: 1})
	}
	if err := st.UpsertKlines(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertOpenInterest(ctx, ois); err != nil {
		t.Fatal(err)
	}

	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	// XRPUSDT is in the store, not in the config: not reported.
	w := newGapWatch(st, []string{"BTCUSDT", "ETHUSDT"}, "5m", 5*time.Minute, 7*24*time.Hour, func() time.Time { return now }, log)
	m := newMetrics(st, nil, []string{"BTCUSDT", "ETHUSDT"}, 5*time.Second)
	m.watchGaps(w)
	if body := scrape(t, m); !strings.Contains(body, `store_gaps{symbol="BTCUSDT",table="open_interest"} 0`+"\n") {
		t.Errorf("before the first check store_gaps is not 0:\n%s", body)
	}

	w.checkOrLog(ctx)
	body := scrape(t, m)
	for _, want := range []string{`store_gaps{symbol="BTCUSDT",table="open_interest"} 1`, `store_gaps{symbol="ETHUSDT",table="open_interest"} 0`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "XRPUSDT") {
		t.Errorf("/metrics has an unconfigured symbol:\n%s", body)
	}
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1 warning: %v", len(lines), lines)
	}
	l := lines[0]
	if l["level"] != "WARN" || l["symbol"] != "BTCUSDT" || l["reason"] != store.GapNoOpenInterest || l["since"] != first.Format(time.RFC3339) || l["table"] != "open_interest" {
		t.Errorf("warning = %v", l)
	}
	warn := w.warnings()
	if len(warn) != 1 || warn[0].Symbol != "BTCUSDT" || !warn[0].Since.Equal(first) ||
		warn[0].Message != "BTCUSDT has candles but no open-interest data (100 5m candles since 2026-11-24T03:40:00Z): its heatmap is empty" {
		t.Fatalf("warnings = %+v", warn)
	}

	// Open interest for BTCUSDT up to 20 candles before the last: stale now.
	ois = ois[:0]
	for i := range 80 {
		ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: first.Add(time.Duration(i) * 5 * time.Minute), OpenInterest: 1, OpenInterestValue: 1})
	}
	if err := st.UpsertOpenInterest(ctx, ois); err != nil {
		t.Fatal(err)
	}
	w.checkOrLog(ctx)
	if warn := w.warnings(); len(warn) != 1 || warn[0].Kind != store.GapOpenInterestStale ||
		warn[0].Message != "no open-interest data for BTCUSDT since 2026-11-24T10:15:00Z (20 5m candles without it)" {
		t.Fatalf("warnings = %+v", warn)
	}

	// The rest arrives; the periodic check (interval injected) clears it.
	ois = ois[:0]
	for i := 80; i < 100; i++ {
		ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: first.Add(time.Duration(i) * 5 * time.Minute), OpenInterest: 1, OpenInterestValue: 1})
	}
	if err := st.UpsertOpenInterest(ctx, ois); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(rctx, 10*time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, m), `store_gaps{symbol="BTCUSDT",table="open_interest"} 0`+"\n") {
		if time.Now().After(deadline) {
			t.Fatal("the periodic check did not clear the gap")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if warn := w.warnings(); len(warn) != 0 {
		t.Fatalf("warnings after the gap filled = %+v", warn)
	}
}
