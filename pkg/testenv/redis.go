package testenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server owned by one test.
type Redis struct {
	Addr string
	URL  string

	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// StartRedis starts redis-server without persistence on a free port.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: Need(t, "redis-server"), dir: t.TempDir()}
	r.port = FreePort(t)
	r.Addr = hostPort(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = &bytes.Buffer{}
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (a timeout panic skips Cleanup), so does the server.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	go func() { cmd.Wait(); close(done) }()
	if err := waitTCP(r.Addr, 10*time.Second, done); err != nil {
		return fmt.Errorf("redis-server on %s: %w\n%s", r.Addr, err, r.out.String())
	}
	return nil
}

// Stop kills the server (a crash, as far as clients can tell) and waits for it.
func (r *Redis) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port after Stop.
func (r *Redis) Restart() {
	r.t.Helper()
	if err := r.start(); err != nil {
		r.t.Fatal(err)
	}
}
