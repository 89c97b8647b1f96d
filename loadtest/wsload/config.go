// Package wsload is liqstream's WebSocket load generator: N clients opened at
// a ramp rate from many loopback source addresses, each subscribing to a
// symbol mix and reading every frame. It measures connect success and time,
// delivery latency (the producer's timestamp to the moment a client read the
// frame, scanned from the envelope, never decoded), bytes per client (on the
// wire and as messages), missing seqs, delta frames and whether each one
// continues its client's chain, closes by code and warnings, separately for
// the fast clients and for a fraction of deliberately slow readers.
package wsload

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// Config is one load: who connects where, what they ask for, how they read.
type Config struct {
	// Targets are ws:// URLs on loopback; client i connects to Targets[i%len].
	Targets []string
	// N clients, opened at Ramp per second.
	N, Ramp int
	// Sources is how many source addresses (127.X.Y.1) the clients are spread
	// over: past the ephemeral-port limit, and over nginx ip_hash, which keys
	// on the first three octets.
	Sources int
	// Mix is the subscriptions; client i takes Mix[i%len(Mix)].
	Mix [][]string
	// UpdateInterval is the clients' update_interval in seconds.
	UpdateInterval int
	// Interval is the producer's cadence, used for the frames expected and to
	// decide whether a skipped seq is a loss (only when UpdateInterval ≤ it).
	Interval time.Duration
	// Deflate makes clients offer permessage-deflate.
	Deflate bool
	// Encoding is sent in every subscribe: protocol.EncodingFull or
	// protocol.EncodingDelta; empty sends none (the gateway's default, full).
	Encoding string
	// Origin, when set, is sent on every upgrade.
	Origin string
	// SlowFraction of the clients read at most SlowRate bytes per second.
	SlowFraction float64
	SlowRate     int
	// HandshakeTimeout bounds one dial plus upgrade.
	HandshakeTimeout time.Duration
}

// DefaultMix is the load of the issue that set the reference numbers: every
// client on BTCUSDT, every second one on ETHUSDT too.
var DefaultMix = [][]string{{"BTCUSDT"}, {"BTCUSDT", "ETHUSDT"}}

// ParseMix reads "BTCUSDT;BTCUSDT,ETHUSDT": subscriptions separated by ';',
// symbols within one by ','.
func ParseMix(s string) ([][]string, error) {
	var mix [][]string
	for _, sub := range strings.Split(s, ";") {
		var syms []string
		for _, sym := range strings.Split(sub, ",") {
			if sym = strings.ToUpper(strings.TrimSpace(sym)); sym != "" {
				syms = append(syms, sym)
			}
		}
		if len(syms) == 0 {
			return nil, fmt.Errorf("mix %q: an empty subscription", s)
		}
		if len(syms) > protocol.MaxSymbolsPerMessage {
			return nil, fmt.Errorf("mix %q: %d symbols in one subscription, at most %d", s, len(syms), protocol.MaxSymbolsPerMessage)
		}
		mix = append(mix, syms)
	}
	return mix, nil
}

// MaxClients bounds one load; past it a single generator process runs out of
// source ports and file descriptors long before the target does.
const MaxClients = 60000

// Validate reports the first bad field by its flag-like name.
func (c *Config) Validate() error {
	switch {
	case len(c.Targets) == 0:
		return errors.New("targets: none")
	case c.N < 1 || c.N > MaxClients:
		return fmt.Errorf("n: %d, want 1..%d", c.N, MaxClients)
	case c.Ramp < 1:
		return fmt.Errorf("ramp: %d connections/s, want at least 1", c.Ramp)
	case c.Sources < 1 || c.Sources > 250*256:
		return fmt.Errorf("sources: %d, want 1..%d", c.Sources, 250*256)
	case len(c.Mix) == 0:
		return errors.New("mix: no subscriptions")
	case c.UpdateInterval < protocol.MinUpdateInterval || c.UpdateInterval > protocol.MaxUpdateInterval:
		return fmt.Errorf("update-interval: %d, want %d..%d", c.UpdateInterval, protocol.MinUpdateInterval, protocol.MaxUpdateInterval)
	case c.Interval <= 0:
		return fmt.Errorf("interval: %s, want > 0", c.Interval)
	case c.SlowFraction < 0 || c.SlowFraction > 1:
		return fmt.Errorf("slow-fraction: %g, want 0..1", c.SlowFraction)
	case c.SlowFraction > 0 && c.SlowRate < 1:
		return fmt.Errorf("slow-rate: %d bytes/s, want at least 1 with slow readers", c.SlowRate)
	case c.Encoding != "" && c.Encoding != protocol.EncodingFull && c.Encoding != protocol.EncodingDelta:
		return fmt.Errorf("encoding: %q, want %s or %s", c.Encoding, protocol.EncodingFull, protocol.EncodingDelta)
	}
	for _, t := range c.Targets {
		if err := CheckLoopback(t); err != nil {
			return err
		}
	}
	return nil
}

// CheckLoopback refuses a target that is not a ws:// URL on a loopback
// address: this tool is for one's own machine, never someone else's.
func CheckLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("target %q: want ws://host:port/path", target)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: only loopback addresses (127.0.0.0/8, ::1, localhost) may be load-tested", target)
	}
	return nil
}

// SourceIP is client i's source address: 127.X.Y.1 over sources addresses,
// X from 1, so every address differs in the first three octets.
func SourceIP(i, sources int) net.IP {
	k := i % sources
	return net.IPv4(127, byte(1+k/256), byte(k%256), 1)
}

// slow reports whether client i is one of the slow readers, spread evenly.
func (c *Config) slow(i int) bool {
	if c.SlowFraction <= 0 {
		return false
	}
	// Client i is slow when the running count of slow clients steps up at i.
	return int(float64(i+1)*c.SlowFraction) > int(float64(i)*c.SlowFraction)
}

// countsGaps is whether a skipped seq means a lost frame: with an
// update_interval longer than the producer's, skipping is the rate cap.
func (c *Config) countsGaps() bool {
	return time.Duration(c.UpdateInterval)*time.Second <= c.Interval
}
