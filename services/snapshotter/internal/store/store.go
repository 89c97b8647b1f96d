// Package store is liqstream's DuckDB file of candles and open interest. It is
// the only package in the system that imports DuckDB: the snapshotter is the
// file's single writer process.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/liqstream/liqstream/pkg/heatmap"
	"github.com/liqstream/liqstream/pkg/logging"
)

const schema = `
CREATE TABLE IF NOT EXISTS klines (
	symbol    VARCHAR   NOT NULL,
	interval  VARCHAR   NOT NULL,
	open_time TIMESTAMP NOT NULL,
	open      DOUBLE    NOT NULL,
	high      DOUBLE    NOT NULL,
	low       DOUBLE    NOT NULL,
	close     DOUBLE    NOT NULL,
	volume    DOUBLE    NOT NULL,
	PRIMARY KEY (symbol, interval, open_time)
);
CREATE TABLE IF NOT EXISTS open_interest (
	symbol              VARCHAR   NOT NULL,
	ts                  TIMESTAMP NOT NULL,
	open_interest       DOUBLE    NOT NULL,
	open_interest_value DOUBLE    NOT NULL,
	PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS liquidations (
	symbol   VARCHAR   NOT NULL,
	ts       TIMESTAMP NOT NULL,
	side     VARCHAR   NOT NULL,
	price    DOUBLE    NOT NULL,
	quantity DOUBLE    NOT NULL,
	notional DOUBLE    NOT NULL,
	PRIMARY KEY (symbol, ts, side, price, quantity)
);`

// Store is an open DuckDB file. Its methods are safe for concurrent use.
type Store struct {
	db    *sql.DB
	path  string
	oiGap heatmap.OIGap

	changes *changeLog
	// liqVer counts liquidation writes per symbol, apart from changes:
	// a liquidation moves no candle, so it must not make the loop rebuild.
	liqVer *versions

	log      *slog.Logger
	throttle *logging.Throttle
	// backoff is the wait before each retry of a failed write; sleep waits
	// (tests record the waits instead).
	backoff []time.Duration
	sleep   func(context.Context, time.Duration) error
	// writeErrs counts failed write attempts by op (WriteOps), fixed at Open.
	writeErrs map[string]*atomic.Uint64

	// writeMu lets one write of this process at a time into the tables:
	// DuckDB refuses the second of two transactions that change one row
	// ("Conflict on update"), and the stream's flush, the poller's backfill
	// and an import all write the open candle. Waiting for a write of a few
	// ms is cheaper than failing and retrying after 200 ms.
	writeMu sync.Mutex

	invalidOnce sync.Once
	invalid     chan struct{}
	invalidErr  error // set before invalid is closed
}

// Option adjusts how a Store reads its rows or reports its faults.
type Option func(*Store)

// WithOIGap sets what Candles does across a gap in the candles
// (heatmap.oi_gap); the default is heatmap.OIGapReset.
func WithOIGap(g heatmap.OIGap) Option { return func(s *Store) { s.oiGap = g } }

// WithLogger sets where failed writes are reported; the default (and nil)
// discards them.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// Open opens (creating if needed) the DuckDB file at path and its tables.
// A failure is a *FileError naming the file and, where it is one the store
// recognises (another process holding the file, a directory, a file that is
// not DuckDB's, a full disk, ...), the fault in plain words.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fileError("open store", path, fmt.Errorf("create directory: %w", err))
		}
	}
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	_, walErr := os.Lstat(path + ".wal")
	walCreated := errors.Is(walErr, os.ErrNotExist)
	fail := func(err error) error {
		fe := fileError("open store", path, err)
		// DuckDB leaves what it wrote of a new file behind when the disk
		// fills under it, and the next start would then call that file "not
		// a DuckDB database". It was created by this call and holds nothing.
		if created && noSpace(fe.Fault) {
			os.Remove(path)
			if walCreated {
				os.Remove(path + ".wal")
			}
		}
		return fe
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, fail(err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fail(fmt.Errorf("create tables: %w", err))
	}
	st := &Store{db: db, path: path, oiGap: heatmap.OIGapReset, changes: newChangeLog(), liqVer: &versions{m: map[string]uint64{}},
		log: slog.New(slog.DiscardHandler), throttle: logging.NewThrottle(writeLogWindow, writeLogBurst),
		backoff: writeBackoff, sleep: sleepCtx, writeErrs: map[string]*atomic.Uint64{},
		invalid: make(chan struct{})}
	for _, op := range WriteOps {
		st.writeErrs[op] = new(atomic.Uint64)
	}
	for _, o := range opts {
		o(st)
	}
	return st, nil
}

