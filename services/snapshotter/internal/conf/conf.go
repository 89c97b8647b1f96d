// Package conf is the snapshotter's configuration: one struct, filled by
// pkg/config from defaults, a YAML file, LIQSTREAM_* env and flags.
package conf

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/services/snapshotter/internal/history"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Config is every setting of the snapshotter.
type Config struct {
	Listen   string   `mapstructure:"listen" desc:"HTTP listen address (snapshots for gateways, health)"`
	DB       string   `mapstructure:"db" desc:"DuckDB file, created with its directory when missing"`
	Symbols  []string `mapstructure:"symbols" desc:"symbols to compute and serve"`
	LogLevel string   `mapstructure:"log_level" desc:"debug, info, warn or error"`
	RedisURL string   `mapstructure:"redis_url" desc:"publish frames to Redis (redis://host:6379/0); empty = HTTP only, the embedded default"`
	Snapshot Snapshot `mapstructure:"snapshot"`
	Heatmap  Heatmap  `mapstructure:"heatmap"`
	History  History  `mapstructure:"history"`
	Demo     Demo     `mapstructure:"demo"`
	Sim      Sim      `mapstructure:"simulator"`
	Binance  Binance  `mapstructure:"binance"`

	// InstanceID names the process in its logs, as the gateway's does.
	InstanceID string        `mapstructure:"instance_id" desc:"name of this snapshotter in logs (default host:pid)"`
	LogSummary time.Duration `mapstructure:"log_summary_interval" desc:"how often the info summary line (frames published, compute time, Redis failures) is logged (1s-1h)"`
}

// Binance is the live source polling Binance's USD-M REST API.
type Binance struct {
	Enabled      bool          `mapstructure:"enabled" desc:"poll Binance for candles and open interest (turn the simulator and demo off)"`
	BaseURL      string        `mapstructure:"base_url" desc:"Binance USD-M REST base URL"`
	PollInterval time.Duration `mapstructure:"poll_interval" desc:"how often each symbol is polled (1s-5m): its open interest, and its candles while no stream carries them"`
	Lookback     time.Duration `mapstructure:"lookback" desc:"history fetched for a symbol the store lacks (at most 30 days: Binance keeps 30 days of open interest)"`
	WeightPerMin int           `mapstructure:"weight_per_minute" desc:"REST request weight this snapshotter allows itself per minute (1-2400, Binance's per-IP limit is 2400; other clients may share the address)"`
	OIPer5Min    int           `mapstructure:"oi_requests_per_5m" desc:"openInterestHist requests allowed per 5 minutes (1-1000, Binance's per-IP limit is 1000)"`
	Stream       bool          `mapstructure:"stream" desc:"read candles and liquidations from Binance's market streams (WebSocket), REST only backfilling gaps; false polls candles over REST and records no liquidations"`
	StreamURL    string        `mapstructure:"stream_url" desc:"Binance USD-M market stream base URL"`
}

// Snapshot is the compute loop.
type Snapshot struct {
	Interval       time.Duration `mapstructure:"interval" desc:"how often changed symbols are recomputed (1s-1m)"`
	CandleInterval string        `mapstructure:"candle_interval" desc:"candle interval the heatmap is computed on (5m or longer with the Binance source, whose open interest comes every 5m)"`
	Lookback       time.Duration `mapstructure:"lookback" desc:"window of candles behind each live snapshot"`
}

// Heatmap is the model's parameters.
type Heatmap struct {
	LeverageWeights  string  `mapstructure:"leverage_weights" desc:"leverage tiers and weights, e.g. 5:15,10:30,25:25,50:20,100:10"`
	MMR              float64 `mapstructure:"mmr" desc:"maintenance margin rate of the classic model"`
	BinSize          float64 `mapstructure:"bin_size" desc:"price bucket in USD (1-1000)"`
	BinSizes         string  `mapstructure:"bin_sizes" desc:"per-symbol bucket overrides, e.g. ETHUSDT:10"`
	Model            string  `mapstructure:"model" desc:"classic (the reference algorithm) or binance (both sides, typical price, maintenance-margin brackets)"`
	LongShare        float64 `mapstructure:"long_share" desc:"binance model: share of new open interest taken as longs (0-1, exclusive)"`
	PositionNotional float64 `mapstructure:"position_notional" desc:"binance model: representative single-position notional in USDT that selects the margin bracket"`
	OIGap            string  `mapstructure:"oi_gap" desc:"open interest across missing candles: reset (its change opens and closes nothing) or reference (the whole change lands on the candle after the gap, as the reference algorithm does)"`
}

