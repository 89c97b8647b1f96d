package scenario

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/liqstream/liqstream/loadtest/feeder"
	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/loadtest/wsload"
	"github.com/liqstream/liqstream/pkg/bus"
)

// Options say where the parts are.
type Options struct {
	GatewayBin, FloorBin string
	RedisBin, NginxBin   string   // empty: found on PATH (nginx also in /usr/sbin)
	NginxTemplate        string   // the shipped edge, deploy/nginx/nginx.conf.tmpl
	FrameBytes           int      // size of each snapshot frame
	ProfileDir           string   // CPU profiles land here; empty: a temp dir
	GatewayArgs          []string // extra flags for every gateway, e.g. to compare a setting
	// RegenerateFrames makes the feeder draw every level afresh each round
	// (no deltas), as it did before deltas; by default its frames evolve
	// as the snapshotter's and carry deltas (package feeder).
	RegenerateFrames bool
	KeepLogs         bool
	Log              io.Writer // progress lines
}

// Report is everything one invocation measured.
type Report struct {
	Load      Load             `json:"load"`
	Command   string           `json:"command"`
	Started   string           `json:"started"`
	Machine   procstat.Machine `json:"machine"`
	Frames    string           `json:"frames"`
	Scenarios []*Result        `json:"scenarios"`
}

// Result is one scenario's runs.
type Result struct {
	Scenario Scenario             `json:"scenario"`
	Runs     []*Run               `json:"runs"`
	Producer feeder.Punctuality   `json:"producer"`
	Checks   []Check              `json:"checks"`
	Ratios   map[string]RatioPair `json:"ratios_to_floor,omitempty"`
	// ToFull is each run's numbers over the full-frame runs' (delta scenario).
	ToFull map[string]RatioFull `json:"ratios_to_full,omitempty"`
}

// Run is one target under one scenario's load.
type Run struct {
	Target  string         `json:"target"`
	Connect wsload.Connect `json:"connect"`
	Window  wsload.Window  `json:"window"`
	// Over the whole run, not only the window: slow readers are often
	// closed before it starts.
	LifetimeFast wsload.Class `json:"lifetime_fast"`
	LifetimeSlow wsload.Class `json:"lifetime_slow"`
	SlowFlagged  int          `json:"slow_clients_flagged"`
	// Producer is the feeder's punctuality during the window: it shares
	// the load generator's process, so a saturated generator delays it.
	Producer feeder.Punctuality `json:"producer_in_window"`
	// GatewayLatency is the gateways' own ws_delivery_latency_seconds over
	// the window (producer timestamp → write to a client completed), from
	// power-of-two buckets interpolated: the gateway's side of delivery,
	// free of the time the clients take to read (and inflate) what the
	// kernel already holds for them. Gateway targets only.
	GatewayLatency *BucketLatency `json:"gateway_delivery_latency_ms,omitempty"`
	// ServerDisconnects is each reason's count in the gateways'
	// ws_disconnects_total at the end of the window (gateway targets).
	ServerDisconnects map[string]float64 `json:"server_disconnects,omitempty"`
	// Server is the sum over the target's processes; Processes each one.
	Server         ProcStats   `json:"server"`
	Processes      []ProcStats `json:"processes"`
	ClientCPUPct   float64     `json:"client_cpu_pct_of_core"`
	MachineBusyPct float64     `json:"machine_busy_pct"`
	HeapLivePerK   float64     `json:"heap_live_per_conn_kb,omitempty"`
	StackPerK      float64     `json:"stack_per_conn_kb,omitempty"`
	Samples        []Sample    `json:"samples,omitempty"`
	RSSSlopeKBMin  float64     `json:"rss_slope_kb_per_min,omitempty"`
	GorSlopeMin    float64     `json:"goroutine_slope_per_min,omitempty"`
	FDSlopeMin     float64     `json:"fd_slope_per_min,omitempty"`
	Profile        string      `json:"cpu_profile,omitempty"`
	ProfileTop     string      `json:"cpu_profile_top,omitempty"`
}

// BucketLatency is a latency histogram's quantiles, in milliseconds.
type BucketLatency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

