// Package conf is the gateway's configuration: one struct, filled by
// pkg/config from defaults, a YAML file, LIQSTREAM_* env and flags.
package conf

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/services/gateway/internal/ratelimit"
	"github.com/liqstream/liqstream/services/gateway/internal/rebalance"
	"github.com/liqstream/liqstream/services/gateway/internal/ws"
)

// Config is every setting of the gateway.
type Config struct {
	Listen         string           `mapstructure:"listen" desc:"HTTP listen address (page, WebSocket, API)"`
	SnapshotterURL string           `mapstructure:"snapshotter_url" desc:"base URL of the snapshotter's HTTP API"`
	LogLevel       string           `mapstructure:"log_level" desc:"debug, info, warn or error"`
	LogSummary     time.Duration    `mapstructure:"log_summary_interval" desc:"how often the info summary line (connections, frames sent, drops, slow consumers, disconnects) is logged (1s-1h)"`
	RedisURL       string           `mapstructure:"redis_url" desc:"subscribe to frames in Redis (redis://host:6379/0), falling back to snapshotter_url while it is down; empty = snapshotter_url only"`
	InstanceID     string           `mapstructure:"instance_id" desc:"name of this gateway in logs and the X-Liqstream-Gateway upgrade header (default host:pid)"`
	WSEnabled      bool             `mapstructure:"ws_enabled" desc:"serve /ws/heatmap; false answers 503 so clients poll"`
	DrainTimeout   time.Duration    `mapstructure:"drain_timeout" desc:"on SIGTERM, how long clients get to leave before the process exits"`
	SymbolsRefresh time.Duration    `mapstructure:"symbols_refresh" desc:"how often the symbol list is re-read from Redis or the snapshotter, so added and removed symbols are followed live"`
	DebugListen    string           `mapstructure:"debug_listen" desc:"serve net/http/pprof on this host:port (e.g. 127.0.0.1:6060), apart from listen; empty = off. Never expose it publicly"`
	WS             ws.Config        `mapstructure:"ws"`
	Rebalance      rebalance.Config `mapstructure:"rebalance"`
	API            ratelimit.Config `mapstructure:"api"`
}

// Default listens on every interface, as a container must; the snapshotter is
// expected beside it, as `make run` starts it.
func Default() Config {
	return Config{
		Listen:         ":8080",
		SnapshotterURL: "http://127.0.0.1:8081",
		LogLevel:       "info",
		LogSummary:     time.Minute,
		WSEnabled:      true,
		DrainTimeout:   10 * time.Second,
		SymbolsRefresh: 15 * time.Second,
		WS:             ws.DefaultConfig(),
		Rebalance:      rebalance.DefaultConfig(),
		API:            ratelimit.DefaultConfig(),
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
	if c.RedisURL != "" && !bus.IsRedisURL(c.RedisURL) {
		return fmt.Errorf("redis_url: want redis://host:port/db, got %q", c.RedisURL)
	}
	if c.DrainTimeout < time.Second || c.DrainTimeout > 10*time.Minute {
		return fmt.Errorf("drain_timeout: must be between 1s and 10m, got %s", c.DrainTimeout)
	}
	if c.LogSummary < time.Second || c.LogSummary > time.Hour {
		return fmt.Errorf("log_summary_interval: must be between 1s and 1h, got %s", c.LogSummary)
	}
	if c.SymbolsRefresh < time.Second || c.SymbolsRefresh > 10*time.Minute {
		return fmt.Errorf("symbols_refresh: must be between 1s and 10m, got %s", c.SymbolsRefresh)
	}
	if c.DebugListen != "" {
		host, port, err := net.SplitHostPort(c.DebugListen)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 0 || n > 65535 {
			return fmt.Errorf("debug_listen: want host:port such as 127.0.0.1:6060 (the host is required: pprof must not listen on every interface by accident), got %q", c.DebugListen)
		}
	}
	if c.Rebalance.Enabled && c.RedisURL == "" {
		return fmt.Errorf("rebalance.enabled: the gateways share their connection counts through Redis; set redis_url too")
	}
	if err := c.API.Validate(); err != nil {
		return err
	}
	if err := c.Rebalance.Validate(); err != nil {
		return err
	}
	return c.WS.Validate()
}