// History is the time-series endpoint.
type History struct {
	DefaultWindow   string        `mapstructure:"default_window" desc:"time_window when a request gives none (48h, 3d, 7d, ...)"`
	DefaultInterval string        `mapstructure:"default_interval" desc:"interval when a request gives none (5m ... 1d)"`
	MaxSnapshots    int           `mapstructure:"max_snapshots" desc:"most snapshots one response may carry"`
	CacheMB         int           `mapstructure:"cache_mb" desc:"MiB all cached responses may hold together; a response over an eighth of it is not cached"`
	ComputeTimeout  time.Duration `mapstructure:"compute_timeout" desc:"longest one history computation may run, its wait for a worker included (it is shared by every request asking the same, so no single caller's hang-up ends it)"`
	Workers         int           `mapstructure:"workers" desc:"history computations run at once; keep it below the cores, which the live snapshot loop needs first"`
	Queue           int           `mapstructure:"queue" desc:"distinct history computations that may wait for a worker; more are refused with 503 and Retry-After"`
}

// Demo seeds an empty store.
type Demo struct {
	Enabled bool   `mapstructure:"enabled" desc:"write 7 days of demo candles and OI when the store is empty"`
	Seed    uint64 `mapstructure:"seed" desc:"seed of the demo data and simulator"`
	Days    int    `mapstructure:"days" desc:"days of demo history"`
}

// Sim is the live simulator.
type Sim struct {
	Enabled bool          `mapstructure:"enabled" desc:"keep updating the open candle and OI with simulated trades"`
	Tick    time.Duration `mapstructure:"tick" desc:"how often the simulator moves the price"`
}

// Default is the embedded default `make run` uses: a local DuckDB file with demo data and the simulator.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:8081",
		DB:       "./data/liqstream.duckdb",
		Symbols:  []string{"BTCUSDT", "ETHUSDT"},
		LogLevel: "info",
		Snapshot: Snapshot{Interval: 5 * time.Second, CandleInterval: "5m", Lookback: 7 * 24 * time.Hour},
		// ETH trades near 3,000 USD, where 100 USD buckets would merge most bands.
		Heatmap: Heatmap{LeverageWeights: heatmap.DefaultWeights, MMR: heatmap.DefaultMMR, BinSize: heatmap.DefaultBinSize, BinSizes: "ETHUSDT:10",
			Model: string(heatmap.ModelClassic), LongShare: heatmap.DefaultLongShare, PositionNotional: heatmap.DefaultPositionNotional,
			OIGap: string(heatmap.OIGapReset)},
		History: History{DefaultWindow: "48h", DefaultInterval: "15m", MaxSnapshots: 5000, CacheMB: 256, ComputeTimeout: 2 * time.Minute,
			Workers: history.DefaultWorkers, Queue: history.DefaultQueue},
		Demo: Demo{Enabled: true, Seed: 42, Days: 7},
		Sim:  Sim{Enabled: true, Tick: 2 * time.Second},
		Binance: Binance{BaseURL: "https://fapi.binance.com", PollInterval: 10 * time.Second, Lookback: 7 * 24 * time.Hour,
			WeightPerMin: 1200, OIPer5Min: 500, Stream: true, StreamURL: "wss://fstream.binance.com"},

		LogSummary: time.Minute,
	}
}

var symbolRE = regexp.MustCompile(`^[A-Z0-9]{2,20}$`)

// binanceOIPeriod is the finest period of Binance's openInterestHist, the
// one the live source polls.
const binanceOIPeriod = 5 * time.Minute

