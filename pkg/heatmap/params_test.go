package heatmap_test

import (
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
