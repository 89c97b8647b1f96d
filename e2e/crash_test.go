package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// crashSymbols make the demo seed long enough (several symbols of 30 days of
// 5m candles) for random kills to land inside it.
var crashSymbols = "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,BNBUSDT,ADAUSDT,LINKUSDT"

const crashDays = 30

// startCrashProc starts a snapshotter seeding db, to be killed at will.
func startCrashProc(t *testing.T, db string) *testenv.Proc {
	t.Helper()
	return testenv.Launch(t, "snapshotter", "", "--db", db, "--listen", "127.0.0.1:0", "--symbols", crashSymbols,
		fmt.Sprintf("--demo.days=%d", crashDays), "--simulator.enabled=false", "--log_summary_interval=1h")
}

// faultKills is how many kills a crash test must land: short under make
// test, full (at least 20) with LIQSTREAM_FAULTS_FULL=1, as make faults sets.
func faultKills(t *testing.T, short, full int) int {
	t.Helper()
	if os.Getenv("LIQSTREAM_FAULTS_FULL") == "1" {
		t.Logf("full run (LIQSTREAM_FAULTS_FULL=1): %d kills", full)
		return full
	}
	t.Logf("short run: %d kills (LIQSTREAM_FAULTS_FULL=1 for %d)", short, full)
	return short
}

// crashRand is the source of a crash test's kill delays, seeded from the
// clock or CRASH_SEED; the seed is logged so a failing run can be repeated.
// stream tells the tests apart.
func crashRand(t *testing.T, stream uint64) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRASH_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &seed); err != nil {
			t.Fatalf("CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("kill delays from seed %d (CRASH_SEED=%d to repeat)", seed, seed)
	return rand.New(rand.NewPCG(seed, stream))
}

type storeCounts struct {
	Klines       int64 `json:"klines"`
	OpenInterest int64 `json:"open_interest"`
}

// opened reads the row counts the snapshotter logs when it opens the store,
// before it seeds anything: the state the previous run left.
func opened(t *testing.T, p *testenv.Proc) storeCounts {
	t.Helper()
	var c storeCounts
	if err := json.Unmarshal([]byte(p.WaitLog(t, `"msg":"store opened"`, 60*time.Second)), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// ready waits for the listening address and then /readyz 200.
func crashReady(t *testing.T, p *testenv.Proc, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var rec struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(p.WaitLog(t, `"msg":"listening"`, timeout)), &rec); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := http.Get("http://" + rec.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within %s (last %v):\n%s", timeout, err, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSeedInvariant: the simulator is off, so every row is the seed's; a
// symbol's seed is n candles and n observations. All-or-nothing per symbol
// means equal totals, a whole number of symbols. The old code (candles and OI
// in two transactions) leaves klines = open_interest + n after a kill between
// them.
func checkSeedInvariant(t *testing.T, run int, c storeCounts, n int64) {
	t.Helper()
	if c.Klines != c.OpenInterest || c.Klines%n != 0 {
		t.Fatalf("run %d: store holds %d klines and %d open interest rows; want equal, a multiple of %d (whole symbols)", run, c.Klines, c.OpenInterest, n)
	}
}

// TestCrashDuringDemoSeed kills the snapshotter with SIGKILL at seeded-random
// moments while it seeds demo data into a fresh store, restarts it on the
// same file, and checks after every restart that each symbol's candles and
// open interest are there together or not at all; once let finish, the store
// holds what an uninterrupted seed writes, and serves.
func TestCrashDuringDemoSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real snapshotter dozens of times")
	}
	// At least this many kills must land while seeding; kills after a store
	// finished seeding count too but move on to a fresh store.
	kills := faultKills(t, 6, 24)
	maxRuns := kills * 5 / 2
	nSymbols := int64(len(strings.Split(crashSymbols, ",")))
	n := int64(crashDays * 24 * 12)
	dir := t.TempDir()

	// The reference: an uninterrupted seed, and how long it takes.
	clean := startCrashProc(t, filepath.Join(dir, "clean", "store.duckdb"))
	began := time.Now()
	if c := opened(t, clean); c.Klines != 0 {
		t.Fatalf("fresh store holds %+v", c)
	}
	clean.WaitLog(t, `"msg":"listening"`, 5*time.Minute)
	window := time.Since(began)
	crashReady(t, clean, 2*time.Minute)
	clean.Kill()
	ref := startCrashProc(t, filepath.Join(dir, "clean", "store.duckdb"))
	want := opened(t, ref)
	ref.Kill()
	if want.Klines != nSymbols*n || want.OpenInterest != nSymbols*n {
		t.Fatalf("clean seed wrote %+v, want %d of each", want, nSymbols*n)
	}
	t.Logf("clean seed of %d symbols x %d candles: %s", nSymbols, n, window.Round(time.Millisecond))

	rng := crashRand(t, 15)

	store, stores := "", 0
	inSeed := 0
	run := 0
	for inSeed < kills {
		run++
		if run > maxRuns {
			t.Fatalf("only %d of %d kills landed while seeding; want %d", inSeed, run-1, kills)
		}
		if store == "" {
			stores++
			store = filepath.Join(dir, fmt.Sprintf("crash%d", stores), "store.duckdb")
		}
		p := startCrashProc(t, store)
		c := opened(t, p)
		checkSeedInvariant(t, run, c, n)
		// Kill anywhere from the store opening to a little past a clean seed.
		delay := time.Duration(rng.Int64N(int64(window * 11 / 10)))
		time.Sleep(delay)
		served := p.HasLine(`"msg":"listening"`)
		p.Kill()
		if !served {
			inSeed++
		} else {
			// Seeded whole: the next kills go to a fresh store.
			after := startCrashProc(t, store)
			checkSeedInvariant(t, run, opened(t, after), n)
			if got := opened(t, after); got != want {
				t.Fatalf("run %d: seeded store holds %+v, clean seed %+v", run, got, want)
			}
			after.Kill()
			store = ""
		}
		t.Logf("run %d: store %d held %d/%d rows at start, killed after %s (seed done: %v)", run, stores, c.Klines, c.OpenInterest, delay.Round(time.Millisecond), served)
	}
	t.Logf("%d kills, %d of them while seeding, over %d stores", run, inSeed, stores)

	// Let the last store finish (the last kill may have left it half-way),
	// then it holds what the clean run wrote, and serves.
	if store == "" {
		return
	}
	final := startCrashProc(t, store)
	checkSeedInvariant(t, run+1, opened(t, final), n)
	crashReady(t, final, 5*time.Minute)
	final.Kill()
	check := startCrashProc(t, store)
	if got := opened(t, check); got != want {
		t.Fatalf("after the final run the store holds %+v, clean seed %+v", got, want)
	}
	crashReady(t, check, 2*time.Minute)
}
