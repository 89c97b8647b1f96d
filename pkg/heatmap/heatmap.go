// Package heatmap computes a liquidation heatmap for crypto perpetual futures.
// It is pure: candles in, snapshots out, no I/O, no clock, no randomness.
//
// The model guesses where leveraged traders would be liquidated. Rising open
// interest (OI) is read as new positions spread over leverage tiers; falling
// OI closes existing positions pro rata; price touching a liquidation price
// removes the position. Per candle, in this order:
//
//  1. Consume: a long is liquidated when Low <= its liquidation price, a short
//     when High >= it (both inclusive); it is removed whole.
//  2. Create (ΔOI > 0): ΔOI = OIValue − previous candle's OIValue, or 0 when
//     there is no previous candle or either candle lacks OI; the positions
//     depend on the model (below). Because step 1 ran first, a position is
//     never tested against the candle that created it.
//  3. Close (ΔOI < 0): with total the remaining volume of both sides after step 1,
//     factor = min(|ΔOI|/total, 1) and every position keeps (1 − factor) of its
//     volume; positions left below MinPositionVolume are dropped.
//  4. Snapshot: bucket = floor(liq/bin)·bin; per bucket the long and short
//     volume; only non-zero buckets, ascending by price.
//
// Step 2 in the classic model (ModelClassic, the reference algorithm): all of
// ΔOI goes to one side, long when Close >= Open (a doji counts as long), short
// when Close < Open; entry = Close; one position per tier with nonzero
// weight, volume ΔOI·weight, liquidation price long entry·(1 − 1/L + mmr/L),
// short entry·(1 + 1/L − mmr/L).
//
// Step 2 in the binance model (ModelBinance): every contract has a long and a
// short, so each tier opens a long of ΔOI·LongShare·weight and a short of
// ΔOI·(1 − LongShare)·weight at the typical price EP = (High+Low+Close)/3,
// liquidated where Binance would liquidate an isolated one-way position whose
// wallet is its initial margin N/L: long EP·(1 − 1/L − cum/N)/(1 − mmr),
// short EP·(1 + 1/L + cum/N)/(1 + mmr), with N = Params.PositionNotional and
// (mmr, cum) its Bracket. A long that formula puts below 0 sits at 0.
//
// Per side, opened = remaining + liquidated + closed (up to rounding).
//
// Engine runs the model incrementally: a candle costs O(tiers + buckets and
// positions it liquidates or drops + log n), never a pass over all positions,
// and the still-open last candle can be revised in place. Results agree with
// the straightforward reference (kept in the tests as the oracle) to floating-point
// summation order, far inside 1e-9 relative per bucket.
package heatmap

import (
	"fmt"
	"math"
	"time"
)

// MinPositionVolume is the dust floor (USDT): a pro-rata close that leaves a
// position below it drops the position, so that repeated closes do not keep
// ever-smaller positions alive forever.
const MinPositionVolume = 0.01

// Candle is one kline plus the open interest the model needs; prices in USDT.
type Candle struct {
	OpenTime                       time.Time
	Open, High, Low, Close, Volume float64
	OIValue                        float64 // average open_interest_value (USDT) over the candle
	HasOI                          bool    // false when no OI observation fell in the candle
	// AfterGap marks a candle with candles missing right before it. The OI
	// change from the last candle then spans the whole gap (a missing
	// archive day, an outage), and opening it at this one candle would fake
	// a spike of positions, so the model counts this candle's ΔOI as 0, as
	// it does for a missing OI value. A candle source sets it only under
	// OIGapReset; left false, the reference algorithm is unchanged.
	AfterGap bool
}

// Level is one price bucket; densities are remaining position volume (USDT)
// that would be liquidated somewhere in [Price, Price+bin).
type Level struct {
	Price        float64 `json:"price"`
	LongDensity  float64 `json:"long_density"`
	ShortDensity float64 `json:"short_density"`
}

// Side distinguishes longs from shorts, which liquidate in opposite directions.
type Side int

