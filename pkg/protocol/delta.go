package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// TypeDelta is a frame that carries what changed since the frame whose seq
// is its base_seq; clients opt in with "encoding":"delta".
const TypeDelta = "delta"

// Encodings a subscribe may ask for.
const (
	EncodingFull  = "full"
	EncodingDelta = "delta"
)

// DeltaData is the payload of a delta frame: the levels that are new or
// changed, the prices of those that are gone, and every scalar of the
// snapshot (they are a few dozen bytes; sending them whole keeps applying a
// delta trivial).
type DeltaData struct {
	Levels            []Level   `json:"levels"`
	Removed           []float64 `json:"removed"`
	CurrentPrice      float64   `json:"current_price"`
	PositionsCreated  int       `json:"positions_created"`
	PositionsConsumed int       `json:"positions_consumed"`
	TotalLongVolume   float64   `json:"total_long_volume"`
	TotalShortVolume  float64   `json:"total_short_volume"`
	BinSize           float64   `json:"bin_size"`
	Model             string    `json:"model"`
	Interval          string    `json:"interval"`
	WindowStart       string    `json:"window_start"`
	Candle            Candle    `json:"candle"`
	// Liquidations replaces the snapshot's whole: a candle holds few.
	Liquidations []Liquidation `json:"liquidations,omitempty"`
}

// Diff returns the delta that turns prev into next. Levels are matched by
// price; a level is changed when either density differs at all, so applying
// the delta yields next exactly.
func Diff(prev, next SnapshotData) DeltaData {
	d := DeltaData{
		Levels: []Level{}, Removed: []float64{},
		CurrentPrice: next.CurrentPrice, PositionsCreated: next.PositionsCreated, PositionsConsumed: next.PositionsConsumed,
		TotalLongVolume: next.TotalLongVolume, TotalShortVolume: next.TotalShortVolume, BinSize: next.BinSize,
		Model: next.Model, Interval: next.Interval, WindowStart: next.WindowStart, Candle: next.Candle,
		Liquidations: next.Liquidations,
	}
	old := make(map[float64]Level, len(prev.Levels))
	for _, l := range prev.Levels {
		old[l.Price] = l
	}
	for _, l := range next.Levels {
		if o, ok := old[l.Price]; !ok || o != l {
			d.Levels = append(d.Levels, l)
		}
		delete(old, l.Price)
	}
	for p := range old {
		d.Removed = append(d.Removed, p)
	}
	slices.Sort(d.Removed)
	return d
}

// Apply returns prev with d applied: levels sorted by price, as snapshots
// carry them. prev is not modified.
func Apply(prev SnapshotData, d DeltaData) SnapshotData {
	byPrice := make(map[float64]Level, len(prev.Levels)+len(d.Levels))
	for _, l := range prev.Levels {
		byPrice[l.Price] = l
	}
	for _, p := range d.Removed {
		delete(byPrice, p)
	}
	for _, l := range d.Levels {
		byPrice[l.Price] = l
	}
	levels := make([]Level, 0, len(byPrice))
	for _, l := range byPrice {
		levels = append(levels, l)
	}
	slices.SortFunc(levels, func(a, b Level) int {
		switch {
		case a.Price < b.Price:
			return -1
		case a.Price > b.Price:
			return 1
		}
		return 0
	})
	return SnapshotData{
		Levels: levels, CurrentPrice: d.CurrentPrice, PositionsCreated: d.PositionsCreated,
		PositionsConsumed: d.PositionsConsumed, TotalLongVolume: d.TotalLongVolume, TotalShortVolume: d.TotalShortVolume,
		BinSize: d.BinSize, Model: d.Model, Interval: d.Interval, WindowStart: d.WindowStart, Candle: d.Candle,
		Liquidations: d.Liquidations,
	}
}

// EncodeDeltaData encodes a delta payload once, for every client.
func EncodeDeltaData(d DeltaData) ([]byte, error) {
	if d.Levels == nil {
		d.Levels = []Level{}
	}
	if d.Removed == nil {
		d.Removed = []float64{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode delta data: %w", err)
	}
	return b, nil
}

// DeltaFrame wraps encoded delta data: the frame of seq, to be applied to
// the frame of baseSeq (same epoch). Its envelope matches SnapshotFrameEpoch's,
// with "base_seq" before "data" so relays can peek it.
func DeltaFrame(symbol string, epoch, seq, baseSeq uint64, ts time.Time, data []byte) []byte {
	b := appendHead(make([]byte, 0, len(data)+160), TypeDelta, symbol, epoch, seq, ts)
	b = append(b, `,"base_seq":`...)
	b = strconv.AppendUint(b, baseSeq, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// Delta is a whole delta frame, decoded (clients and tests; relays peek).
type Delta struct {
	Type      string    `json:"type"`
	Symbol    string    `json:"symbol"`
	Timestamp string    `json:"timestamp"`
	Seq       uint64    `json:"seq"`
	Epoch     uint64    `json:"epoch"`
	BaseSeq   uint64    `json:"base_seq"`
	Data      DeltaData `json:"data"`
}

// PeekBaseSeq reads a delta frame's base_seq without decoding it.
func PeekBaseSeq(frame []byte) (uint64, bool) {
	head := frame[:min(len(frame), 220)]
	if i := bytes.Index(head, []byte(`"data":`)); i >= 0 {
		head = head[:i]
	}
	return peekUint(head, `"base_seq":`)
}
