package conf

import (
	"strings"
	"testing"
)

func TestReview13CandleIntervalNotFinerThanOIPeriod(t *testing.T) {
	live := func(c *Config) { c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled = true, false, false }
	tests := []struct {
		name     string
		binance  bool
		interval string
		wantErr  string
	}{
		{"binance 1m", true, "1m", "snapshot.candle_interval:"},
		{"binance 3m", true, "3m", "snapshot.candle_interval:"},
		{"binance 5m", true, "5m", ""},
		{"binance 1h", true, "1h", ""},
		// The demo data and the simulator write open interest with every candle.
		{"simulator 1m", false, "1m", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			if tc.binance {
				live(&c)
			}
			c.Snapshot.CandleInterval = tc.interval
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestReview20OIGapKey(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"reset", "reset", ""},
		{"Reference", "reference", ""},
		{"", "reset", ""},
		{"carry", "", `heatmap.oi_gap: oi gap: "carry"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			c := Default()
			c.Heatmap.OIGap = tc.in
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Heatmap.OIGap != tc.want || len(c.StoreOptions()) != 1 {
				t.Fatalf("got %q, %v; want %q", c.Heatmap.OIGap, err, tc.want)
			}
		})
	}
	if Default().Heatmap.OIGap != "reset" {
		t.Fatalf("default oi_gap %q, want reset", Default().Heatmap.OIGap)
	}
}