// StoreOptions are the store settings the config holds; call after Validate.
func (c *Config) StoreOptions() []store.Option {
	return []store.Option{store.WithOIGap(heatmap.OIGap(c.Heatmap.OIGap))}
}

// Validate checks every key and names the bad one.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("listen: must be set")
	}
	if c.DB == "" {
		return fmt.Errorf("db: must be set")
	}
	if c.LogSummary < time.Second || c.LogSummary > time.Hour {
		return fmt.Errorf("log_summary_interval: must be between 1s and 1h, got %s", c.LogSummary)
	}
	if c.RedisURL != "" && !bus.IsRedisURL(c.RedisURL) {
		return fmt.Errorf("redis_url: want redis://host:port/db, got %q", c.RedisURL)
	}
	if len(c.Symbols) == 0 {
		return fmt.Errorf("symbols: at least one symbol is needed")
	}
	for i, s := range c.Symbols {
		c.Symbols[i] = strings.ToUpper(strings.TrimSpace(s))
		if !symbolRE.MatchString(c.Symbols[i]) {
			return fmt.Errorf("symbols: %q is not a symbol like BTCUSDT", s)
		}
	}
	if c.Snapshot.Interval < time.Second || c.Snapshot.Interval > time.Minute {
		return fmt.Errorf("snapshot.interval: must be between 1s and 1m, got %s", c.Snapshot.Interval)
	}
	step, err := store.IntervalDuration(c.Snapshot.CandleInterval)
	if err != nil {
		return fmt.Errorf("snapshot.candle_interval: %w", err)
	}
	// Refused rather than carrying open interest forward: a carried value
	// makes every candle between two observations report no change, and the
	// change then lands on whichever candle holds the next one, entry price
	// and side included, so finer candles would only look more precise.
	if c.Binance.Enabled && step < binanceOIPeriod {
		return fmt.Errorf("snapshot.candle_interval: %s candles are finer than the 5m period of Binance's open interest; most would have none and the heatmap would open no positions: use 5m or longer",
			c.Snapshot.CandleInterval)
	}
	if c.Snapshot.Lookback < time.Hour || c.Snapshot.Lookback > 366*24*time.Hour {
		return fmt.Errorf("snapshot.lookback: must be between 1h and 366 days, got %s", c.Snapshot.Lookback)
	}
	if _, err := c.HeatmapParams(); err != nil {
		return err
	}
	gap, err := heatmap.ParseOIGap(c.Heatmap.OIGap)
	if err != nil {
		return fmt.Errorf("heatmap.oi_gap: %w", err)
	}
	c.Heatmap.OIGap = string(gap)
	if _, ok := history.Windows[c.History.DefaultWindow]; !ok {
		return fmt.Errorf("history.default_window: %q is not a time_window preset", c.History.DefaultWindow)
	}
	if !slices.Contains(history.Intervals, c.History.DefaultInterval) {
		return fmt.Errorf("history.default_interval: %q is not one of %s", c.History.DefaultInterval, strings.Join(history.Intervals, ", "))
	}
	if c.History.MaxSnapshots < 100 || c.History.MaxSnapshots > 200000 {
		return fmt.Errorf("history.max_snapshots: must be between 100 and 200000, got %d", c.History.MaxSnapshots)
	}
	if c.History.CacheMB < 1 || c.History.CacheMB > 1<<16 {
		return fmt.Errorf("history.cache_mb: must be between 1 and 65536, got %d", c.History.CacheMB)
	}
	if c.History.Workers < 1 || c.History.Workers > 64 {
		return fmt.Errorf("history.workers: must be between 1 and 64, got %d", c.History.Workers)
	}
	if c.History.Queue < 1 || c.History.Queue > 10000 {
		return fmt.Errorf("history.queue: must be between 1 and 10000, got %d", c.History.Queue)
	}
	if c.History.ComputeTimeout < time.Second || c.History.ComputeTimeout > time.Hour {
		return fmt.Errorf("history.compute_timeout: must be between 1s and 1h, got %s", c.History.ComputeTimeout)
	}
	if c.Demo.Days < 1 || c.Demo.Days > 365 {
		return fmt.Errorf("demo.days: must be between 1 and 365, got %d", c.Demo.Days)
	}
	if c.Sim.Enabled && (c.Sim.Tick < 100*time.Millisecond || c.Sim.Tick > time.Minute) {
		return fmt.Errorf("simulator.tick: must be between 100ms and 1m, got %s", c.Sim.Tick)
	}
	if c.Binance.Enabled {
		if c.Sim.Enabled || c.Demo.Enabled {
			return fmt.Errorf("binance.enabled: the live Binance source and the demo data/simulator would write the same candles; set demo.enabled=false and simulator.enabled=false")
		}
		if u, err := url.Parse(c.Binance.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("binance.base_url: want https://host, got %q", c.Binance.BaseURL)
		}
		if u, err := url.Parse(c.Binance.StreamURL); c.Binance.Stream && (err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "") {
			return fmt.Errorf("binance.stream_url: want wss://host, got %q", c.Binance.StreamURL)
		}
		if c.Binance.WeightPerMin < 1 || c.Binance.WeightPerMin > 2400 {
			return fmt.Errorf("binance.weight_per_minute: must be between 1 and 2400 (Binance's limit), got %d", c.Binance.WeightPerMin)
		}
		if c.Binance.OIPer5Min < 1 || c.Binance.OIPer5Min > 1000 {
			return fmt.Errorf("binance.oi_requests_per_5m: must be between 1 and 1000 (Binance's limit), got %d", c.Binance.OIPer5Min)
		}
		if c.Binance.PollInterval < time.Second || c.Binance.PollInterval > 5*time.Minute {
			return fmt.Errorf("binance.poll_interval: must be between 1s and 5m, got %s", c.Binance.PollInterval)
		}
		if c.Binance.Lookback < time.Hour || c.Binance.Lookback > 30*24*time.Hour {
			return fmt.Errorf("binance.lookback: must be between 1h and 720h, got %s", c.Binance.Lookback)
		}
	}
	return nil
}

