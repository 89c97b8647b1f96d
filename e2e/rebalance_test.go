package e2e

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// rebalanceRate is rebalance.rate's default: the share of its clients an
// overfull gateway closes per second.
const rebalanceRate = 0.03

// TestRebalanceAfterScaleOut is the fleet after a scale-out: 3 gateways hold
// 3,000 clients behind nginx (ip_hash); a 4th gateway starts on an upstream
// nginx already lists. With rebalancing on, the three shed clients with 1012
// at a paced rate until every gateway holds its share ± 15 %; every client is
// connected and reading again at the end, none closed any other way, and
// there are fewer moves than clients.
func TestRebalanceAfterScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 clients: not in -short")
	}
	const n, gateways = 3000, 3
	f := testenv.StartFleetWith(t, testenv.FleetOptions{
		Gateways: gateways, Spare: 1,
		GatewayArgs: []string{"--rebalance.enabled", "--log_level=info"},
	})
	for _, g := range f.Gateways {
		awaitAll(t, g.Name+" ready", func() bool { code, _ := readySource(t, g.Addr); return code == http.StatusOK })
	}
	crowd := testenv.StartCrowd(t, f.EdgeURL(), "BTCUSDT", n, 500)
	awaitCrowd(t, crowd, "every client connected and reading", 2*time.Minute, func(s testenv.CrowdState) bool {
		return s.Connected == n && s.Fresh == n
	})
	before := crowd.State()
	t.Logf("before the scale-out: %v", before.ByGateway)
	if len(before.ByGateway) != gateways || before.Moves != 0 {
		t.Fatalf("before the scale-out: %d gateways hold clients, %d moved; want %d and 0", len(before.ByGateway), before.Moves, gateways)
	}

	g4 := f.StartSpare(t)
	started := time.Now()
	share := float64(n) / float64(gateways+1)
	balanced := func(s testenv.CrowdState) bool {
		if len(s.ByGateway) != gateways+1 || s.Connected != n {
			return false
		}
		for _, c := range s.ByGateway {
			if math.Abs(float64(c)-share) > 0.15*share {
				return false
			}
		}
		return true
	}
	awaitCrowd(t, crowd, "each gateway within ±15 % of its share", 3*time.Minute, balanced)
	took := time.Since(started)
	awaitCrowd(t, crowd, "every client reading on its current connection", time.Minute, func(s testenv.CrowdState) bool {
		return s.Connected == n && s.Fresh == n
	})
	after := crowd.State()
	peak1, most := crowd.PeakMoves(time.Second)
	peak5, _ := crowd.PeakMoves(5 * time.Second)
	t.Logf("balanced %.1f s after %s started: %v; %d clients moved (1012), at most %d in one second and %d in five, at most %d times one client",
		took.Seconds(), g4.Name, after.ByGateway, after.Moves, peak1, peak5, most)

	if len(after.Other) > 0 {
		t.Fatalf("clients closed or refused other than by 1012: %v", after.Other)
	}
	// Paced: each of the three gateways closes at most rate x its clients
	// per round, a round a second; five seconds hold at most six rounds of
	// each (a late tick and the next one may fall close together).
	if limit := 6 * gateways * int(math.Ceil(rebalanceRate*float64(n)/gateways)); peak5 > limit {
		t.Fatalf("%d clients moved within five seconds: a reconnect storm (paced limit %d)", peak5, limit)
	}
	// Each gateway sheds only clients from before its shedding began, so a
	// client moves once, or twice if it reached a gateway in the instant
	// before that gateway began to shed too.
	if after.Moves > n || most > 2 {
		t.Fatalf("%d moves for %d clients, one client %d times: clients shed again after the edge placed them", after.Moves, n, most)
	}
	var shed float64
	for _, g := range f.Gateways {
		shed += metricValue(t, g.Addr, "gateway_rebalance_shed_total")
	}
	if int(shed) != after.Moves {
		t.Fatalf("gateways report %g clients shed, clients saw %d closes with 1012", shed, after.Moves)
	}
}

func awaitCrowd(t *testing.T, crowd *testenv.Crowd, what string, limit time.Duration, cond func(testenv.CrowdState) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := crowd.State()
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(s)
			t.Fatalf("timed out after %s waiting for %s: %s", limit, what, b)
		}
		time.Sleep(200 * time.Millisecond) // sampling the crowd's state, as a dashboard would
	}
}

// metricValue reads an unlabelled sample from a service's /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			return f
		}
	}
	t.Fatalf("%s exports no %s", addr, name)
	return 0
}
