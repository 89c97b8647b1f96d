package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/liqstream/liqstream/pkg/logging"
)

// Upsert inserts or replaces candles by (symbol, interval, open_time) and
// open-interest observations by (symbol, ts) in one transaction: after a
// crash at any moment the file holds all of them or none. A candle and the
// observation made for it (the demo seed, the simulator) must go through one
// call, never two. A failed transaction is tried again, 4 times in all (see
// writeBackoff), each failure counted (WriteErrors) and logged; the error of
// a write that gives up is a *FileError naming the file and the cause.
func (s *Store) Upsert(ctx context.Context, ks []Kline, ois []OpenInterest) error {
	return s.write(ctx, nil, batch{ks: ks, ois: ois})
}

// batch is what one write stores in one transaction.
type batch struct {
	ks   []Kline
	ois  []OpenInterest
	liqs []Liquidation
}

// ReplaceKlines deletes every candle of symbol at interval and writes ks and
// ois, in one transaction. It is for repairing a series the store itself
// wrote, such as a demo seed cut short by an older version; it never touches
// another series or any open interest outside ois.
func (s *Store) ReplaceKlines(ctx context.Context, symbol, interval string, ks []Kline, ois []OpenInterest) error {
	for _, k := range ks {
		if k.Symbol != symbol || k.Interval != interval {
			return fmt.Errorf("replace klines %s %s: candle of %s %s", symbol, interval, k.Symbol, k.Interval)
		}
	}
	return s.write(ctx, &[2]string{symbol, interval}, batch{ks: ks, ois: ois})
}

// testHook, when set (by tests only), runs inside a write's transaction after
// each step ("delete", "klines", "open_interest"); an error it returns fails
// the write as a crash there would.
var testHook func(step string) error

func hook(step string) error {
	if testHook == nil {
		return nil
	}
	return testHook(step)
}

// Write operations: the op label of store_write_errors_total.
const (
	OpUpsert  = "upsert"  // Upsert, UpsertKlines, UpsertOpenInterest
	OpReplace = "replace" // ReplaceKlines
)

// WriteOps lists every op, so that metrics export each from the start.
var WriteOps = []string{OpUpsert, OpReplace}

// writeBackoff is the wait before each retry of a failed write: 4 tries and
// 1.4 s of waiting in all. A full disk or a brief I/O error may clear within
// that; one that does not is the caller's to retry on its next round (the
// simulator's tick, the Binance poll), which re-reads the store first, so
// holding a caller longer would only delay its other symbols.
var writeBackoff = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}

// Failed writes are logged at warn at most writeLogBurst times per op per
// writeLogWindow (the rest at debug), as the gateway bounds its warn lines:
// a full disk fails every write of every tick.
const (
	writeLogWindow = 10 * time.Second
	writeLogBurst  = 5
)

// WriteErrors returns how many write attempts of op (one of WriteOps) have
// failed since Open, retried ones included; a write rejected for an invalid
// row or stopped by its context is not a failure of the store and does not
// count.
func (s *Store) WriteErrors(op string) uint64 {
	if n := s.writeErrs[op]; n != nil {
		return n.Load()
	}
	return 0
}

// Invalidated is closed once DuckDB has invalidated the database after a
// fatal error, such as a checkpoint that failed on a full disk: it then
// refuses every query, reads too, until the file is opened again, which
// takes a new process (the handle is shared by every part of it).
// InvalidatedErr says why.
func (s *Store) Invalidated() <-chan struct{} { return s.invalid }

// InvalidatedErr returns the error that invalidated the store; nil while
// Invalidated is open.
func (s *Store) InvalidatedErr() error {
	select {
	case <-s.invalid:
		return s.invalidErr
	default:
		return nil
	}
}

func (s *Store) invalidate(err *FileError) {
	s.invalidOnce.Do(func() {
		s.invalidErr = err
		s.log.Error("store invalidated: every query fails until the snapshotter restarts", "db", s.path,
			logging.KeyReason, string(err.Fault), logging.KeyErr, err)
		close(s.invalid)
	})
}

