// Package scenario runs liqstream's standard load scenarios on this machine:
// it starts a private redis-server, a feeder standing in for the snapshotter,
// and each target in turn — the floor (a bare gws broadcaster), one gateway on
// Redis, one gateway on the snapshotter's HTTP API (the embedded default), or
// three gateways with or without the nginx edge — drives it with wsload, and
// samples the target's processes from /proc. Every gateway number is stated
// next to the floor's from the same run.
package scenario

import (
	"fmt"
	"strings"
	"time"

	"github.com/liqstream/liqstream/loadtest/wsload"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// Target kinds.
const (
	Floor       = "floor"        // bare gws broadcaster on Redis
	Gateway     = "gateway"      // one gateway on Redis
	GatewayHTTP = "gateway-http" // one gateway long-polling the feeder: the embedded default
	Fleet       = "fleet"        // nginx (shipped template) in front of 3 gateways on Redis
	FleetDirect = "fleet-direct" // the same 3 gateways, clients spread over them directly
)

// WithDeflate after a target kind makes that run's clients offer
// permessage-deflate, so one scenario can hold both.
const WithDeflate = "+deflate"

// WithDelta after a target kind (before WithDeflate) makes that run's
// clients subscribe with "encoding":"delta": gateway+delta+deflate.
const WithDelta = "+delta"

// parse splits a target into its kind and what its clients ask for.
func parse(target string) (k string, deflate, delta bool) {
	k, deflate = strings.CutSuffix(target, WithDeflate)
	k, delta = strings.CutSuffix(k, WithDelta)
	return k, deflate, delta
}

// kind splits a target into its kind and whether its clients offer deflate.
func kind(target string) (string, bool) {
	k, deflate, _ := parse(target)
	return k, deflate
}

// encodingOf is the "encoding" a target's clients subscribe with: delta, or
// none (the default, full frames), as every client before deltas.
func encodingOf(target string) string {
	if _, _, delta := parse(target); delta {
		return protocol.EncodingDelta
	}
	return ""
}

// configName names a target by what its clients get: "full", "full + deflate",
// "delta", "delta + deflate".
func configName(target string) string {
	_, deflate, delta := parse(target)
	c := "full"
	if delta {
		c = "delta"
	}
	if deflate {
		c += " + deflate"
	}
	return c
}

// floorOf is the floor run a target is compared with: the plain floor, or
// the floor with deflate for a deflate run.
func floorOf(target string) string {
	if _, deflate := kind(target); deflate {
		return Floor + WithDeflate
	}
	return Floor
}

// FleetSize is the number of gateways in the fleet targets, as in make fleet.
const FleetSize = 3

// Scenario is one load applied to a list of targets, one after another.
type Scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// What the issue asks this scenario to show.
	Goal           string        `json:"goal"`
	Targets        []string      `json:"targets"`
	N              int           `json:"n"`
	Ramp           int           `json:"ramp_per_s"`
	Sources        int           `json:"sources"`
	Interval       time.Duration `json:"interval"`
	UpdateInterval int           `json:"update_interval"`
	Settle         time.Duration `json:"settle"`
	Window         time.Duration `json:"window"`
	SlowFraction   float64       `json:"slow_fraction,omitempty"`
	SlowRate       int           `json:"slow_rate_bytes_per_s,omitempty"`
	// SampleEvery, when set, samples the target during the window (soak).
	SampleEvery time.Duration `json:"sample_every,omitempty"`
	// Profile takes a CPU profile of the (first) gateway after the window.
	Profile bool `json:"profile,omitempty"`
}

// Load names a set of scenarios.
type Load string

// The loads of make loadtest.
const (
	Smoke    Load = "smoke"    // a few hundred clients on every target kind: make test
	Standard Load = "standard" // the table: make loadtest
	Soak     Load = "soak"     // 1,000 clients for 30 minutes: make soak
	Delta    Load = "delta"    // full frames vs deltas, each with and without deflate: make loadtest LOAD=delta
)

