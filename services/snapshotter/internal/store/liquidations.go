package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"iter"
	"math"
	"strconv"
	"sync"
	"time"
)

// Liquidation sides: the side of the position the exchange closed.
const (
	SideLong  = "long"
	SideShort = "short"
)

// Liquidation is one realised liquidation: the exchange closing a position.
// The same event seen twice (a reconnect replaying it) is one row, keyed by
// (symbol, time, side, price, quantity).
type Liquidation struct {
	Symbol   string
	Time     time.Time
	Side     string  // SideLong or SideShort: the position liquidated
	Price    float64 // the order's price
	Quantity float64 // filled, in the base asset
	Notional float64 // filled quantity at the average fill price, USDT
}

// Validate rejects a liquidation that cannot have happened, naming the field.
func (l Liquidation) Validate() error {
	at := l.Time.UTC().Format(time.RFC3339Nano)
	if l.Symbol == "" {
		return fmt.Errorf("liquidation at %s: symbol must be set", at)
	}
	if l.Side != SideLong && l.Side != SideShort {
		return fmt.Errorf("liquidation %s %s: side %q, want %q or %q", l.Symbol, at, l.Side, SideLong, SideShort)
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"price", l.Price}, {"quantity", l.Quantity}, {"notional", l.Notional}} {
		if !(f.v > 0) || math.IsInf(f.v, 1) {
			return fmt.Errorf("liquidation %s %s: %s %g must be finite and above 0", l.Symbol, at, f.name, f.v)
		}
	}
	return nil
}

// UpsertLiquidations stores ls in one transaction, each once however often
// it is written. Unlike candles they move no heatmap level: they bump
// LiquidationVersion, not Version.
func (s *Store) UpsertLiquidations(ctx context.Context, ls []Liquidation) error {
	return s.write(ctx, nil, batch{liqs: ls})
}

// UpsertAll stores candles, open interest and liquidations in one
// transaction.
func (s *Store) UpsertAll(ctx context.Context, ks []Kline, ois []OpenInterest, ls []Liquidation) error {
	return s.write(ctx, nil, batch{ks: ks, ois: ois, liqs: ls})
}

// LiquidationVersion is a counter that moves whenever liquidations of symbol
// are written through this Store.
func (s *Store) LiquidationVersion(symbol string) uint64 { return s.liqVer.get(symbol) }

// LiquidationQuery selects liquidations of one symbol.
type LiquidationQuery struct {
	Symbol      string
	From, To    time.Time // [From, To)
	MinNotional float64   // only those of at least this notional
	Limit       int       // at most this many, oldest first; 0: no limit
}

// Liquidations returns the liquidations q selects, oldest first.
func (s *Store) Liquidations(ctx context.Context, q LiquidationQuery) ([]Liquidation, error) {
	query := `SELECT ts, side, price, quantity, notional FROM liquidations
		WHERE symbol = ? AND ts >= ? AND ts < ? AND notional >= ? ORDER BY ts, side, price, quantity`
	args := []any{q.Symbol, q.From.UTC(), q.To.UTC(), q.MinNotional}
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("liquidations %s: %w", q.Symbol, err)
	}
	defer rows.Close()
	var out []Liquidation
	for rows.Next() {
		l := Liquidation{Symbol: q.Symbol}
		if err := rows.Scan(&l.Time, &l.Side, &l.Price, &l.Quantity, &l.Notional); err != nil {
			return nil, fmt.Errorf("liquidations %s: %w", q.Symbol, err)
		}
		l.Time = l.Time.UTC()
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("liquidations %s: %w", q.Symbol, err)
	}
	return out, nil
}

// liquidationRows is klineRows for liquidations, keyed as the table is.
func liquidationRows(ls []Liquidation) ([][]driver.Value, map[string]Span, error) {
	return dedupRows(ls, func(l Liquidation) (string, string, time.Time, []driver.Value) {
		at := l.Time.UTC()
		key := at.String() + "\x00" + l.Side + "\x00" + strconv.FormatFloat(l.Price, 'g', -1, 64) +
			"\x00" + strconv.FormatFloat(l.Quantity, 'g', -1, 64)
		return l.Symbol, key, at, []driver.Value{l.Symbol, at, l.Side, l.Price, l.Quantity, l.Notional}
	})
}

// versions is a counter per symbol.
type versions struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (v *versions) bump(touched map[string]Span) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for sym := range touched {
		v.m[sym]++
	}
}

func (v *versions) get(sym string) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[sym]
}

// ImportLiquidations stores the liquidations of one archive file in one
// transaction, each once however often it is imported. A day holds
// thousands at most, so they are gathered and written as one upsert.
func (s *Store) ImportLiquidations(ctx context.Context, rows iter.Seq2[Liquidation, error]) (int, error) {
	var ls []Liquidation
	for l, err := range rows {
		if err != nil {
			return 0, err
		}
		ls = append(ls, l)
	}
	if err := s.UpsertLiquidations(ctx, ls); err != nil {
		return 0, err
	}
	return len(ls), nil
}
