// Package conf is the gateway's configuration: one struct, filled by
// pkg/config from defaults, a YAML file, LIQSTREAM_* env and flags.
package conf

import (
	"fmt"
	"net/url"
	"time"
)

// Config is every setting of the gateway.
type Config struct {
	Listen         string `mapstructure:"listen" desc:"HTTP listen address (page, WebSocket, API)"`
	SnapshotterURL string `mapstructure:"snapshotter_url" desc:"base URL of the snapshotter's HTTP API"`
	LogLevel       string `mapstructure:"log_level" desc:"debug, info, warn or error"`
	WS             WS     `mapstructure:"ws"`
}

// WS is the WebSocket endpoint.
type WS struct {
	Enabled       bool          `mapstructure:"enabled" desc:"serve /ws/heatmap; false answers 503 so clients poll"`
	IdleTimeout   time.Duration `mapstructure:"idle_timeout" desc:"close a peer silent for this long"`
	MaxFrameBytes int           `mapstructure:"max_frame_bytes" desc:"largest client frame accepted"`
	MaxSymbols    int           `mapstructure:"max_symbols" desc:"symbols one connection may subscribe to"`
}

// Default listens on every interface, as a container must; the snapshotter is
// expected beside it, as `make run` starts it.
func Default() Config {
	return Config{
		Listen:         ":8080",
		SnapshotterURL: "http://127.0.0.1:8081",
		LogLevel:       "info",
		WS:             WS{Enabled: true, IdleTimeout: 60 * time.Second, MaxFrameBytes: 4096, MaxSymbols: 10},
	}
}

// Validate checks every key and names the bad one.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("listen: must be set")
	}
	u, err := url.Parse(c.SnapshotterURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("snapshotter_url: want http://host:port, got %q", c.SnapshotterURL)
	}
	if c.WS.IdleTimeout < 5*time.Second || c.WS.IdleTimeout > 10*time.Minute {
		return fmt.Errorf("ws.idle_timeout: must be between 5s and 10m, got %s", c.WS.IdleTimeout)
	}
	if c.WS.MaxFrameBytes < 256 || c.WS.MaxFrameBytes > 1<<20 {
		return fmt.Errorf("ws.max_frame_bytes: must be between 256 and 1048576, got %d", c.WS.MaxFrameBytes)
	}
	if c.WS.MaxSymbols < 1 || c.WS.MaxSymbols > 100 {
		return fmt.Errorf("ws.max_symbols: must be between 1 and 100, got %d", c.WS.MaxSymbols)
	}
	return nil
}
