// Command connmem measures what one WebSocket connection costs the gateway —
// resident memory and CPU — next to the floor (loadtest/cmd/floor, a bare gws
// broadcaster) measured in the same run under the same load.
//
// It starts a private redis-server on a free loopback port, publishes an
// 18 KB spec-shaped snapshot of BTCUSDT and ETHUSDT every second (SET
// :latest + PUBLISH, as the snapshotter's RedisPublisher does), and for each
// target in turn (floor, gateway, floor by default) starts the binary, reads
// its RSS, opens N loopback connections from source addresses spread over
// 127.0.X.Y at -ramp per second, subscribes every client to BTCUSDT and every
// second one to ETHUSDT too (update_interval 1 unless -update-interval), waits -settle, then measures
// over -window: the target's CPU (% of one core), RSS growth per connection,
// frames read, producer-timestamp-to-read latency and seq gaps. Then it closes
// the clients, stops the target and moves on. It prints a table and writes
// JSON (-out). Both targets serve net/http/pprof (the gateway through its
// debug_listen key), from which connmem reads the Go heap and stack in use
// and the goroutine count; with -profile DIR it also saves each target's heap
// profile before connecting and at the end of the window, so
//
//	go tool pprof -top -sample_index=inuse_space -diff_base DIR/gateway-before.heap.pb.gz bin/gateway DIR/gateway-after.heap.pb.gz
//
// lists what the connections hold. -hold keeps the gateway loaded after its
// window for a live look (-gateway-debug 127.0.0.1:6060 fixes its address).
//
//	make connmem                    # bin/gateway, bin/floor, N=10000, 30 s window
//	go run ./cmd/connmem -n 10000 -window 30s -gateway ../bin/gateway -floor ../bin/floor -out connmem.json
//
// Everything is loopback, bounded by -timeout, and stops by itself.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"
	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/pkg/bus"
	"github.com/liqstream/liqstream/pkg/protocol"
)

var symbols = []string{"BTCUSDT", "ETHUSDT"}

type options struct {
	n              int
	ramp           int
	settle         time.Duration
	window         time.Duration
	targets        []string
	gatewayBin     string
	floorBin       string
	redisBin       string
	frameBytes     int
	interval       time.Duration
	updateInterval int
	compression    bool
	out            string
	profileDir     string
	gatewayDbg     string
	hold           time.Duration
	timeout        time.Duration
	keep           bool
	memProfRate    int
}

func main() {
	var o options
	var targets string
	flag.IntVar(&o.n, "n", 10000, "connections per target")
	flag.IntVar(&o.ramp, "ramp", 1000, "connections opened per second")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "wait after the last connection before measuring")
	flag.DurationVar(&o.window, "window", 30*time.Second, "measurement window")
	flag.StringVar(&targets, "targets", "floor,gateway,floor", "targets in order (floor, gateway); a floor on both sides brackets the gateway")
	flag.StringVar(&o.gatewayBin, "gateway", "bin/gateway", "gateway binary (built from services/gateway when missing)")
	flag.StringVar(&o.floorBin, "floor", "bin/floor", "floor binary (built from loadtest/cmd/floor when missing)")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "redis-server binary")
	flag.IntVar(&o.frameBytes, "frame-bytes", 18000, "approximate size of each snapshot frame")
	flag.DurationVar(&o.interval, "interval", time.Second, "producer cadence per symbol")
	flag.IntVar(&o.updateInterval, "update-interval", 1, "clients' update_interval in seconds (the page's default is 5, with -interval 5s)")
	flag.BoolVar(&o.compression, "compression", false, "clients offer permessage-deflate (browsers do; off for the main numbers)")
	flag.StringVar(&o.out, "out", "connmem.json", "JSON results file (empty = none)")
	flag.StringVar(&o.profileDir, "profile", "", "save heap profiles and goroutine dumps of each target to this directory")
	flag.StringVar(&o.gatewayDbg, "gateway-debug", "", "gateway debug_listen address (default: a free loopback port)")
	flag.DurationVar(&o.hold, "hold", 0, "keep the gateway loaded this long after its window, e.g. to run go tool pprof against it")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "stop everything after this long")
	flag.IntVar(&o.memProfRate, "memprofilerate", 0, "run the targets with GODEBUG=memprofilerate=N for a finer heap profile (0 = Go's 512 KiB; costs CPU: for a profiling run, not for the CPU numbers)")
	flag.BoolVar(&o.keep, "keep-logs", false, "keep the temp dir with the targets' and redis' logs")
	flag.Parse()
	o.targets = strings.Split(targets, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "connmem:", err)
		os.Exit(1)
	}
}

