package heatmap_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

func TestParseWeights(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []heatmap.Tier
	}{
		// 15+30+25+20+10 = 100, so each weight is its percentage / 100.
		{heatmap.DefaultWeights, []heatmap.Tier{{5, 0.15}, {10, 0.30}, {25, 0.25}, {50, 0.20}, {100, 0.10}}},
		// 1+1 = 2 → 0.5 each.
		{"1:1,2:1", []heatmap.Tier{{1, 0.5}, {2, 0.5}}},
		// Whitespace around entries and around the colon is ignored; 1+2 = 3.
		{"  5 : 1 ,\t10:2 ", []heatmap.Tier{{5, 1.0 / 3}, {10, 2.0 / 3}}},
		// Input order is kept; a zero weight is a tier that never opens.
		{"20:3,10:0", []heatmap.Tier{{20, 1}, {10, 0}}},
		{"125:7", []heatmap.Tier{{125, 1}}},
		{"2.5:0.5,1:1.5", []heatmap.Tier{{2.5, 0.25}, {1, 0.75}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := heatmap.ParseWeights(tc.in)
			if err != nil {
				t.Fatalf("ParseWeights(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParseWeights(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i].Leverage != tc.want[i].Leverage || !near(got[i].Weight, tc.want[i].Weight) {
					t.Fatalf("ParseWeights(%q) = %v, want %v", tc.in, got, tc.want)
				}
			}
			p := heatmap.Params{Tiers: got, MMR: heatmap.DefaultMMR, BinSize: heatmap.DefaultBinSize}
			if err := p.Validate(); err != nil {
				t.Errorf("parsed tiers do not validate: %v", err)
			}
		})
	}
}

func TestParseWeightsErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", `leverage weights: empty`},
		{"  ", `leverage weights: empty`},
		{"10:x", `leverage weights: "10:x": weight is not a number`},
		{"10:NaN", `"10:NaN": weight is not a number`},
		{"10:1:2", `"10:1:2": weight is not a number`},
		{"x:10", `leverage weights: "x:10": leverage is not a number`},
		{"NaN:10", `"NaN:10": leverage is not a number`},
		{"5:15,10", `leverage weights: "10": want LEVERAGE:WEIGHT`},
		{"5:15,,10:30", `leverage weights: "": empty entry`},
		{"5:15,", `leverage weights: "": empty entry`},
		{"0.5:10", `"0.5:10": leverage must be between 1 and 125`},
		{"0:10", `"0:10": leverage must be between 1 and 125`},
		{"126:10", `"126:10": leverage must be between 1 and 125`},
		{"10:-1", `"10:-1": weight must not be negative`},
		{"10:Inf", `"10:Inf": weight must be finite`},
		{"10:1,10:2", `"10:2": duplicate leverage`},
		{"10.0:1, 1e1:2", `"1e1:2": duplicate leverage`},
		{"10:0,20:0", `leverage weights: all weights are zero`},
		{"10:1e308,20:1e308", `leverage weights: weights too large`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := heatmap.ParseWeights(tc.in)
			if err == nil {
				t.Fatalf("ParseWeights(%q) = %v, want error %q", tc.in, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseWeights(%q) error %q, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	def := heatmap.DefaultParams()
	with := func(f func(*heatmap.Params)) heatmap.Params {
		p := heatmap.DefaultParams()
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name    string
		p       heatmap.Params
		wantErr string // "" means valid
	}{
		{"defaults", def, ""},
		{"bin 1", with(func(p *heatmap.Params) { p.BinSize = 1 }), ""},
		{"bin 1000", with(func(p *heatmap.Params) { p.BinSize = 1000 }), ""},
		{"bin 0", with(func(p *heatmap.Params) { p.BinSize = 0 }), "bin size"},
		{"bin 0.5", with(func(p *heatmap.Params) { p.BinSize = 0.5 }), "bin size"},
		{"bin 1001", with(func(p *heatmap.Params) { p.BinSize = 1001 }), "bin size"},
		{"bin NaN", with(func(p *heatmap.Params) { p.BinSize = math.NaN() }), "bin size"},
		{"mmr 0", with(func(p *heatmap.Params) { p.MMR = 0 }), ""},
		{"mmr negative", with(func(p *heatmap.Params) { p.MMR = -0.001 }), "mmr"},
		{"mmr 1", with(func(p *heatmap.Params) { p.MMR = 1 }), "mmr"},
		{"mmr NaN", with(func(p *heatmap.Params) { p.MMR = math.NaN() }), "mmr"},
		{"no tiers", with(func(p *heatmap.Params) { p.Tiers = nil }), "leverage weights"},
		{"not normalised", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{10, 15}, {20, 85}} }), "leverage weights"},
		{"all zero", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{10, 0}} }), "leverage weights"},
		{"leverage 0", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{0, 1}} }), "leverage weights"},
		{"leverage 126", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{126, 1}} }), "leverage weights"},
		{"negative weight", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{10, 1.5}, {20, -0.5}} }), "leverage weights"},
		{"duplicate leverage", with(func(p *heatmap.Params) { p.Tiers = []heatmap.Tier{{10, 0.5}, {10, 0.5}} }), "leverage weights"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.wantErr)
			}
			c, err := heatmap.NewClassic(tc.p)
			if (err == nil) != (tc.wantErr == "") || (err == nil) != (c != nil) {
				t.Fatalf("NewClassic() = %v, %v; want it to agree with Validate", c, err)
			}
		})
	}
}

