package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// randomSnapshot is a snapshot on a grid of bin, with levels in [lo, lo+n bins).
func randomSnapshot(r *rand.Rand, bin float64, lo, n int) SnapshotData {
	d := SnapshotData{BinSize: bin, Model: "classic", Interval: "5m", WindowStart: "2026-11-24T00:00:00.000000000Z"}
	for i := range n {
		if r.IntN(3) == 0 {
			continue
		}
		d.Levels = append(d.Levels, Level{Price: float64(lo+i) * bin, LongDensity: density(r), ShortDensity: density(r)})
	}
	rescalar(r, &d)
	return d
}

// density is a value as the engine makes them: often zero on one side,
// otherwise an arbitrary float (exactness is the point).
func density(r *rand.Rand) float64 {
	if r.IntN(4) == 0 {
		return 0
	}
	return r.Float64() * math.Pow(10, float64(r.IntN(9)))
}

func rescalar(r *rand.Rand, d *SnapshotData) {
	d.CurrentPrice = 90000 + r.Float64()*1000
	d.PositionsCreated, d.PositionsConsumed = r.IntN(100), r.IntN(100)
	d.TotalLongVolume, d.TotalShortVolume = r.Float64()*1e9, r.Float64()*1e9
	d.Candle = Candle{OpenTime: FormatTime(time.Unix(1764547200+int64(r.IntN(1e6)), 0)), Open: r.Float64(), High: r.Float64(), Low: r.Float64(), Close: r.Float64(), Volume: r.Float64()}
	// Often none, as most candles have none; then a few.
	d.Liquidations = nil
	for range max(0, r.IntN(6)-2) {
		side := "long"
		if r.IntN(2) == 0 {
			side = "short"
		}
		d.Liquidations = append(d.Liquidations, Liquidation{Time: FormatTime(time.Unix(1764547200+int64(r.IntN(300)), 0)),
			Side: side, Price: 90000 + r.Float64()*1000, Quantity: r.Float64(), Notional: r.Float64() * 1e6})
	}
}

// evolve makes the next snapshot the way a heatmap moves: most levels stay,
// some change, some empty out, new prices appear; now and then the bin changes.
func evolve(r *rand.Rand, prev SnapshotData) SnapshotData {
	if r.IntN(20) == 0 {
		return randomSnapshot(r, []float64{10, 25, 100, 250}[r.IntN(4)], 850+r.IntN(100), 1+r.IntN(60))
	}
	next := prev
	next.Levels = nil
	for _, l := range prev.Levels {
		switch r.IntN(10) {
		case 0: // emptied out
			continue
		case 1, 2:
			l.LongDensity = density(r)
		case 3:
			l.ShortDensity = density(r)
		}
		next.Levels = append(next.Levels, l)
	}
	for range r.IntN(4) {
		p := float64(800+r.IntN(300)) * prev.BinSize
		if !slices.ContainsFunc(next.Levels, func(l Level) bool { return l.Price == p }) {
			next.Levels = append(next.Levels, Level{Price: p, LongDensity: density(r), ShortDensity: density(r)})
		}
	}
	slices.SortFunc(next.Levels, func(a, b Level) int { return int(math.Copysign(1, a.Price-b.Price)) })
	rescalar(r, &next)
	return next
}

// TestDeltasRebuildEveryFrame: for random sequences of snapshots, applying
// each delta, as a client receives it (encoded, decoded), to the state built
// from the first full frame gives exactly the next full frame's bytes.
func TestDeltasRebuildEveryFrame(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 16))
		prev := randomSnapshot(r, 100, 900, 1+r.IntN(80))
		state := prev
		for step := range 40 {
			next := evolve(r, prev)
			raw, err := EncodeDeltaData(Diff(prev, next))
			if err != nil {
				t.Fatal(err)
			}
			var d DeltaData
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			state = Apply(state, d)
			got, _ := EncodeSnapshotData(state)
			want, _ := EncodeSnapshotData(next)
			if !bytes.Equal(got, want) {
				t.Fatalf("seed %d step %d: applied delta gives\n%s\nwant\n%s\ndelta %s", seed, step, got, want, raw)
			}
			prev = next
		}
	}
}

func TestDiffSendsOnlyWhatChanged(t *testing.T) {
	prev := SnapshotData{BinSize: 100, Levels: []Level{{100, 1, 0}, {200, 2, 0}, {300, 3, 1}}}
	next := SnapshotData{BinSize: 100, Levels: []Level{{100, 1, 0}, {300, 3, 2}, {400, 0, 4}}, CurrentPrice: 250}
	d := Diff(prev, next)
	if !slices.Equal(d.Levels, []Level{{300, 3, 2}, {400, 0, 4}}) || !slices.Equal(d.Removed, []float64{200}) || d.CurrentPrice != 250 {
		t.Fatalf("delta %+v", d)
	}
	same := Diff(next, next)
	if len(same.Levels) != 0 || len(same.Removed) != 0 {
		t.Fatalf("delta of a frame to itself %+v", same)
	}
	if b, _ := EncodeDeltaData(same); !bytes.Contains(b, []byte(`"levels":[],"removed":[]`)) {
		t.Fatalf("empty delta encodes as %s, want empty lists", b)
	}
}

func TestDeltaFrameEnvelope(t *testing.T) {
	ts := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	data, _ := EncodeDeltaData(DeltaData{CurrentPrice: 1})
	f := DeltaFrame("BTCUSDT", 3, 12, 11, ts, data)
	var d Delta
	if err := json.Unmarshal(f, &d); err != nil {
		t.Fatal(err)
	}
	if d.Type != TypeDelta || d.Symbol != "BTCUSDT" || d.Seq != 12 || d.Epoch != 3 || d.BaseSeq != 11 || d.Timestamp != FormatTime(ts) || d.Data.CurrentPrice != 1 {
		t.Fatalf("decoded %+v from %s", d, f)
	}
	if b, ok := PeekBaseSeq(f); !ok || b != 11 {
		t.Fatalf("PeekBaseSeq = %d %v", b, ok)
	}
	if e, s, ok := PeekEpochSeq(f); !ok || e != 3 || s != 12 {
		t.Fatalf("PeekEpochSeq = %d %d %v", e, s, ok)
	}
	if ts2, ok := PeekTimestamp(f); !ok || !ts2.Equal(ts) {
		t.Fatalf("PeekTimestamp = %v %v", ts2, ok)
	}
	// A full frame has no base_seq, even when its payload has such a key.
	full := SnapshotFrameEpoch("BTCUSDT", 3, 12, ts, []byte(`{"base_seq":5}`))
	if _, ok := PeekBaseSeq(full); ok {
		t.Fatalf("PeekBaseSeq found one in a full frame")
	}
}