// Result is the JSON written to -out.
type Result struct {
	Started string     `json:"started"`
	Machine Machine    `json:"machine"`
	Config  ConfigOut  `json:"config"`
	Runs    []*Run     `json:"runs"`
	Ratios  *RatiosOut `json:"ratios_gateway_over_floor,omitempty"`
	// Producer punctuality over the whole run: ticks stamped more than a
	// tenth of the interval late, and the latest one.
	ProducerTicks     int64   `json:"producer_ticks"`
	ProducerLateTicks int64   `json:"producer_late_ticks"`
	ProducerMaxLateMs float64 `json:"producer_max_late_ms"`
}

// Machine is where the numbers come from.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	MemTotalK int64  `json:"mem_total_kb"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	NoFile    uint64 `json:"rlimit_nofile"`
}

// ConfigOut is the load.
type ConfigOut struct {
	N           int     `json:"n"`
	Ramp        int     `json:"ramp_per_s"`
	SettleS     float64 `json:"settle_s"`
	WindowS     float64 `json:"window_s"`
	FrameBytes  int     `json:"frame_bytes"`
	IntervalS   float64 `json:"interval_s"`
	Compression bool    `json:"client_compression"`
	Symbols     string  `json:"subscriptions"`
	Frames      string  `json:"frames"`
	MemProfRate int     `json:"memprofilerate,omitempty"`
	GatewayBin  string  `json:"gateway_bin"`
	FloorBin    string  `json:"floor_bin"`
}

// Run is one target's measurement.
type Run struct {
	Target      string  `json:"target"`
	PID         int     `json:"pid"`
	Connected   int     `json:"connected"`
	DialErrors  int     `json:"dial_errors"`
	FirstError  string  `json:"first_dial_error,omitempty"`
	ConnectS    float64 `json:"connect_s"`
	RSSBeforeK  int64   `json:"rss_before_kb"`
	RSSSettledK int64   `json:"rss_settled_kb"`
	RSSEndK     int64   `json:"rss_end_kb"`
	HWMK        int64   `json:"rss_peak_kb"`
	RSSPerConnK float64 `json:"rss_per_conn_kb"`
	CPUPct      float64 `json:"cpu_pct_of_core"`
	ClientCPU   float64 `json:"client_cpu_pct_of_core"`
	MachineBusy float64 `json:"machine_busy_pct"`
	Frames      int64   `json:"frames"`
	Expected    int64   `json:"frames_expected"`
	P50ms       float64 `json:"latency_p50_ms"`
	P99ms       float64 `json:"latency_p99_ms"`
	Maxms       float64 `json:"latency_max_ms"`
	Gaps        int64   `json:"seq_gaps"`
	OutOfOrder  int64   `json:"seq_out_of_order"`
	Other       int64   `json:"non_snapshot_frames"`
	OtherSample string  `json:"non_snapshot_sample,omitempty"`
	Silent      int     `json:"clients_without_frames"`
	ClosedEarly int64   `json:"clients_closed_early"`
	Goroutines  int     `json:"goroutines,omitempty"`
	// Go runtime memory (runtime.MemStats, from /debug/pprof/heap?debug=1)
	// before connecting and at the end of the window, and its growth per
	// connection: what RSS/conn is made of.
	MemBefore      map[string]int64 `json:"memstats_before,omitempty"`
	MemEnd         map[string]int64 `json:"memstats_end,omitempty"`
	HeapLivePerK   float64          `json:"heap_live_per_conn_kb"`
	HeapInusePerK  float64          `json:"heap_inuse_per_conn_kb"`
	StackInusePerK float64          `json:"stack_inuse_per_conn_kb"`
	HeapIdleEndK   int64            `json:"heap_idle_not_released_end_kb"`
	HeapBefore     string           `json:"heap_profile_before,omitempty"`
	HeapAfter      string           `json:"heap_profile_after,omitempty"`
	DebugAddr      string           `json:"debug_addr,omitempty"`
}

