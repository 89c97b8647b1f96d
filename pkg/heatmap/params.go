package heatmap

import (
	"errors"
	"fmt"
	"math"
	"slices"
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
	// MaxTiers bounds the leverage mix: every tier is a position per candle
	// and a pass per snapshot, so an unbounded list (a request line holds
	// ~120k) costs seconds of CPU and hundreds of MB per response.
	MaxTiers = 32
)

// weightSumTolerance absorbs the rounding of normalising weights by their sum.
const weightSumTolerance = 1e-9

// Tier is one leverage bucket of newly opened interest; Weight is its share of ΔOI.
type Tier struct{ Leverage, Weight float64 }

// Params are fixed for an engine's lifetime because changing them mid-stream
// would make old and new positions incomparable. The zero value of each field
// added for the binance model means its default, so that a Params literal
// written for the classic model keeps meaning the same thing.
type Params struct {
	Tiers   []Tier  // normalised (sum 1)
	MMR     float64 // classic: maintenance margin rate of every tier
	BinSize float64 // bucket width of the snapshot levels

	Model Model // "" or ModelClassic: the reference model; ModelBinance: both sides, brackets

	// LongShare is the binance model's share of new contracts that are longs,
	// in (0, 1); 0 means DefaultLongShare.
	LongShare float64
	// Brackets is the binance model's maintenance-margin table; nil means
	// BracketsFor(DefaultBracketSymbol). The engine has no symbol, so a caller serving several
	// symbols sets BracketsFor(symbol) (or a configured override) here.
	Brackets []Bracket
	// PositionNotional (USDT) picks the bracket of the binance model; 0 means
	// DefaultPositionNotional. See Bracket for why it is not the ΔOI.
	PositionNotional float64
}

// Model names the way new open interest becomes positions.
type Model string

// The models an engine can run.
const (
	// ModelClassic reproduces the reference algorithm exactly: one side per
	// candle, entry at the close, flat mmr.
	ModelClassic Model = "classic"
	// ModelBinance opens both sides of every contract at the typical price
	// with Binance's isolated-margin liquidation price and mmr brackets.
	ModelBinance Model = "binance"
)

// Defaults of the binance model.
const (
	DefaultLongShare        = 0.5       // a contract has a buyer and a seller; without order flow, assume half of the new interest is long
	DefaultPositionNotional = 1e5       // USDT; a typical single position, which fixes the bracket
	DefaultBracketSymbol    = "BTCUSDT" // whose table BracketsFor returns for an unknown symbol
)

// ParseModel reads the config spelling of a model, case-insensitively; an
// empty string is the classic model, like Params' zero value.
func ParseModel(s string) (Model, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", string(ModelClassic):
		return ModelClassic, nil
	case string(ModelBinance):
		return ModelBinance, nil
	}
	return "", fmt.Errorf("model: %q: want %q or %q", s, ModelClassic, ModelBinance)
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

// DefaultParams returns the reference (classic) model's parameters with the
// binance defaults filled in, so that switching Model is the only edit needed;
// a fresh copy each call.
func DefaultParams() Params {
	return Params{
		Tiers:            append([]Tier(nil), defaultTiers...),
		MMR:              DefaultMMR,
		BinSize:          DefaultBinSize,
		Model:            ModelClassic,
		LongShare:        DefaultLongShare,
		PositionNotional: DefaultPositionNotional,
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
	// Counted before splitting, so an oversized list costs nothing to refuse.
	if n := strings.Count(s, ",") + 1; n > MaxTiers {
		return nil, fmt.Errorf("leverage weights: %d tiers, at most %d", n, MaxTiers)
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
	if len(p.Tiers) > MaxTiers {
		return fmt.Errorf("leverage weights: %d tiers, at most %d", len(p.Tiers), MaxTiers)
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
	return p.validateBinance()
}

// validateBinance checks the binance fields whatever the model, so that a
// typo in a config is caught before someone switches the model on.
func (p Params) validateBinance() error {
	switch p.Model {
	case "", ModelClassic, ModelBinance:
	default:
		return fmt.Errorf("model: %q: want %q or %q", p.Model, ModelClassic, ModelBinance)
	}
	if p.LongShare != 0 && !(p.LongShare > 0 && p.LongShare < 1) {
		return fmt.Errorf("long share: must be in (0, 1) (0 means %g), got %g", DefaultLongShare, p.LongShare)
	}
	if p.PositionNotional != 0 && !(p.PositionNotional > 0 && !math.IsInf(p.PositionNotional, 1)) {
		return fmt.Errorf("position notional: must be positive and finite (0 means %g), got %g", DefaultPositionNotional, p.PositionNotional)
	}
	if p.Brackets != nil {
		if err := checkBrackets(p.Brackets); err != nil {
			return err
		}
	}
	if p.Model != ModelBinance {
		return nil
	}
	q := p.withDefaults()
	last := q.Brackets[len(q.Brackets)-1]
	if !(q.PositionNotional < last.Cap) {
		return fmt.Errorf("position notional: %g is not below the last bracket's cap %g", q.PositionNotional, last.Cap)
	}
	b := bracketFor(q.Brackets, q.PositionNotional)
	for _, t := range q.Tiers {
		// Binance refuses a position whose initial margin N/L does not exceed
		// its maintenance margin N·rate − cum; the formula would then put the
		// liquidation price on the wrong side of the entry.
		if t.Weight > 0 && !(1/t.Leverage+b.Cum/q.PositionNotional > b.MMR) {
			return fmt.Errorf("leverage weights: %gx is more than a %g USDT position may use (bracket from %g: maintenance margin rate %g, cum %g)",
				t.Leverage, q.PositionNotional, b.Floor, b.MMR, b.Cum)
		}
	}
	return nil
}

// withDefaults fills the zero-valued binance fields, so that the engine and
// Validate read the same effective parameters.
func (p Params) withDefaults() Params {
	if p.Model == "" {
		p.Model = ModelClassic
	}
	if p.LongShare == 0 {
		p.LongShare = DefaultLongShare
	}
	if p.PositionNotional == 0 {
		p.PositionNotional = DefaultPositionNotional
	}
	if p.Brackets == nil {
		p.Brackets = BracketsFor(DefaultBracketSymbol)
	} else {
		p.Brackets = slices.Clone(p.Brackets)
	}
	p.Tiers = slices.Clone(p.Tiers)
	return p
}
