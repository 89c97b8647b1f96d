package symscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/fakebinance"
)

// Options is one measurement: one snapshotter, one symbol count.
type Options struct {
	Snapshotter string // the binary, bin/snapshotter
	Symbols     int
	// Warm is how long to wait after every symbol has published a frame
	// on its full history before the window starts; Measure is the window.
	Warm, Measure time.Duration
	// UpdateEvery is how often the fake pushes each symbol's open candle
	// (Binance: 250 ms); LiquidationsPerMinute per symbol.
	UpdateEvery           time.Duration
	LiquidationsPerMinute float64
	// Lookback is binance.lookback, the history fetched at start.
	Lookback time.Duration
	Seed     uint64
	// BackfillTimeout bounds the wait for the backfill and the first
	// frames; FrameEvery is how often the frames are fetched in the window.
	BackfillTimeout, FrameEvery time.Duration
	ExtraArgs                   []string // more snapshotter flags
	KeepDir                     bool     // keep the temp dir (DB, log)
	Log                         io.Writer
}

// Result is what one measurement found.
type Result struct {
	Symbols     int
	Args        []string // the snapshotter's flags (temp paths and ports included)
	LoadBefore  string   // /proc/loadavg when the run started
	LoadAfter   string
	MarketBuild time.Duration // building the fake's history in-process
	Dir         string        // kept temp dir, if any

	// Backfill: from the snapshotter's start until every symbol had a
	// successful poll (its whole lookback fetched), and until every symbol
	// had published a frame computed after that.
	Backfill, FirstFrames time.Duration
	BackfillKlineReqs     int
	BackfillOIReqs        int
	BackfillWeight        int
	BackfillPeakWeight60s float64 // worst rolling minute
	BackfillPeakOI5m      float64 // openInterestHist requests in the worst rolling 5 minutes
	BackfillRSSMB         float64 // RSS when the backfill was done
	StoreRows             map[string]float64
	ExpectedKlines        int      // symbols × candles in the lookback, the open one included
	LookbackSkipped       []string // symbols whose history was never requested
	Log                   LogCounts

	// Window.
	Window        time.Duration
	Interval      time.Duration // snapshot.interval, from /metrics
	Intervals     float64       // Window / Interval
	CPUSec        float64       // utime+stime over the window
	CPUPerIv      float64       // CPU seconds per interval
	CPUPercent    float64       // % of one core
	ComputeSec    float64       // sum of snapshot_compute_duration_seconds over the window
	Computes      float64       // recomputations in the window
	ComputeP50    float64       // seconds, per recomputation, from the histogram
	ComputeP99    float64
	Published     Stats   // frames per symbol over the window
	ShortSymbols  int     // symbols with fewer frames than intervals in the window
	MissedFrames  float64 // frames those symbols lacked, together
	RSSMaxMB      float64
	RSSEndMB      float64
	HWMMB         float64 // VmHWM at the end: the peak since start, backfill included
	GoHeapMB      float64 // go_memstats_heap_inuse_bytes at the end
	GoSysMB       float64 // go_memstats_sys_bytes at the end
	FrameBytes    Stats   // full frames, over symbols and samples
	DeltaBytes    Stats   // delta frames, over symbols and samples
	Levels        Stats   // levels per frame
	FrameSamples  int
	RESTPerMin    map[string]float64 // requests per minute by path
	WeightPerMin  float64
	WSConnections int // accepted by the fake, ever
	WSOpen        int
	StreamsPerWS  int     // most streams one connection asked for
	WSMsgPerSec   float64 // messages the fake wrote per second
	StreamMsgs    map[string]float64
	StreamDropped map[string]float64 // over the window, by reason
	Liquidations  float64            // stored from the stream over the window
	IngestErrors  float64            // ingest_errors_total, all kinds, since start
	DialFailures  float64
	MachineBusy   float64 // % of all cores over the window
	SelfCPU       float64 // % of one core: this process, the fake exchange and the sampling
	DBMB          float64 // the DuckDB file(s) after the stop
}

// The fake's REST paths.
const (
	klinesPath = "/fapi/v1/klines"
	oiPath     = "/futures/data/openInterestHist"
)