// RatiosOut compares the gateway with the mean of the floor runs.
type RatiosOut struct {
	RSSPerConn  float64 `json:"rss_per_conn"`
	HeapPerConn float64 `json:"heap_live_per_conn"`
	CPU         float64 `json:"cpu"`
	P50         float64 `json:"latency_p50"`
	P99         float64 `json:"latency_p99"`
}

func run(o options) error {
	if o.n < 1 || o.n > 60000 || o.ramp < 1 {
		return errors.New("-n must be 1..60000 and -ramp at least 1")
	}
	for _, t := range o.targets {
		if t != "floor" && t != "gateway" {
			return fmt.Errorf("-targets: unknown target %q (floor, gateway)", t)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	nofile, err := raiseNoFile()
	if err != nil {
		return err
	}
	// Client sockets live here, server sockets in the target.
	if need := uint64(o.n + 200); nofile < need {
		return fmt.Errorf("RLIMIT_NOFILE is %d, %d connections need about %d: raise the hard limit or lower -n", nofile, o.n, need)
	}
	dir, err := os.MkdirTemp("", "connmem-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	for _, b := range []*string{&o.gatewayBin, &o.floorBin} {
		if *b, err = ensureBinary(ctx, *b, dir); err != nil {
			return err
		}
	}

	res := &Result{Started: time.Now().UTC().Format(time.RFC3339), Machine: machine(nofile), Config: ConfigOut{
		N: o.n, Ramp: o.ramp, SettleS: o.settle.Seconds(), WindowS: o.window.Seconds(), FrameBytes: o.frameBytes,
		IntervalS: o.interval.Seconds(), Compression: o.compression, MemProfRate: o.memProfRate,
		GatewayBin: o.gatewayBin, FloorBin: o.floorBin,
		Symbols: fmt.Sprintf("every client BTCUSDT, every second one ETHUSDT too; update_interval %d", o.updateInterval),
	}}
	fmt.Printf("machine: %d cores (%s), %.1f GiB, %s, %s, RLIMIT_NOFILE %d\n", res.Machine.Cores, res.Machine.CPU,
		float64(res.Machine.MemTotalK)/(1<<20), res.Machine.Kernel, res.Machine.Go, nofile)

	redisURL, stopRedis, err := startRedis(ctx, o.redisBin, dir)
	if err != nil {
		return err
	}
	defer stopRedis()
	rc, err := bus.NewRedisClient(redisURL)
	if err != nil {
		return err
	}
	defer rc.Close()
	syms, _ := json.Marshal(symbols)
	if err := rc.Set(ctx, bus.SymbolsKey, syms, 0).Err(); err != nil {
		return fmt.Errorf("write %s: %w", bus.SymbolsKey, err)
	}
	pctx, stopProducer := context.WithCancel(ctx)
	defer stopProducer()
	sizes, err := produce(pctx, rc, o.frameBytes, o.interval)
	if err != nil {
		return err
	}
	res.Config.Frames = sizes
	fmt.Printf("producer: %s, every %s, on redis %s\n", sizes, o.interval, redisURL)

	for i, t := range o.targets {
		name := t
		if slices.Contains(o.targets[:i], t) {
			name = fmt.Sprintf("%s#%d", t, countOf(o.targets[:i+1], t))
		}
		r, err := measure(ctx, o, t, name, redisURL, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.Runs = append(res.Runs, r)
		// Give the next target a machine without this one's debris.
		runtime.GC()
		debug.FreeOSMemory()
	}
	res.Ratios = ratios(res.Runs)
	res.ProducerTicks, res.ProducerLateTicks = prod.ticks.Load(), prod.late.Load()
	res.ProducerMaxLateMs = float64(prod.maxLate.Load()) / 1e6
	printTable(res)
	if o.out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", o.out)
	}
	return nil
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// raiseNoFile lifts the soft open-files limit to the hard one.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", rl.Max, err)
	}
	return rl.Cur, nil
}

// ensureBinary returns path if it exists, else builds it from the workspace.
func ensureBinary(ctx context.Context, path, dir string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return filepath.Abs(path)
	}
	root, err := workspaceRoot()
	if err != nil {
		return "", fmt.Errorf("%s does not exist and cannot be built: %w", path, err)
	}
	pkg := map[string]string{"gateway": "./services/gateway", "floor": "./loadtest/cmd/floor"}[filepath.Base(path)]
	if pkg == "" {
		return "", fmt.Errorf("%s does not exist (make connmem builds bin/gateway and bin/floor)", path)
	}
	out := filepath.Join(dir, filepath.Base(path))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	fmt.Println("built", pkg, "->", out)
	return out, nil
}

func workspaceRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("no go.work above the working directory")
		}
		d = p
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startRedis runs redis-server without persistence on a free loopback port.
func startRedis(ctx context.Context, bin, dir string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(nil, bin, filepath.Join(dir, "redis.log"), "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
	if err != nil {
		return "", nil, fmt.Errorf("start redis-server (is it installed?): %w", err)
	}
	if err := waitTCP(ctx, addr, p.done); err != nil {
		p.kill()
		return "", nil, fmt.Errorf("redis-server: %w", err)
	}
	return "redis://" + addr + "/0", p.kill, nil
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startProc(env []string, bin, logPath string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// If connmem dies, so do its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: f}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// stop asks politely, then kills.
func (p *proc) stop(grace time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func waitTCP(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s: %w", addr, err)
		}
	}
}

// produce publishes both symbols' frames every interval until ctx ends, as
// bus.RedisPublisher writes them: SET :latest, then PUBLISH, one pipeline.
// Each frame is stamped with the moment it is handed to Redis. It returns
// after the first round, with the frame sizes.
func produce(ctx context.Context, rc *redis.Client, frameBytes int, interval time.Duration) (string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := func(price float64, levels int) []byte {
		d := protocol.SnapshotData{CurrentPrice: price, BinSize: price / 2000, Model: "classic", Interval: "5m",
			PositionsCreated: 1200 + rng.IntN(100), PositionsConsumed: 300 + rng.IntN(50),
			WindowStart: protocol.FormatTime(time.Now().Add(-7 * 24 * time.Hour)),
			Candle:      protocol.Candle{OpenTime: protocol.FormatTime(time.Now().Truncate(5 * time.Minute)), Open: price, High: price * 1.001, Low: price * 0.999, Close: price, Volume: 1234.5}}
		for i := range levels {
			p := price * (1 + float64(i-levels/2)*0.0005)
			l := protocol.Level{Price: math.Round(p*100) / 100, LongDensity: rng.Float64() * 1e6, ShortDensity: rng.Float64() * 1e6}
			d.TotalLongVolume += l.LongDensity
			d.TotalShortVolume += l.ShortDensity
			d.Levels = append(d.Levels, l)
		}
		b, _ := protocol.EncodeSnapshotData(d)
		return b
	}
	prices := map[string]float64{"BTCUSDT": 67012.5, "ETHUSDT": 3456.78}
	// Size each symbol's level list so its frame comes out near frameBytes.
	levels := map[string]int{}
	for _, sym := range symbols {
		p := prices[sym]
		perLevel := float64(len(data(p, 200))-len(data(p, 100))) / 100
		n := 200
		for range 3 {
			f := protocol.SnapshotFrame(sym, 1, time.Now(), data(p, n))
			n = max(1, n+int(float64(frameBytes-len(f))/perLevel))
		}
		levels[sym] = n
	}
	var seq uint64
	round := func() (string, error) {
		seq++
		pipe := rc.Pipeline()
		var sizes []string
		for _, sym := range symbols {
			d := data(prices[sym], levels[sym])
			f := protocol.SnapshotFrame(sym, seq, time.Now(), d)
			sizes = append(sizes, fmt.Sprintf("%s %d bytes (%d levels)", sym, len(f), levels[sym]))
			pipe.Set(ctx, bus.LatestKey(sym), f, 0)
			pipe.Publish(ctx, bus.Channel(sym), f)
		}
		_, err := pipe.Exec(ctx)
		return strings.Join(sizes, ", "), err
	}
	sizes, err := round()
	if err != nil {
		return "", fmt.Errorf("publish to redis: %w", err)
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		start := time.Now()
		for k := int64(1); ; k++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// How late this frame is stamped against the schedule: the
			// gateway paces on stamps, so a late one moves its slots.
			late := time.Since(start.Add(time.Duration(k) * interval))
			prod.ticks.Add(1)
			if late > interval/10 {
				prod.late.Add(1)
			}
			for {
				m := prod.maxLate.Load()
				if int64(late) <= m || prod.maxLate.CompareAndSwap(m, int64(late)) {
					break
				}
			}
			if _, err := round(); err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "producer:", err)
			}
		}
	}()
	return sizes, nil
}