// Close flushes and closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// UpsertKlines inserts or replaces candles by (symbol, interval, open_time),
// all or nothing.
func (s *Store) UpsertKlines(ctx context.Context, ks []Kline) error {
	return s.Upsert(ctx, ks, nil)
}

// UpsertOpenInterest inserts or replaces observations by (symbol, ts), all or nothing.
func (s *Store) UpsertOpenInterest(ctx context.Context, ois []OpenInterest) error {
	return s.Upsert(ctx, nil, ois)
}

// Validate rejects a candle no exchange could have printed. A NaN or an
// infinity must not reach the table: every window holding the row would then
// fail to compute, on every tick of the loop and every history request.
func (k Kline) Validate() error {
	if k.Symbol == "" || k.Interval == "" {
		return fmt.Errorf("kline at %s: symbol and interval must be set", k.OpenTime.UTC().Format(time.RFC3339))
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"open", k.Open}, {"high", k.High}, {"low", k.Low}, {"close", k.Close}, {"volume", k.Volume}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("kline %s %s %s: %s %g is not a finite number", k.Symbol, k.Interval, k.OpenTime.UTC().Format(time.RFC3339), f.name, f.v)
		}
	}
	switch {
	case !(k.Low > 0) || k.High < k.Low || k.Open < k.Low || k.Open > k.High || k.Close < k.Low || k.Close > k.High:
		return fmt.Errorf("kline %s %s %s: prices out of order (o=%g h=%g l=%g c=%g)", k.Symbol, k.Interval, k.OpenTime.UTC().Format(time.RFC3339), k.Open, k.High, k.Low, k.Close)
	case k.Volume < 0:
		return fmt.Errorf("kline %s %s %s: negative volume", k.Symbol, k.Interval, k.OpenTime.UTC().Format(time.RFC3339))
	}
	return nil
}

// Validate rejects an observation the model cannot use, naming the field:
// like a candle's, a non-finite value would fail every window holding it.
func (o OpenInterest) Validate() error {
	if o.Symbol == "" {
		return fmt.Errorf("open interest at %s: symbol must be set", o.TS.UTC().Format(time.RFC3339))
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"open_interest", o.OpenInterest}, {"open_interest_value", o.OpenInterestValue}} {
		if !(f.v >= 0) || math.IsInf(f.v, 1) {
			return fmt.Errorf("open interest %s %s: %s %g must be finite and non-negative", o.Symbol, o.TS.UTC().Format(time.RFC3339), f.name, f.v)
		}
	}
	return nil
}

// appendTo runs fill with DuckDB's appender on the temp table stage of conn
// and flushes it; the appender is closed whatever fill returns.
func appendTo(conn *sql.Conn, stage string, fill func(*duckdb.Appender) error) error {
	return conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("driver connection is %T, not a driver.Conn", dc)
		}
		app, err := duckdb.NewAppender(dconn, "temp", "main", stage)
		if err != nil {
			return fmt.Errorf("open appender: %w", err)
		}
		if err := fill(app); err != nil {
			app.Close()
			return err
		}
		if err := app.Close(); err != nil {
			return fmt.Errorf("flush appender: %w", err)
		}
		return nil
	})
}

// LastKline returns the newest candle of symbol/interval; ok is false when there is none.
func (s *Store) LastKline(ctx context.Context, symbol, interval string) (Kline, bool, error) {
	k := Kline{Symbol: symbol, Interval: interval}
	err := s.db.QueryRowContext(ctx, `SELECT open_time, open, high, low, close, volume FROM klines
		WHERE symbol = ? AND interval = ? ORDER BY open_time DESC LIMIT 1`, symbol, interval).
		Scan(&k.OpenTime, &k.Open, &k.High, &k.Low, &k.Close, &k.Volume)
	if errors.Is(err, sql.ErrNoRows) {
		return Kline{}, false, nil
	}
	if err != nil {
		return Kline{}, false, fmt.Errorf("last kline %s %s: %w", symbol, interval, err)
	}
	k.OpenTime = k.OpenTime.UTC()
	return k, true, nil
}

// LastOpenInterest returns the newest observation of symbol; ok is false when there is none.
func (s *Store) LastOpenInterest(ctx context.Context, symbol string) (OpenInterest, bool, error) {
	o := OpenInterest{Symbol: symbol}
	err := s.db.QueryRowContext(ctx, `SELECT ts, open_interest, open_interest_value FROM open_interest
		WHERE symbol = ? ORDER BY ts DESC LIMIT 1`, symbol).Scan(&o.TS, &o.OpenInterest, &o.OpenInterestValue)
	if errors.Is(err, sql.ErrNoRows) {
		return OpenInterest{}, false, nil
	}
	if err != nil {
		return OpenInterest{}, false, fmt.Errorf("last open interest %s: %w", symbol, err)
	}
	o.TS = o.TS.UTC()
	return o, true, nil
}

