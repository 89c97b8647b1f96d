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
		{"idle timeout", func(c *Config) { c.WS.IdleTimeout = time.Second }, "ws.idle_timeout:"},
		{"frame size", func(c *Config) { c.WS.MaxFrameBytes = 10 }, "ws.max_frame_bytes:"},
		{"max symbols", func(c *Config) { c.WS.MaxSymbols = 0 }, "ws.max_symbols:"},
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