// prod is how punctual the producer was: frames stamped more than a tenth
// of the interval late (the gateway's pacing tolerance) and the worst delay.
var prod struct{ ticks, late, maxLate atomic.Int64 }

// measure runs one target through connect, settle, window and close.
func measure(ctx context.Context, o options, target, name, redisURL, dir string) (*Run, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dbg := o.gatewayDbg
	if target == "floor" || dbg == "" {
		if dbg, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	var p *proc
	logPath := filepath.Join(dir, name+".log")
	var env []string
	if o.memProfRate > 0 {
		env = append(env, fmt.Sprintf("GODEBUG=memprofilerate=%d", o.memProfRate))
	}
	switch target {
	case "gateway":
		// The snapshotter URL points at a closed port: with Redis up the
		// gateway never falls back to it.
		p, err = startProc(env, o.gatewayBin, logPath, "--listen="+addr, "--redis_url="+redisURL,
			"--snapshotter_url=http://127.0.0.1:9", "--log_level=warn", "--debug_listen="+dbg,
			"--ws.max_connections_per_ip=100000", "--ws.max_connections="+strconv.Itoa(max(20000, 2*o.n)))
	case "floor":
		p, err = startProc(env, o.floorBin, logPath, "-listen", addr, "-redis_url", redisURL, "-debug_listen", dbg)
	}
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer p.stop(15 * time.Second)
	r := &Run{Target: name, PID: p.cmd.Process.Pid, DebugAddr: dbg}
	fmt.Printf("\n== %s (pid %d) on %s, pprof on %s\n", name, r.PID, addr, dbg)
	if err := waitReady(ctx, "http://"+addr+"/readyz", p.done); err != nil {
		logs, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	// Let the idle process take a few frames and a GC before the baseline.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	r.RSSBeforeK = procStatus(r.PID)["VmRSS"]
	r.MemBefore = memStats("http://" + dbg)
	if o.profileDir != "" {
		r.HeapBefore = filepath.Join(o.profileDir, name+"-before.heap.pb.gz")
		if err := fetch("http://"+dbg+"/debug/pprof/heap", r.HeapBefore); err != nil {
			return nil, err
		}
	}

	st := &stats{}
	start := time.Now()
	clients := dialAll(ctx, o, "ws://"+addr+"/ws/heatmap", st, r)
	r.ConnectS = time.Since(start).Seconds()
	fmt.Printf("connected %d of %d in %.1fs (%d dial errors) rss %d -> %d KB\n", r.Connected, o.n, r.ConnectS,
		r.DialErrors, r.RSSBeforeK, procStatus(r.PID)["VmRSS"])
	defer closeAll(clients)
	if r.Connected == 0 {
		return nil, fmt.Errorf("no connection succeeded: %s", r.FirstError)
	}
	if err := sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	r.RSSSettledK = procStatus(r.PID)["VmRSS"]
	for _, c := range clients {
		if c.frames.Load() == 0 {
			r.Silent++
		}
	}

	// The window.
	cpu0, self0, mach0 := procTicks(r.PID), procTicks(os.Getpid()), machineTicks()
	frames0, gaps0, ooo0, other0, closed0 := st.frames.Load(), st.gaps.Load(), st.outOfOrder.Load(), st.other.Load(), st.closed.Load()
	st.recording.Store(true)
	t0 := time.Now()
	if err := sleep(ctx, o.window); err != nil {
		return nil, err
	}
	st.recording.Store(false)
	el := time.Since(t0)
	cpu1, self1, mach1 := procTicks(r.PID), procTicks(os.Getpid()), machineTicks()
	status := procStatus(r.PID)
	r.RSSEndK, r.HWMK = status["VmRSS"], status["VmHWM"]
	r.RSSPerConnK = float64(r.RSSEndK-r.RSSBeforeK) / float64(r.Connected)
	r.CPUPct = 100 * float64(cpu1-cpu0) / clkTck / el.Seconds()
	r.ClientCPU = 100 * float64(self1-self0) / clkTck / el.Seconds()
	if d := mach1.total - mach0.total; d > 0 {
		r.MachineBusy = 100 * float64(d-(mach1.idle-mach0.idle)) / float64(d)
	}
	r.Frames, r.Gaps, r.OutOfOrder = st.frames.Load()-frames0, st.gaps.Load()-gaps0, st.outOfOrder.Load()-ooo0
	r.Other, r.ClosedEarly = st.other.Load()-other0, st.closed.Load()-closed0
	if s := st.otherSample.Load(); s != nil {
		r.OtherSample = *s
	}
	r.Expected = subscriptions(clients) * int64(el/o.interval)
	r.P50ms, r.P99ms, r.Maxms = st.percentiles()
	r.MemEnd = memStats("http://" + dbg)
	r.Goroutines = goroutines("http://" + dbg)
	if r.MemBefore != nil && r.MemEnd != nil {
		r.HeapLivePerK = float64(r.MemEnd["HeapAlloc"]-r.MemBefore["HeapAlloc"]) / 1024 / float64(r.Connected)
		r.HeapInusePerK = float64(r.MemEnd["HeapInuse"]-r.MemBefore["HeapInuse"]) / 1024 / float64(r.Connected)
		r.StackInusePerK = float64(r.MemEnd["StackInuse"]-r.MemBefore["StackInuse"]) / 1024 / float64(r.Connected)
		r.HeapIdleEndK = (r.MemEnd["HeapIdle"] - r.MemEnd["HeapReleased"]) / 1024
	}
	if o.profileDir != "" {
		r.HeapAfter = filepath.Join(o.profileDir, name+"-after.heap.pb.gz")
		if err := fetch("http://"+dbg+"/debug/pprof/heap", r.HeapAfter); err != nil {
			return nil, err
		}
		if err := fetch("http://"+dbg+"/debug/pprof/goroutine?debug=1", filepath.Join(o.profileDir, name+"-goroutines.txt")); err != nil {
			return nil, err
		}
	}
	fmt.Printf("window %.0fs: cpu %.1f%% of a core, rss %d KB (%.2f KB/conn), frames %d of %d, p50 %.1f ms p99 %.1f ms, gaps %d\n",
		el.Seconds(), r.CPUPct, r.RSSEndK, r.RSSPerConnK, r.Frames, r.Expected, r.P50ms, r.P99ms, r.Gaps)
	if o.hold > 0 && target == "gateway" {
		fmt.Printf("holding %s: go tool pprof -top -sample_index=inuse_space http://%s/debug/pprof/heap\n", o.hold, dbg)
		if err := sleep(ctx, o.hold); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// subscriptions counts one per client, two for the odd ones.
func subscriptions(clients []*client) int64 {
	var n int64
	for _, c := range clients {
		n += 1 + int64(c.idx%2)
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30s at %s", url)
		}
	}
}

func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// memStats reads the runtime.MemStats a heap profile's debug=1 text ends
// with ("# HeapInuse = 123"), in bytes, right after a GC (gc=1), so HeapAlloc
// is the live heap; nil if the target has no pprof. Call it after reading RSS.
func memStats(base string) map[string]int64 {
	resp, err := http.Get(base + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok || strings.ContainsAny(k, " []") {
			continue
		}
		if inuse, _, ok := strings.Cut(v, " / "); ok { // "# Stack = inuse / sys"
			k, v = k+"Inuse", inuse
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// goroutines reads the total from a debug=1 goroutine dump's first line.
func goroutines(base string) int {
	resp, err := http.Get(base + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	_, n, _ := strings.Cut(line, "total ")
	v, _ := strconv.Atoi(strings.TrimSpace(n))
	return v
}

// --- clients ---

// stats is what every client adds to; latencies are kept only inside the window.
type stats struct {
	frames, gaps, outOfOrder, other, closed atomic.Int64
	otherSample                             atomic.Pointer[string]
	recording                               atomic.Bool
	shards                                  [64]struct {
		mu  sync.Mutex
		lat []int64 // microseconds
	}
}

func (s *stats) percentiles() (p50, p99, mx float64) {
	var all []int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		all = append(all, sh.lat...)
		sh.mu.Unlock()
	}
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	at := func(q float64) float64 { return float64(all[min(len(all)-1, int(q*float64(len(all))))]) / 1000 }
	return at(0.50), at(0.99), float64(all[len(all)-1]) / 1000
}

type client struct {
	gws.BuiltinEventHandler
	idx     int
	st      *stats
	conn    *gws.Conn
	lastSeq [2]uint64
	frames  atomic.Int64
	done    chan struct{}
}

var (
	keySymbol = []byte(`"symbol":"`)
	keySeq    = []byte(`"seq":`)
	snapshot  = []byte(`{"type":"snapshot"`)
)

// OnMessage counts a frame and reads its envelope by scanning, as a relay
// would, never decoding the payload.
func (c *client) OnMessage(_ *gws.Conn, m *gws.Message) {
	now := time.Now()
	defer m.Close()
	b := m.Bytes()
	if !bytes.HasPrefix(b, snapshot) {
		if c.st.other.Add(1) == 1 {
			s := string(b[:min(len(b), 200)])
			c.st.otherSample.Store(&s)
		}
		return
	}
	c.frames.Add(1)
	c.st.frames.Add(1)
	head := b[:min(len(b), 200)]
	sym := -1
	if i := bytes.Index(head, keySymbol); i >= 0 {
		rest := head[i+len(keySymbol):]
		for k, s := range symbols {
			if bytes.HasPrefix(rest, []byte(s)) && len(rest) > len(s) && rest[len(s)] == '"' {
				sym = k
			}
		}
	}
	var seq uint64
	if i := bytes.Index(head, keySeq); i >= 0 {
		for _, d := range head[i+len(keySeq):] {
			if d < '0' || d > '9' {
				break
			}
			seq = seq*10 + uint64(d-'0')
		}
	}
	if sym >= 0 && seq > 0 {
		last := c.lastSeq[sym]
		switch {
		case last == 0:
		case seq > last+1:
			c.st.gaps.Add(int64(seq - last - 1))
		case seq <= last:
			c.st.outOfOrder.Add(1)
		}
		if seq > last {
			c.lastSeq[sym] = seq
		}
	}
	if c.st.recording.Load() {
		if ts, ok := protocol.PeekTimestamp(b); ok {
			sh := &c.st.shards[c.idx%len(c.st.shards)]
			sh.mu.Lock()
			sh.lat = append(sh.lat, now.Sub(ts).Microseconds())
			sh.mu.Unlock()
		}
	}
}

func (c *client) OnClose(_ *gws.Conn, _ error) {
	select {
	case <-c.done:
	default:
		c.st.closed.Add(1) // counted as early unless closeAll started it
	}
}

// sourceIP spreads clients over 127.0.X.Y, one address each: the gateway
// keeps per-address state, as it would for real clients.
func sourceIP(i int) net.IP { return net.IPv4(127, 0, byte(1+i/250), byte(1+i%250)) }

// dialAll opens o.n connections at o.ramp per second and subscribes each.
func dialAll(ctx context.Context, o options, url string, st *stats, r *Run) []*client {
	var (
		mu      sync.Mutex
		clients []*client
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 256)
	)
	step := time.Second / time.Duration(o.ramp)
	start := time.Now()
	for i := 0; i < o.n && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * step)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c := &client{idx: i, st: st, done: make(chan struct{})}
			ip := sourceIP(i)
			conn, _, err := gws.NewClient(c, &gws.ClientOption{
				Addr:              url,
				HandshakeTimeout:  10 * time.Second,
				PermessageDeflate: gws.PermessageDeflate{Enabled: o.compression},
				NewDialer: func() (gws.Dialer, error) {
					return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}, nil
				},
			})
			if err == nil {
				c.conn = conn
				go conn.ReadLoop()
				syms := `"BTCUSDT"`
				if i%2 == 1 {
					syms = `"BTCUSDT","ETHUSDT"`
				}
				sub := fmt.Sprintf(`{"action":"subscribe","symbols":[%s],"update_interval":%d}`, syms, o.updateInterval)
				err = conn.WriteString(sub)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.DialErrors++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
				if conn != nil {
					close(c.done)
					conn.NetConn().Close()
				}
				return
			}
			clients = append(clients, c)
		}(i)
	}
	wg.Wait()
	r.Connected = len(clients)
	return clients
}

func closeAll(clients []*client) {
	for _, c := range clients {
		close(c.done)
		c.conn.NetConn().Close()
	}
	// Let the target see every close before it is stopped.
	time.Sleep(2 * time.Second)
}

// --- /proc ---

// clkTck is USER_HZ, 100 on every Linux this runs on (sysconf needs cgo).
const clkTck = 100

func procStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Vm") {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		out[k] = n
	}
	return out
}

