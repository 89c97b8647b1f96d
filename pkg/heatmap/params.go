package heatmap

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultWeights is the reference leverage mix; weights are percentages but any
// positive scale works because ParseWeights normalises them.
const DefaultWeights = "5:15,10:30,25:25,50:20,100:10"

// DefaultMMR is the reference maintenance margin rate, applied to every tier alike.
const DefaultMMR = 0.004

// DefaultBinSize is the reference bucket width in quote units (USDT).
const DefaultBinSize = 100.0

// Limits on the parameters, exported so that config validation elsewhere can
// quote the same bounds.
const (
	MinLeverage = 1.0    // a leverage below 1 would put the long liquidation price below zero
	MaxLeverage = 125.0  // Binance USD-M's highest leverage
	MinBinSize  = 1.0    // narrower buckets only add noise and levels
	MaxBinSize  = 1000.0 // wider buckets hide the structure the heatmap exists to show
)

// weightSumTolerance absorbs the rounding of normalising weights by their sum.
const weightSumTolerance = 1e-9

// Tier is one leverage bucket of newly opened interest; Weight is its share of ΔOI.
type Tier struct{ Leverage, Weight float64 }

// Params are fixed for an engine's lifetime because changing them mid-stream
// would make old and new positions incomparable.
type Params struct {
	Tiers   []Tier  // normalised (sum 1)
	MMR     float64 // maintenance margin rate
	BinSize float64 // bucket width of the snapshot levels
}

// defaultTiers is parsed once; DefaultParams hands out copies so callers
// cannot mutate each other's tiers.
var defaultTiers = mustParseWeights(DefaultWeights)

func mustParseWeights(s string) []Tier {
	t, err := ParseWeights(s)
	if err != nil {
		panic(err)
	}
	return t
}

// DefaultParams returns the reference model's parameters (a fresh copy each call).
func DefaultParams() Params {
	return Params{
		Tiers:   append([]Tier(nil), defaultTiers...),
		MMR:     DefaultMMR,
		BinSize: DefaultBinSize,
	}
}

// ParseWeights reads the config syntax "LEV:WEIGHT,..." so that operators can
// write percentages; the result is normalised to sum 1 and keeps input order.
// Zero weights are allowed (the tier then never receives positions) but not
// all of them at once.
func ParseWeights(s string) ([]Tier, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("leverage weights: empty")
	}
	parts := strings.Split(s, ",")
	tiers := make([]Tier, 0, len(parts))
	seen := make(map[float64]bool, len(parts))
	var sum float64
	for _, raw := range parts {
		part := strings.TrimSpace(raw)
		bad := func(msg string) error {
			return fmt.Errorf("leverage weights: %q: %s", part, msg)
		}
		if part == "" {
			return nil, bad("empty entry")
		}
		levStr, wStr, ok := strings.Cut(part, ":")
		if !ok {
			return nil, bad("want LEVERAGE:WEIGHT")
		}
		lev, err := strconv.ParseFloat(strings.TrimSpace(levStr), 64)
		if err != nil || math.IsNaN(lev) {
			return nil, bad("leverage is not a number")
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(wStr), 64)
		if err != nil || math.IsNaN(w) {
			return nil, bad("weight is not a number")
		}
		if lev < MinLeverage || lev > MaxLeverage {
			return nil, bad(fmt.Sprintf("leverage must be between %g and %g", MinLeverage, MaxLeverage))
		}
		if w < 0 {
			return nil, bad("weight must not be negative")
		}
		if math.IsInf(w, 1) {
			return nil, bad("weight must be finite")
		}
		if seen[lev] {
			return nil, bad("duplicate leverage")
		}
		seen[lev] = true
		tiers = append(tiers, Tier{Leverage: lev, Weight: w})
		sum += w
	}
	if sum == 0 {
		return nil, errors.New("leverage weights: all weights are zero")
	}
	if math.IsInf(sum, 0) {
		return nil, errors.New("leverage weights: weights too large")
	}
	for i := range tiers {
		tiers[i].Weight /= sum
	}
	return tiers, nil
}

// Validate rejects parameters the model is undefined for, naming the field so
// that the message can be shown to whoever wrote the config.
func (p Params) Validate() error {
	if !(p.BinSize >= MinBinSize && p.BinSize <= MaxBinSize) {
		return fmt.Errorf("bin size: must be between %g and %g, got %g", MinBinSize, MaxBinSize, p.BinSize)
	}
	if !(p.MMR >= 0 && p.MMR < 1) {
		return fmt.Errorf("mmr: must be in [0, 1), got %g", p.MMR)
	}
	if len(p.Tiers) == 0 {
		return errors.New("leverage weights: no tiers")
	}
	seen := make(map[float64]bool, len(p.Tiers))
	var sum float64
	for _, t := range p.Tiers {
		if !(t.Leverage >= MinLeverage && t.Leverage <= MaxLeverage) {
			return fmt.Errorf("leverage weights: leverage %g must be between %g and %g", t.Leverage, MinLeverage, MaxLeverage)
		}
		if !(t.Weight >= 0 && t.Weight <= 1) {
			return fmt.Errorf("leverage weights: %gx weight %g must be in [0, 1]", t.Leverage, t.Weight)
		}
		if seen[t.Leverage] {
			return fmt.Errorf("leverage weights: duplicate leverage %g", t.Leverage)
		}
		seen[t.Leverage] = true
		sum += t.Weight
	}
	if math.Abs(sum-1) > weightSumTolerance {
		return fmt.Errorf("leverage weights: weights sum to %g, want 1 (use ParseWeights to normalise)", sum)
	}
	return nil
}
