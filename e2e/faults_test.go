package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/wsclient"
)

// Bounds of TestFleetFaults. The fleet runs a snapshot every second
// (FastSnapshotterArgs) and every client asks for update_interval 1, so a
// client normally reads a frame a second; the bounds below are in those
// terms and leave room for a shared two-core machine that runs the crowd,
// nginx, three gateways and a race-built snapshotter at once.
const (
	// steadyGap bounds the time between two frames on one connection while
	// nothing relevant to that client breaks: one interval, plus a frame
	// the pacer holds to its slot (up to another), plus two intervals for a
	// compute or a delivery delayed by a busy machine.
	steadyGap = 4 * time.Second
	// redisSwitchGap bounds the gap a Redis crash may cause: the gateways
	// see the subscription's connection reset at once and long-poll the
	// snapshotter, which answers as soon as a newer frame exists; back on
	// Redis they read the latest frame on subscribe. docs/OPERATIONS.md
	// promises the switch within one health check (5 s); 6 s is that plus
	// an interval. redisDown is longer, so a gateway that waited for Redis
	// instead of falling back would fail it.
	redisSwitchGap = 6 * time.Second
	redisDown      = 8 * time.Second
	// snapFirstFrame bounds how long after it listens again a restarted
	// snapshotter's first frame reaches every client: its first compute on
	// the store's two days of candles, the Redis publish and the relay,
	// on a busy machine (five intervals).
	snapFirstFrame = 5 * time.Second
	snapDown       = 3 * time.Second
	// nginxDown is how long the edge stays dead: longer than the first
	// backoff delay (at most 2.4 s), so the crowd's second attempt is the
	// one that finds it back.
	nginxDown = 3 * time.Second
	// dialSlack is added to the page's backoff schedule (which says when
	// the successful attempt starts) for that attempt itself: TCP connect,
	// the upgrade through nginx, the subscribe and the first frame (a
	// gateway sends its latest at once), with up to every client of the
	// crowd doing the same within the same second or two.
	dialSlack = 3 * time.Second
	// settle is how long every client must keep reading after a repair
	// before the fault's numbers are taken, so ordering and gaps across
	// the switch back are part of them.
	settle = 2 * time.Second
	// probes is how many fresh connections test whether nginx sends
	// clients to a restarted gateway again.
	probes = 30
)

// faultRow is one fault's numbers.
type faultRow struct {
	name                string
	down                time.Duration // from the fault until the part listened again
	lost, allowed       int           // connections lost; how many may be
	back, backBound     time.Duration // slowest loss-to-first-frame; its bound
	attempts            int           // most connection attempts one lost client needed
	gap, gapBound       time.Duration // largest gap between two frames on one connection
	outOfOrder, repeats int
	frames              int
}

