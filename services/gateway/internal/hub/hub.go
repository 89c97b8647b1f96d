// Package hub maps symbols to the local connections subscribed to them and
// fans each encoded frame out to them. It never decodes a frame.
package hub

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Subscriber is one connection's delivery end. Send must not block: the hub
// calls it while fanning out to everyone else. The frame is valid during the
// call; a subscriber that keeps it must Retain it.
type Subscriber interface {
	Send(f *Frame)
}

// UnknownSymbolsError names the symbols a subscribe asked for that are not served.
type UnknownSymbolsError struct {
	Unknown []string
	Valid   []string
}

func (e *UnknownSymbolsError) Error() string {
	return fmt.Sprintf("unknown symbol(s) %s; valid symbols: %s", strings.Join(e.Unknown, ", "), strings.Join(e.Valid, ", "))
}

// Hub is safe for concurrent use.
type Hub struct {
	mu      sync.RWMutex
	symbols []string // sorted
	latest  map[string]*Frame
	order   map[string]uint64
	// subs is the only index of subscriptions: a per-subscriber one would cost
	// every connection a map, and the few served symbols are cheap to scan.
	subs map[string]map[Subscriber]struct{}
}

// New returns a hub serving symbols.
func New(symbols []string) *Hub {
	h := &Hub{latest: map[string]*Frame{}, order: map[string]uint64{},
		subs: map[string]map[Subscriber]struct{}{}}
	h.SetSymbols(symbols)
	return h
}

// SetSymbols replaces the set of symbols clients may subscribe to. A symbol
// no longer served loses its subscribers and its latest frame; the result
// names, per subscriber, the symbols it lost, so they can be told.
func (h *Hub) SetSymbols(symbols []string) map[Subscriber][]string {
	s := slices.Clone(symbols)
	sort.Strings(s)
	s = slices.Compact(s)
	h.mu.Lock()
	var gone []*Frame
	lost := map[Subscriber][]string{}
	for _, sym := range h.symbols {
		if _, ok := slices.BinarySearch(s, sym); ok {
			continue
		}
		for sub := range h.subs[sym] {
			lost[sub] = append(lost[sub], sym)
			h.drop(sub, sym)
		}
		if f := h.latest[sym]; f != nil {
			gone = append(gone, f)
			delete(h.latest, sym)
		}
	}
	h.symbols = s
	h.mu.Unlock()
	for _, f := range gone {
		f.Release()
	}
	return lost
}

// Known reports whether the hub has a symbol list yet: before that it cannot
// tell an unknown symbol from one it has not heard of.
func (h *Hub) Known() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.symbols) > 0
}

// Symbols returns the served symbols, sorted.
func (h *Hub) Symbols() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]string{}, h.symbols...)
}

// Publish records payload as symbol's newest frame and hands it to every
// subscriber; it returns how many subscribers it reached. A frame of a symbol
// outside the served list (one just removed, still in flight) is dropped.
func (h *Hub) Publish(symbol string, payload []byte) int {
	return h.PublishDelta(symbol, payload, nil)
}

// PublishDelta is Publish of a frame that comes with the delta frame to it
// (nil: none), which subscribers that asked for deltas get instead when it
// follows the last frame they were sent.
func (h *Hub) PublishDelta(symbol string, payload, delta []byte) int {
	f := NewFrameDelta(symbol, payload, delta)
	f.Retain() // the hub's reference as the latest frame
	h.mu.Lock()
	if _, ok := slices.BinarySearch(h.symbols, symbol); !ok {
		h.mu.Unlock()
		f.Release()
		f.Release()
		return 0
	}
	h.order[symbol]++
	f.Order = h.order[symbol]
	old := h.latest[symbol]
	h.latest[symbol] = f
	subs := make([]Subscriber, 0, len(h.subs[symbol]))
	for s := range h.subs[symbol] {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	if old != nil {
		old.Release()
	}
	for _, s := range subs {
		s.Send(f)
	}
	f.Release()
	return len(subs)
}

// Latest returns the newest frame of symbol.
func (h *Hub) Latest(symbol string) ([]byte, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	f, ok := h.latest[symbol]
	if !ok {
		return nil, false
	}
	return f.Bytes, true
}

// Subscribe adds s to every symbol in symbols and returns each one's newest
// frame, retained for the caller, who sends them at once and releases them.
// It is all or nothing: one unknown symbol, or going over maxPerConn symbols
// in all, refuses the whole request.
func (h *Hub) Subscribe(s Subscriber, symbols []string, maxPerConn int) ([]*Frame, error) {
	h.mu.Lock()
	var unknown []string
	for _, sym := range symbols {
		if _, ok := slices.BinarySearch(h.symbols, sym); !ok {
			unknown = append(unknown, sym)
		}
	}
	if len(unknown) > 0 {
		err := &UnknownSymbolsError{Unknown: unknown, Valid: slices.Clone(h.symbols)}
		h.mu.Unlock()
		return nil, err
	}
	n := 0
	for _, m := range h.subs {
		if _, ok := m[s]; ok {
			n++
		}
	}
	for _, sym := range symbols {
		if _, ok := h.subs[sym][s]; !ok {
			n++
		}
	}
	if n > maxPerConn {
		h.mu.Unlock()
		return nil, fmt.Errorf("at most %d symbols per connection; this subscribe would make %d", maxPerConn, n)
	}
	var latest []*Frame
	for _, sym := range symbols {
		if h.subs[sym] == nil {
			h.subs[sym] = map[Subscriber]struct{}{}
		}
		h.subs[sym][s] = struct{}{}
		if f, ok := h.latest[sym]; ok {
			f.Retain() // a Publish may replace it as latest before the caller sends it
			latest = append(latest, f)
		}
	}
	h.mu.Unlock()
	return latest, nil
}

// Unsubscribe removes s from symbols; symbols it did not hold are ignored.
func (h *Hub) Unsubscribe(s Subscriber, symbols []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sym := range symbols {
		h.drop(s, sym)
	}
}

// Remove forgets s entirely, e.g. when its connection closes.
func (h *Hub) Remove(s Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sym := range h.subs {
		h.drop(s, sym)
	}
}

func (h *Hub) drop(s Subscriber, sym string) {
	delete(h.subs[sym], s)
	if len(h.subs[sym]) == 0 {
		delete(h.subs, sym)
	}
}

// Subscriptions returns how many connections hold each symbol.
func (h *Hub) Subscriptions() map[string]int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string]int, len(h.subs))
	for sym, m := range h.subs {
		out[sym] = len(m)
	}
	return out
}
