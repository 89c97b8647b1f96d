// Package logging builds the JSON slog logger every liqstream process uses:
// one event per line on stderr, so log shippers need no parsing rules.
//
// Every line carries instance and service. The other keys below mean the
// same thing on every line that has them; call sites use the constants, so a
// key is never spelt two ways (err, never error; duration_ms, never took).
// docs/OPERATIONS.md ("Logs") documents them and the levels policy.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// The fixed keys.
const (
	KeyService    = "service"     // the process: gateway or snapshotter
	KeyInstance   = "instance"    // which process of that service: instance_id, default host:pid
	KeySymbol     = "symbol"      // one symbol, e.g. BTCUSDT (a list is "symbols")
	KeyConnID     = "conn_id"     // one WebSocket connection, unique within its instance
	KeyReason     = "reason"      // why something closed, failed, was refused or dropped: a fixed label
	KeyDurationMS = "duration_ms" // how long the event took, in milliseconds (a float)
	KeyErr        = "err"         // the error's text
)

// KeySuppressed counts the lines of the same kind that a Throttle logged at
// debug instead of warn since its previous warn line.
const KeySuppressed = "suppressed"

// New returns a JSON logger at level ("debug", "info", "warn" or "error")
// whose every line carries instance (DefaultInstance when empty) and service.
// instance comes first: lines read "instance":…,"service":…, then the event's
// own keys.
func New(w io.Writer, level, service, instance string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(level))); err != nil {
		return nil, fmt.Errorf("log_level: want debug, info, warn or error, got %q", level)
	}
	if instance == "" {
		instance = DefaultInstance()
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(h).With(KeyInstance, instance, KeyService, service), nil
}

// DefaultInstance names a process that was given no instance_id: host:pid.
func DefaultInstance() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// DurationMS is d as the duration_ms attribute: milliseconds, to the microsecond.
func DurationMS(d time.Duration) slog.Attr {
	return slog.Float64(KeyDurationMS, float64(d.Microseconds())/1000)
}

// Every calls f every interval until ctx ends, then once more: a periodic
// summary line then also covers the last part of its period.
func Every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f()
			return
		case <-t.C:
			f()
		}
	}
}
