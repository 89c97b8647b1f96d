package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	pkgenv "github.com/liqstream/liqstream/pkg/testenv"
)

// fleetScript is deploy/local/fleet.sh (`make fleet`) running on free ports
// in a temp dir, in a process group of its own.
type fleetScript struct {
	dir   string
	out   string // the script's and the services' stdout and stderr
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	http  *http.Client
	edge  string
	redis string
	snap  string
	gws   []string
	ports []string
}

// TestFleetScriptSupervises runs `make fleet`'s script and checks that it
// keeps the fleet up: Redis killed → the gateways fall back to the
// snapshotter and the edge keeps answering, then Redis is started again and
// they return to it; a gateway killed → started again; SIGTERM → every part
// stopped and nothing left listening.
func TestFleetScriptSupervises(t *testing.T) {
	pkgenv.Need(t, "redis-server")
	pkgenv.Need(t, "nginx", "/usr/sbin/nginx")
	f := startFleetScript(t)
	began := time.Now()

	f.poll(t, "the edge /readyz 200 and every gateway on redis", 120*time.Second, func() (bool, string) {
		if code, src := f.readyz(f.edge); code != 200 {
			return false, fmt.Sprintf("edge: %d %s", code, src)
		}
		for _, g := range f.gws {
			if code, src := f.readyz(g); code != 200 || src != "redis" {
				return false, fmt.Sprintf("%s: %d %s", g, code, src)
			}
		}
		return true, ""
	})
	// The edge may still answer an error while the gateways start (a
	// gateway's 503 is passed to the next by proxy_next_upstream http_503,
	// and with every gateway starting there is none to pass to): wait for
	// it to answer 200 for 3 s in a row.
	var streak time.Time
	f.poll(t, "the edge answering 200 for 3s in a row", 30*time.Second, func() (bool, string) {
		code, src := f.readyz(f.edge)
		if code != 200 {
			streak = time.Time{}
			return false, fmt.Sprintf("edge: %d %s", code, src)
		}
		if streak.IsZero() {
			streak = time.Now()
		}
		return time.Since(streak) >= 3*time.Second, "streak " + time.Since(streak).String()
	})
	t.Logf("fleet ready after %s", time.Since(began).Round(time.Millisecond))

	// Redis, held down: the gateways must fall back and stay served.
	hold := filepath.Join(f.dir, "hold", "redis")
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	redisPid := f.pid(t, "redis")
	fleetshKill(t, redisPid, syscall.SIGKILL)
	step := time.Now()
	f.poll(t, "every gateway in fallback, the edge answering", 15*time.Second, func() (bool, string) {
		if code, src := f.readyz(f.edge); code != 200 {
			t.Fatalf("edge /readyz %d (%s) while Redis is down", code, src)
		}
		for _, g := range f.gws {
			if code, src := f.readyz(g); code != 200 || !strings.Contains(src, "fallback") {
				return false, fmt.Sprintf("%s: %d %s", g, code, src)
			}
		}
		return true, ""
	})
	t.Logf("fallback seen %s after kill -9 of Redis", time.Since(step).Round(time.Millisecond))
	f.waitLog(t, "fleet: redis held down while")
	if c, err := net.DialTimeout("tcp", f.redis, time.Second); err == nil {
		c.Close()
		t.Fatalf("Redis at %s answers while %s exists", f.redis, hold)
	}
	// Served while in fallback: frames go on through the edge.
	if code, src := f.readyz(f.edge); code != 200 {
		t.Fatalf("edge /readyz %d (%s) in fallback", code, src)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	step = time.Now()
	f.poll(t, "every gateway back on redis", 30*time.Second, func() (bool, string) {
		if code, src := f.readyz(f.edge); code != 200 {
			t.Fatalf("edge /readyz %d (%s) while Redis comes back", code, src)
		}
		for _, g := range f.gws {
			if code, src := f.readyz(g); code != 200 || src != "redis" {
				return false, fmt.Sprintf("%s: %d %s", g, code, src)
			}
		}
		return true, ""
	})
	t.Logf("back on redis %s after the hold was lifted", time.Since(step).Round(time.Millisecond))
	if p := f.pid(t, "redis"); p == redisPid {
		t.Fatalf("redis pid file still names the killed %d", p)
	}

	// Redis killed without a hold: restarted after its backoff by itself.
	redisPid = f.pid(t, "redis")
	fleetshKill(t, redisPid, syscall.SIGKILL)
	step = time.Now()
	f.poll(t, "Redis restarted and every gateway on it", 30*time.Second, func() (bool, string) {
		if p, _ := f.readPid("redis"); p == 0 || p == redisPid {
			return false, fmt.Sprintf("redis pid file: %d", p)
		}
		for _, g := range f.gws {
			if code, src := f.readyz(g); code != 200 || src != "redis" {
				return false, fmt.Sprintf("%s: %d %s", g, code, src)
			}
		}
		return true, ""
	})
	t.Logf("Redis restarted, gateways on it, %s after kill -9", time.Since(step).Round(time.Millisecond))
	f.waitLog(t, "fleet: redis exited (status 137); restarting in")

	// A gateway killed: its port answers again, and the edge all along.
	gwPid := f.pid(t, "gateway-2")
	fleetshKill(t, gwPid, syscall.SIGKILL)
	step = time.Now()
	f.poll(t, "gateway-2 restarted and ready", 60*time.Second, func() (bool, string) {
		if code, src := f.readyz(f.edge); code != 200 {
			t.Fatalf("edge /readyz %d (%s) while gateway-2 is down", code, src)
		}
		if p, _ := f.readPid("gateway-2"); p == 0 || p == gwPid {
			return false, fmt.Sprintf("gateway-2 pid file: %d", p)
		}
		code, src := f.readyz(f.gws[1])
		return code == 200, fmt.Sprintf("%d %s", code, src)
	})
	t.Logf("gateway-2 back %s after kill -9", time.Since(step).Round(time.Millisecond))
	f.waitLog(t, "fleet: gateway-2 exited (status 137); restarting in 1s")

	// SIGTERM: everything stops, the script exits 143.
	step = time.Now()
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatal("fleet.sh still running 30s after SIGTERM")
	}
	var ee *exec.ExitError
	if !errors.As(f.err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("fleet.sh exited with %v, want status 143", f.err)
	}
	t.Logf("fleet stopped %s after SIGTERM", time.Since(step).Round(time.Millisecond))
	if err := syscall.Kill(-f.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		out, _ := exec.Command("ps", "-o", "pid,args", "-g", strconv.Itoa(f.cmd.Process.Pid)).CombinedOutput()
		t.Fatalf("processes of the fleet left after it exited (kill -0: %v):\n%s", err, out)
	}
	for _, addr := range f.ports {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the fleet stopped", addr)
		}
	}
	if pids, _ := filepath.Glob(filepath.Join(f.dir, "pids", "*.pid")); len(pids) > 0 {
		t.Errorf("pid files left: %v", pids)
	}
}