// Run starts the fake exchange and the snapshotter, waits for the backfill
// and the first frames, warms, measures and stops both.
func Run(ctx context.Context, o Options) (*Result, error) {
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "symscale %d: "+format+"\n", append([]any{o.Symbols}, a...)...)
		}
	}
	r := &Result{Symbols: o.Symbols, LoadBefore: loadavg()}
	syms := Symbols(o.Symbols)
	dir, err := os.MkdirTemp("", "symscale-")
	if err != nil {
		return nil, err
	}
	if o.KeepDir {
		r.Dir = dir
	} else {
		defer os.RemoveAll(dir)
	}

	// The fake exchange, in this process, on the wall clock.
	now := time.Now()
	fake := fakebinance.New(fakebinance.Config{Symbols: syms, Interval: 5 * time.Minute,
		Start: now.Add(-o.Lookback - 2*time.Hour), Now: now, Seed: o.Seed,
		UpdateEvery: o.UpdateEvery, LiquidationsPerMinute: o.LiquidationsPerMinute})
	r.MarketBuild = time.Since(now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: fake}
	go srv.Serve(ln)
	defer srv.Close()
	fctx, stopFake := context.WithCancel(ctx)
	defer stopFake()
	go fake.Run(fctx)
	logf("fake binance on %s (market built in %s)", ln.Addr(), r.MarketBuild.Round(time.Millisecond))

	// The snapshotter.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://127.0.0.1:" + port
	price := func(s string) float64 { return fakebinance.BasePrice(s, o.Seed) }
	r.Args = append([]string{
		"--listen=127.0.0.1:" + port,
		"--db=" + filepath.Join(dir, "liqstream.duckdb"),
		"--symbols=" + strings.Join(syms, ","),
		"--demo.enabled=false", "--simulator.enabled=false",
		"--binance.enabled",
		"--binance.base_url=http://" + ln.Addr().String(),
		"--binance.stream_url=ws://" + ln.Addr().String(),
		"--binance.lookback=" + o.Lookback.String(),
		"--heatmap.bin_sizes=" + BinSizes(syms, price),
	}, o.ExtraArgs...)
	logPath := filepath.Join(dir, "snapshotter.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(o.Snapshotter, r.Args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Snapshotter, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	fail := func(err error) (*Result, error) {
		return nil, fmt.Errorf("%w (snapshotter log: %s)", err, tail(logPath, 2000))
	}
	logf("snapshotter pid %d on %s", pid, base)

	// Backfill: every symbol polled once (its lookback fetched), then a
	// frame from every symbol computed after that.
	// The counters as the snapshotter starts (zero: the fake is fresh), so
	// a backfill done before the first sample still counts in full.
	fs0 := fake.Stats()
	weights := []Point{{start, float64(fs0.Weight)}}
	oiReqs := []Point{{start, float64(fs0.Requests[oiPath])}}
	var backfilled time.Time
	var pubAtBackfill map[string]float64
	deadline := time.Now().Add(o.BackfillTimeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			return fail(fmt.Errorf("snapshotter exited during the backfill: %v", err))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("no frames for every symbol after %s", o.BackfillTimeout))
		}
		fs := fake.Stats()
		weights = append(weights, Point{time.Now(), float64(fs.Weight)})
		oiReqs = append(oiReqs, Point{time.Now(), float64(fs.Requests[oiPath])})
		m, err := scrape(base)
		if err != nil {
			continue // not listening yet
		}
		if backfilled.IsZero() {
			if len(m.By("ingest_lag_seconds", "symbol")) < len(syms) {
				continue
			}
			backfilled = time.Now()
			r.Backfill = backfilled.Sub(start)
			r.BackfillKlineReqs = fs.Requests[klinesPath]
			r.BackfillOIReqs = fs.Requests[oiPath]
			r.BackfillWeight = fs.Weight
			r.BackfillPeakWeight60s = PeakIn(weights, time.Minute)
			r.BackfillPeakOI5m = PeakIn(oiReqs, 5*time.Minute)
			r.StoreRows = m.By("store_rows", "table")
			r.ExpectedKlines = len(syms) * (int(o.Lookback/(5*time.Minute)) + 1)
			r.LookbackSkipped = LookbackSkipped(fs.KlineRequests, syms, backfilled.Add(-o.Lookback/2))
			if len(r.LookbackSkipped) > 0 {
				logf("%d symbols' klines history was never requested (first: %s)", len(r.LookbackSkipped), r.LookbackSkipped[0])
			}
			if s, err := procstat.Read(pid); err == nil {
				r.BackfillRSSMB = float64(s.RSSK) / 1024
			}
			pubAtBackfill = m.By("snapshot_published_total", "symbol")
			logf("backfill done in %s: %d klines + %d openInterestHist requests, weight %d; store %v",
				r.Backfill.Round(time.Millisecond), r.BackfillKlineReqs, r.BackfillOIReqs, r.BackfillWeight, r.StoreRows)
			continue
		}
		pub := m.By("snapshot_published_total", "symbol")
		all := true
		for _, s := range syms {
			all = all && pub[s] > pubAtBackfill[s]
		}
		if all {
			r.FirstFrames = time.Since(start)
			break
		}
	}
	logf("every symbol published on its full history after %s; warming %s", r.FirstFrames.Round(time.Millisecond), o.Warm)

	rssMax := 0.0
	sampleRSS := func() {
		if s, err := procstat.Read(pid); err == nil {
			rssMax = math.Max(rssMax, float64(s.RSSK)/1024)
		}
	}
	if err := sleep(ctx, exited, o.Warm); err != nil {
		return fail(err)
	}

	// The window spans whole intervals, from halfway between two ticks of
	// the compute loop to halfway between two later ones: while a tick's
	// work takes less than half an interval, every symbol's frame of a tick
	// falls on the same side of both ends, so frames per symbol count whole
	// intervals exactly instead of ±1 at the edges.
	m, err := scrape(base)
	if err != nil {
		return fail(err)
	}
	r.Interval = time.Duration(m.Sum("snapshot_interval_seconds", nil) * float64(time.Second))
	if r.Interval <= 0 {
		return fail(errors.New("no snapshot_interval_seconds in /metrics"))
	}
	first := m.By("snapshot_last_published_timestamp_seconds", "symbol")[syms[0]]
	if err := sleep(ctx, exited, time.Until(MidTick(first, r.Interval, time.Now()))); err != nil {
		return fail(err)
	}
	whole := max(1, o.Measure.Round(r.Interval)/r.Interval)

	// The window.
	m0, err := scrape(base)
	if err != nil {
		return fail(err)
	}
	f0 := fake.Stats()
	s0, err := procstat.Read(pid)
	if err != nil {
		return fail(err)
	}
	self0, _ := procstat.Read(os.Getpid())
	mach0 := procstat.ReadMachine()
	t0 := time.Now()
	logf("measuring for %s (%d intervals)", whole*r.Interval, whole)
	var frames, deltas, levels []float64
	sampleFrames := func() {
		for _, s := range syms {
			full, delta, n, err := fetchFrame(base, s)
			if err != nil {
				logf("frame %s: %v", s, err)
				continue
			}
			frames, levels = append(frames, float64(full)), append(levels, float64(n))
			if delta > 0 {
				deltas = append(deltas, float64(delta))
			}
		}
		r.FrameSamples++
	}
	sampleFrames()
	nextFrames := t0.Add(o.FrameEvery)
	end := t0.Add(whole * r.Interval)
	for time.Now().Before(end) {
		if err := sleep(ctx, exited, min(time.Second, time.Until(end))); err != nil {
			return fail(err)
		}
		sampleRSS()
		if !time.Now().Before(nextFrames) && time.Until(end) > 5*time.Second {
			sampleFrames()
			nextFrames = nextFrames.Add(o.FrameEvery)
		}
	}
	s1, err := procstat.Read(pid)
	if err != nil {
		return fail(err)
	}
	m1, err := scrape(base)
	if err != nil {
		return fail(err)
	}
	f1 := fake.Stats()
	t1 := time.Now()
	self1, _ := procstat.Read(os.Getpid())
	mach1 := procstat.ReadMachine()
	sampleFrames()
	sampleRSS()

	r.Window = t1.Sub(t0)
	r.Intervals = r.Window.Seconds() / r.Interval.Seconds()
	r.CPUSec = float64(s1.Ticks-s0.Ticks) / 100 // USER_HZ
	r.CPUPerIv = r.CPUSec / r.Intervals
	r.CPUPercent = procstat.CPUPercent(s0, s1)
	const hist = "snapshot_compute_duration_seconds"
	h := m1.Histogram(hist).Since(m0.Histogram(hist))
	r.ComputeSec = m1.Sum(hist+"_sum", nil) - m0.Sum(hist+"_sum", nil)
	r.Computes = h.Count()
	r.ComputeP50, r.ComputeP99 = h.Quantile(0.5), h.Quantile(0.99)
	p0, p1 := m0.By("snapshot_published_total", "symbol"), m1.By("snapshot_published_total", "symbol")
	var per []float64
	for _, s := range syms {
		d := p1[s] - p0[s]
		per = append(per, d)
		if d < float64(whole) {
			r.ShortSymbols++
			r.MissedFrames += float64(whole) - d
		}
	}
	r.Published = Describe(per)
	r.RSSMaxMB = rssMax
	r.RSSEndMB = float64(s1.RSSK) / 1024
	r.HWMMB = float64(s1.HWMK) / 1024
	r.GoHeapMB = m1.Sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	r.GoSysMB = m1.Sum("go_memstats_sys_bytes", nil) / (1 << 20)
	r.FrameBytes, r.DeltaBytes, r.Levels = Describe(frames), Describe(deltas), Describe(levels)
	mins := r.Window.Minutes()
	r.RESTPerMin = map[string]float64{}
	for path, n := range f1.Requests {
		r.RESTPerMin[path] = float64(n-f0.Requests[path]) / mins
	}
	r.WeightPerMin = float64(f1.Weight-f0.Weight) / mins
	r.WSConnections, r.WSOpen, r.StreamsPerWS = f1.Connections, f1.Open, f1.MaxConnStream
	r.WSMsgPerSec = float64(f1.Messages-f0.Messages) / r.Window.Seconds()
	r.StreamMsgs = diff(m1.By("binance_stream_messages_total", "kind"), m0.By("binance_stream_messages_total", "kind"))
	r.StreamDropped = diff(m1.By("binance_stream_dropped_total", "reason"), m0.By("binance_stream_dropped_total", "reason"))
	r.Liquidations = m1.Sum("binance_stream_liquidations_total", nil) - m0.Sum("binance_stream_liquidations_total", nil)
	r.IngestErrors = m1.Sum("ingest_errors_total", nil)
	r.DialFailures = m1.Sum("binance_stream_dials_total", map[string]string{"result": "failed"})
	r.MachineBusy = procstat.BusyPercent(mach0, mach1)
	r.SelfCPU = procstat.CPUPercent(self0, self1)
	r.LoadAfter = loadavg()

	stop()
	r.DBMB = dirMB(dir, "liqstream.duckdb")
	if f, err := os.Open(logPath); err == nil {
		r.Log = CountLog(f)
		f.Close()
	}
	logf("done: %.3f CPU s per interval (%.1f %% of a core), RSS max %.0f MB, frames %.0f B mean",
		r.CPUPerIv, r.CPUPercent, r.RSSMaxMB, r.FrameBytes.Mean)
	return r, nil
}

