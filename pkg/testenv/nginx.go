package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
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
	var ups strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&ups, "        server %s max_fails=1 fail_timeout=2s;\n", u)
	}
	conf := strings.NewReplacer("{{LISTEN}}", n.Addr, "{{PREFIX}}", n.Dir, "{{UPSTREAMS}}", ups.String()).Replace(template)
	path := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
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