// TestFleetFaults breaks the fleet one part at a time under a crowd of
// page-like clients behind nginx (each from its own source address, so
// ip_hash spreads them) and measures what the clients see, per fault:
// connections lost (none for Redis and the snapshotter; only the killed
// gateway's clients for a gateway; everyone for nginx, back within the
// page's reconnect backoff), the largest gap between two frames on one
// connection, and frames out of (epoch, seq) order (none). A reconnect may
// repeat the newest frame the client read; that is counted as a repeat,
// not out of order (see testenv.Crowd.snapshot).
//
// By default (make test) it runs 100 clients and the Redis and gateway
// faults; LIQSTREAM_FAULTS_FULL=1 (make faults) runs 500 clients and all
// four: Redis, a gateway, the snapshotter, nginx.
func TestFleetFaults(t *testing.T) {
	full := os.Getenv("LIQSTREAM_FAULTS_FULL") == "1"
	n := 100
	if full {
		n = 500
	}
	checkPageBackoff(t)

	f := testenv.StartFleetWith(t, testenv.FleetOptions{
		Gateways:        3,
		GatewayArgs:     []string{"--log_level=info"},
		SnapshotterArgs: testenv.FastSnapshotterArgs,
	})
	allOnRedis := func() bool {
		for _, g := range f.Gateways {
			if code, src := readySource(t, g.Addr); code != http.StatusOK || src != "redis" {
				return false
			}
		}
		return true
	}
	awaitAll(t, "every gateway ready on redis", allOnRedis)
	crowd := testenv.StartCrowdWith(t, f.EdgeURL(), testenv.CrowdOptions{Symbol: "BTCUSDT", N: n, Ramp: 250, UpdateInterval: 1})
	everyoneReading := func(s testenv.CrowdState) bool { return s.Connected == n && s.Fresh == n }
	awaitCrowd(t, crowd, "every client connected and reading", time.Minute, everyoneReading)
	if s := crowd.State(); len(s.ByGateway) != len(f.Gateways) {
		t.Fatalf("the crowd reached %d of %d gateways through nginx: %v", len(s.ByGateway), len(f.Gateways), s.ByGateway)
	}

	var rows []faultRow
	defer func() { logFaultTable(t, n, rows) }()

	// measure waits until every client is connected, has read for settle
	// after repaired and every lost connection is back, then checks and
	// records the window's numbers.
	measure := func(row faultRow, repaired time.Time, wantLost []int, backBound func(testenv.CrowdLoss) time.Duration) faultRow {
		t.Helper()
		awaitCrowd(t, crowd, row.name+": every client connected and reading", 2*time.Minute, everyoneReading)
		deadline := time.Now().Add(time.Minute)
		for {
			s := crowd.Stats()
			back := true
			for _, l := range s.Losses {
				back = back && !l.Back.IsZero()
			}
			if back && s.OldestRead.After(repaired.Add(settle)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: clients not all reading %s after the repair within a minute (oldest last read %s, %d losses)",
					row.name, settle, s.OldestRead.Format(time.RFC3339Nano), len(s.Losses))
			}
			time.Sleep(100 * time.Millisecond) // sampling the crowd's counters
		}
		s := crowd.Stats()
		row.lost, row.allowed = len(s.Losses), len(wantLost)
		row.gap, row.outOfOrder, row.repeats, row.frames = s.MaxGap, s.OutOfOrder, s.Repeats, s.Frames
		var lost []int
		for _, l := range s.Losses {
			lost = append(lost, l.Client)
			d := l.Back.Sub(l.At)
			row.back = max(row.back, d)
			row.attempts = max(row.attempts, l.Attempts)
			if b := backBound(l); d > b {
				t.Errorf("%s: client %d (on %s) was back %s after its loss (%d attempts), bound %s", row.name, l.Client, l.Gateway, d, l.Attempts, b)
			}
		}
		slices.Sort(lost)
		if !slices.Equal(lost, wantLost) {
			t.Errorf("%s: lost the connections of clients %v, want exactly %v", row.name, short(lost), short(wantLost))
		}
		if row.gap > row.gapBound {
			t.Errorf("%s: client %d read no frame for %s (until %s), bound %s", row.name, s.MaxGapClient, s.MaxGap,
				s.MaxGapAt.Format("15:04:05.000"), row.gapBound)
		}
		if row.outOfOrder > 0 {
			t.Errorf("%s: %d frames out of (epoch, seq) order, e.g. %v", row.name, row.outOfOrder, s.Examples)
		}
		rows = append(rows, row)
		return row
	}
	noLoss := func(testenv.CrowdLoss) time.Duration { return 0 }

	// Baseline: nothing breaks; the steady-state gap bound must hold here too.
	crowd.ResetStats()
	measure(faultRow{name: "none (baseline)", gapBound: steadyGap}, time.Now().Add(time.Second), nil, noLoss)

	// Redis crashes: gateways fall back to the snapshotter's long poll and
	// back; nobody is disconnected.
	{
		crowd.ResetStats()
		start := time.Now()
		f.Redis.Stop() // SIGKILL
		awaitAll(t, "every gateway in fallback", func() bool {
			for _, g := range f.Gateways {
				if code, src := readySource(t, g.Addr); code != http.StatusOK || !strings.Contains(src, "fallback") {
					return false
				}
			}
			return true
		})
		time.Sleep(time.Until(start.Add(redisDown))) // the outage itself
		f.Redis.Restart()
		repaired := time.Now()
		awaitAll(t, "every gateway back on redis", allOnRedis)
		measure(faultRow{name: "redis SIGKILL", down: repaired.Sub(start), gapBound: redisSwitchGap}, repaired, nil, noLoss)
		t.Logf("redis SIGKILL: gateways' counters: %v", gatewayCounters(t, f, "gateway_fallback_switches_total", "gateway_redis_reconnects_total"))
	}

	// A gateway crashes: its clients, and only they, reconnect through the
	// edge with the page's backoff, on the first attempt (nginx passes a
	// refused connect on to the next gateway). It restarts on its address;
	// nginx must send it new clients again.
	{
		const victim = 0
		inst := f.GatewayInstance(t, victim)
		onVictim := crowd.ClientsOn(inst)
		if len(onVictim) == 0 {
			t.Fatalf("no client on %s", inst)
		}
		crowd.ResetStats()
		start := time.Now()
		f.Gateways[victim].Kill()
		// Restart only once its clients are elsewhere, so that they had to
		// reconnect while it was down.
		deadline := time.Now().Add(time.Minute)
		for {
			s, back := crowd.Stats(), 0
			for _, l := range s.Losses {
				if !l.Back.IsZero() {
					back++
				}
			}
			if back >= len(onVictim) && back == len(s.Losses) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway SIGKILL: %d of %d lost connections back after a minute, %d of its clients", back, len(s.Losses), len(onVictim))
			}
			time.Sleep(100 * time.Millisecond) // sampling the crowd's counters
		}
		g := f.RestartGateway(t, victim)
		repaired := time.Now()
		awaitAll(t, "the restarted gateway ready on redis", allOnRedis)
		first, _ := testenv.ReconnectWithin(0)
		row := measure(faultRow{name: "gateway SIGKILL", down: repaired.Sub(start), gapBound: steadyGap, backBound: first + dialSlack},
			repaired, onVictim, func(testenv.CrowdLoss) time.Duration { return first + dialSlack })
		if row.attempts > 1 {
			t.Errorf("gateway SIGKILL: a client needed %d attempts to reconnect; the edge should place every one on its first", row.attempts)
		}

		// The restarted gateway must get clients again: ip_hash maps the
		// source addresses of its old clients to it, so fresh connections
		// from them must land there now that it is up. An edge that still
		// counts its refused connects from the outage against it (nginx
		// max_fails with a WebSocket, see deploy/nginx/nginx.conf.tmpl)
		// sends them elsewhere.
		newInst := f.GatewayInstance(t, victim)
		landed := probeEdge(t, f.EdgeURL(), onVictim[:min(probes, len(onVictim))])
		t.Logf("gateway SIGKILL: %d of %d fresh connections from its old clients' addresses reached the restarted %s (%s after it listened): %v",
			landed[newInst], min(probes, len(onVictim)), g.Name, time.Since(repaired).Round(time.Millisecond), landed)
		if errlog, err := os.ReadFile(filepath.Join(f.Nginx.Dir, "error.log")); err == nil {
			t.Logf("gateway SIGKILL: nginx error.log: %d lines %q, %d %q", strings.Count(string(errlog), "(111: Connection refused) while connecting to upstream"),
				"connect() failed (111: Connection refused) while connecting to upstream", strings.Count(string(errlog), "upstream server temporarily disabled"),
				"upstream server temporarily disabled")
		}
		if landed[newInst] != min(probes, len(onVictim)) {
			t.Errorf("gateway SIGKILL: nginx sent %d of %d new clients hashed to the restarted gateway to it (%v): the edge still avoids it",
				landed[newInst], min(probes, len(onVictim)), landed)
		}
	}

	if !full {
		return
	}

	// The snapshotter crashes and restarts on the same DuckDB file: a new
	// epoch, seq from 1. Gateways keep every client; frames resume and
	// stay in (epoch, seq) order.
	{
		crowd.ResetStats()
		before := crowd.Stats().MaxEpoch
		start := time.Now()
		f.RestartSnapshotter(t, snapDown)
		repaired := time.Now()
		down := repaired.Sub(start)
		measure(faultRow{name: "snapshotter SIGKILL", down: down, gapBound: down + snapFirstFrame}, repaired, nil, noLoss)
		// Every client reads the new run's frames: its epoch is higher, its
		// seq starts again at 1, and gateways order by (epoch, seq).
		if s := crowd.Stats(); s.MinEpoch <= before {
			t.Errorf("snapshotter SIGKILL: a client's newest frame has epoch %d, not above the old run's %d", s.MinEpoch, before)
		} else {
			t.Logf("snapshotter SIGKILL: epoch %d before, %d on every client after", before, s.MinEpoch)
		}
	}

	// nginx crashes: every connection drops; every client is back within
	// the page's backoff once nginx is.
	{
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		crowd.ResetStats()
		start := time.Now()
		f.Nginx.Kill()
		time.Sleep(nginxDown) // the outage itself
		f.Nginx.Restart(t)
		repaired := time.Now()
		bound := func(l testenv.CrowdLoss) time.Duration {
			b, _ := testenv.ReconnectWithin(repaired.Sub(l.At))
			return b + dialSlack
		}
		worst, _ := testenv.ReconnectWithin(repaired.Sub(start))
		measure(faultRow{name: "nginx SIGKILL", down: repaired.Sub(start), gapBound: steadyGap, backBound: worst + dialSlack},
			repaired, all, bound)
		t.Logf("nginx SIGKILL: clients by gateway after: %v; gateways' counters: %v", crowd.State().ByGateway,
			gatewayCounters(t, f, "ws_disconnects_total", "ws_connections_total"))
	}
}

