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
		{"no listen", func(c *Config) { c.Listen = "" }, "listen:"},
		{"snapshotter url without scheme", func(c *Config) { c.SnapshotterURL = "127.0.0.1:8081" }, "snapshotter_url:"},
		{"redis url", func(c *Config) { c.RedisURL = "127.0.0.1:6379" }, "redis_url:"},
		{"drain timeout", func(c *Config) { c.DrainTimeout = 0 }, "drain_timeout:"},
		{"log summary too often", func(c *Config) { c.LogSummary = time.Millisecond }, "log_summary_interval:"},
		{"log summary too rare", func(c *Config) { c.LogSummary = 2 * time.Hour }, "log_summary_interval:"},
		{"idle timeout", func(c *Config) { c.WS.IdleTimeout = time.Second }, "ws.idle_timeout:"},
		{"ping not below idle", func(c *Config) { c.WS.PingInterval = c.WS.IdleTimeout }, "ws.ping_interval:"},
		{"write timeout", func(c *Config) { c.WS.WriteTimeout = 0 }, "ws.write_timeout:"},
		{"misses", func(c *Config) { c.WS.SlowMaxMisses = 0 }, "ws.slow_max_misses:"},
		{"queue", func(c *Config) { c.WS.QueueSize = 0 }, "ws.queue_size:"},
		{"frame size", func(c *Config) { c.WS.MaxFrameBytes = 10 }, "ws.max_frame_bytes:"},
		{"max symbols", func(c *Config) { c.WS.MaxSymbols = 0 }, "ws.max_symbols:"},
		{"rate", func(c *Config) { c.WS.ActionsPerSecond = 0 }, "ws.actions_per_second:"},
		{"conns", func(c *Config) { c.WS.MaxConns = 0 }, "ws.max_connections:"},
		{"conns per ip", func(c *Config) { c.WS.MaxConnsPerIP = 0 }, "ws.max_connections_per_ip:"},
		{"proxies", func(c *Config) { c.WS.TrustedProxies = []string{"10.0.0.1"} }, "ws.trusted_proxies:"},
		{"rebalance without redis", func(c *Config) { c.Rebalance.Enabled = true }, "rebalance.enabled:"},
		{"rebalance rate", func(c *Config) { c.Rebalance.Rate = 0 }, "rebalance.rate:"},
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
