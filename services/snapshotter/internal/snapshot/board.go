package snapshot

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Frame is one encoded snapshot frame of a symbol, ready to send as it is.
type Frame struct {
	Symbol   string
	Seq      uint64
	Produced time.Time
	Bytes    []byte
	// Delta is the delta frame from frame Seq-1 to this one (same epoch),
	// nil for a first frame or when it would be no smaller than Bytes.
	Delta []byte
}

// Board holds the newest frame of every symbol and wakes whoever waits for a newer one.
type Board struct {
	// epoch tells frames of this process from those of an earlier run, whose
	// seq numbers restarted; it is part of every ETag.
	epoch string

	mu      sync.Mutex
	latest  map[string]Frame
	changed map[string]chan struct{}
}

// NewBoard returns an empty board whose ETags carry the given epoch.
func NewBoard(epoch string) *Board {
	return &Board{epoch: epoch, latest: map[string]Frame{}, changed: map[string]chan struct{}{}}
}

// Publish makes f the newest frame of its symbol.
func (b *Board) Publish(_ context.Context, f Frame) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latest[f.Symbol] = f
	if ch, ok := b.changed[f.Symbol]; ok {
		close(ch)
		delete(b.changed, f.Symbol)
	}
	return nil
}

// Latest returns the newest frame of symbol.
func (b *Board) Latest(symbol string) (Frame, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.latest[symbol]
	return f, ok
}

// ETag names f for conditional and long-poll requests.
func (b *Board) ETag(f Frame) string { return fmt.Sprintf(`"%s-%d"`, b.epoch, f.Seq) }

// Wait returns the newest frame of symbol as soon as its ETag differs from
// etag (at once if it already does). ok is false if ctx ends first.
func (b *Board) Wait(ctx context.Context, symbol, etag string) (Frame, bool) {
	for {
		b.mu.Lock()
		f, have := b.latest[symbol]
		if have && b.ETag(f) != etag {
			b.mu.Unlock()
			return f, true
		}
		ch, ok := b.changed[symbol]
		if !ok {
			ch = make(chan struct{})
			b.changed[symbol] = ch
		}
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Frame{}, false
		}
	}
}
