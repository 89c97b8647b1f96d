package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultGapCandles is how many candles in a row may lack open interest
// before DataGaps reports them: one hour of 5m candles. Binance's open
// interest comes every 5 minutes and now and then a few arrive late or not
// at all; a run longer than this is missing data, not jitter.
const DefaultGapCandles = 12

// Kinds of DataGap.
const (
	// GapNoOpenInterest: the symbol has candles and no open interest at all,
	// so every heatmap of it is empty.
	GapNoOpenInterest = "no_open_interest"
	// GapOpenInterestStale: the newest open interest is older than the
	// newest candle by more than the allowed run of candles, so the live
	// heatmap is built without it.
	GapOpenInterestStale = "open_interest_stale"
	// GapOpenInterestHole: inside the checked window, a run of candles longer
	// than the allowed one has no open interest although later candles do.
	GapOpenInterestHole = "open_interest_gap"
)

// DataGap is a stretch of a symbol's data the heatmap cannot be built from.
type DataGap struct {
	Symbol string
	// Table is the table whose rows are missing (open_interest for every
	// kind so far).
	Table string
	Kind  string
	// Since is when the missing data starts: the first candle for
	// GapNoOpenInterest, the newest open-interest observation for
	// GapOpenInterestStale, the first candle without any for
	// GapOpenInterestHole.
	Since time.Time
	// Until is the open time of the last candle without open interest.
	Until time.Time
	// Candles is how many candles at the checked interval lack it.
	Candles int64
}

// DataGaps returns, per symbol with candles at interval, the gaps in its open
// interest that leave its heatmap empty or wrong, by symbol then Since:
//
//   - candles and no open interest at all (GapNoOpenInterest);
//   - more than maxCandles candles after the one holding the newest open
//     interest (GapOpenInterestStale);
//   - among the candles opening at or after from, more than maxCandles in a
//     row without open interest, followed by open interest again
//     (GapOpenInterestHole).
//
// A candle has open interest when an observation falls inside it, as in
// Candles. maxCandles below 1 means DefaultGapCandles. Only interval's own
// candles are read: it is the one the heatmap is computed on.
func (s *Store) DataGaps(ctx context.Context, interval string, from time.Time, maxCandles int) ([]DataGap, error) {
	step, err := IntervalDuration(interval)
	if err != nil {
		return nil, fmt.Errorf("data gaps: %w", err)
	}
	if maxCandles < 1 {
		maxCandles = DefaultGapCandles
	}
	var out []DataGap
	lastOI := map[string]time.Time{}

	rows, err := s.db.QueryContext(ctx, `
		WITH k AS (
			SELECT symbol, min(open_time) AS first_k, max(open_time) AS last_k, count(*) AS n
			FROM klines WHERE interval = $1 GROUP BY symbol
		), o AS (
			SELECT symbol, max(ts) AS last_oi FROM open_interest GROUP BY symbol
		)
		SELECT k.symbol, k.first_k, k.last_k, k.n, o.last_oi,
			(SELECT count(*) FROM klines x WHERE x.symbol = k.symbol AND x.interval = $1
				AND x.open_time > make_timestamp((epoch_us(o.last_oi) // $2) * $2))
		FROM k LEFT JOIN o ON o.symbol = k.symbol
		ORDER BY k.symbol`, interval, step.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("data gaps %s: %w", interval, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sym           string
			firstK, lastK time.Time
			n, after      int64
			oi            sql.NullTime
		)
		if err := rows.Scan(&sym, &firstK, &lastK, &n, &oi, &after); err != nil {
			return nil, fmt.Errorf("data gaps %s: scan: %w", interval, err)
		}
		firstK, lastK = firstK.UTC(), lastK.UTC()
		switch {
		case !oi.Valid:
			out = append(out, DataGap{Symbol: sym, Table: "open_interest", Kind: GapNoOpenInterest, Since: firstK, Until: lastK, Candles: n})
		case after > int64(maxCandles):
			out = append(out, DataGap{Symbol: sym, Table: "open_interest", Kind: GapOpenInterestStale, Since: oi.Time.UTC(), Until: lastK, Candles: after})
			lastOI[sym] = oi.Time.UTC()
		default:
			lastOI[sym] = oi.Time.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("data gaps %s: %w", interval, err)
	}
	rows.Close()

	holes, err := s.oiHoles(ctx, interval, step, from, maxCandles)
	if err != nil {
		return nil, err
	}
	for _, h := range holes {
		// Only runs with open interest after them: a symbol without any is
		// reported above, and so is the run at the end of a stale one.
		if last, ok := lastOI[h.Symbol]; ok && h.Until.Before(last) {
			out = append(out, h)
		}
	}
	sortGaps(out)
	return out, nil
}

// oiHoles returns the runs of more than maxCandles candles at interval, from
// from on, without open interest.
func (s *Store) oiHoles(ctx context.Context, interval string, step time.Duration, from time.Time, maxCandles int) ([]DataGap, error) {
	rows, err := s.db.QueryContext(ctx, `
		WITH k AS (
			SELECT symbol, open_time FROM klines WHERE interval = $1 AND open_time >= $2
		), o AS (
			SELECT DISTINCT symbol, make_timestamp((epoch_us(ts) // $3) * $3) AS b
			FROM open_interest WHERE ts >= $2
		), m AS (
			SELECT k.symbol, k.open_time, o.b IS NOT NULL AS has
			FROM k LEFT JOIN o ON o.symbol = k.symbol AND o.b = k.open_time
		), r AS (
			SELECT symbol, open_time, has,
				row_number() OVER (PARTITION BY symbol ORDER BY open_time)
				- row_number() OVER (PARTITION BY symbol, has ORDER BY open_time) AS grp
			FROM m
		)
		SELECT symbol, min(open_time), max(open_time), count(*)
		FROM r WHERE NOT has
		GROUP BY symbol, grp HAVING count(*) > $4
		ORDER BY symbol, 2`, interval, from.UTC(), step.Microseconds(), maxCandles)
	if err != nil {
		return nil, fmt.Errorf("data gaps %s: open-interest holes: %w", interval, err)
	}
	defer rows.Close()
	var out []DataGap
	for rows.Next() {
		g := DataGap{Table: "open_interest", Kind: GapOpenInterestHole}
		if err := rows.Scan(&g.Symbol, &g.Since, &g.Until, &g.Candles); err != nil {
			return nil, fmt.Errorf("data gaps %s: open-interest holes: scan: %w", interval, err)
		}
		g.Since, g.Until = g.Since.UTC(), g.Until.UTC()
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("data gaps %s: open-interest holes: %w", interval, err)
	}
	return out, nil
}

func sortGaps(gs []DataGap) {
	slices.SortStableFunc(gs, func(a, b DataGap) int {
		if c := strings.Compare(a.Symbol, b.Symbol); c != 0 {
			return c
		}
		return a.Since.Compare(b.Since)
	})
}
