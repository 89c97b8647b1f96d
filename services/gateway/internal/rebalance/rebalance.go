// Package rebalance spreads a gateway fleet's WebSocket clients again after a
// scale-out. Clients stay where they connected, so a new gateway only gets new
// clients; each gateway publishes its connection count, and one holding more
// than its share closes a few clients at a time with 1012 so the edge places
// them again.
package rebalance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/liqstream/liqstream/pkg/logging"
)

// Config is the "rebalance." section of the gateway's config.
type Config struct {
	Enabled     bool          `mapstructure:"enabled" desc:"publish this gateway's connection count to Redis and shed clients (1012, paced) while it holds more than its share of the fleet's; needs redis_url"`
	Slack       float64       `mapstructure:"slack" desc:"tolerated imbalance: shed above (1+slack) x the fleet mean, or above the mean while a gateway is below (1-slack) x the mean (0.01-1)"`
	Rate        float64       `mapstructure:"rate" desc:"share of this gateway's clients closed per second while it sheds (0.001-0.2)"`
	Interval    time.Duration `mapstructure:"interval" desc:"how often the count is published and the fleet read (100ms-1m)"`
	PeerTimeout time.Duration `mapstructure:"peer_timeout" desc:"a gateway whose count has not been refreshed for this long is left out of the mean (at least 3 x interval)"`
}

// DefaultConfig is off: rebalancing is a fleet decision (docs/DEPLOY.md).
// The rate, 3 % of a gateway's clients a second, balances a fleet within a
// minute of a scale-out from 3 to 4 gateways behind ip_hash (the e2e test
// TestRebalanceAfterScaleOut); 1 % takes over two, as a closed client only
// lands on the new gateway when the edge's hash sends it there.
func DefaultConfig() Config {
	return Config{Slack: 0.1, Rate: 0.03, Interval: time.Second, PeerTimeout: 10 * time.Second}
}

// Validate checks every key and names the bad one.
func (c Config) Validate() error {
	switch {
	case c.Slack < 0.01 || c.Slack > 1:
		return fmt.Errorf("rebalance.slack: must be between 0.01 and 1, got %g", c.Slack)
	case c.Rate < 0.001 || c.Rate > 0.2:
		return fmt.Errorf("rebalance.rate: must be between 0.001 and 0.2 (a share of the clients per second), got %g", c.Rate)
	case c.Interval < 100*time.Millisecond || c.Interval > time.Minute:
		return fmt.Errorf("rebalance.interval: must be between 100ms and 1m, got %s", c.Interval)
	case c.PeerTimeout < 3*c.Interval:
		return fmt.Errorf("rebalance.peer_timeout: must be at least 3 x rebalance.interval (%s), got %s", 3*c.Interval, c.PeerTimeout)
	}
	return nil
}

// Entry is one gateway's published count. Beat changes with every report,
// so a reader can tell a live gateway from a dead one's last word by its own
// clock, whatever the writers' clocks say.
type Entry struct {
	Conns int64
	Beat  uint64
}

// Registry is where the fleet's counts meet (Redis in production).
type Registry interface {
	Report(ctx context.Context, id string, e Entry) error
	Fleet(ctx context.Context) (map[string]Entry, error)
	Forget(ctx context.Context, ids ...string) error
}

// Shedder is the WebSocket endpoint: its client count, and a way to close n
// clients that connected before a moment, so they reconnect.
type Shedder interface {
	Active() int64
	Shed(n int, before time.Time) int
}

// episodeGap is how long a gateway must have shed nothing before its next
// shedding counts as a new episode. Within an episode only clients that
// connected before it began are shed: later ones were placed by the edge as
// it is now, and would only come back.
const episodeGap = time.Minute

// Plan is how many clients a gateway holding own should close this round,
// given the live peers' counts: it sheds while it holds more than the fleet
// mean plus a margin, or more than the mean while some gateway holds less
// than the mean minus that margin, down to the mean and at most budget. The
// margin is slack x the mean, but never under three standard deviations of
// the spread a hashing edge makes by chance (3 x sqrt(mean)): clients shed
// below that only come back, as the hash sends them here.
func Plan(own int64, peers []int64, slack float64, budget int) int {
	if len(peers) == 0 || budget <= 0 {
		return 0
	}
	total, low := own, own
	for _, p := range peers {
		total += p
		low = min(low, p)
	}
	mean := float64(total) / float64(len(peers)+1)
	margin := max(slack*mean, 3*math.Sqrt(mean))
	over := float64(own) > mean+margin
	under := float64(low) < mean-margin && float64(own) > mean
	if !over && !under {
		return 0
	}
	excess := int(own - int64(math.Ceil(mean)))
	return max(0, min(excess, budget))
}

// Budget is the most clients one round may close: rate of own per second
// over interval, at least one.
func Budget(own int64, rate float64, interval time.Duration) int {
	if own <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(rate*float64(own)*interval.Seconds())))
}

type peer struct {
	beat    uint64
	changed time.Time // by this gateway's clock
}

