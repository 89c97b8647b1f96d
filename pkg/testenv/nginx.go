package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Nginx is an nginx owned by one test, serving a config rendered from a
// template in its own prefix dir.
type Nginx struct {
	Addr string
	Dir  string

	template string
	bin      string
	conf     string // the rendered config's path

	// mu guards cmd, done and out, which Restart replaces.
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// StartNginx renders template (text with {{LISTEN}}, {{PREFIX}} and
// {{UPSTREAMS}} placeholders, the last replaced by one `server ADDR;` line per
// upstream) and runs nginx in the foreground on a free port.
func StartNginx(t testing.TB, template string, upstreams []string) *Nginx {
	t.Helper()
	bin := Need(t, "nginx", "/usr/sbin/nginx")
	n := &Nginx{Dir: t.TempDir(), bin: bin}
	// nginx workers may run as an unprivileged user; they need to reach the prefix.
	if err := os.Chmod(n.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	n.Addr = hostPort(port)
	n.template = template
	n.conf = n.render(t, upstreams)
	n.launch(t)
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
			n.mu.Lock()
			out := n.out.String()
			n.mu.Unlock()
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out, logs)
		}
	})
	n.await(t)
	return n
}

// launch starts nginx in the foreground on the rendered config.
func (n *Nginx) launch(t testing.TB) {
	t.Helper()
	cmd := exec.Command(n.bin, "-p", n.Dir, "-c", n.conf, "-g", "daemon off;")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// nginx forks workers that inherit the output pipes: kill the whole
	// process group, or Wait blocks on a pipe a worker still holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done, n.out = cmd, done, out
	n.mu.Unlock()
}

// await waits until nginx accepts connections on Addr.
func (n *Nginx) await(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	done, out := n.done, n.out
	n.mu.Unlock()
	if err := waitTCP(n.Addr, 10*time.Second, done); err != nil {
		logs, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
		t.Fatalf("nginx: %v\n%s\n%s", err, out.String(), logs)
	}
}

// Kill sends SIGKILL to nginx's master and workers (a crash: every
// connection through the edge drops at once) and waits until they are gone.
func (n *Nginx) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts nginx again on the same address and config after Kill, and
// returns once it accepts connections.
func (n *Nginx) Restart(t testing.TB) {
	t.Helper()
	n.Kill()
	n.launch(t)
	n.await(t)
}

// render writes nginx.conf for upstreams and returns its path.
func (n *Nginx) render(t testing.TB, upstreams []string) string {
	t.Helper()
	var ups strings.Builder
	for _, u := range upstreams {
		// max_fails=0, as deploy/local/fleet.sh renders it: see the upstream
		// block of deploy/nginx/nginx.conf.tmpl.
		fmt.Fprintf(&ups, "        server %s max_fails=0;\n", u)
	}
	conf := strings.NewReplacer("{{LISTEN}}", n.Addr, "{{PREFIX}}", n.Dir, "{{UPSTREAMS}}", ups.String()).Replace(n.template)
	path := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// SetUpstreams rewrites the config for upstreams and reloads nginx (SIGHUP),
// as an edge learns of a scale-out, and returns once the new workers run:
// new connections get the new list, established ones stay where they are.
func (n *Nginx) SetUpstreams(t testing.TB, upstreams []string) {
	t.Helper()
	old := n.workers()
	if len(old) == 0 {
		t.Fatal("nginx: no worker processes found")
	}
	n.render(t, upstreams)
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("nginx reload: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fresh := 0
		for _, pid := range n.workers() {
			if !slices.Contains(old, pid) {
				fresh++
			}
		}
		if fresh >= len(old) {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
			t.Fatalf("nginx reload: %d of %d new workers after 10s\n%s", fresh, len(old), logs)
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: a reload announces itself nowhere else
	}
}

// workers lists the master's child processes.
func (n *Nginx) workers() []string {
	n.mu.Lock()
	pid := strconv.Itoa(n.cmd.Process.Pid)
	n.mu.Unlock()
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "task", pid, "children"))
	return strings.Fields(string(b))
}