func TestDefaultParams(t *testing.T) {
	p := heatmap.DefaultParams()
	if p.MMR != 0.004 || p.BinSize != 100 || len(p.Tiers) != 5 {
		t.Fatalf("DefaultParams() = %+v", p)
	}
	// Each call hands out its own tiers: mutating one must not leak.
	p.Tiers[0].Weight = 42
	if q := heatmap.DefaultParams(); q.Tiers[0].Weight != 0.15 {
		t.Fatalf("DefaultParams shares its tiers: got weight %v after mutation", q.Tiers[0].Weight)
	}
}

func TestNewClassicCopiesTiers(t *testing.T) {
	// The engine must not see later edits to the caller's slice: after
	// NewClassic the 4x tier is changed to 2x, but the long still opens at
	// liq 100·0.75 = 75.
	p := params([]heatmap.Tier{{Leverage: 4, Weight: 1}}, 0, 1)
	c, err := heatmap.NewClassic(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Tiers[0].Leverage = 2
	c.Apply(flat(0, 0))
	s := c.Apply(up(1, 1000))
	if len(s.Levels) != 1 || s.Levels[0].Price != 75 {
		t.Fatalf("levels = %v, want one at 75", s.Levels)
	}
}

func TestParamsValidateBinance(t *testing.T) {
	bad := heatmap.BracketsFor("BTCUSDT")
	bad[2].Cum = 2000 // derived: 2550
	gap := heatmap.BracketsFor("BTCUSDT")
	gap[1].Cap = 400e3
	for _, tc := range []struct {
		name    string
		edit    func(*heatmap.Params)
		wantErr string
	}{
		{"defaults", func(p *heatmap.Params) {}, ""},
		{"zero values mean defaults", func(p *heatmap.Params) { p.LongShare, p.PositionNotional, p.Brackets = 0, 0, nil }, ""},
		{"classic still checks the binance fields", func(p *heatmap.Params) { p.Model = heatmap.ModelClassic; p.LongShare = 2 }, "long share"},
		{"unknown model", func(p *heatmap.Params) { p.Model = "bybit" }, `model: "bybit"`},
		{"long share 1", func(p *heatmap.Params) { p.LongShare = 1 }, "long share"},
		{"long share negative", func(p *heatmap.Params) { p.LongShare = -0.5 }, "long share"},
		{"long share NaN", func(p *heatmap.Params) { p.LongShare = math.NaN() }, "long share"},
		{"long share 0.99", func(p *heatmap.Params) { p.LongShare = 0.99 }, ""},
		{"notional negative", func(p *heatmap.Params) { p.PositionNotional = -1 }, "position notional"},
		{"notional infinite", func(p *heatmap.Params) { p.PositionNotional = math.Inf(1) }, "position notional"},
		{"notional NaN", func(p *heatmap.Params) { p.PositionNotional = math.NaN() }, "position notional"},
		{"notional at the last cap", func(p *heatmap.Params) { p.PositionNotional = 500e6 }, "position notional: 5e+08 is not below the last bracket's cap"},
		{"notional in the last bracket", func(p *heatmap.Params) {
			p.PositionNotional = 499e6
			p.Tiers = []heatmap.Tier{{Leverage: 1, Weight: 1}}
		}, ""},
		// 10M is in the 8M–50M bracket (rate 0.025, cum 122,550): a 100x
		// position's margin 1 % + 1.2255 % < 2.5 %, so Binance would refuse it.
		{"leverage above the bracket's", func(p *heatmap.Params) { p.PositionNotional = 10e6 }, "leverage weights: 100x is more than a 1e+07 USDT position may use"},
		{"zero-weight tier is not checked", func(p *heatmap.Params) {
			p.PositionNotional = 10e6
			p.Tiers = []heatmap.Tier{{Leverage: 5, Weight: 1}, {Leverage: 100, Weight: 0}}
		}, ""},
		{"empty brackets", func(p *heatmap.Params) { p.Brackets = []heatmap.Bracket{} }, "brackets: empty"},
		{"cum not derived", func(p *heatmap.Params) { p.Brackets = bad }, "brackets: bracket 3 (floor 500000): cum 2000, want 2550"},
		{"caps and floors disagree", func(p *heatmap.Params) { p.Brackets = gap }, "brackets: bracket 2"},
		{"first floor not 0", func(p *heatmap.Params) { p.Brackets = []heatmap.Bracket{{Floor: 1, Cap: math.Inf(1), MMR: 0.01}} }, "first floor must be 0"},
		{"rate 1", func(p *heatmap.Params) { p.Brackets = []heatmap.Bracket{{Floor: 0, Cap: math.Inf(1), MMR: 1}} }, "brackets: bracket 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := heatmap.DefaultParams()
			p.Model = heatmap.ModelBinance
			tc.edit(&p)
			err := p.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "mmr") {
				t.Errorf("error %q mentions mmr, which config code maps to the classic mmr setting", err)
			}
			if _, err2 := heatmap.NewEngine(p); (err2 == nil) != (err == nil) {
				t.Fatalf("NewEngine() = %v, Validate() = %v", err2, err)
			}
		})
	}
}

