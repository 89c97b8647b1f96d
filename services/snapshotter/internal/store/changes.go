package store

import (
	"sync"
	"time"
)

// Span is the range of times a write touched: candle open times and OI
// timestamps, both inclusive.
type Span struct{ Min, Max time.Time }

func (s Span) widen(t time.Time) Span {
	if s.Min.IsZero() || t.Before(s.Min) {
		s.Min = t
	}
	if s.Max.IsZero() || t.After(s.Max) {
		s.Max = t
	}
	return s
}

// Overlaps reports whether the span touches [from, to).
func (s Span) Overlaps(from, to time.Time) bool {
	return !s.Min.IsZero() && s.Min.Before(to) && !s.Max.Before(from)
}

// changeLogSize bounds the memory of the change log per symbol; a reader
// further behind than this sees its question answered as "everything changed".
const changeLogSize = 4096

type change struct {
	version uint64
	span    Span
}

// changeLog remembers, per symbol, which times each write touched, so readers
// can tell whether a window they computed is still valid and whether only the
// open candle moved. Because the snapshotter is the file's only writer, an
// in-memory log is exact.
type changeLog struct {
	mu  sync.Mutex
	log map[string][]change
	ver map[string]uint64
}

func newChangeLog() *changeLog {
	return &changeLog{log: map[string][]change{}, ver: map[string]uint64{}}
}

func (c *changeLog) record(spans map[string]Span) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sym, sp := range spans {
		c.ver[sym]++
		l := append(c.log[sym], change{c.ver[sym], sp})
		if len(l) > changeLogSize {
			l = append(l[:0:0], l[len(l)-changeLogSize/2:]...)
		}
		c.log[sym] = l
	}
}

func (c *changeLog) version(sym string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ver[sym]
}

// since returns the union of spans written after version and the current
// version. complete is false when the log no longer reaches back to version.
func (c *changeLog) since(sym string, version uint64) (sp Span, now uint64, complete bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now = c.ver[sym]
	if version >= now {
		return Span{}, now, true
	}
	l := c.log[sym]
	if len(l) == 0 || l[0].version > version+1 {
		return Span{}, now, false
	}
	for _, ch := range l {
		if ch.version > version {
			sp = sp.widen(ch.span.Min).widen(ch.span.Max)
		}
	}
	return sp, now, true
}

// Version is a counter that moves whenever rows of symbol are written through
// this Store.
func (s *Store) Version(symbol string) uint64 { return s.changes.version(symbol) }

// ChangedSince returns the times touched by writes of symbol after version,
// and the current version. complete is false when that history is no longer
// kept; callers must then assume anything may have changed.
func (s *Store) ChangedSince(symbol string, version uint64) (span Span, current uint64, complete bool) {
	return s.changes.since(symbol, version)
}
