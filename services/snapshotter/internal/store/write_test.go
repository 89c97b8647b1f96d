package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func seedRows(sym string, n int) ([]Kline, []OpenInterest) {
	ks := make([]Kline, n)
	ois := make([]OpenInterest, n)
	for i := range n {
		ks[i] = kl(sym, i, 100, 101, 99, 100.5)
		ois[i] = OpenInterest{Symbol: sym, TS: ks[i].OpenTime, OpenInterest: 10, OpenInterestValue: 1000}
	}
	return ks, ois
}

func setHook(t *testing.T, h func(string) error) {
	t.Cleanup(func() { testHook = nil })
	testHook = h
}

// A write that fails between the candles and the open interest — a crash
// there — leaves neither: the demo seed of one symbol is all or nothing.
func TestUpsertFailingBetweenTablesWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ks, ois := seedRows("BTCUSDT", 50)
	boom := errors.New("crash after klines")
	setHook(t, func(step string) error {
		if step == "klines" {
			return boom
		}
		return nil
	})
	if err := s.Upsert(ctx, ks, ois); !errors.Is(err, boom) {
		t.Fatalf("Upsert = %v, want the injected failure", err)
	}
	if c, err := s.Count(ctx); err != nil || c.Klines != 0 || c.OpenInterest != 0 {
		t.Fatalf("after a failed write: %+v %v, want nothing", c, err)
	}
	if v := s.Version("BTCUSDT"); v != 0 {
		t.Fatalf("change log recorded a write that did not happen: version %d", v)
	}
	testHook = nil
	if err := s.Upsert(ctx, ks, ois); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Count(ctx); c.Klines != 50 || c.OpenInterest != 50 {
		t.Fatalf("after the retry: %+v", c)
	}
}

// A context cancelled mid-transaction, after the candles merged, rolls them back.
func TestUpsertCancelledMidTransactionWritesNothing(t *testing.T) {
	s, _ := openTemp(t)
	ks, ois := seedRows("ETHUSDT", 50)
	ctx, cancel := context.WithCancel(context.Background())
	setHook(t, func(step string) error {
		if step == "klines" {
			cancel()
		}
		return nil
	})
	if err := s.Upsert(ctx, ks, ois); err == nil {
		t.Fatal("Upsert with a context cancelled mid-way succeeded")
	}
	if c, err := s.Count(context.Background()); err != nil || c.Klines != 0 || c.OpenInterest != 0 {
		t.Fatalf("after a cancelled write: %+v %v, want nothing", c, err)
	}
	// The connection went back to the pool usable, not stuck in a transaction.
	testHook = nil
	for range 3 {
		if err := s.Upsert(context.Background(), ks, ois); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := s.Count(context.Background()); c.Klines != 50 || c.OpenInterest != 50 {
		t.Fatalf("after the retry: %+v", c)
	}
}

// An invalid row anywhere in either table rejects the whole write.
func TestUpsertInvalidOpenInterestRejectsCandlesToo(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ks, ois := seedRows("BTCUSDT", 5)
	ois[3].OpenInterest = -1
	if err := s.Upsert(ctx, ks, ois); err == nil {
		t.Fatal("invalid open interest accepted")
	}
	if c, _ := s.Count(ctx); c.Klines != 0 || c.OpenInterest != 0 {
		t.Fatalf("%+v, want nothing", c)
	}
}

// ReplaceKlines swaps one series whole; interrupted, it leaves the old one.
func TestReplaceKlinesAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	old, _ := seedRows("BTCUSDT", 30)
	other, otherOI := seedRows("ETHUSDT", 7)
	if err := s.Upsert(ctx, append(old, other...), otherOI); err != nil {
		t.Fatal(err)
	}
	ks, ois := seedRows("BTCUSDT", 20)
	for i := range ks {
		ks[i].OpenTime = ks[i].OpenTime.Add(time.Hour * 24)
		ois[i].TS = ks[i].OpenTime
	}
	for _, step := range []string{"delete", "klines", "open_interest"} {
		setHook(t, func(s string) error {
			if s == step {
				return errors.New("crash at " + step)
			}
			return nil
		})
		if err := s.ReplaceKlines(ctx, "BTCUSDT", "5m", ks, ois); err == nil {
			t.Fatalf("failure at %s not reported", step)
		}
		if _, _, n, _ := s.DateRange(ctx, "BTCUSDT", "5m"); n != 30 {
			t.Fatalf("failure at %s: %d BTCUSDT candles, want the old 30", step, n)
		}
		if c, _ := s.Count(ctx); c.OpenInterest != 7 {
			t.Fatalf("failure at %s: %d OI rows, want 7", step, c.OpenInterest)
		}
	}
	testHook = nil
	if err := s.ReplaceKlines(ctx, "BTCUSDT", "5m", ks, ois); err != nil {
		t.Fatal(err)
	}
	first, _, n, _ := s.DateRange(ctx, "BTCUSDT", "5m")
	if n != 20 || !first.Equal(ks[0].OpenTime) {
		t.Fatalf("after replace: %d candles from %s", n, first)
	}
	if _, _, n, _ := s.DateRange(ctx, "ETHUSDT", "5m"); n != 7 {
		t.Fatalf("replace touched another symbol: %d ETHUSDT candles", n)
	}
	if c, _ := s.Count(ctx); c.OpenInterest != 27 {
		t.Fatalf("%d OI rows, want 27", c.OpenInterest)
	}
	if err := s.ReplaceKlines(ctx, "BTCUSDT", "5m", other, nil); err == nil {
		t.Fatal("ReplaceKlines accepted candles of another symbol")
	}
}

// The stream's flush and the poller's backfill both write the open candle;
// DuckDB refuses the second of two transactions that update one row at once
// ("Conflict on update"), which the store counted as a write failure, logged
// at warn and retried after 200 ms. Writers of this process must not
// conflict with each other.
func TestConcurrentWritersOfOneCandleDoNotConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	var waits []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	const writers, rounds = 2, 100
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for i := 0; i < rounds && err == nil; i++ {
				// The same open candle, moving, plus a closed one before it.
				err = s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 101, 99, 100), kl("BTCUSDT", 1, 100, 102+float64(w), 99, 99+float64(i%3))})
			}
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.WriteErrors(OpUpsert); n != 0 {
		t.Fatalf("%d failed write attempts between two writers of this process (retries waited %v)", n, waits)
	}
}