// gatewayCounters sums, over the fleet's gateways, every sample of the
// named metrics (label sets kept apart), for the log: what an operator's
// dashboard would show after a fault.
func gatewayCounters(t *testing.T, f *testenv.Fleet, names ...string) map[string]float64 {
	t.Helper()
	sum := map[string]float64{}
	for _, g := range f.Gateways {
		resp, err := http.Get("http://" + g.Addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, name := range names {
				if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
					continue
				}
				i := strings.LastIndexByte(line, ' ')
				v, err := strconv.ParseFloat(line[i+1:], 64)
				if err == nil && v != 0 {
					sum[line[:i]] += v
				}
			}
		}
	}
	return sum
}

// probeEdge dials the edge once from each listed crowd client's source
// address, reads which gateway took the connection, and counts connections
// by gateway. Every connection stays open until all are dialled, as a
// page's does: nginx forgets a peer's failures when a request to it ends,
// so probes closed at once would clear what real clients would not.
func probeEdge(t *testing.T, url string, clients []int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var open []*wsclient.Client
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for _, i := range clients {
		c, resp, err := wsclient.Dial(url, wsclient.Options{LocalAddr: testenv.CrowdSourceIP(i)})
		if err != nil {
			got["error: "+err.Error()]++
			continue
		}
		open = append(open, c)
		got[resp.Header.Get("X-Liqstream-Gateway")]++
	}
	return got
}

