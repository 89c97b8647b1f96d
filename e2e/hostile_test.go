package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// hostileRSSBound is what 200 concurrent history requests may add to the
// snapshotter's memory; docs/OPERATIONS.md states it. Before the worker
// pool and streamed encoding, 12 such requests added 1.9 GB.
const hostileRSSBound = 512 << 20

// fromAddr is an HTTP client whose connections come from src, so the
// gateway's per-address API limit sees each as a client of its own. No
// transparent gzip: the test reads what is on the wire.
func fromAddr(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
		DialContext: d.DialContext, DisableCompression: true, DisableKeepAlives: true}}
}

type histResult struct {
	code       int
	retryAfter string
	cache      string
	bytes      int
	err        string
}

func getHistory(c *http.Client, url string, gzip bool) histResult {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return histResult{err: err.Error()}
	}
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return histResult{err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := histResult{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), cache: resp.Header.Get("X-Cache"), bytes: len(b)}
	if err != nil {
		r.err = err.Error()
	} else if resp.StatusCode != 200 {
		r.err = string(b)
	}
	return r
}

// TestHistoryUnderHostileLoad fires 200 concurrent cache-missing week-long
// history requests, each from its own address, at the gateway: the
// snapshotter's memory stays bounded, the requests past its workers and
// queue get 503 with Retry-After, the live frames keep their cadence, and
// afterwards the refused requests succeed. One address flooding the API
// gets 429 from the gateway.
func TestHistoryUnderHostileLoad(t *testing.T) {
	const interval = time.Second
	s := testenv.StartStack(t, "--snapshot.interval="+interval.String(), "--simulator.tick=200ms", "--demo.days=8")
	waitReady(t, s.GatewayURL())

	// The live stream, watched throughout.
	c := dial(t, s.WSURL())
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": 1}); err != nil {
		t.Fatal(err)
	}
	var (
		framesMu sync.Mutex
		frames   []received
		stop     = make(chan struct{})
		watched  = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got := collect(t, c, 1, time.Now().Add(3*interval))
			framesMu.Lock()
			frames = append(frames, got...)
			framesMu.Unlock()
		}
	}()
	waitFrames := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			framesMu.Lock()
			have := len(frames)
			framesMu.Unlock()
			if have >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d live frames in 30 s", have)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFrames(3)

	idle, err := s.Snapshotter.RSS()
	if err != nil {
		t.Fatal(err)
	}
	var (
		peak     = idle
		sampling = make(chan struct{})
		sampled  = make(chan struct{})
	)
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
				if r, err := s.Snapshotter.RSS(); err == nil && r > peak {
					peak = r
				}
			}
		}
	}()

	// make test replays 3 days per request (the e2e snapshotter is built
	// with -race, which makes a replay several times slower); make faults
	// the week the issue was found with, and retries more of the refused.
	days, retries := 3, 4
	if faultsFull() {
		days, retries = 7, 12
	}
	// A fixed window: time_window=7d would slide with the clock, and the
	// requests after the burst must ask for the same as during it.
	end := time.Now().UTC().Truncate(5 * time.Minute).Add(-5 * time.Minute)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	const n = 200
	url := func(i int) string {
		return fmt.Sprintf("%s/liquidations/heatmap-timeseries?symbol=BTCUSDT&interval=5m&start_time=%d&end_time=%d&leverage_weights=5:15,10:30,25:25,50:20,100:%d",
			s.GatewayURL(), start.UnixMilli(), end.UnixMilli(), 10+i)
	}
	results := make([]histResult, n)
	began := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half ask for gzip as browsers do, half for the plain body.
			results[i] = getHistory(fromAddr(testenv.CrowdSourceIP(i)), url(i), i%2 == 0)
		}()
	}
	wg.Wait()
	burst := time.Since(began)
	close(sampling)
	<-sampled

	var ok, busy []int
	retryAfter := map[string]int{}
	for i, r := range results {
		switch {
		case r.code == 200 && r.err == "" && r.cache == "miss" && r.bytes > 0:
			ok = append(ok, i)
		case r.code == http.StatusServiceUnavailable && strings.Contains(r.err, "history is busy"):
			secs, err := strconv.Atoi(r.retryAfter)
			if err != nil || secs < 1 || secs > 60 {
				t.Fatalf("request %d: 503 with Retry-After %q, want whole seconds in [1, 60]", i, r.retryAfter)
			}
			retryAfter[r.retryAfter]++
			busy = append(busy, i)
		default:
			t.Fatalf("request %d: %+v; want 200 (a miss) or 503 busy", i, r)
		}
	}
	t.Logf("%d concurrent %dd/5m requests in %s: %d answered, %d refused 503 (Retry-After seconds: %v); snapshotter RSS %d MB idle, %d MB peak (+%d MB, bound %d MB)",
		n, days, burst.Round(time.Millisecond), len(ok), len(busy), retryAfter, idle>>20, peak>>20, (peak-idle)>>20, hostileRSSBound>>20)
	// The defaults: 1 worker, 8 queued; more may pass as the first finish.
	if len(ok) < 9 || len(busy) == 0 {
		t.Fatalf("%d answered and %d refused; want at least the 9 the worker and queue hold answered, and the rest refused", len(ok), len(busy))
	}
	if peak-idle > hostileRSSBound {
		t.Fatalf("snapshotter RSS grew %d MB under the burst, bound %d MB", (peak-idle)>>20, hostileRSSBound>>20)
	}
	// The snapshotter counted exactly the refusals the clients saw.
	if _, body := httpGet(t, "http://"+s.Snapshotter.Addr+"/metrics"); !strings.Contains(body, fmt.Sprintf("history_rejected_total %d\n", len(busy))) {
		t.Fatalf("snapshotter metrics lack history_rejected_total %d:\n%s", len(busy), grepLines(body, "history_"))
	}

	// The live frames kept their cadence through the burst: produced every
	// interval (a missed beat would be a gap of two) and read at once.
	framesMu.Lock()
	live := slices.Clone(frames)
	framesMu.Unlock()
	var during []received
	for _, f := range live {
		if !f.read.Before(began) && !f.read.After(began.Add(burst)) {
			during = append(during, f)
		}
	}
	if want := int(burst/interval) - 1; len(during) < want {
		t.Fatalf("%d live frames during the %s burst, want at least %d", len(during), burst.Round(time.Millisecond), want)
	}
	var worstGap, worstLate time.Duration
	for i, f := range live {
		worstLate = max(worstLate, f.read.Sub(f.produced))
		if i > 0 && f.read.After(began) && live[i-1].read.Before(began.Add(burst)) {
			worstGap = max(worstGap, f.produced.Sub(live[i-1].produced))
		}
	}
	t.Logf("live frames: %d during the burst, largest gap between producer timestamps %s, largest producer-to-client delay %s",
		len(during), worstGap.Round(time.Millisecond), worstLate.Round(time.Millisecond))
	if worstGap >= 2*interval {
		t.Fatalf("the snapshot loop missed a beat during the burst: a gap of %s at a %s interval", worstGap, interval)
	}

	// Afterwards the refused requests succeed (a sample: each is seconds
	// of replay), and an answered one is now a cache hit.
	for _, i := range busy[:min(len(busy), retries)] {
		if r := getHistory(fromAddr(testenv.CrowdSourceIP(i)), url(i), true); r.code != 200 || r.cache != "miss" {
			t.Fatalf("request %d retried after the burst: %+v", i, r)
		}
	}
	if r := getHistory(fromAddr(testenv.CrowdSourceIP(ok[0])), url(ok[0]), false); r.code != 200 || r.cache != "hit" {
		t.Fatalf("an answered request asked again: %+v, want a cache hit", r)
	}
	close(stop)
	<-watched

	// One address flooding the API is stopped at the gateway (bursts of 40
	// by default), before the snapshotter sees it.
	flood := fromAddr("127.0.0.1")
	var (
		floodMu sync.Mutex
		codes   = map[int]int{}
		fw      sync.WaitGroup
	)
	for range 60 {
		fw.Add(1)
		go func() {
			defer fw.Done()
			r := getHistory(flood, s.GatewayURL()+"/data/date-range?symbol=BTCUSDT", false)
			if r.code == http.StatusTooManyRequests && (r.retryAfter == "" || !strings.Contains(r.err, "too many requests from 127.0.0.1")) {
				t.Errorf("429 without Retry-After or reason: %+v", r)
			}
			floodMu.Lock()
			codes[r.code]++
			floodMu.Unlock()
		}()
	}
	fw.Wait()
	t.Logf("one address, 60 concurrent API requests: %d answered, %d refused 429", codes[200], codes[429])
	if codes[429] < 20 || codes[200]+codes[429] != 60 {
		t.Fatalf("flood from one address: %v; want at most the burst of 40 answered and the rest 429", codes)
	}
}

// faultsFull is true under make faults (LIQSTREAM_FAULTS_FULL=1): the long
// versions of the fault tests.
func faultsFull() bool { return os.Getenv("LIQSTREAM_FAULTS_FULL") == "1" }

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grepLines is the lines of s matching pattern, for a failure message.
func grepLines(s, pattern string) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
