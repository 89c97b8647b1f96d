package ingest

import (
	"context"
	"time"
)

// Binance's per-IP REST limits that the poller's requests count against:
// request weight per minute (klines weigh 1 to 10 by limit), and
// openInterestHist requests per 5 minutes, limited on their own.
const (
	BinanceWeightPerMinute = 2400
	BinanceOIPer5Minutes   = 1000
)

// budget is a token bucket on the source's clock: take waits until n
// tokens are there. It starts full, so a caught-up poller never waits;
// a first backfill of many symbols is paced instead of answered with 429s.
type budget struct {
	clk    Clock
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBudget(clk Clock, per time.Duration, n int) *budget {
	return &budget{clk: clk, rate: float64(n) / per.Seconds(), burst: float64(n), tokens: float64(n), last: clk.Now()}
}

// take reserves n tokens and waits until the reservation is covered; it
// returns how long it waited, or ctx's error.
func (b *budget) take(ctx context.Context, n int) (time.Duration, error) {
	now := b.clk.Now()
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0, nil
	}
	wait := time.Duration(-b.tokens / b.rate * float64(time.Second))
	select {
	case <-ctx.Done():
		b.tokens += float64(n) // not spent
		return 0, ctx.Err()
	case <-b.clk.After(wait):
		return wait, nil
	}
}

// klineWeight is Binance's weight of a klines request by its limit.
func klineWeight(limit int) int {
	switch {
	case limit < 100:
		return 1
	case limit < 500:
		return 2
	case limit <= 1000:
		return 5
	}
	return 10
}
