package heatmap

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Bracket is one row of a Binance USD-M maintenance-margin table: a position
// whose notional N lies in [Floor, Cap) has maintenance margin N·MMR − Cum.
//
// The binance model picks the bracket by Params.PositionNotional, a
// representative single position, and not by the candle's ΔOI: an OI delta
// of 50M USDT is thousands of traders, each margined on their own position.
// Reading it as one 50M position would put it in the 5 % bracket and drag
// every liquidation price towards the entry, more so the more OI arrived, so
// that a busy candle would draw different bands than a quiet one at the same
// price. A fixed representative notional keeps each tier at one price.
type Bracket struct {
	Floor, Cap float64 // notional range in USDT, Floor inclusive, Cap exclusive
	MMR        float64 // maintenance margin rate
	Cum        float64 // maintenance amount (USDT); derived, see deriveCum
}

// bracketTables are Binance's published tables (floor, cap, rate); Cum is
// filled in by deriveCum at init so that the table cannot disagree with the rule.
var bracketTables = map[string][]Bracket{
	"BTCUSDT": deriveCum([]Bracket{
		{Floor: 0, Cap: 50e3, MMR: 0.004},
		{Floor: 50e3, Cap: 500e3, MMR: 0.005},
		{Floor: 500e3, Cap: 8e6, MMR: 0.01},
		{Floor: 8e6, Cap: 50e6, MMR: 0.025},
		{Floor: 50e6, Cap: 80e6, MMR: 0.05},
		{Floor: 80e6, Cap: 100e6, MMR: 0.1},
		{Floor: 100e6, Cap: 120e6, MMR: 0.125},
		{Floor: 120e6, Cap: 200e6, MMR: 0.15},
		{Floor: 200e6, Cap: 300e6, MMR: 0.25},
		{Floor: 300e6, Cap: 500e6, MMR: 0.5},
	}),
	"ETHUSDT": deriveCum([]Bracket{
		{Floor: 0, Cap: 50e3, MMR: 0.005},
		{Floor: 50e3, Cap: 500e3, MMR: 0.0065},
		{Floor: 500e3, Cap: 8e6, MMR: 0.01},
		{Floor: 8e6, Cap: 50e6, MMR: 0.02},
		{Floor: 50e6, Cap: 80e6, MMR: 0.05},
		{Floor: 80e6, Cap: 100e6, MMR: 0.1},
		{Floor: 100e6, Cap: 150e6, MMR: 0.125},
		{Floor: 150e6, Cap: 300e6, MMR: 0.15},
		{Floor: 300e6, Cap: 500e6, MMR: 0.25},
		{Floor: 500e6, Cap: 800e6, MMR: 0.5},
	}),
}

// deriveCum applies Binance's rule cum_i = cum_{i−1} + floor_i·(mmr_i − mmr_{i−1}),
// cum_0 = 0, which makes the maintenance margin continuous across a floor.
func deriveCum(b []Bracket) []Bracket {
	var cum float64
	for i := range b {
		if i > 0 {
			cum += b[i].Floor * (b[i].MMR - b[i-1].MMR)
		}
		b[i].Cum = cum
	}
	return b
}

// BracketsFor returns a copy of the symbol's built-in table (BTCUSDT, ETHUSDT;
// case-insensitive), or of the BTCUSDT table for any other symbol, because a
// plausible table beats refusing to run.
func BracketsFor(symbol string) []Bracket {
	t, ok := bracketTables[strings.ToUpper(strings.TrimSpace(symbol))]
	if !ok {
		t = bracketTables[DefaultBracketSymbol]
	}
	return append([]Bracket(nil), t...)
}

// ParseBrackets reads the config override "FLOOR:MMR,..." (USDT floors,
// ascending from 0); each cap is the next floor, the last is unbounded, and
// Cum is derived. Errors quote the offending entry.
func ParseBrackets(s string) ([]Bracket, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("brackets: empty")
	}
	parts := strings.Split(s, ",")
	out := make([]Bracket, 0, len(parts))
	for i, raw := range parts {
		part := strings.TrimSpace(raw)
		bad := func(msg string) error {
			return fmt.Errorf("brackets: %q: %s", part, msg)
		}
		if part == "" {
			return nil, bad("empty entry")
		}
		floorStr, rateStr, ok := strings.Cut(part, ":")
		if !ok {
			return nil, bad("want FLOOR:MMR")
		}
		floor, err := strconv.ParseFloat(strings.TrimSpace(floorStr), 64)
		if err != nil || math.IsNaN(floor) || math.IsInf(floor, 0) {
			return nil, bad("floor is not a finite number")
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(rateStr), 64)
		if err != nil || math.IsNaN(rate) {
			return nil, bad("mmr is not a number")
		}
		if !(rate >= 0 && rate < 1) {
			return nil, bad("mmr must be in [0, 1)")
		}
		switch {
		case i == 0 && floor != 0:
			return nil, bad("the first floor must be 0")
		case i > 0 && !(floor > out[i-1].Floor):
			return nil, bad(fmt.Sprintf("floor must be above the previous one (%g)", out[i-1].Floor))
		}
		if i > 0 {
			out[i-1].Cap = floor
		}
		out = append(out, Bracket{Floor: floor, Cap: math.Inf(1), MMR: rate})
	}
	return deriveCum(out), nil
}

// checkBrackets validates a table built by hand, which may not have come
// through ParseBrackets. Messages avoid the word "mmr" on purpose: callers
// map an error mentioning it to the classic mmr setting.
func checkBrackets(b []Bracket) error {
	if len(b) == 0 {
		return errors.New("brackets: empty table")
	}
	var cum float64
	for i, r := range b {
		bad := func(msg string, args ...any) error {
			return fmt.Errorf("brackets: bracket %d (floor %g): %s", i+1, r.Floor, fmt.Sprintf(msg, args...))
		}
		if i == 0 && r.Floor != 0 {
			return bad("the first floor must be 0")
		}
		if !(r.Cap > r.Floor) || math.IsNaN(r.Floor) {
			return bad("cap %g must be above the floor", r.Cap)
		}
		if i+1 < len(b) && b[i+1].Floor != r.Cap {
			return bad("cap %g must equal the next floor %g", r.Cap, b[i+1].Floor)
		}
		if !(r.MMR >= 0 && r.MMR < 1) {
			return bad("maintenance margin rate must be in [0, 1), got %g", r.MMR)
		}
		if i > 0 {
			cum += r.Floor * (r.MMR - b[i-1].MMR)
		}
		if !(math.Abs(r.Cum-cum) <= 1e-9*math.Max(1, math.Abs(cum))) {
			return bad("cum %g, want %g (cum_i = cum_i-1 + floor_i·(rate_i − rate_i-1))", r.Cum, cum)
		}
	}
	return nil
}

// bracketFor returns the bracket whose [Floor, Cap) holds n; a notional at a
// floor belongs to the higher bracket, as on Binance. n must be >= 0.
func bracketFor(b []Bracket, n float64) Bracket {
	i := sort.Search(len(b), func(i int) bool { return b[i].Floor > n })
	return b[max(i-1, 0)]
}