// deliveryHistogram sums the gateways' ws_delivery_latency_seconds.
func deliveryHistogram(srv *server) Buckets {
	h := Buckets{}
	for _, g := range srv.httpAddrs {
		h.add(histogram("http://"+g+"/metrics", "ws_delivery_latency_seconds"))
	}
	return h
}

// ProcStats is one server process (or the sum of several) over a run.
type ProcStats struct {
	Name        string  `json:"name"`
	PID         int     `json:"pid,omitempty"`
	Clients     int     `json:"clients,omitempty"`
	RSSBeforeK  int64   `json:"rss_before_kb"`
	RSSEndK     int64   `json:"rss_end_kb"`
	RSSPeakK    int64   `json:"rss_peak_kb"`
	RSSPerConnK float64 `json:"rss_per_conn_kb"`
	CPUPct      float64 `json:"cpu_pct_of_core"`
	FDs         int     `json:"fds"`
	Goroutines  int     `json:"goroutines,omitempty"`
	// WriteBytesPerS is what the process handed to write calls per second
	// over the window (/proc/PID/io wchar: its sockets, logs included).
	WriteBytesPerS float64 `json:"write_bytes_per_s"`
}

// Sample is one soak reading of the target.
type Sample struct {
	Minute     float64 `json:"minute"`
	RSSK       int64   `json:"rss_kb"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	Open       int     `json:"clients_open"`
}

// Runner runs scenarios on one private Redis.
type Runner struct {
	o        Options
	dir      string
	redis    *proc
	redisURL string
}

// NewRunner checks the parts and starts redis-server.
func NewRunner(ctx context.Context, o Options) (*Runner, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.FrameBytes == 0 {
		o.FrameBytes = 18000
	}
	for _, b := range []string{o.GatewayBin, o.FloorBin, o.NginxTemplate} {
		if !fileExists(b) {
			return nil, fmt.Errorf("%s does not exist (make loadtest builds bin/gateway and bin/floor)", b)
		}
	}
	var err error
	if o.RedisBin == "" {
		if o.RedisBin, err = lookBin("redis-server"); err != nil {
			return nil, err
		}
	}
	if o.NginxBin == "" {
		if o.NginxBin, err = lookBin("nginx"); err != nil {
			return nil, err
		}
	}
	r := &Runner{o: o}
	if r.dir, err = os.MkdirTemp("", "loadtest-"); err != nil {
		return nil, err
	}
	if o.ProfileDir == "" {
		r.o.ProfileDir = r.dir
	}
	if r.redis, r.redisURL, err = startRedis(ctx, o.RedisBin, r.dir); err != nil {
		os.RemoveAll(r.dir)
		return nil, err
	}
	return r, nil
}

// Close stops Redis and removes the logs unless asked to keep them.
func (r *Runner) Close() {
	r.redis.stop(5 * time.Second)
	if r.o.KeepLogs {
		fmt.Fprintln(r.o.Log, "logs kept in", r.dir)
		return
	}
	os.RemoveAll(r.dir)
}

func (r *Runner) logf(format string, a ...any) { fmt.Fprintf(r.o.Log, format+"\n", a...) }

// Run runs each scenario, then checks the results against their goals.
func (r *Runner) Run(ctx context.Context, l Load, scenarios []Scenario) (*Report, error) {
	rep := &Report{Load: l, Started: time.Now().UTC().Format(time.RFC3339), Machine: procstat.Describe()}
	r.logf("machine: %s", rep.Machine)
	for _, s := range scenarios {
		res, sizes, err := r.scenario(ctx, s)
		if err != nil {
			return rep, fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		rep.Frames = sizes
		rep.Scenarios = append(rep.Scenarios, res)
	}
	evaluate(rep)
	return rep, nil
}

func (r *Runner) scenario(ctx context.Context, s Scenario) (*Result, string, error) {
	rc, err := bus.NewRedisClient(r.redisURL)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	f, err := feeder.NewWithOptions([]string{"BTCUSDT", "ETHUSDT"}, s.Interval, r.o.FrameBytes, rc, feeder.Options{Regenerate: r.o.RegenerateFrames})
	if err != nil {
		return nil, "", err
	}
	fctx, stopFeeder := context.WithCancel(ctx)
	defer stopFeeder()
	if err := f.Start(fctx); err != nil {
		return nil, "", err
	}
	feedAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	feedSrv := &http.Server{Addr: feedAddr, Handler: f, ReadHeaderTimeout: 5 * time.Second}
	go feedSrv.ListenAndServe()
	defer feedSrv.Close()
	r.logf("\n=== %s: %s\n%s\nfeeder: %s every %s", s.Name, s.Title, s.Describe(), f.Sizes(), s.Interval)

	res := &Result{Scenario: s}
	for _, t := range s.Targets {
		run, err := r.target(ctx, s, t, "http://"+feedAddr, f)
		if err != nil {
			return res, f.Sizes(), fmt.Errorf("%s: %w", t, err)
		}
		res.Runs = append(res.Runs, run)
		// Give the next target a machine without this one's debris.
		runtime.GC()
		debug.FreeOSMemory()
	}
	res.Producer = f.Punctuality()
	return res, f.Sizes(), nil
}

// server is a started target.
type server struct {
	url       string
	gateways  []*gatewayProc
	floor     *proc
	nginx     *proc
	debugAddr []string // pprof of each Go process, in the order of gateways (or the floor)
	httpAddrs []string // each gateway's listen address (/metrics)
}

type gatewayProc struct {
	*proc
	id string
}

// procs lists the processes to sample, with names.
func (s *server) procs() []ProcStats {
	var out []ProcStats
	if s.floor != nil {
		out = append(out, ProcStats{Name: "floor", PID: s.floor.pid()})
	}
	for _, g := range s.gateways {
		out = append(out, ProcStats{Name: g.id, PID: g.pid()})
	}
	if s.nginx != nil {
		out = append(out, ProcStats{Name: "nginx", PID: s.nginx.pid()})
	}
	return out
}

func (s *server) stop() {
	// The edge first, as a rolling stop would; then the Go processes.
	if s.nginx != nil {
		s.nginx.stop(5 * time.Second)
	}
	for _, g := range s.gateways {
		g.stop(15 * time.Second)
	}
	if s.floor != nil {
		s.floor.stop(5 * time.Second)
	}
}

// startTarget starts one target kind and waits until it is ready.
func (r *Runner) startTarget(ctx context.Context, s Scenario, kind, feedURL string) (*server, error) {
	srv := &server{}
	dbg := func() (string, error) { a, err := freeAddr(); srv.debugAddr = append(srv.debugAddr, a); return a, err }
	gateway := func(id, redisURL string, extra ...string) (*gatewayProc, string, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		d, err := dbg()
		if err != nil {
			return nil, "", err
		}
		args := append([]string{"--listen=" + addr, "--instance_id=" + id, "--snapshotter_url=" + feedURL,
			"--redis_url=" + redisURL, "--log_level=warn", "--debug_listen=" + d, "--drain_timeout=1s",
			"--ws.max_connections_per_ip=100000", "--ws.max_connections=" + strconv.Itoa(max(20000, 2*s.N))}, extra...)
		args = append(args, r.o.GatewayArgs...)
		p, err := start(id, r.o.GatewayBin, filepath.Join(r.dir, s.Name+"-"+kind+"-"+id+".log"), nil, args...)
		if err != nil {
			return nil, "", err
		}
		g := &gatewayProc{proc: p, id: id}
		srv.gateways = append(srv.gateways, g)
		srv.httpAddrs = append(srv.httpAddrs, addr)
		return g, addr, waitHTTP(ctx, "http://"+addr+"/readyz", p)
	}
	var err error
	switch kind {
	case Floor:
		addr, err := freeAddr()
		if err != nil {
			return srv, err
		}
		d, err := dbg()
		if err != nil {
			return srv, err
		}
		srv.floor, err = start("floor", r.o.FloorBin, filepath.Join(r.dir, s.Name+"-floor.log"), nil,
			"-listen", addr, "-redis_url", r.redisURL, "-debug_listen", d)
		if err != nil {
			return srv, err
		}
		srv.url = "ws://" + addr + "/ws/heatmap"
		return srv, waitHTTP(ctx, "http://"+addr+"/readyz", srv.floor)
	case Gateway, GatewayHTTP:
		redisURL := r.redisURL
		if kind == GatewayHTTP {
			redisURL = "" // the embedded default: long-poll the snapshotter (here the feeder)
		}
		_, addr, err := gateway("gateway-1", redisURL)
		srv.url = "ws://" + addr + "/ws/heatmap"
		return srv, err
	case Fleet, FleetDirect:
		var addrs []string
		for i := 1; i <= FleetSize; i++ {
			_, addr, err := gateway(fmt.Sprintf("gateway-%d", i), r.redisURL, "--ws.trusted_proxies=127.0.0.0/8")
			if err != nil {
				return srv, err
			}
			addrs = append(addrs, addr)
		}
		if kind == FleetDirect {
			for _, a := range addrs {
				srv.url += " ws://" + a + "/ws/heatmap"
			}
			srv.url = strings.TrimSpace(srv.url)
			return srv, nil
		}
		var addr string
		if srv.nginx, addr, err = startNginx(ctx, r.o.NginxBin, r.o.NginxTemplate, filepath.Join(r.dir, s.Name), addrs); err != nil {
			return srv, err
		}
		srv.url = "ws://" + addr + "/ws/heatmap"
		return srv, nil
	}
	return srv, fmt.Errorf("unknown target %q", kind)
}

// sampleAll reads every process of the target (nginx with its workers).
func sampleAll(ps []ProcStats) ([]procstat.Sample, error) {
	out := make([]procstat.Sample, len(ps))
	for i, p := range ps {
		pids := []int{p.PID}
		if p.Name == "nginx" {
			pids = append(pids, procstat.Children(p.PID)...)
		}
		s, err := procstat.Group(pids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out[i] = s
	}
	return out, nil
}

// target measures one target: start, baseline, connect, settle, window, stop.
func (r *Runner) target(ctx context.Context, s Scenario, target, feedURL string, f *feeder.Feeder) (*Run, error) {
	kind, deflate := kind(target)
	srv, err := r.startTarget(ctx, s, kind, feedURL)
	defer srv.stop()
	if err != nil {
		return nil, err
	}
	run := &Run{Target: target}
	run.Processes = srv.procs()
	r.logf("\n-- %s (%s) at %s", target, pidList(run.Processes), srv.url)
	// Let the idle processes take a few frames and a GC before the baseline.
	if err := sleep(ctx, min(3*time.Second, s.Settle)); err != nil {
		return nil, err
	}
	before, err := sampleAll(run.Processes)
	if err != nil {
		return nil, err
	}
	var memBefore []map[string]int64
	for _, d := range srv.debugAddr {
		memBefore = append(memBefore, memStats("http://"+d))
	}
	origin := ""
	if kind == Fleet {
		origin = "http://" + strings.TrimPrefix(strings.TrimSuffix(srv.url, "/ws/heatmap"), "ws://")
	}
	pool, err := wsload.Dial(ctx, s.load(strings.Fields(srv.url), origin, deflate, encodingOf(target)))
	if pool != nil {
		defer pool.Close()
	}
	if err != nil {
		return nil, err
	}
	run.Connect = pool.ConnectResult()
	r.logf("connected %d of %d in %.1fs (handshake p50 %.1f ms, p99 %.1f ms)%s", run.Connect.Connected, run.Connect.Attempted,
		run.Connect.Seconds, run.Connect.TimeMs.P50, run.Connect.TimeMs.P99, firstErr(run.Connect.FirstError))
	if run.Connect.Connected == 0 {
		return nil, fmt.Errorf("no client connected: %s", run.Connect.FirstError)
	}
	if err := sleep(ctx, s.Settle); err != nil {
		return nil, err
	}

	// The window.
	p0, m0, self0 := mustSample(run.Processes), procstat.ReadMachine(), selfSample()
	h0 := deliveryHistogram(srv)
	pool.Begin()
	t0 := time.Now()
	if s.SampleEvery > 0 {
		for next := s.SampleEvery; ; next += s.SampleEvery {
			run.Samples = append(run.Samples, soakSample(srv, run.Processes, pool, time.Since(t0)))
			if next > s.Window {
				break
			}
			if err := sleep(ctx, time.Until(t0.Add(next))); err != nil {
				return nil, err
			}
		}
		if err := sleep(ctx, time.Until(t0.Add(s.Window))); err != nil {
			return nil, err
		}
		run.Samples = append(run.Samples, soakSample(srv, run.Processes, pool, time.Since(t0)))
		run.RSSSlopeKBMin, run.GorSlopeMin, run.FDSlopeMin = slopes(run.Samples)
	} else if err := sleep(ctx, s.Window); err != nil {
		return nil, err
	}
	run.Window = pool.End()
	run.Producer = f.PunctualitySince(t0)
	p1, m1, self1 := mustSample(run.Processes), procstat.ReadMachine(), selfSample()
	if len(srv.httpAddrs) > 0 {
		h := deliveryHistogram(srv).Since(h0)
		run.GatewayLatency = &BucketLatency{Count: int64(h[math.Inf(1)]),
			P50: math.Round(10000*h.Quantile(0.5)) / 10, P99: math.Round(10000*h.Quantile(0.99)) / 10}
	}
	run.LifetimeFast, run.LifetimeSlow = pool.Lifetime()
	for _, g := range srv.httpAddrs {
		for reason, n := range disconnects("http://" + g + "/metrics") {
			if run.ServerDisconnects == nil {
				run.ServerDisconnects = map[string]float64{}
			}
			run.ServerDisconnects[reason] += n
		}
	}
	run.SlowFlagged = pool.Flagged(true)
	run.MachineBusyPct = procstat.BusyPercent(m0, m1)
	run.ClientCPUPct = procstat.CPUPercent(self0, self1)
	for i := range run.Processes {
		p := &run.Processes[i]
		p.RSSBeforeK, p.RSSEndK, p.RSSPeakK, p.FDs = before[i].RSSK, p1[i].RSSK, p1[i].HWMK, p1[i].FDs
		p.CPUPct = procstat.CPUPercent(p0[i], p1[i])
		p.WriteBytesPerS = procstat.WritePerSecond(p0[i], p1[i])
		p.Clients = run.Connect.ByGateway[p.Name]
		if len(run.Processes) == 1 || p.Name == "nginx" {
			p.Clients = run.Connect.Connected
		}
		if p.Clients > 0 {
			p.RSSPerConnK = float64(p.RSSEndK-p.RSSBeforeK) / float64(p.Clients)
		}
		sum := &run.Server
		sum.RSSBeforeK, sum.RSSEndK, sum.RSSPeakK = sum.RSSBeforeK+p.RSSBeforeK, sum.RSSEndK+p.RSSEndK, sum.RSSPeakK+p.RSSPeakK
		sum.CPUPct, sum.FDs, sum.WriteBytesPerS = sum.CPUPct+p.CPUPct, sum.FDs+p.FDs, sum.WriteBytesPerS+p.WriteBytesPerS
	}
	run.Server.Name, run.Server.Clients = target, run.Connect.Connected
	run.Server.RSSPerConnK = float64(run.Server.RSSEndK-run.Server.RSSBeforeK) / float64(run.Connect.Connected)
	var live, stack int64
	for i, d := range srv.debugAddr {
		end := memStats("http://" + d)
		g := goroutines("http://" + d)
		run.Server.Goroutines += g
		if i < len(run.Processes) && run.Processes[i].Name != "nginx" {
			run.Processes[i].Goroutines = g
		}
		if memBefore[i] != nil && end != nil {
			live += end["HeapAlloc"] - memBefore[i]["HeapAlloc"]
			stack += end["StackInuse"] - memBefore[i]["StackInuse"]
		}
	}
	run.HeapLivePerK = float64(live) / 1024 / float64(run.Connect.Connected)
	run.StackPerK = float64(stack) / 1024 / float64(run.Connect.Connected)
	w := run.Window
	r.logf("window %.0fs: server cpu %.1f%% of a core, rss %.1f MB (%.2f KB/conn), client cpu %.1f%%, machine %.0f%% busy",
		w.Seconds, run.Server.CPUPct, float64(run.Server.RSSEndK)/1024, run.Server.RSSPerConnK, run.ClientCPUPct, run.MachineBusyPct)
	r.logf("fast clients %d (open %d): frames %d of %d (%d deltas, %d chain breaks), p50 %.1f p99 %.1f max %.1f ms, gaps %d, %.1f KB/s each on the wire (%.1f KB/s of messages; the server wrote %.1f KB/s per client)",
		w.Fast.Clients, w.Fast.Open, w.Fast.Frames, w.Fast.FramesExpected, w.Fast.Deltas, w.Fast.ChainBreaks, w.Fast.Latency.P50, w.Fast.Latency.P99, w.Fast.Latency.Max,
		w.Fast.Gaps, w.Fast.BytesPerClientPerS/1024, w.Fast.PayloadBytesPerClientPerS/1024, run.Server.WriteBytesPerS/1024/float64(max(1, run.Connect.Connected)))
	if p := run.Producer; p.LateTicks > 0 || p.SkippedTicks > 0 {
		r.logf("feeder in the window: %d rounds, %d late, %d skipped, latest %.0f ms", p.Ticks, p.LateTicks, p.SkippedTicks, p.MaxLateMs)
	}
	if gl := run.GatewayLatency; gl != nil {
		r.logf("gateway's own delivery latency (write done; bucketed): %d writes, p50 %.1f p99 %.1f ms", gl.Count, gl.P50, gl.P99)
	}
	if w.Slow.Clients > 0 {
		r.logf("slow clients %d (open %d, %d told they are slow): closes %v, warnings %v", w.Slow.Clients, w.Slow.Open, run.SlowFlagged,
			run.LifetimeSlow.Closes, run.LifetimeSlow.Warnings)
	}
	if s.Profile && len(srv.gateways) > 0 {
		if err := r.profile(ctx, s, run, srv); err != nil {
			r.logf("cpu profile: %v", err)
		}
	}
	return run, nil
}

// profile takes a 20 s CPU profile of the first gateway while the clients
// are still connected and reading.
func (r *Runner) profile(ctx context.Context, s Scenario, run *Run, srv *server) error {
	if err := os.MkdirAll(r.o.ProfileDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(r.o.ProfileDir, s.Name+"-"+run.Target+".cpu.pb.gz")
	r.logf("cpu profile of %s for 20 s -> %s", srv.gateways[0].id, path)
	if err := save("http://"+srv.debugAddr[0]+"/debug/pprof/profile?seconds=20", path); err != nil {
		return err
	}
	run.Profile = path
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", r.o.GatewayBin, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w\n%s", err, out)
	}
	run.ProfileTop = string(out)
	return nil
}

func soakSample(srv *server, ps []ProcStats, pool *wsload.Pool, at time.Duration) Sample {
	smp := Sample{Minute: at.Minutes()}
	if ss, err := sampleAll(ps); err == nil {
		for _, s := range ss {
			smp.RSSK += s.RSSK
			smp.FDs += s.FDs
		}
	}
	for _, d := range srv.debugAddr {
		smp.Goroutines += goroutines("http://" + d)
	}
	smp.Open = pool.Open()
	return smp
}

// slopes fits the soak samples after the first one (taken as the window
// opens, while the heap still settles) per minute.
func slopes(ss []Sample) (rss, gor, fds float64) {
	if len(ss) > 2 {
		ss = ss[1:]
	}
	var x, yr, yg, yf []float64
	for _, s := range ss {
		x = append(x, s.Minute)
		yr, yg, yf = append(yr, float64(s.RSSK)), append(yg, float64(s.Goroutines)), append(yf, float64(s.FDs))
	}
	return procstat.Slope(x, yr), procstat.Slope(x, yg), procstat.Slope(x, yf)
}

func mustSample(ps []ProcStats) []procstat.Sample {
	ss, err := sampleAll(ps)
	if err != nil {
		// A target that died mid-run still gets a row; its numbers show zeros
		// and the checks fail on the clients' side.
		return make([]procstat.Sample, len(ps))
	}
	return ss
}

func selfSample() procstat.Sample {
	s, _ := procstat.Read(os.Getpid())
	return s
}

func pidList(ps []ProcStats) string {
	var b []string
	for _, p := range ps {
		b = append(b, fmt.Sprintf("%s pid %d", p.Name, p.PID))
	}
	return strings.Join(b, ", ")
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return "; first error: " + s
}