// Scenarios returns the scenarios of a load; soak lasts soakFor.
func Scenarios(l Load, soakFor time.Duration) ([]Scenario, error) {
	base := Scenario{N: 10000, Ramp: 1000, Sources: 256, Interval: time.Second, UpdateInterval: 1,
		Settle: 10 * time.Second, Window: 30 * time.Second}
	with := func(f func(*Scenario)) Scenario { s := base; f(&s); return s }
	switch l {
	case Smoke:
		return []Scenario{with(func(s *Scenario) {
			s.Name, s.Title = "smoke", "Smoke: 300 clients on every target kind"
			s.Goal = "the tool works end to end: every client connected, every frame delivered in order"
			s.Targets = []string{Floor, Gateway, GatewayHTTP, FleetDirect, Fleet}
			s.N, s.Ramp, s.Sources, s.Settle, s.Window = 300, 300, 64, 3*time.Second, 5*time.Second
		})}, nil
	case Standard:
		return []Scenario{
			with(func(s *Scenario) {
				s.Name, s.Title = "one-gateway", "10,000 clients on one gateway, update_interval 1, frames every 1 s"
				s.Goal = "connect 100 %, zero seq gaps, p99 ≤ 1.1 × the floor's, RSS ≤ 16 KB per connection, CPU ≤ 1.3 × the floor's"
				s.Targets = []string{Floor, Gateway, GatewayHTTP, Floor}
				s.Profile = true
			}),
			with(func(s *Scenario) {
				s.Name, s.Title = "defaults", "10,000 clients at the defaults: update_interval 5, frames every 5 s"
				s.Goal = "p99 within 1.1 × the floor's"
				s.Targets = []string{Floor, Gateway, Floor}
				s.Interval, s.UpdateInterval, s.Window = 5*time.Second, 5, 60*time.Second
			}),
			with(func(s *Scenario) {
				s.Name, s.Title = "slow-readers", "1 % slow readers among 10,000 clients"
				s.Goal = "fast clients' p99 within 10 % of the run without slow readers; every slow one got SLOW_CONSUMER or 4008; gateway memory bounded"
				s.Targets = []string{Gateway}
				// A slow client learns of its close only after reading what
				// the kernel buffered before it (the gateway's capped send
				// buffer and its own receive buffer, ~150 KB): at 4 KB/s that
				// is under 40 s, so the minute of settling lets every slow
				// client see its warning or 4008 before the window ends.
				s.SlowFraction, s.SlowRate, s.Settle = 0.01, 4096, time.Minute
			}),
			with(func(s *Scenario) {
				s.Name, s.Title = "19k", "19,000 clients on one gateway"
				s.Goal = "all connected and served; p99 reported"
				s.Targets = []string{Floor, Gateway}
				s.N, s.Sources = 19000, 256
			}),
			with(func(s *Scenario) {
				s.Name, s.Title = "fleet", fmt.Sprintf("10,000 clients on %d gateways, through nginx and direct", FleetSize)
				s.Goal = "clients spread over the gateways; nginx's overhead vs going direct"
				s.Targets = []string{FleetDirect, Fleet}
			}),
			with(func(s *Scenario) {
				// 2,000, not 10,000: inflating 10,000 clients' frames takes
				// both cores here, and the run would measure the generator.
				s.Name, s.Title = "deflate", "2,000 clients with and without permessage-deflate"
				s.Goal = "bytes per client and p99 beside the uncompressed run"
				s.Targets = []string{Floor, Gateway, Floor + WithDeflate, Gateway + WithDeflate}
				s.N, s.Ramp = 2000, 500
			}),
		}, nil
	case Delta:
		encodings := func(s *Scenario) {
			s.Goal = "bytes per client per second, gateway CPU and p99 of full + deflate, delta and delta + deflate beside full frames " +
				"(issue 16); no frame lost, no delta that does not follow the client's last frame"
			// Full frames first and last: the two bracket the others, so a
			// drift of the shared machine shows.
			s.Targets = []string{Gateway, Gateway + WithDeflate, Gateway + WithDelta, Gateway + WithDelta + WithDeflate, Gateway}
		}
		return []Scenario{
			with(func(s *Scenario) {
				encodings(s)
				s.Name = "delta"
				s.Title = "10,000 clients on one gateway: full frames and deltas, each with and without permessage-deflate"
			}),
			with(func(s *Scenario) {
				// At 10,000 the clients' inflating of full frames takes
				// both cores (as in deflate above); at 5,000 it takes one.
				encodings(s)
				s.Name = "delta-5k"
				s.Title = "5,000 clients on one gateway: the same four, the load generator's inflating below saturation"
				s.N = 5000
			}),
		}, nil
	case Soak:
		return []Scenario{with(func(s *Scenario) {
			s.Name = "soak"
			s.Title = fmt.Sprintf("Soak: 1,000 clients for %s at the defaults", soakFor)
			s.Goal = "RSS slope and goroutine count flat"
			s.Targets = []string{Gateway}
			s.N, s.Ramp, s.Interval, s.UpdateInterval, s.Window = 1000, 500, 5*time.Second, 5, soakFor
			s.SampleEvery = time.Minute
		})}, nil
	}
	return nil, fmt.Errorf("load %q: want smoke, standard, delta or soak", l)
}

// load is the wsload config of a scenario against targets.
func (s *Scenario) load(targets []string, origin string, deflate bool, encoding string) wsload.Config {
	return wsload.Config{Targets: targets, N: s.N, Ramp: s.Ramp, Sources: s.Sources, Mix: wsload.DefaultMix,
		UpdateInterval: s.UpdateInterval, Interval: s.Interval, Deflate: deflate, Encoding: encoding, Origin: origin,
		SlowFraction: s.SlowFraction, SlowRate: s.SlowRate}
}

// Describe is the load in one line, for reports.
func (s *Scenario) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients at %d/s from %d source addresses; every client on BTCUSDT, every second one on ETHUSDT too; update_interval %d; frames every %s; settle %s, window %s",
		s.N, s.Ramp, s.Sources, s.UpdateInterval, s.Interval, s.Settle, s.Window)
	if s.SlowFraction > 0 {
		fmt.Fprintf(&b, "; %g %% of the clients read at %d bytes/s", 100*s.SlowFraction, s.SlowRate)
	}
	return b.String()
}
