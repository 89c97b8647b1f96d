// Package testenv starts liqstream's real binaries for end-to-end tests: it
// builds them once per test binary, runs each on a free loopback port (port
// 0, address read from the service's "listening" log line) in a temp dir,
// and stops them when the test ends.
package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pkgenv "github.com/liqstream/liqstream/pkg/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// RepoRoot is the checkout's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Binaries builds bin/snapshotter and bin/gateway into a temp dir shared by the
// whole test binary and returns that dir. The gateway is built with
// CGO_ENABLED=0, as it ships.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "liqstream-bin-")
		if buildErr != nil {
			return
		}
		root := RepoRoot()
		for _, b := range []struct{ name, dir, cgo string }{
			{"snapshotter", "services/snapshotter", "1"},
			{"gateway", "services/gateway", "0"},
		} {
			cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(binDir, b.name), ".")
			if b.cgo == "0" {
				cmd = exec.Command("go", "build", "-o", filepath.Join(binDir, b.name), ".")
			}
			cmd.Dir = filepath.Join(root, b.dir)
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b.name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Proc is one running service.
type Proc struct {
	Name string
	// Addr is the host:port the service listens on.
	Addr string

	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced whenever a log line arrives
}

// Start runs binary name from Binaries with args in dir and waits until it
// logs its listening address.
func Start(t testing.TB, name, dir string, args ...string) *Proc {
	t.Helper()
	return start(t, name, dir, append([]string{filepath.Join(Binaries(t), name)}, args...))
}

// StartWithFDLimit is Start with the process's RLIMIT_NOFILE set to nofile
// (util-linux prlimit), to see the service run out of file descriptors.
func StartWithFDLimit(t testing.TB, nofile int, name, dir string, args ...string) *Proc {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		pkgenv.Missing(t, "prlimit (util-linux) is not installed")
	}
	argv := []string{prlimit, fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--", filepath.Join(Binaries(t), name)}
	return start(t, name, dir, append(argv, args...))
}

// Launch runs binary name from Binaries with args in dir without waiting for
// anything: for tests that kill it before it listens.
func Launch(t testing.TB, name, dir string, args ...string) *Proc {
	t.Helper()
	return launch(t, name, dir, append([]string{filepath.Join(Binaries(t), name)}, args...))
}

func start(t testing.TB, name, dir string, argv []string) *Proc {
	t.Helper()
	p := launch(t, name, dir, argv)
	line := p.WaitLog(t, `"msg":"listening"`, 60*time.Second)
	var rec struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("%s: cannot read address from %q: %v", name, line, err)
	}
	p.Addr = rec.Addr
	return p
}

func launch(t testing.TB, name, dir string, argv []string) *Proc {
	t.Helper()
	p := &Proc{Name: name, done: make(chan struct{}), grew: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	// No LIQSTREAM_* from the developer's shell leaks into a test.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIQSTREAM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	// If the test binary dies (a timeout panic skips Cleanup), so does the service.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, p.Logs())
		}
	})
	return p
}

func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// Logs returns everything the process wrote to stderr so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitLog returns the first log line containing substr, failing the test if
// none arrives within timeout or the process exits first.
func (p *Proc) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], substr) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			// Lines may have landed between the scan and the exit.
			if p.HasLine(substr) {
				continue
			}
			t.Fatalf("%s exited (%v) before logging %q; logs:\n%s", p.Name, p.err, substr, p.Logs())
		case <-deadline:
			t.Fatalf("%s did not log %q within %s; logs:\n%s", p.Name, substr, timeout, p.Logs())
		}
	}
}

// RSS is the process's resident set size, from /proc (Linux).
func (p *Proc) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", p.Name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err != nil {
				return 0, fmt.Errorf("rss of %s: %q: %w", p.Name, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("rss of %s: no VmRSS line", p.Name)
}

// HasLine reports whether the process has logged a line containing substr.
func (p *Proc) HasLine(substr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// Signal sends sig to the process if it is still running.
func (p *Proc) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGINT (what Ctrl-C sends) and returns the exit error, failing
// the test if the process is still running after timeout.
func (p *Proc) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	p.Signal(os.Interrupt)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after SIGINT", p.Name, timeout)
		return nil
	}
}

// Stack is a snapshotter and a gateway wired together on the embedded default.
type Stack struct {
	Dir         string
	DB          string
	Snapshotter *Proc
	Gateway     *Proc
}

// FastSnapshotterArgs makes a snapshotter that recomputes every second on two
// days of demo data with a brisk simulator, so tests see updates quickly.
var FastSnapshotterArgs = []string{"--snapshot.interval=1s", "--simulator.tick=200ms", "--demo.days=2", "--log_level=debug"}

// StartStack starts a snapshotter on a DuckDB file in a fresh temp dir and a
// gateway reading from it, and waits until the gateway is ready.
func StartStack(t testing.TB, snapArgs ...string) *Stack {
	t.Helper()
	dir := t.TempDir()
	s := &Stack{Dir: dir, DB: filepath.Join(dir, "data", "liqstream.duckdb")}
	s.Snapshotter = Start(t, "snapshotter", dir, append([]string{"--listen=127.0.0.1:0", "--db=" + s.DB}, snapArgs...)...)
	s.Gateway = Start(t, "gateway", dir, "--listen=127.0.0.1:0", "--snapshotter_url=http://"+s.Snapshotter.Addr)
	return s
}

// GatewayURL is the gateway's base http URL.
func (s *Stack) GatewayURL() string { return "http://" + s.Gateway.Addr }

// WSURL is the gateway's WebSocket endpoint.
func (s *Stack) WSURL() string { return "ws://" + s.Gateway.Addr + "/ws/heatmap" }
