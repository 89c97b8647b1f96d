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
	cmd      *exec.Cmd
	done     chan struct{}
	out      bytes.Buffer
}

// StartNginx renders template (text with {{LISTEN}}, {{PREFIX}} and
// {{UPSTREAMS}} placeholders, the last replaced by one `server ADDR;` line per
// upstream) and runs nginx in the foreground on a free port.
func StartNginx(t testing.TB, template string, upstreams []string) *Nginx {
	t.Helper()
	bin := Need(t, "nginx", "/usr/sbin/nginx")
	n := &Nginx{Dir: t.TempDir(), done: make(chan struct{})}
	// nginx workers may run as an unprivileged user; they need to reach the prefix.
	if err := os.Chmod(n.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	n.Addr = hostPort(port)
	n.template = template
	path := n.render(t, upstreams)
	n.cmd = exec.Command(bin, "-p", n.Dir, "-c", path, "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	// nginx forks workers that inherit the output pipes: kill the whole
	// process group, or Wait blocks on a pipe a worker still holds.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	n.cmd.WaitDelay = 5 * time.Second
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", n.out.String(), logs)
		}
	})
	if err := waitTCP(n.Addr, 10*time.Second, n.done); err != nil {
		logs, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
		t.Fatalf("nginx: %v\n%s\n%s", err, n.out.String(), logs)
	}
	return n
}

// render writes nginx.conf for upstreams and returns its path.
func (n *Nginx) render(t testing.TB, upstreams []string) string {
	t.Helper()
	var ups strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&ups, "        server %s max_fails=1 fail_timeout=2s;\n", u)
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
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
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
	pid := strconv.Itoa(n.cmd.Process.Pid)
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "task", pid, "children"))
	return strings.Fields(string(b))
}
