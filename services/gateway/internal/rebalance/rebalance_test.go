package rebalance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name   string
		own    int64
		peers  []int64
		slack  float64
		budget int
		want   int
	}{
		{"alone", 1000, nil, 0.1, 100, 0},
		{"balanced", 1000, []int64{1000, 1000}, 0.1, 100, 0},
		{"within slack", 1080, []int64{1000, 960}, 0.1, 100, 0},
		// 3 x 1000 and a new gateway: mean 750, shed down to it, paced.
		{"after scale-out, paced", 1000, []int64{1000, 1000, 0}, 0.1, 20, 20},
		{"after scale-out, down to the mean", 1000, []int64{1000, 1000, 0}, 0.1, 1000, 250},
		// 800 is within 1.1 x 750, but the new gateway is still under
		// 0.9 x the mean: keep shedding what is above the mean.
		{"above mean while a peer is under", 800, []int64{800, 800, 600}, 0.1, 1000, 50},
		{"under gateway sheds nothing", 600, []int64{800, 800, 800}, 0.1, 1000, 0},
		{"above mean, nobody under", 790, []int64{760, 740, 710}, 0.1, 1000, 0},
		{"budget zero", 1000, []int64{0}, 0.1, 0, 0},
		// 30 over a mean of 110 is 27 %, but under 3 x sqrt(110) = 31: the
		// chance spread of a hash, which shedding cannot improve.
		{"chance spread of a small fleet", 140, []int64{95, 95}, 0.1, 100, 0},
		{"beyond the chance spread", 160, []int64{85, 85}, 0.1, 100, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Plan(tc.own, tc.peers, tc.slack, tc.budget); got != tc.want {
				t.Fatalf("Plan(%d, %v, %g, %d) = %d, want %d", tc.own, tc.peers, tc.slack, tc.budget, got, tc.want)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		own      int64
		rate     float64
		interval time.Duration
		want     int
	}{
		{1000, 0.02, time.Second, 20},
		{1000, 0.02, 500 * time.Millisecond, 10},
		{10, 0.02, time.Second, 1}, // at least one
		{0, 0.02, time.Second, 0},
	}
	for _, tc := range tests {
		if got := Budget(tc.own, tc.rate, tc.interval); got != tc.want {
			t.Errorf("Budget(%d, %g, %s) = %d, want %d", tc.own, tc.rate, tc.interval, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"default", func(*Config) {}, ""},
		{"slack", func(c *Config) { c.Slack = 0 }, "rebalance.slack:"},
		{"rate", func(c *Config) { c.Rate = 0.5 }, "rebalance.rate:"},
		{"interval", func(c *Config) { c.Interval = 0 }, "rebalance.interval:"},
		{"peer timeout", func(c *Config) { c.PeerTimeout = 2 * c.Interval }, "rebalance.peer_timeout:"},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.mutate(&c)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// memRegistry is a registry in memory that can be made to fail.
type memRegistry struct {
	mu      sync.Mutex
	entries map[string]Entry
	fail    error
	forgot  []string
}

func (m *memRegistry) Report(_ context.Context, id string, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.entries[id] = e
	return nil
}

func (m *memRegistry) Fleet(context.Context) (map[string]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := map[string]Entry{}
	for k, v := range m.entries {
		out[k] = v
	}
	return out, nil
}

func (m *memRegistry) Forget(_ context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.entries, id)
		m.forgot = append(m.forgot, id)
	}
	return nil
}

// fakeWS holds n clients; Shed takes them away.
type fakeWS struct {
	mu     sync.Mutex
	n      int64
	shed   []int
	before []time.Time
}

func (f *fakeWS) Active() int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.n }
func (f *fakeWS) Shed(n int, before time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shed = append(f.shed, n)
	f.before = append(f.before, before)
	f.n -= int64(n)
	return n
}

func newTest(reg Registry, ws Shedder, ready func() bool) (*Rebalancer, *time.Time) {
	cfg := DefaultConfig()
	cfg.Enabled = true
	r := New(cfg, "gw-1", reg, ws, ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Unix(1_700_000_000, 0)
	r.now = func() time.Time { return now }
	return r, &now
}

func TestStepShedsPacedTowardsANewPeer(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {1000, 1}, "gw-3": {1000, 1}, "gw-4": {0, 1}}}
	ws := &fakeWS{n: 1000}
	r, _ := newTest(reg, ws, func() bool { return true })
	// The first round has nothing to compare the fleet's total with.
	for i := 0; i < 2; i++ {
		if err := r.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(ws.shed) != 1 || ws.shed[0] != 30 {
		t.Fatalf("shed %v, want one round of 30 (3 %% of 1000)", ws.shed)
	}
	if e := reg.entries["gw-1"]; e.Conns != 1000 || e.Beat != 2 {
		t.Fatalf("reported %+v, want 1000 connections, beat 2", e)
	}
	if r.Peers.Load() != 3 || r.Mean.Load() != 750 || r.Shed.Load() != 30 {
		t.Fatalf("peers %d mean %d shed %d", r.Peers.Load(), r.Mean.Load(), r.Shed.Load())
	}
}

// A peer that stops changing its beat is dead by this gateway's clock: left
// out of the mean after peer_timeout, removed after ten times that.
func TestSilentPeerDropsOutThenIsForgotten(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {1000, 7}, "dead": {0, 3}}}
	ws := &fakeWS{n: 1000}
	r, now := newTest(reg, ws, func() bool { return true })
	step := func(d time.Duration) {
		t.Helper()
		*now = now.Add(d)
		reg.mu.Lock()
		e := reg.entries["gw-2"]
		e.Beat++
		reg.entries["gw-2"] = e
		reg.mu.Unlock()
		if err := r.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step(0)
	step(0)
	if len(ws.shed) != 1 {
		t.Fatalf("with the silent peer still counted (mean 667) gw-1 must shed; shed %v", ws.shed)
	}
	ws.n, ws.shed = 1000, nil
	step(r.cfg.PeerTimeout)
	if len(ws.shed) != 0 || r.Peers.Load() != 1 {
		t.Fatalf("silent peer still counted after peer_timeout: peers %d, shed %v", r.Peers.Load(), ws.shed)
	}
	step(10 * r.cfg.PeerTimeout)
	if _, ok := reg.entries["dead"]; ok || len(reg.forgot) != 1 || reg.forgot[0] != "dead" {
		t.Fatalf("dead peer not forgotten: entries %v forgot %v", reg.entries, reg.forgot)
	}
}

