package serve

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// fdListener keeps a server serving the connections it has when the process
// runs out of file descriptors: Accept waits with backoff (5 ms doubling to
// 1 s) until descriptors free up instead of handing the error to
// net/http, whose own retries log a plain-text line each time, and logs at
// most one warn line a second, counting the failures in between.
type fdListener struct {
	net.Listener
	log   *slog.Logger
	now   func() time.Time
	sleep func(time.Duration)

	lastLog    time.Time
	suppressed int
}

func newFDListener(ln net.Listener, log *slog.Logger) *fdListener {
	return &fdListener{Listener: ln, log: log, now: time.Now, sleep: time.Sleep}
}

// Accept implements net.Listener. http.Server calls it from one goroutine.
func (l *fdListener) Accept() (net.Conn, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil || !outOfFDs(err) {
			return c, err
		}
		if now := l.now(); now.Sub(l.lastLog) >= time.Second {
			l.log.Warn("out of file descriptors: not accepting new connections until some close; open ones are still served",
				"err", err.Error(), "suppressed", l.suppressed, "addr", l.Addr().String())
			l.lastLog, l.suppressed = now, 0
		} else {
			l.suppressed++
		}
		l.sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

func outOfFDs(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