// The two sides; their values index per-side arrays.
const (
	Long  Side = iota // liquidated when price falls to its liquidation price
	Short             // liquidated when price rises to its liquidation price
)

// String names the side for logs and test output.
func (s Side) String() string {
	switch s {
	case Long:
		return "long"
	case Short:
		return "short"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// SideTotals is cumulative accounting for one side since the engine started;
// it exists so callers (and tests) can check Opened = Remaining + Liquidated + Closed.
type SideTotals struct {
	Opened, Remaining, Liquidated, Closed float64 // volumes, USDT
	Created, Consumed                     int     // positions opened / liquidated
	Dropped                               int     // positions removed by the dust floor after a close
	Live                                  int     // positions alive now: Created − Consumed − Dropped
}

// Snapshot is the heatmap as it stands after one candle.
type Snapshot struct {
	Candle            Candle
	Levels            []Level // non-zero buckets, ascending price; nil from ApplyNoLevels/ReviseNoLevels
	CurrentPrice      float64 // the candle's close
	PositionsCreated  int     // in this candle
	PositionsConsumed int     // in this candle (liquidated)
	PositionsDropped  int     // in this candle (dust floor after a close)
	TotalLongVolume   float64 // remaining long volume after this candle
	TotalShortVolume  float64 // remaining short volume after this candle
}

// Classic is the original engine API, kept for existing callers: Apply
// returns a Snapshot without an error. It wraps an Engine with the candle
// order check off, because its callers replay a stored window whose order
// they already know. New code should use Engine, which also offers Revise.
// It runs whichever model its Params name; the zero Model is classic.
type Classic struct{ e *Engine }

// NewClassic validates p and returns an engine with no positions.
func NewClassic(p Params) (*Classic, error) {
	e, err := NewEngine(p)
	if err != nil {
		return nil, err
	}
	return &Classic{e: e}, nil
}

// Apply advances the model by one candle and returns the snapshot after it.
// Order is not checked. A candle the Engine would reject (a NaN, infinite or
// negative value) changes nothing: the snapshot echoes it over the unchanged
// heatmap, since this signature has no error to report it with.
func (c *Classic) Apply(k Candle) Snapshot {
	if checkCandle(k) != nil {
		return Snapshot{
			Candle:           k,
			Levels:           c.e.Levels(),
			CurrentPrice:     k.Close,
			TotalLongVolume:  c.e.remaining(Long),
			TotalShortVolume: c.e.remaining(Short),
		}
	}
	c.e.commit()
	return c.e.advance(k, true)
}

// Levels returns the current buckets as a fresh slice the caller may keep.
func (c *Classic) Levels() []Level { return c.e.Levels() }

// Totals returns cumulative per-side accounting since the engine started.
func (c *Classic) Totals() (long, short SideTotals) { return c.e.Totals() }

// Replay runs a fresh Engine over candles and returns one snapshot per candle,
// levels included, so its memory grows with candles × levels: for long
// windows, drive an Engine with ApplyNoLevels instead. It checks the order of
// the whole input first, and never returns partial output with an error.
func Replay(p Params, candles []Candle) ([]Snapshot, error) {
	e, err := NewEngine(p)
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(candles); i++ {
		if !candles[i].OpenTime.After(candles[i-1].OpenTime) {
			return nil, fmt.Errorf("heatmap: candle %d (open time %s) is not after candle %d (open time %s): candles must be in strictly increasing time order",
				i, candles[i].OpenTime.Format(time.RFC3339), i-1, candles[i-1].OpenTime.Format(time.RFC3339))
		}
	}
	out := make([]Snapshot, len(candles))
	for i, k := range candles {
		if out[i], err = e.Apply(k); err != nil {
			return nil, fmt.Errorf("heatmap: candle %d: %w", i, err)
		}
	}
	return out, nil
}

// bucketOf is the reference bucketing; written exactly as floor(liq/bin)·bin
// so that boundary cases round the same way as the reference. It is monotone
// in liq, which is what lets the engine cut whole buckets by price.
func bucketOf(liq, bin float64) float64 {
	return math.Floor(liq/bin) * bin
}
