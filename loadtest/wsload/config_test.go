package wsload

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "BTCUSDT", want: "[[BTCUSDT]]"},
		{in: "btcusdt; BTCUSDT, ethusdt ", want: "[[BTCUSDT] [BTCUSDT ETHUSDT]]"},
		{in: "BTCUSDT;;ETHUSDT", wantErr: "an empty subscription"},
		{in: "", wantErr: "an empty subscription"},
		{in: "A,B,C,D,E,F,G,H,I,J,K", wantErr: "11 symbols in one subscription, at most 10"},
	} {
		got, err := ParseMix(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMix(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || sprint(got) != tc.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func sprint(m [][]string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, s := range m {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("[" + strings.Join(s, " ") + "]")
	}
	return b.String() + "]"
}

func TestValidateNamesTheBadField(t *testing.T) {
	ok := Config{Targets: []string{"ws://127.0.0.1:8080/ws/heatmap"}, N: 10, Ramp: 10, Sources: 4, Mix: DefaultMix, UpdateInterval: 1, Interval: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Targets = nil }, "targets: none"},
		{func(c *Config) { c.N = 0 }, "n: 0"},
		{func(c *Config) { c.N = MaxClients + 1 }, "n: 60001"},
		{func(c *Config) { c.Ramp = 0 }, "ramp: 0"},
		{func(c *Config) { c.Sources = 0 }, "sources: 0"},
		{func(c *Config) { c.Mix = nil }, "mix: no subscriptions"},
		{func(c *Config) { c.UpdateInterval = 61 }, "update-interval: 61"},
		{func(c *Config) { c.Interval = 0 }, "interval: 0s"},
		{func(c *Config) { c.SlowFraction = 1.5 }, "slow-fraction: 1.5"},
		{func(c *Config) { c.SlowFraction, c.SlowRate = 0.1, 0 }, "slow-rate: 0"},
		{func(c *Config) { c.Targets = []string{"ws://10.0.0.1:8080/ws"} }, "only loopback addresses"},
		{func(c *Config) { c.Targets = []string{"ws://example.com/ws"} }, "only loopback addresses"},
		{func(c *Config) { c.Targets = []string{"http://127.0.0.1/ws"} }, "want ws://host:port/path"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
		}
	}
	for _, target := range []string{"ws://localhost:1/ws", "ws://127.9.9.9:1/ws", "ws://[::1]:1/ws", "wss://127.0.0.1/ws"} {
		if err := CheckLoopback(target); err != nil {
			t.Errorf("CheckLoopback(%q) = %v, want nil", target, err)
		}
	}
}

func TestSourceIPsDifferInTheFirstThreeOctets(t *testing.T) {
	// nginx ip_hash keys on the first three octets: every source must be its own key.
	const sources = 700
	seen := map[string]bool{}
	for i := range sources {
		ip := SourceIP(i, sources).To4()
		if !ip.IsLoopback() || ip[3] != 1 {
			t.Fatalf("SourceIP(%d) = %s, want 127.X.Y.1", i, ip)
		}
		key := ip.Mask(net.CIDRMask(24, 32)).String()
		if seen[key] {
			t.Fatalf("SourceIP(%d) = %s repeats a /24", i, ip)
		}
		seen[key] = true
	}
	if a, b := SourceIP(3, sources), SourceIP(3+sources, sources); !a.Equal(b) {
		t.Errorf("client %d and %d should share a source: %s vs %s", 3, 3+sources, a, b)
	}
}

func TestSlowReadersAreTheAskedFraction(t *testing.T) {
	for _, tc := range []struct {
		n    int
		frac float64
		want int
	}{{10000, 0.01, 100}, {300, 0.02, 6}, {1000, 0, 0}, {50, 1, 50}, {7, 0.5, 3}} {
		c := Config{SlowFraction: tc.frac}
		got, lastRun := 0, -1
		for i := range tc.n {
			if c.slow(i) {
				got++
				if tc.frac < 0.5 && lastRun == i-1 {
					t.Errorf("frac %g: slow clients %d and %d adjacent, want them spread", tc.frac, lastRun, i)
				}
				lastRun = i
			}
		}
		if got != tc.want {
			t.Errorf("n %d frac %g: %d slow clients, want %d", tc.n, tc.frac, got, tc.want)
		}
	}
}
