// Package testenv starts the real servers liqstream's tests talk to — a
// redis-server and nginx — each on a free loopback port in its own temp dir,
// stopped when the test ends. A missing binary skips the test with a loud
// reason; .ci/run installs them so CI never skips.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// FreePort returns a loopback port that was free a moment ago. Servers that
// cannot listen on port 0 and report it (redis, nginx) need one up front.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Need returns the path of binary, skipping the test when it is not installed.
func Need(t testing.TB, binary string, alt ...string) string {
	t.Helper()
	for _, b := range append([]string{binary}, alt...) {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	Missing(t, fmt.Sprintf("%s is not installed (run .ci/run, which apt-installs it); this test needs the real server", binary))
	return ""
}

// Missing skips the test, loudly, for a part that is not installed; under CI
// (CI set) it fails it instead, since .ci/run installs every part and a
// skipped test there would pass silently.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("MISSING under CI: %s", why)
	}
	t.Skipf("SKIPPED: %s", why)
}

// waitTCP waits until addr accepts connections or the process exits.
func waitTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %s: %w", addr, timeout, err)
		}
		// Polling a port is the only readiness signal these servers give.
		time.Sleep(20 * time.Millisecond)
	}
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
