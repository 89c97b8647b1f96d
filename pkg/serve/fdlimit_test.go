package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// emfileListener fails Accept with EMFILE n times, then accepts one
// connection.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("accept4: %w", syscall.EMFILE)}
	}
	c, _ := net.Pipe()
	return c, nil
}

// Out of file descriptors, Accept backs off (5 ms doubling to 1 s, on a
// fake clock here) and logs one JSON warn line a second at most, counting
// the rest; when descriptors free up it returns the connection.
func TestAcceptOutOfFDsBacksOffAndLogsOncePerSecond(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	l := newFDListener(&emfileListener{n: 20}, log)
	clock := time.Unix(0, 0)
	var slept []time.Duration
	l.now = func() time.Time { return clock }
	l.sleep = func(d time.Duration) { slept = append(slept, d); clock = clock.Add(d) }

	c, err := l.Accept()
	if err != nil || c == nil {
		t.Fatalf("Accept = %v, %v; want the connection once descriptors free up", c, err)
	}
	if len(slept) != 20 || slept[0] != 5*time.Millisecond || slept[19] != time.Second {
		t.Fatalf("backoff %v, want 20 waits from 5ms doubling to at most 1s", slept)
	}
	var total time.Duration
	for _, d := range slept {
		total += d
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if max := int(total/time.Second) + 1; len(lines) > max {
		t.Fatalf("%d log lines over %s of failures, want at most one a second (%d):\n%s", len(lines), total, max, out.String())
	}
	suppressed := 0
	for _, line := range lines {
		var rec struct {
			Level      string
			Suppressed int
			Err        string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != "WARN" || !strings.Contains(rec.Err, "too many open files") {
			t.Fatalf("line %q: want a JSON warn naming the error (%v)", line, err)
		}
		suppressed += rec.Suppressed
	}
	if logged := len(lines) + suppressed; logged > 20 || logged < 20-len(lines) {
		t.Fatalf("%d lines + %d suppressed for 20 failures", len(lines), suppressed)
	}
}

// Other Accept errors (a closed listener at shutdown) go back at once.
func TestAcceptOtherErrorsReturn(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newFDListener(raw, slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)))
	raw.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept on a closed listener succeeded")
	}
}
