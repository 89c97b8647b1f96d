package conf

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNamesTheBadKey(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default is valid", func(*Config) {}, ""},
		{"lower-case symbols are normalised", func(c *Config) { c.Symbols = []string{"btcusdt"} }, ""},
		{"no listen", func(c *Config) { c.Listen = "" }, "listen:"},
		{"redis url", func(c *Config) { c.RedisURL = "localhost:6379" }, "redis_url:"},
		{"no db", func(c *Config) { c.DB = "" }, "db:"},
		{"log summary too often", func(c *Config) { c.LogSummary = time.Millisecond }, "log_summary_interval:"},
		{"log summary too rare", func(c *Config) { c.LogSummary = 2 * time.Hour }, "log_summary_interval:"},
		{"no symbols", func(c *Config) { c.Symbols = nil }, "symbols:"},
		{"bad symbol", func(c *Config) { c.Symbols = []string{"BTC-USDT"} }, `symbols: "BTC-USDT"`},
		{"interval too short", func(c *Config) { c.Snapshot.Interval = 0 }, "snapshot.interval:"},
		{"unknown candle interval", func(c *Config) { c.Snapshot.CandleInterval = "7m" }, "snapshot.candle_interval:"},
		{"lookback too short", func(c *Config) { c.Snapshot.Lookback = time.Minute }, "snapshot.lookback:"},
		{"bad weights", func(c *Config) { c.Heatmap.LeverageWeights = "5:x" }, "heatmap.leverage_weights:"},
		{"bin too big", func(c *Config) { c.Heatmap.BinSize = 5000 }, "heatmap.bin_size (BTCUSDT)"},
		{"bad bin override", func(c *Config) { c.Heatmap.BinSizes = "ETHUSDT=10" }, "heatmap.bin_sizes:"},
		{"bin override out of range", func(c *Config) { c.Heatmap.BinSizes = "ETHUSDT:0.5" }, "heatmap.bin_sizes (ETHUSDT)"},
		{"bad mmr", func(c *Config) { c.Heatmap.MMR = 2 }, "heatmap.mmr"},
		{"history window", func(c *Config) { c.History.DefaultWindow = "2w" }, "history.default_window:"},
		{"history interval", func(c *Config) { c.History.DefaultInterval = "1m" }, "history.default_interval:"},
		{"history max", func(c *Config) { c.History.MaxSnapshots = 1 }, "history.max_snapshots:"},
		{"model", func(c *Config) { c.Heatmap.Model = "magic" }, "heatmap.model:"},
		{"long share", func(c *Config) { c.Heatmap.Model, c.Heatmap.LongShare = "binance", 1.5 }, "heatmap.long_share (BTCUSDT)"},
		{"binance is valid", func(c *Config) { c.Heatmap.Model = "binance" }, ""},
		{"binance with simulator", func(c *Config) { c.Binance.Enabled = true }, "binance.enabled:"},
		{"binance poll", func(c *Config) {
			c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled, c.Binance.PollInterval = true, false, false, 0
		}, "binance.poll_interval:"},
		{"binance valid", func(c *Config) { c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled = true, false, false }, ""},
		{"binance weight", func(c *Config) {
			c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled, c.Binance.WeightPerMin = true, false, false, 3000
		}, "binance.weight_per_minute:"},
		{"binance oi requests", func(c *Config) {
			c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled, c.Binance.OIPer5Min = true, false, false, 0
		}, "binance.oi_requests_per_5m:"},
		{"binance stream url", func(c *Config) {
			c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled, c.Binance.StreamURL = true, false, false, "https://fstream.binance.com"
		}, "binance.stream_url:"},
		{"binance without stream ignores its url", func(c *Config) {
			c.Binance.Enabled, c.Demo.Enabled, c.Sim.Enabled, c.Binance.Stream, c.Binance.StreamURL = true, false, false, false, ""
		}, ""},
		{"demo days", func(c *Config) { c.Demo.Days = 0 }, "demo.days:"},
		{"simulator tick", func(c *Config) { c.Sim.Tick = time.Millisecond }, "simulator.tick:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
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

func TestHeatmapParamsPerSymbolBins(t *testing.T) {
	c := Default()
	p, err := c.HeatmapParams()
	if err != nil {
		t.Fatal(err)
	}
	if p["BTCUSDT"].BinSize != 100 || p["ETHUSDT"].BinSize != 10 {
		t.Fatalf("bins BTC %v ETH %v, want 100 and 10", p["BTCUSDT"].BinSize, p["ETHUSDT"].BinSize)
	}
}