// Rebalancer publishes this gateway's count and sheds its excess.
type Rebalancer struct {
	cfg   Config
	id    string
	reg   Registry
	ws    Shedder
	ready func() bool
	log   *slog.Logger
	now   func() time.Time

	beat  uint64
	peers map[string]*peer
	// shedding is the last round's verdict, to log only its changes.
	shedding bool
	// lastTotal is the fleet's total connections in the last round.
	lastTotal int64
	// episode is when the current shedding began; lastShed the last round
	// that shed.
	episode, lastShed time.Time
	failing           time.Time // when Redis errors began to be logged, zero while healthy

	// Shed counts clients closed; Peers and Mean describe the last round.
	Shed  atomic.Int64
	Peers atomic.Int64
	Mean  atomic.Int64
}

// New returns a rebalancer for the gateway named id. ready gates it: a
// gateway that cannot serve yet neither reports nor sheds, so peers do not
// shed towards a pod the edge does not send clients to.
func New(cfg Config, id string, reg Registry, ws Shedder, ready func() bool, log *slog.Logger) *Rebalancer {
	return &Rebalancer{cfg: cfg, id: id, reg: reg, ws: ws, ready: ready, log: log, now: time.Now, peers: map[string]*peer{}}
}

// Run reports and rebalances every interval until ctx ends, then takes this
// gateway out of the registry so the others stop counting it.
func (r *Rebalancer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := r.reg.Forget(fctx, r.id); err != nil {
				r.log.Warn("rebalance: could not leave the registry; peers drop this gateway after rebalance.peer_timeout", logging.KeyErr, err)
			}
			return nil
		case <-t.C:
		}
		if err := r.Step(ctx); err != nil && ctx.Err() == nil {
			// A dead Redis stops rebalancing, nothing else: log it once a minute.
			if now := r.now(); r.failing.IsZero() || now.Sub(r.failing) >= time.Minute {
				r.failing = now
				r.log.Warn("rebalance: registry unavailable; not rebalancing", logging.KeyErr, err)
			}
			continue
		}
		r.failing = time.Time{}
	}
}

// Step is one round: publish, read the fleet, shed. It returns how the
// registry failed, if it did; nothing is shed then.
func (r *Rebalancer) Step(ctx context.Context) error {
	if !r.ready() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Interval)
	defer cancel()
	own := r.ws.Active()
	r.beat++
	if err := r.reg.Report(ctx, r.id, Entry{Conns: own, Beat: r.beat}); err != nil {
		return fmt.Errorf("report connection count: %w", err)
	}
	fleet, err := r.reg.Fleet(ctx)
	if err != nil {
		return fmt.Errorf("read the fleet's counts: %w", err)
	}
	peers, stale := r.live(fleet)
	if len(stale) > 0 {
		r.log.Info("rebalance: forgetting gateways that stopped reporting", "gateways", stale)
		if err := r.reg.Forget(ctx, stale...); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("rebalance: forget stale gateways", logging.KeyErr, err)
		}
	}
	total := own
	for _, p := range peers {
		total += p
	}
	r.Peers.Store(int64(len(peers)))
	r.Mean.Store(total / int64(len(peers)+1))
	// Counts are read up to an interval apart: while the fleet's total moves
	// (a ramp, a mass reconnect) they differ by timing, not by placement,
	// and the edge is spreading the newcomers anyway. Wait until it settles.
	settled := r.lastTotal > 0 && math.Abs(float64(total-r.lastTotal)) <= r.cfg.Slack/2*float64(max(total, r.lastTotal))
	r.lastTotal = total
	n := 0
	if settled {
		n = Plan(own, peers, r.cfg.Slack, Budget(own, r.cfg.Rate, r.cfg.Interval))
	}
	if (n > 0) != r.shedding {
		r.shedding = n > 0
		if r.shedding {
			r.log.Info("rebalance: above this gateway's share, shedding clients", "connections", own, "fleet_mean", total/int64(len(peers)+1), "peers", len(peers))
		} else {
			r.log.Info("rebalance: within this gateway's share", "connections", own, "fleet_mean", total/int64(len(peers)+1), "peers", len(peers))
		}
	}
	if n > 0 {
		now := r.now()
		if now.Sub(r.lastShed) > episodeGap {
			r.episode = now
		}
		r.lastShed = now
		r.Shed.Add(int64(r.ws.Shed(n, r.episode)))
	}
	return nil
}

// live is the counts of the peers that reported within peer_timeout, by this
// gateway's clock, and the ids silent ten times that long: their gateways
// died without leaving.
func (r *Rebalancer) live(fleet map[string]Entry) (counts []int64, stale []string) {
	now := r.now()
	for id, e := range fleet {
		if id == r.id {
			continue
		}
		p, ok := r.peers[id]
		if !ok || p.beat != e.Beat {
			// A first sighting counts as live: a peer that just started must
			// be counted at once, and a dead one drops out after peer_timeout.
			p = &peer{beat: e.Beat, changed: now}
			r.peers[id] = p
		}
		switch age := now.Sub(p.changed); {
		case age < r.cfg.PeerTimeout:
			counts = append(counts, e.Conns)
		case age >= 10*r.cfg.PeerTimeout:
			stale = append(stale, id)
		}
	}
	for id := range r.peers {
		if _, ok := fleet[id]; !ok {
			delete(r.peers, id)
		}
	}
	sort.Strings(stale)
	for _, id := range stale {
		delete(r.peers, id)
	}
	return counts, stale
}