func TestReview16ParseWeightsCapsTiers(t *testing.T) {
	weights := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			// Distinct leverages in [1, 2], valid whatever n, so only the
			// count can be wrong.
			parts[i] = fmt.Sprintf("%g:1", 1+float64(i)/float64(n))
		}
		return strings.Join(parts, ",")
	}
	for _, tc := range []struct {
		n       int
		wantErr bool
	}{
		{1, false},
		{heatmap.MaxTiers, false},
		{heatmap.MaxTiers + 1, true},
		{120000, true},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			tiers, err := heatmap.ParseWeights(weights(tc.n))
			if !tc.wantErr {
				if err != nil || len(tiers) != tc.n {
					t.Fatalf("%d tiers: %d parsed, %v", tc.n, len(tiers), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "leverage weights") || !strings.Contains(err.Error(), fmt.Sprint(heatmap.MaxTiers)) {
				t.Fatalf("%d tiers: %d parsed, err %v; want an error quoting the cap of %d", tc.n, len(tiers), err, heatmap.MaxTiers)
			}
		})
	}
	// Params built in code obey the same cap.
	p := heatmap.DefaultParams()
	p.Tiers = make([]heatmap.Tier, heatmap.MaxTiers+1)
	for i := range p.Tiers {
		p.Tiers[i] = heatmap.Tier{Leverage: 1 + float64(i), Weight: 1 / float64(len(p.Tiers))}
	}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "leverage weights") {
		t.Fatalf("Validate with %d tiers: %v, want a leverage weights error", len(p.Tiers), err)
	}
}
