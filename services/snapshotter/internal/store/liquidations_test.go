package store

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestLiquidationsAreStoredOnceAndSelected(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ls := []Liquidation{
		{Symbol: "BTCUSDT", Time: t0, Side: SideLong, Price: 90000, Quantity: 0.5, Notional: 45010},
		{Symbol: "BTCUSDT", Time: t0.Add(time.Second), Side: SideShort, Price: 91000, Quantity: 0.01, Notional: 910},
		{Symbol: "BTCUSDT", Time: t0.Add(10 * time.Minute), Side: SideLong, Price: 89000, Quantity: 2, Notional: 178000},
		{Symbol: "ETHUSDT", Time: t0, Side: SideShort, Price: 3000, Quantity: 3, Notional: 9000},
	}
	before := s.LiquidationVersion("BTCUSDT")
	vBefore := s.Version("BTCUSDT")
	if err := s.UpsertLiquidations(ctx, ls); err != nil {
		t.Fatal(err)
	}
	// A replay of the same events (a reconnect) stores nothing new.
	if err := s.UpsertLiquidations(ctx, append(ls[:2:2], ls[0])); err != nil {
		t.Fatal(err)
	}
	if got := s.LiquidationVersion("BTCUSDT"); got != before+2 {
		t.Errorf("liquidation version moved %d times, want 2", got-before)
	}
	if got := s.Version("BTCUSDT"); got != vBefore {
		t.Errorf("candle version moved (%d → %d): a liquidation must not make the loop recompute candles", vBefore, got)
	}
	c, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Liquidations != 4 {
		t.Fatalf("%d liquidations stored, want 4", c.Liquidations)
	}
	for _, tc := range []struct {
		name string
		q    LiquidationQuery
		want []Liquidation
	}{
		{"all of one symbol", LiquidationQuery{Symbol: "BTCUSDT", From: t0, To: t0.Add(time.Hour)}, ls[:3]},
		{"to is exclusive", LiquidationQuery{Symbol: "BTCUSDT", From: t0, To: t0.Add(10 * time.Minute)}, ls[:2]},
		{"min notional", LiquidationQuery{Symbol: "BTCUSDT", From: t0, To: t0.Add(time.Hour), MinNotional: 1000}, []Liquidation{ls[0], ls[2]}},
		{"limit keeps the oldest", LiquidationQuery{Symbol: "BTCUSDT", From: t0, To: t0.Add(time.Hour), Limit: 1}, ls[:1]},
		{"other symbol", LiquidationQuery{Symbol: "ETHUSDT", From: t0, To: t0.Add(time.Hour)}, ls[3:]},
		{"none", LiquidationQuery{Symbol: "SOLUSDT", From: t0, To: t0.Add(time.Hour)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Liquidations(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d liquidations %+v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("#%d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestLiquidationValidation(t *testing.T) {
	s, _ := openTemp(t)
	ok := Liquidation{Symbol: "BTCUSDT", Time: time.Unix(1_700_000_000, 0), Side: SideLong, Price: 1, Quantity: 1, Notional: 1}
	for _, tc := range []struct {
		name string
		edit func(*Liquidation)
		want string
	}{
		{"no symbol", func(l *Liquidation) { l.Symbol = "" }, "symbol must be set"},
		{"order side", func(l *Liquidation) { l.Side = "SELL" }, `side "SELL"`},
		{"zero price", func(l *Liquidation) { l.Price = 0 }, "price 0"},
		{"NaN quantity", func(l *Liquidation) { l.Quantity = math.NaN() }, "quantity NaN"},
		{"infinite notional", func(l *Liquidation) { l.Notional = math.Inf(1) }, "notional +Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := ok
			tc.edit(&bad)
			err := s.UpsertLiquidations(context.Background(), []Liquidation{ok, bad})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	c, err := s.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Liquidations != 0 {
		t.Fatalf("%d liquidations stored from refused batches, want 0", c.Liquidations)
	}
}