func diff(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// sleep waits d unless ctx ends or the snapshotter exits.
func sleep(ctx context.Context, exited chan error, d time.Duration) error {
	select {
	case err := <-exited:
		exited <- err
		return fmt.Errorf("snapshotter exited: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func scrape(base string) (Metrics, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// fetchFrame gets symbol's newest frame with its delta (?delta=1, as
// gateways ask) and returns the sizes of both (delta 0 when there is none)
// and the frame's level count.
func fetchFrame(base, symbol string) (full, delta, levels int, err error) {
	resp, err := client.Get(base + "/v1/snapshots/" + symbol + "?delta=1")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("%s: %.200s", resp.Status, body)
	}
	return FrameSizes(resp.Header.Get("Content-Type"), body)
}

// FrameSizes reads a /v1/snapshots answer: one frame, or with ?delta=1 and
// a delta to offer, the delta and the frame one per line (bus.NDJSON).
func FrameSizes(contentType string, body []byte) (full, delta, levels int, err error) {
	frame := body
	if strings.HasPrefix(contentType, bus.NDJSON) {
		d, f, ok := bus.SplitPair(body)
		if !ok {
			return 0, 0, 0, errors.New("malformed delta pair")
		}
		frame, delta = f, len(d)
	}
	var v struct {
		Type string `json:"type"`
		Data struct {
			Levels []json.RawMessage `json:"levels"`
		} `json:"data"`
	}
	if err := json.Unmarshal(frame, &v); err != nil {
		return 0, 0, 0, fmt.Errorf("frame: %w", err)
	}
	if v.Type != "snapshot" {
		return 0, 0, 0, fmt.Errorf("frame type %q, want snapshot", v.Type)
	}
	return len(frame), delta, len(v.Data.Levels), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// cleanEnv is this environment without LIQSTREAM_* keys, so only the flags
// configure the snapshotter.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIQSTREAM_") {
			out = append(out, kv)
		}
	}
	return out
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// dirMB is the size of the files in dir whose names start with prefix (the
// DuckDB file and its WAL).
func dirMB(dir, prefix string) float64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return float64(n) / (1 << 20)
}

// tail is the end of a file, for error messages.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