// HeatmapParams returns the model parameters of every symbol.
func (c *Config) HeatmapParams() (map[string]heatmap.Params, error) {
	tiers, err := heatmap.ParseWeights(c.Heatmap.LeverageWeights)
	if err != nil {
		return nil, fmt.Errorf("heatmap.leverage_weights: %w", err)
	}
	bins, err := parseBinSizes(c.Heatmap.BinSizes)
	if err != nil {
		return nil, fmt.Errorf("heatmap.bin_sizes: %w", err)
	}
	model, err := heatmap.ParseModel(c.Heatmap.Model)
	if err != nil {
		return nil, fmt.Errorf("heatmap.model: %w", err)
	}
	out := make(map[string]heatmap.Params, len(c.Symbols))
	for _, s := range c.Symbols {
		p := heatmap.Params{Tiers: tiers, MMR: c.Heatmap.MMR, BinSize: c.Heatmap.BinSize, Model: model,
			LongShare: c.Heatmap.LongShare, PositionNotional: c.Heatmap.PositionNotional, Brackets: heatmap.BracketsFor(s)}
		binKey := "heatmap.bin_size"
		if b, ok := bins[s]; ok {
			p.BinSize, binKey = b, "heatmap.bin_sizes"
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", paramKey(err, binKey), s, err)
		}
		out[s] = p
	}
	return out, nil
}

// paramKey names the config key behind a heatmap.Params validation error,
// whose messages start with the parameter's name.
func paramKey(err error, binKey string) string {
	msg := err.Error()
	for prefix, key := range map[string]string{
		"bin size": binKey, "mmr": "heatmap.mmr", "long share": "heatmap.long_share",
		"position notional": "heatmap.position_notional", "leverage weights": "heatmap.leverage_weights",
		"model": "heatmap.model",
	} {
		if strings.HasPrefix(msg, prefix) {
			return key
		}
	}
	return "heatmap"
}

func parseBinSizes(s string) (map[string]float64, error) {
	out := map[string]float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		sym, val, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("%q: want SYMBOL:SIZE", part)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: size is not a number", part)
		}
		out[strings.ToUpper(strings.TrimSpace(sym))] = f
	}
	return out, nil
}