// DateRange returns the open times of symbol's first and last candle at
// interval and how many there are; n is 0 when there is none.
func (s *Store) DateRange(ctx context.Context, symbol, interval string) (first, last time.Time, n int64, err error) {
	var f, l sql.NullTime
	err = s.db.QueryRowContext(ctx, `SELECT min(open_time), max(open_time), count(*) FROM klines WHERE symbol = ? AND interval = ?`,
		symbol, interval).Scan(&f, &l, &n)
	if err != nil {
		return time.Time{}, time.Time{}, 0, fmt.Errorf("date range %s %s: %w", symbol, interval, err)
	}
	return f.Time.UTC(), l.Time.UTC(), n, nil
}

// Counts is how many rows the store holds.
type Counts struct {
	Klines       int64
	OpenInterest int64
	Liquidations int64
}

// Count returns the row count of each table.
func (s *Store) Count(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM klines), (SELECT count(*) FROM open_interest),
		(SELECT count(*) FROM liquidations)`).Scan(&c.Klines, &c.OpenInterest, &c.Liquidations)
	if err != nil {
		return Counts{}, fmt.Errorf("count rows: %w", err)
	}
	return c, nil
}

// Candles returns the candles of symbol at interval that open in [from, to)
// (to zero = no end), oldest first, each with the average open-interest value
// observed inside it (HasOI false where none was). Candles are built from
// every stored interval that divides interval (itself included): first open,
// max high, min low, last close, summed volume; see seriesSQL for which one
// each candle comes from. Under heatmap.OIGapReset a candle with candles
// missing right before it is marked AfterGap.
//
// An observation stamped T counts in the candle that opens at T, as in the
// reference system; docs/ARCHITECTURE.md ("Open interest and candles") says
// what that means for Binance's data.
func (s *Store) Candles(ctx context.Context, symbol, interval string, from, to time.Time) ([]heatmap.Candle, error) {
	step, err := IntervalDuration(interval)
	if err != nil {
		return nil, fmt.Errorf("load candles %s: %w", symbol, err)
	}
	series, err := s.dividing(ctx, symbol, step)
	if err != nil {
		return nil, err
	}
	if len(series) == 0 {
		return nil, nil
	}
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	us := step.Microseconds()
	args := []any{us, symbol, from.UTC(), to.UTC()}
	rows, err := s.db.QueryContext(ctx, `
		WITH `+seriesSQL(series, &args)+`,
		oi AS (
			SELECT make_timestamp((epoch_us(ts) // $1) * $1) AS b, avg(open_interest_value) AS oi
			FROM open_interest
			WHERE symbol = $2 AND ts >= $3 AND ts < $4
			GROUP BY b
		)
		SELECT pick.b, pick.open, pick.high, pick.low, pick.close, pick.volume, oi.oi
		FROM pick LEFT JOIN oi ON oi.b = pick.b
		ORDER BY pick.b`, args...)
	if err != nil {
		return nil, fmt.Errorf("load candles %s %s: %w", symbol, interval, err)
	}
	defer rows.Close()
	var out []heatmap.Candle
	for rows.Next() {
		var c heatmap.Candle
		var oi sql.NullFloat64
		if err := rows.Scan(&c.OpenTime, &c.Open, &c.High, &c.Low, &c.Close, &c.Volume, &oi); err != nil {
			return nil, fmt.Errorf("load candles %s %s: scan: %w", symbol, interval, err)
		}
		c.OpenTime = c.OpenTime.UTC()
		c.OIValue, c.HasOI = oi.Float64, oi.Valid
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load candles %s %s: %w", symbol, interval, err)
	}
	if s.oiGap == heatmap.OIGapReset && len(out) > 0 {
		if err := s.markGaps(ctx, symbol, series, step, out); err != nil {
			return nil, fmt.Errorf("load candles %s %s: %w", symbol, interval, err)
		}
	}
	return out, nil
}

// seriesSQL returns CTEs ending in pick: one aggregated row per bucket of
// $1 microseconds, from the klines of symbol $2 opening in [$3, $4) of the
// given series, whose names and lengths it appends to args.
//
// Each bucket comes from the series that covers most of it (rows × length),
// and on a tie from the finest. Per bucket, because a series stored for some
// other stretch of time must not decide the whole window: one 1h archive a
// year back once made every 1h window come from the 1h series and turned
// windows fully covered by 5m candles empty. Coverage first, so that a
// coarser series fills a stretch the 5m one lacks or only partly holds; the
// finest on a tie, because docs/API.md promises candles built from the
// stored 5m ones, and both hold the same trades anyway.
func seriesSQL(series []stored, args *[]any) string {
	const agg = `arg_min(open, open_time) AS open, max(high) AS high, min(low) AS low,
			       arg_max(close, open_time) AS close, sum(volume) AS volume`
	if len(series) == 1 {
		// Nothing to choose from: skip the ranking, a sort of every bucket,
		// on the common path of the live loop and history.
		*args = append(*args, series[0].name)
		return fmt.Sprintf(`pick AS (
			SELECT make_timestamp((epoch_us(open_time) // $1) * $1) AS b, %s
			FROM klines
			WHERE symbol = $2 AND interval = $%d AND open_time >= $3 AND open_time < $4
			GROUP BY b
		)`, agg, len(*args))
	}
	values := make([]string, len(series))
	for i, sr := range series {
		n := len(*args)
		values[i] = fmt.Sprintf("($%d, $%d::BIGINT)", n+1, n+2)
		*args = append(*args, sr.name, sr.step.Microseconds())
	}
	return `iv(name, us) AS (VALUES ` + strings.Join(values, ", ") + `),
		k AS (
			SELECT iv.us, make_timestamp((epoch_us(open_time) // $1) * $1) AS b, open_time, open, high, low, close, volume
			FROM klines JOIN iv ON klines.interval = iv.name
			WHERE symbol = $2 AND open_time >= $3 AND open_time < $4
		), agg AS (
			SELECT b, us, ` + agg + `, count(*) * us AS covered
			FROM k GROUP BY b, us
		), pick AS (
			SELECT * FROM agg
			QUALIFY row_number() OVER (PARTITION BY b ORDER BY covered DESC, us) = 1
		)`
}

// markGaps sets AfterGap on each candle of cs (buckets of step, oldest first)
// whose bucket one step earlier holds no stored candle while an earlier one
// does. The first candle is checked against the store rather than left
// unmarked: the loop's incremental query starts at the engine's last candle,
// which must come out marked as the full query marked it.
func (s *Store) markGaps(ctx context.Context, symbol string, series []stored, step time.Duration, cs []heatmap.Candle) error {
	args := make([]any, 0, len(series)+2)
	marks := make([]string, len(series))
	for i, sr := range series {
		args = append(args, sr.name)
		marks[i] = "?"
	}
	first := cs[0].OpenTime
	args = append(args, symbol, first)
	var prev sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT max(open_time) FROM klines WHERE interval IN (`+strings.Join(marks, ", ")+`)
		AND symbol = ? AND open_time < ?`, args...).Scan(&prev)
	if err != nil {
		return fmt.Errorf("look for the candle before %s: %w", first.Format(time.RFC3339), err)
	}
	cs[0].AfterGap = prev.Valid && prev.Time.Before(first.Add(-step))
	for i := 1; i < len(cs); i++ {
		cs[i].AfterGap = cs[i].OpenTime.Sub(cs[i-1].OpenTime) > step
	}
	return nil
}

// stored is one interval the klines table holds for a symbol.
type stored struct {
	name string
	step time.Duration
}

// dividing lists the stored intervals of symbol that divide step, itself
// included.
func (s *Store) dividing(ctx context.Context, symbol string, step time.Duration) ([]stored, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT interval FROM klines WHERE symbol = ?`, symbol)
	if err != nil {
		return nil, fmt.Errorf("list intervals of %s: %w", symbol, err)
	}
	defer rows.Close()
	var out []stored
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list intervals of %s: %w", symbol, err)
		}
		d, err := IntervalDuration(name)
		if err != nil || d > step || step%d != 0 {
			continue
		}
		out = append(out, stored{name, d})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list intervals of %s: %w", symbol, err)
	}
	return out, nil
}

var intervals = map[string]time.Duration{
	"1m": time.Minute, "3m": 3 * time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute,
	"30m": 30 * time.Minute, "1h": time.Hour, "2h": 2 * time.Hour, "4h": 4 * time.Hour,
	"6h": 6 * time.Hour, "8h": 8 * time.Hour, "12h": 12 * time.Hour, "1d": 24 * time.Hour,
}

// IntervalDuration maps a Binance interval name ("5m") to its length.
func IntervalDuration(name string) (time.Duration, error) {
	d, ok := intervals[name]
	if !ok {
		return 0, fmt.Errorf("unknown candle interval %q (use 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h or 1d)", name)
	}
	return d, nil
}