// While the fleet's total moves by more than slack/2 a round, counts differ
// by when they were read, not by where clients are: nothing is shed.
func TestStepWaitsForASettledFleet(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {100, 1}}}
	ws := &fakeWS{n: 400}
	r, _ := newTest(reg, ws, func() bool { return true })
	for _, peer := range []int64{100, 300, 380} { // a ramp: totals 500, 700, 780
		reg.entries["gw-2"] = Entry{peer, uint64(peer)}
		if err := r.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(ws.shed) != 0 {
		t.Fatalf("shed %v during a ramp", ws.shed)
	}
	ws.n = 600
	reg.entries["gw-2"] = Entry{200, 9} // total 800: settled, and 600 is 1.5 x the mean
	if err := r.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ws.shed) != 1 {
		t.Fatalf("settled fleet 600/200: shed %v, want one round", ws.shed)
	}
}

// Rounds that shed within episodeGap of each other are one episode: each
// sheds only clients from before the episode began. A new episode starts
// after a quiet gap.
func TestEpisodeBoundsWhoIsShed(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {0, 1}}}
	ws := &fakeWS{n: 1000}
	r, now := newTest(reg, ws, func() bool { return true })
	step := func(d time.Duration) {
		t.Helper()
		*now = now.Add(d)
		ws.n = 1000 // keep it over its share
		e := reg.entries["gw-2"]
		reg.entries["gw-2"] = Entry{e.Conns, e.Beat + 1}
		if err := r.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step(0)
	step(time.Second)
	first := *now
	step(time.Second)
	step(30 * time.Second)
	if len(ws.before) != 3 || !ws.before[0].Equal(first) || !ws.before[2].Equal(first) {
		t.Fatalf("one episode from %v: shed before %v", first, ws.before)
	}
	step(2 * time.Minute)
	if last := ws.before[len(ws.before)-1]; !last.Equal(*now) {
		t.Fatalf("after a quiet gap a new episode begins at %v, shed before %v", *now, last)
	}
}

func TestNotReadyNeitherReportsNorSheds(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {0, 1}}}
	ws := &fakeWS{n: 1000}
	r, _ := newTest(reg, ws, func() bool { return false })
	if err := r.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.entries["gw-1"]; ok || len(ws.shed) != 0 {
		t.Fatalf("not ready: reported %v, shed %v", reg.entries, ws.shed)
	}
}

func TestRegistryDownShedsNothing(t *testing.T) {
	down := errors.New("connection refused")
	reg := &memRegistry{entries: map[string]Entry{"gw-2": {0, 1}}, fail: down}
	ws := &fakeWS{n: 1000}
	r, _ := newTest(reg, ws, func() bool { return true })
	if err := r.Step(context.Background()); !errors.Is(err, down) {
		t.Fatalf("Step = %v, want the registry's error", err)
	}
	if len(ws.shed) != 0 {
		t.Fatalf("shed %v with the registry down", ws.shed)
	}
}

func TestRunLeavesTheRegistryOnStop(t *testing.T) {
	reg := &memRegistry{entries: map[string]Entry{}}
	ws := &fakeWS{n: 5}
	r, _ := newTest(reg, ws, func() bool { return true })
	r.cfg.Interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		reg.mu.Lock()
		_, ok := reg.entries["gw-1"]
		reg.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.entries["gw-1"]; ok {
		t.Fatal("gw-1 still in the registry after Run returned")
	}
}
