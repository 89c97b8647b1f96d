package ingest

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// errCrashed is what every write returns once the process has "died".
var errCrashed = errors.New("process killed")

// crashingStore is the store as seen by a process killed after its first
// left writes: those land, none after them does. Every write method counts,
// whichever the poller uses.
type crashingStore struct {
	*store.Store
	mu   sync.Mutex
	left int
}

func (c *crashingStore) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == 0 {
		return false
	}
	c.left--
	return true
}

func (c *crashingStore) Upsert(ctx context.Context, ks []store.Kline, ois []store.OpenInterest) error {
	if !c.alive() {
		return errCrashed
	}
	return c.Store.Upsert(ctx, ks, ois)
}

func (c *crashingStore) UpsertKlines(ctx context.Context, ks []store.Kline) error {
	if !c.alive() {
		return errCrashed
	}
	return c.Store.UpsertKlines(ctx, ks)
}

func (c *crashingStore) UpsertOpenInterest(ctx context.Context, ois []store.OpenInterest) error {
	if !c.alive() {
		return errCrashed
	}
	return c.Store.UpsertOpenInterest(ctx, ois)
}

// TestBinancePollIsOneBatch kills the live source after every possible number
// of writes during a poll that needs several pages of candles and several
// windows of open interest per symbol. Each symbol's poll is one batch: after
// the crash a symbol holds its candles and their open interest together, or
// nothing of that poll; and a restarted source then stores exactly what an
// uninterrupted poll does. Written page by page (the old poller stored each
// klines page and each open-interest window on its own), a crash after the
// first page left candles without open interest.
func TestBinancePollIsOneBatch(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	fake := newFakeBinance()
	fake.market("BTCUSDT", now.Add(-48*time.Hour), now, 90000)
	fake.market("ETHUSDT", now.Add(-48*time.Hour), now, 3000)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	symbols := []string{"BTCUSDT", "ETHUSDT"}
	const n = 289 // 24h of 5m candles and observations, both ends included
	cfg := func() BinanceConfig {
		// 100 a page: three klines requests and three open-interest windows
		// per symbol.
		return BinanceConfig{BaseURL: srv.URL, Symbols: symbols, Lookback: 24 * time.Hour,
			KlineLimit: 100, OILimit: 100, Clock: newFakeClock(t, now)}
	}

	// The reference: one uninterrupted poll.
	clean, cleanDB := openStore(t)
	b, err := NewBinance(cfg(), clean, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.poll(ctx)
	want := map[string]fingerprint{}
	for _, sym := range symbols {
		want[sym] = fingerprintOf(t, cleanDB, sym)
		if want[sym].klines != n || want[sym].oi != n {
			t.Fatalf("uninterrupted poll stored %d candles and %d observations of %s, want %d of each", want[sym].klines, want[sym].oi, sym, n)
		}
	}

	// Old code: 6 writes per symbol; new code: 1. Crash after each of 0..12.
	for writes := 0; writes <= 12; writes++ {
		st, db := openStore(t)
		b, err := NewBinance(cfg(), &crashingStore{Store: st, left: writes}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.poll(ctx)
		for _, sym := range symbols {
			got := fingerprintOf(t, db, sym)
			if got.klines != got.oi || (got.klines != 0 && got != want[sym]) {
				t.Fatalf("killed after %d writes: %s holds %d candles and %d observations; want none or the whole poll (%d of each)",
					writes, sym, got.klines, got.oi, n)
			}
		}
		// Restarted on the same store, the source completes what the killed
		// one left.
		b, err = NewBinance(cfg(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.poll(ctx)
		for _, sym := range symbols {
			if got := fingerprintOf(t, db, sym); got != want[sym] {
				t.Fatalf("killed after %d writes, then restarted: %s holds %+v, an uninterrupted poll %+v", writes, sym, got, want[sym])
			}
		}
	}
}