func startFleetScript(t *testing.T) *fleetScript {
	t.Helper()
	bin := testenv.Binaries(t)
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(pkgenv.FreePort(t)) }
	f := &fleetScript{
		dir:  t.TempDir(),
		done: make(chan struct{}),
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		edge: addr(), redis: addr(), snap: addr(),
		gws: []string{addr(), addr(), addr()},
	}
	f.ports = append([]string{f.edge, f.redis, f.snap}, f.gws...)
	f.out = filepath.Join(f.dir, "fleet.out")
	// A file, not a pipe: the script's children inherit it, and a pipe
	// would hold Wait until the last of them is gone.
	out, err := os.Create(f.out)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	f.cmd = exec.Command("bash", filepath.Join(testenv.RepoRoot(), "deploy", "local", "fleet.sh"))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIQSTREAM_") && !strings.HasPrefix(kv, "PROMETHEUS=") {
			f.cmd.Env = append(f.cmd.Env, kv)
		}
	}
	_, redisPort, _ := net.SplitHostPort(f.redis)
	_, snapPort, _ := net.SplitHostPort(f.snap)
	f.cmd.Env = append(f.cmd.Env,
		"LIQSTREAM_BIN_DIR="+bin,
		"LIQSTREAM_FLEET_DIR="+f.dir,
		"LIQSTREAM_FLEET_EDGE="+f.edge,
		"LIQSTREAM_FLEET_REDIS_PORT="+redisPort,
		"LIQSTREAM_FLEET_SNAPSHOTTER_PORT="+snapPort,
		"LIQSTREAM_FLEET_GATEWAYS="+strings.Join(f.gws, " "),
		// The services read these as config: a brisk snapshotter on little data.
		"LIQSTREAM_SNAPSHOT_INTERVAL=1s", "LIQSTREAM_SIMULATOR_TICK=200ms", "LIQSTREAM_DEMO_DAYS=2",
	)
	f.cmd.Stdout, f.cmd.Stderr = out, out
	// Its own process group, so that a failed test can kill every part, and
	// so that the end can check that none is left.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start fleet.sh: %v", err)
	}
	go func() { f.err = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.done
		if t.Failed() {
			for _, name := range []string{"fleet.out", "redis.log", "nginx/error.log"} {
				b, _ := os.ReadFile(filepath.Join(f.dir, name))
				t.Logf("%s:\n%s", name, fleetshTail(string(b), 200))
			}
		}
	})
	return f
}

// readyz returns a /readyz status code and its source (or the error).
func (f *fleetScript) readyz(addr string) (int, string) {
	resp, err := f.http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Source string `json:"source"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, "body: " + err.Error()
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, body.Status + " " + body.Source
	}
	return resp.StatusCode, body.Source
}

// poll calls cond every 20 ms until it holds, failing after limit or when
// the script exits; cond's string says why it does not hold yet.
func (f *fleetScript) poll(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-f.done:
			t.Fatalf("fleet.sh exited (%v) while waiting for %s (%s)", f.err, what, why)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s: %s", what, limit, why)
		}
		time.Sleep(20 * time.Millisecond) // polling health endpoints, the only signal
	}
}

// readPid reads the pid file the script keeps for a running part.
func (f *fleetScript) readPid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, "pids", name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (f *fleetScript) pid(t *testing.T, name string) int {
	t.Helper()
	p, err := f.readPid(name)
	if err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	return p
}

// waitLog waits for a line of the script's own output containing s.
func (f *fleetScript) waitLog(t *testing.T, s string) {
	t.Helper()
	f.poll(t, fmt.Sprintf("line %q from fleet.sh", s), 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(f.out)
		return strings.Contains(string(b), s), "not logged yet"
	})
}

func fleetshKill(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

// fleetshTail is the last n lines of s.
func fleetshTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
