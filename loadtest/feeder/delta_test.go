package feeder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
	"github.com/liqstream/liqstream/pkg/testenv"
)

// fullFrame is a snapshot frame decoded with its epoch and its data as sent.
type fullFrame struct {
	Seq       uint64          `json:"seq"`
	Epoch     uint64          `json:"epoch"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func decodeFull(t *testing.T, b []byte) (fullFrame, protocol.SnapshotData) {
	t.Helper()
	var f fullFrame
	var d protocol.SnapshotData
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame: %v", err)
	}
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("frame data: %v", err)
	}
	return f, d
}

// Every round's delta, applied to the round before's frame, gives this
// round's frame byte for byte; and the frames evolve as the snapshotter's:
// a handful of changed levels per round, now and then one more or one fewer.
func TestEvolvingFramesCarryExactDeltas(t *testing.T) {
	const epoch = 1764547200
	f, err := NewWithOptions([]string{"BTCUSDT", "ETHUSDT"}, time.Hour, 18000, nil, Options{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.symbols {
		if f.deltas[s] != nil {
			t.Fatalf("%s: a delta with the first frame", s)
		}
	}
	appeared, vanished, maxChanged := 0, 0, 0
	for round := 2; round <= 200; round++ {
		prev := map[string][]byte{}
		for _, s := range f.symbols {
			prev[s] = f.latest[s]
		}
		if err := f.round(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range f.symbols {
			pf, pd := decodeFull(t, prev[s])
			nf, nd := decodeFull(t, f.latest[s])
			if nf.Epoch != epoch || nf.Seq != uint64(round) || pf.Seq != uint64(round-1) {
				t.Fatalf("%s round %d: frame epoch %d seq %d after seq %d", s, round, nf.Epoch, nf.Seq, pf.Seq)
			}
			db := f.deltas[s]
			if db == nil {
				t.Fatalf("%s round %d: no delta", s, round)
			}
			if !bus.SameFrame(db, f.latest[s]) {
				t.Fatalf("%s round %d: the delta does not name its frame: %.160s", s, round, db)
			}
			if base, ok := protocol.PeekBaseSeq(db); !ok || base != pf.Seq {
				t.Fatalf("%s round %d: base_seq %d, %v; want %d", s, round, base, ok, pf.Seq)
			}
			var d protocol.Delta
			if err := json.Unmarshal(db, &d); err != nil {
				t.Fatalf("delta: %v", err)
			}
			if d.Type != protocol.TypeDelta || d.Symbol != s || d.Epoch != epoch || d.Seq != nf.Seq || d.Timestamp != nf.Timestamp {
				t.Fatalf("%s round %d: delta envelope %+v vs frame seq %d at %s", s, round, d, nf.Seq, nf.Timestamp)
			}
			got, err := protocol.EncodeSnapshotData(protocol.Apply(pd, d.Data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, nf.Data) {
				t.Fatalf("%s round %d: base + delta differs from the frame:\n%.300s\nwant\n%.300s", s, round, got, nf.Data)
			}
			// Changed levels: 5 to 10 redrawn (fewer if one is drawn
			// twice), plus one that appeared.
			if n := len(d.Data.Levels); n < 1 || n > 11 {
				t.Errorf("%s round %d: %d levels in the delta, want 1..11", s, round, n)
			}
			maxChanged = max(maxChanged, len(d.Data.Levels))
			vanished += len(d.Data.Removed)
			if len(nd.Levels) > len(pd.Levels) {
				appeared++
			}
			if n := len(nd.Levels); n < f.levels[s]-5 || n > f.levels[s]+5 {
				t.Errorf("%s round %d: %d levels, want within 5 of %d", s, round, n, f.levels[s])
			}
			if len(db) > len(f.latest[s])/8 {
				t.Errorf("%s round %d: delta of %d bytes for a frame of %d", s, round, len(db), len(f.latest[s]))
			}
		}
	}
	if appeared < 10 || vanished < 10 || maxChanged < 8 {
		t.Errorf("over 199 rounds of 2 symbols: %d levels appeared, %d vanished, at most %d changed in one; want at least 10 of each (one round in five) and up to 10 changed", appeared, vanished, maxChanged)
	}
	t.Logf("%s", f.Sizes())
}

// The feeder before deltas: every level redrawn, so no delta is worth sending.
func TestRegenerateSendsNoDelta(t *testing.T) {
	f, err := NewWithOptions([]string{"BTCUSDT"}, time.Hour, 18000, nil, Options{Regenerate: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		prev := f.latest["BTCUSDT"]
		if err := f.round(context.Background()); err != nil {
			t.Fatal(err)
		}
		if f.deltas["BTCUSDT"] != nil || bytes.Equal(prev, f.latest["BTCUSDT"]) {
			t.Fatalf("regenerating feeder: delta %q, frame unchanged %v", f.deltas["BTCUSDT"], bytes.Equal(prev, f.latest["BTCUSDT"]))
		}
	}
	if e, _, ok := protocol.PeekEpochSeq(f.latest["BTCUSDT"]); !ok || e != f.Epoch() || e < uint64(time.Now().Unix())-60 {
		t.Errorf("epoch %d, %v; want the feeder's, the unix second it started (%d)", e, ok, f.Epoch())
	}
}

// Through a real redis-server: a gateway's RedisSource pairs every frame
// after the first with its delta, so the delta is published before its frame.
func TestRedisCarriesEachDeltaBeforeItsFrame(t *testing.T) {
	r := testenv.StartRedis(t)
	rc, err := bus.NewRedisClient(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := New([]string{"BTCUSDT"}, time.Hour, 2000, rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.round(ctx); err != nil { // seq 1, read back as :latest
		t.Fatal(err)
	}
	frames := make(chan bus.Frame, 16)
	up := make(chan bool, 4)
	src := bus.NewRedisSource(rc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go src.Run(ctx, []string{"BTCUSDT"}, func(fr bus.Frame) { frames <- fr }, func(v bool) { up <- v })
	select {
	case <-up:
	case <-ctx.Done():
		t.Fatal("not subscribed")
	}
	for round := 2; round <= 4; round++ {
		if err := f.round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(1); want <= 4; want++ {
		select {
		case fr := <-frames:
			_, seq, _ := protocol.PeekEpochSeq(fr.Bytes)
			if seq != want {
				t.Fatalf("frame seq %d, want %d", seq, want)
			}
			if want > 1 && (fr.Delta == nil || !bus.SameFrame(fr.Delta, fr.Bytes)) {
				t.Fatalf("seq %d came without its delta (%q)", seq, fr.Delta)
			}
		case <-ctx.Done():
			t.Fatalf("frame %d never came", want)
		}
	}
}