// sleepCtx waits d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// write is Upsert and ReplaceKlines: rows are checked once, then the
// transaction is tried up to len(s.backoff)+1 times. Each try is the whole
// transaction, so a failed one leaves nothing and a retry cannot apply
// part of the batch twice. A failure is returned as a *FileError.
func (s *Store) write(ctx context.Context, replace *[2]string, b batch) error {
	op := OpUpsert
	if replace != nil {
		op = OpReplace
	}
	krows, ktouched, err := klineRows(b.ks)
	if err != nil {
		return fmt.Errorf("upsert klines: %w", err)
	}
	orows, otouched, err := oiRows(b.ois)
	if err != nil {
		return fmt.Errorf("upsert open interest: %w", err)
	}
	lrows, ltouched, err := liquidationRows(b.liqs)
	if err != nil {
		return fmt.Errorf("upsert liquidations: %w", err)
	}
	if replace == nil && len(krows) == 0 && len(orows) == 0 && len(lrows) == 0 {
		return nil
	}
	rows := []tableRows{{"klines", "klines", len(b.ks), krows}, {"open_interest", "open interest rows", len(b.ois), orows},
		{"liquidations", "liquidations", len(b.liqs), lrows}}
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, replace, rows)
		if err == nil {
			if attempt > 1 {
				s.log.Info("store write succeeded after retrying", "db", s.path, "op", op, "attempt", attempt)
			}
			break
		}
		if ctx.Err() != nil {
			// Shutdown or the caller's deadline, not a fault of the file;
			// the transaction rolled back.
			return fmt.Errorf("write to store %s: %w", s.path, err)
		}
		s.writeErrs[op].Add(1)
		fe := fileError("write to store", s.path, err)
		args := []any{"db", s.path, "op", op, logging.KeyReason, string(fe.Fault), "attempt", attempt, logging.KeyErr, err}
		if fe.Fault == FaultInvalidated {
			// Retrying is useless: DuckDB refuses everything from now on.
			s.invalidate(fe)
			return fe
		}
		if attempt > len(s.backoff) {
			s.throttle.Warn(s.log, op, "store write failed; giving up", args...)
			fe.Err = fmt.Errorf("gave up after %d tries: %w", attempt, err)
			return fe
		}
		wait := s.backoff[attempt-1]
		s.throttle.Warn(s.log, op, "store write failed; retrying", append(args, "retry_in", wait.String())...)
		if serr := s.sleep(ctx, wait); serr != nil {
			fe.Err = fmt.Errorf("stopped retrying after %d tries (%v): %w", attempt, serr, err)
			return fe
		}
	}
	touched := ktouched
	for sym, sp := range otouched {
		cur := touched[sym]
		touched[sym] = cur.widen(sp.Min).widen(sp.Max)
	}
	if replace != nil {
		// The deleted candles' span is unknown here; an empty span would say
		// nothing changed, so mark the whole series.
		touched[replace[0]] = touched[replace[0]].widen(minTime).widen(maxTime)
	}
	s.changes.record(touched)
	s.liqVer.bump(ltouched)
	return nil
}

// tableRows is one table's part of a write: what it is called in messages,
// how many rows were asked for, and the deduplicated rows.
type tableRows struct {
	table, what string
	asked       int
	rows        [][]driver.Value
}

// writeOnce runs one try of a write in a single transaction.
func (s *Store) writeOnce(ctx context.Context, replace *[2]string, tables []tableRows) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get a connection: %w", err)
	}
	defer conn.Close()
	// The connection first, then writeMu, as an import takes them: the
	// other order could deadlock on a bounded pool.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	// Rollback after a commit is a no-op; after an interrupted statement it
	// must still run, hence no ctx.
	defer tx.Rollback()
	if replace != nil {
		if _, err := tx.ExecContext(ctx, `DELETE FROM klines WHERE symbol = ? AND interval = ?`, replace[0], replace[1]); err != nil {
			return fmt.Errorf("replace klines %s %s: delete: %w", replace[0], replace[1], err)
		}
		if err := hook("delete"); err != nil {
			return err
		}
	}
	for _, t := range tables {
		if len(t.rows) == 0 {
			continue
		}
		if err := bulkUpsert(ctx, conn, tx, t.table, t.rows); err != nil {
			return fmt.Errorf("upsert %d %s: %w", t.asked, t.what, err)
		}
		if err := hook(t.table); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit write: %w", err)
	}
	return nil
}