// checkPageBackoff fails the test when the crowd's reconnect policy no
// longer matches the page's (services/gateway/web/liqstream.js DEFAULTS),
// since the bounds here are derived from it.
func checkPageBackoff(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "services", "gateway", "web", "liqstream.js"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{
		"reconnectBase":   float64(testenv.PageReconnectBase.Milliseconds()),
		"reconnectMax":    float64(testenv.PageReconnectMax.Milliseconds()),
		"jitter":          testenv.PageJitter,
		"maxAttempts":     testenv.PageMaxAttempts,
		"drainJitter":     float64(testenv.PageDrainJitter.Milliseconds()),
		"wsRetryInterval": float64(testenv.PageWSRetryInterval.Milliseconds()),
	} {
		m := regexp.MustCompile(`(?m)^\s*` + key + `:\s*([0-9.]+),`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("liqstream.js DEFAULTS has no %s", key)
		}
		got, _ := strconv.ParseFloat(string(m[1]), 64)
		if math.Abs(got-want) > 1e-9 {
			t.Fatalf("liqstream.js DEFAULTS.%s is %v, the crowd (e2e/internal/testenv/crowd.go) uses %v", key, got, want)
		}
	}
}

func logFaultTable(t *testing.T, n int, rows []faultRow) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients through nginx, 3 gateways, snapshot.interval 1s, update_interval 1\n", n)
	fmt.Fprintf(&b, "%-20s %7s %11s %17s %9s %15s %12s %8s %7s\n",
		"fault", "down", "lost/allow", "slowest back", "attempts", "largest gap", "out of order", "repeats", "frames")
	d := func(x time.Duration) string { return fmt.Sprintf("%.2fs", x.Seconds()) }
	for _, r := range rows {
		back := "-"
		if r.lost > 0 {
			back = d(r.back) + " ≤ " + d(r.backBound)
		}
		down := "-"
		if r.down > 0 {
			down = d(r.down)
		}
		fmt.Fprintf(&b, "%-20s %7s %11s %17s %9d %15s %12d %8d %7d\n", r.name, down, fmt.Sprintf("%d/%d", r.lost, r.allowed),
			back, r.attempts, d(r.gap)+" ≤ "+d(r.gapBound), r.outOfOrder, r.repeats, r.frames)
	}
	t.Logf("faults:\n%s", b.String())
}

// short abbreviates a long list of client ids for a message.
func short(ids []int) string {
	if len(ids) > 12 {
		return fmt.Sprintf("%v … (%d)", ids[:12], len(ids))
	}
	return fmt.Sprint(ids)
}
