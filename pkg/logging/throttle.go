package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle bounds the warn lines of one kind (say, refused upgrades over the
// per-address cap): at most burst per window. An event over the bound is
// still logged, once, at debug, so a flood of them fills no log above debug,
// and the next warn line of its kind says how many it stood for
// (KeySuppressed). Kinds must come from a fixed set (reason labels): each
// keeps a little state for the life of the Throttle.
type Throttle struct {
	window time.Duration
	burst  int
	now    func() time.Time

	mu    sync.Mutex
	kinds map[string]*throttled
}

type throttled struct {
	start      time.Time // of the current window
	n          int       // warn lines in it
	suppressed int64     // events since the last warn line that were not warned
}

// NewThrottle allows burst warn lines of each kind per window.
func NewThrottle(window time.Duration, burst int) *Throttle {
	return &Throttle{window: window, burst: max(burst, 1), now: time.Now, kinds: map[string]*throttled{}}
}

// allow reports whether an event of kind may be logged at warn now and, if
// so, how many events of kind were not since the last one that was.
func (t *Throttle) allow(kind string) (bool, int64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.kinds[kind]
	if k == nil {
		k = &throttled{start: now}
		t.kinds[kind] = k
	}
	if now.Sub(k.start) >= t.window {
		k.start, k.n = now, 0
	}
	if k.n >= t.burst {
		k.suppressed++
		return false, 0
	}
	k.n++
	s := k.suppressed
	k.suppressed = 0
	return true, s
}

// Warn logs one line for one event of kind: at warn while kind is within its
// bound (with KeySuppressed when earlier events were not), at debug beyond it.
func (t *Throttle) Warn(log *slog.Logger, kind, msg string, args ...any) {
	ok, suppressed := t.allow(kind)
	if !ok {
		log.Debug(msg, args...)
		return
	}
	if suppressed > 0 {
		args = append(args, KeySuppressed, suppressed)
	}
	log.Log(context.Background(), slog.LevelWarn, msg, args...)
}