// procTicks is utime+stime of pid, in clock ticks.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	// After the command: state is field 3, utime 14 and stime 15.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

type machTicks struct{ total, idle int64 }

func machineTicks() machTicks {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := bytes.Cut(b, []byte("\n"))
	var m machTicks
	for i, f := range strings.Fields(string(line))[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		m.total += v
		if i == 3 || i == 4 { // idle, iowait
			m.idle += v
		}
	}
	return m
}

func machine(nofile uint64) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), NoFile: nofile}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				m.MemTotalK, _ = strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "linux " + strings.TrimSpace(string(b))
	}
	return m
}

// --- report ---

func ratios(runs []*Run) *RatiosOut {
	var f, g []*Run
	for _, r := range runs {
		if strings.HasPrefix(r.Target, "floor") {
			f = append(f, r)
		} else {
			g = append(g, r)
		}
	}
	if len(f) == 0 || len(g) == 0 {
		return nil
	}
	mean := func(rs []*Run, v func(*Run) float64) float64 {
		s := 0.0
		for _, r := range rs {
			s += v(r)
		}
		return s / float64(len(rs))
	}
	ratio := func(v func(*Run) float64) float64 {
		fl := mean(f, v)
		if fl == 0 {
			return 0
		}
		return math.Round(100*mean(g, v)/fl) / 100
	}
	return &RatiosOut{
		RSSPerConn:  ratio(func(r *Run) float64 { return r.RSSPerConnK }),
		HeapPerConn: ratio(func(r *Run) float64 { return r.HeapLivePerK }),
		CPU:         ratio(func(r *Run) float64 { return r.CPUPct }),
		P50:         ratio(func(r *Run) float64 { return r.P50ms }),
		P99:         ratio(func(r *Run) float64 { return r.P99ms }),
	}
}