// klineRows validates ks and turns them into appender rows; a key twice in
// one batch would make the merge fail, so the last one wins, as it would with
// one upsert after another.
func klineRows(ks []Kline) ([][]driver.Value, map[string]Span, error) {
	return dedupRows(ks, func(k Kline) (string, string, time.Time, []driver.Value) {
		at := k.OpenTime.UTC()
		return k.Symbol, k.Interval + "\x00" + at.String(), at,
			[]driver.Value{k.Symbol, k.Interval, at, k.Open, k.High, k.Low, k.Close, k.Volume}
	})
}

// oiRows is klineRows for open interest, keyed by (symbol, ts).
func oiRows(ois []OpenInterest) ([][]driver.Value, map[string]Span, error) {
	return dedupRows(ois, func(o OpenInterest) (string, string, time.Time, []driver.Value) {
		at := o.TS.UTC()
		return o.Symbol, at.String(), at, []driver.Value{o.Symbol, at, o.OpenInterest, o.OpenInterestValue}
	})
}

// dedupRows validates xs and turns them into rows, the last of equal keys
// winning, with the span of times each symbol's rows cover. row gives an
// item's symbol, its key within the symbol, its time and its row.
func dedupRows[T interface{ Validate() error }](xs []T, row func(T) (sym, key string, at time.Time, r []driver.Value)) ([][]driver.Value, map[string]Span, error) {
	touched := map[string]Span{}
	rows := make([][]driver.Value, 0, len(xs))
	index := make(map[string]int, len(xs))
	for _, x := range xs {
		if err := x.Validate(); err != nil {
			return nil, nil, err
		}
		sym, key, at, r := row(x)
		key = sym + "\x00" + key
		if i, dup := index[key]; dup {
			rows[i] = r
			continue
		}
		index[key] = len(rows)
		rows = append(rows, r)
		touched[sym] = touched[sym].widen(at)
	}
	return rows, touched, nil
}

// bulkUpsert stages rows in a temp table with DuckDB's appender (its bulk
// path: row-by-row INSERTs manage a few hundred rows a second) and merges
// them into table with one INSERT OR REPLACE, inside tx, which runs on conn.
func bulkUpsert(ctx context.Context, conn *sql.Conn, tx *sql.Tx, table string, rows [][]driver.Value) error {
	stage := "stage_" + table
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT * FROM %s LIMIT 0`, stage, table)); err != nil {
		return fmt.Errorf("create staging table: %w", err)
	}
	err := appendTo(conn, stage, func(app *duckdb.Appender) error {
		for _, r := range rows {
			if err := app.AppendRow(r...); err != nil {
				return fmt.Errorf("append row: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT OR REPLACE INTO %s SELECT * FROM temp.main.%s`, table, stage)); err != nil {
		return fmt.Errorf("merge into %s: %w", table, err)
	}
	// Dropped inside the transaction, so a rollback leaves nothing behind either.
	if _, err := tx.ExecContext(ctx, "DROP TABLE temp.main."+stage); err != nil {
		return fmt.Errorf("drop staging table: %w", err)
	}
	return nil
}

// minTime and maxTime bound every time a series can hold.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Klines returns every candle of symbol at interval, oldest first.
func (s *Store) Klines(ctx context.Context, symbol, interval string) ([]Kline, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT open_time, open, high, low, close, volume FROM klines
		WHERE symbol = ? AND interval = ? ORDER BY open_time`, symbol, interval)
	if err != nil {
		return nil, fmt.Errorf("klines %s %s: %w", symbol, interval, err)
	}
	defer rows.Close()
	var out []Kline
	for rows.Next() {
		k := Kline{Symbol: symbol, Interval: interval}
		if err := rows.Scan(&k.OpenTime, &k.Open, &k.High, &k.Low, &k.Close, &k.Volume); err != nil {
			return nil, fmt.Errorf("klines %s %s: %w", symbol, interval, err)
		}
		k.OpenTime = k.OpenTime.UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("klines %s %s: %w", symbol, interval, err)
	}
	return out, nil
}
