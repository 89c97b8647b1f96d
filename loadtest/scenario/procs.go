package scenario

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process with its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// start runs bin in its own process group; it dies with the runner.
func start(name, bin, logPath string, env []string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process group politely, then kills it.
func (p *proc) stop(grace time.Duration) {
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHTTP polls url until it answers 200, the process exits or 30 s pass.
func waitHTTP(ctx context.Context, url string, p *proc) error {
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
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered:\n%s", p.name, url, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not ready after 30s:\n%s", p.name, url, p.tail())
		}
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, p *proc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening on %s: %w", p.name, addr, err)
		}
	}
}

// startRedis runs redis-server without persistence on a free loopback port.
func startRedis(ctx context.Context, bin, dir string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := start("redis-server", bin, filepath.Join(dir, "redis.log"), nil, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
	if err != nil {
		return nil, "", fmt.Errorf("%w (is redis-server installed? .ci/run installs it)", err)
	}
	if err := waitTCP(ctx, addr, p); err != nil {
		p.stop(time.Second)
		return nil, "", err
	}
	return p, "redis://" + addr + "/0", nil
}

// startNginx renders the shipped edge template for upstreams and runs nginx
// in the foreground.
func startNginx(ctx context.Context, bin, template, dir string, upstreams []string) (*proc, string, error) {
	tmpl, err := os.ReadFile(template)
	if err != nil {
		return nil, "", fmt.Errorf("read nginx template: %w", err)
	}
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(prefix, 0o777); err != nil {
		return nil, "", err
	}
	// nginx workers may run as an unprivileged user; they need to reach the prefix.
	os.Chmod(prefix, 0o777)
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	var ups strings.Builder
	for _, u := range upstreams {
		// max_fails=0, as deploy/local/fleet.sh renders it: see the template's upstream block.
		fmt.Fprintf(&ups, "        server %s max_fails=0;\n", u)
	}
	conf := strings.NewReplacer("{{LISTEN}}", addr, "{{PREFIX}}", prefix, "{{UPSTREAMS}}", ups.String()).Replace(string(tmpl))
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := start("nginx", bin, filepath.Join(dir, "nginx.log"), nil, "-p", prefix, "-c", path, "-g", "daemon off;")
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(ctx, addr, p); err != nil {
		p.stop(time.Second)
		logs, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
		return nil, "", fmt.Errorf("%w\n%s", err, logs)
	}
	return p, addr, nil
}

// lookBin finds name on PATH or in /usr/sbin (Debian's nginx).
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed (.ci/run installs it on Debian)", name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// memStats reads the runtime.MemStats a heap profile's debug=1 text ends
// with ("# HeapInuse = 123"), in bytes, after a forced GC (gc=1), so
// HeapAlloc is the live heap; nil if the target serves no pprof.
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

// save writes what url answers to path.
func save(url, path string) error {
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

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// disconnects reads ws_disconnects_total by reason from a gateway's /metrics.
func disconnects(url string) map[string]float64 {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	const prefix = `ws_disconnects_total{reason="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(rest, `"} `)
		// The gateway exports every known reason from 0: only those that
		// happened are reported.
		if v, err := strconv.ParseFloat(value, 64); ok && err == nil && v != 0 {
			out[reason] = v
		}
	}
	return out
}

// Buckets is a Prometheus histogram's cumulative counts by upper bound.
type Buckets map[float64]float64

// histogram reads the buckets of the histogram name (without labels) from
// a /metrics page; nil when unreachable.
func histogram(url, name string) Buckets {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := Buckets{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := name + `_bucket{le="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, value, ok := strings.Cut(rest, `"} `)
		bound, err1 := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		v, err2 := strconv.ParseFloat(value, 64)
		if ok && err1 == nil && err2 == nil {
			out[bound] += v
		}
	}
	return out
}

// add sums b into h (several gateways' histograms).
func (h Buckets) add(b Buckets) {
	for k, v := range b {
		h[k] += v
	}
}

// Since is what was observed between then and h.
func (h Buckets) Since(then Buckets) Buckets {
	out := Buckets{}
	for k, v := range h {
		out[k] = v - then[k]
	}
	return out
}

// Count is the number of observations.
func (h Buckets) Count() float64 { return h[math.Inf(1)] }

// Quantile is q of the observations, interpolated linearly within its
// bucket as Prometheus's histogram_quantile does; 0 without observations.
// An answer in the +Inf bucket is the highest finite bound.
func (h Buckets) Quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for k := range h {
		bounds = append(bounds, k)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || h[bounds[len(bounds)-1]] <= 0 {
		return 0
	}
	rank := q * h[bounds[len(bounds)-1]]
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		if h[b] >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			if h[b] == below {
				return b
			}
			return lower + (b-lower)*(rank-below)/(h[b]-below)
		}
		lower, below = b, h[b]
	}
	return lower
}