func printTable(res *Result) {
	c := res.Config
	fmt.Printf("\nconnmem: N=%d, ramp %d/s, settle %gs, window %gs, %d-byte frames every %gs, client compression %v; %d cores (%s)\n",
		c.N, c.Ramp, c.SettleS, c.WindowS, c.FrameBytes, c.IntervalS, c.Compression, res.Machine.Cores, res.Machine.CPU)
	fmt.Printf("%-10s %6s %8s %8s %8s %8s %8s %7s %7s %7s %8s %8s %9s %9s %5s %5s %6s\n", "target", "conns", "rss0 MB", "rss MB",
		"KB/conn", "live KB", "stack KB", "cpu %", "client%", "mach %", "p50 ms", "p99 ms", "frames", "expected", "gaps", "other", "gorout")
	for _, r := range res.Runs {
		fmt.Printf("%-10s %6d %8.1f %8.1f %8.2f %8.2f %8.2f %7.1f %7.1f %7.1f %8.1f %8.1f %9d %9d %5d %5d %6d\n", r.Target, r.Connected,
			float64(r.RSSBeforeK)/1024, float64(r.RSSEndK)/1024, r.RSSPerConnK, r.HeapLivePerK, r.StackInusePerK, r.CPUPct, r.ClientCPU, r.MachineBusy,
			r.P50ms, r.P99ms, r.Frames, r.Expected, r.Gaps, r.Other, r.Goroutines)
	}
	fmt.Println("KB/conn: RSS growth per connection; live/stack KB: growth per connection of the live Go heap (after a GC) and of goroutine stacks in use")
	fmt.Printf("producer: %d ticks, %d stamped > %gs late, latest %.0f ms late (the gateway paces on stamps; the floor does not)\n",
		res.ProducerTicks, res.ProducerLateTicks, c.IntervalS/10, res.ProducerMaxLateMs)
	if q := res.Ratios; q != nil {
		fmt.Printf("gateway / floor (mean of floor runs): RSS/conn %.2fx, live heap/conn %.2fx, CPU %.2fx, p50 %.2fx, p99 %.2fx\n", q.RSSPerConn, q.HeapPerConn, q.CPU, q.P50, q.P99)
	}
}
