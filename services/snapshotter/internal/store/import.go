package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// ImportKlines writes every candle rows yields with a single INSERT OR REPLACE,
// so a file of any size lands whole or not at all, and importing it again
// replaces rows with themselves. Rows stream through DuckDB's appender into a
// temp table rather than a Go slice, because an archive backfill can be
// millions of rows. When rows yields an error, or a candle fails Validate,
// nothing is written; an error from rows is returned unwrapped so the caller's
// file and line reach the user as the caller worded them. Within one import
// the last row of a key wins, as with UpsertKlines, and the spans written are
// recorded in the change log the same way.
func (s *Store) ImportKlines(ctx context.Context, rows iter.Seq2[Kline, error]) (int, error) {
	return s.importRows(ctx, klineImport, func(app *duckdb.Appender, tr *importTracker) (int, error) {
		n := 0
		for k, err := range rows {
			if err != nil {
				return n, &sourceError{err}
			}
			if err := k.Validate(); err != nil {
				return n, err
			}
			t := k.OpenTime.UTC()
			id := tr.add(k.Symbol, k.Interval, t)
			// Symbol and interval go in once per series, not per row: strings
			// cost the appender a cgo call each, more than the rest of the row.
			if err := app.AppendRow(id, t.UnixMicro(), k.Open, k.High, k.Low, k.Close, k.Volume); err != nil {
				return n, fmt.Errorf("append row: %w", err)
			}
			n++
			if n%checkEvery == 0 && ctx.Err() != nil {
				return n, ctx.Err()
			}
		}
		return n, nil
	})
}

// ImportOpenInterest is ImportKlines for open-interest observations, keyed by
// (symbol, ts).
func (s *Store) ImportOpenInterest(ctx context.Context, rows iter.Seq2[OpenInterest, error]) (int, error) {
	return s.importRows(ctx, oiImport, func(app *duckdb.Appender, tr *importTracker) (int, error) {
		n := 0
		for o, err := range rows {
			if err != nil {
				return n, &sourceError{err}
			}
			t := o.TS.UTC()
			if err := o.Validate(); err != nil {
				return n, err
			}
			id := tr.add(o.Symbol, "", t)
			if err := app.AppendRow(id, t.UnixMicro(), o.OpenInterest, o.OpenInterestValue); err != nil {
				return n, fmt.Errorf("append row: %w", err)
			}
			n++
			if n%checkEvery == 0 && ctx.Err() != nil {
				return n, ctx.Err()
			}
		}
		return n, nil
	})
}

// checkEvery is how many rows pass between looks at the context: often enough
// to stop a million-row file promptly, rarely enough to cost nothing.
const checkEvery = 1 << 14

// importTable says how rows staged for one target table are merged into it.
type importTable struct {
	name, what string
	// stage holds the per-row columns; series points into the series table,
	// t is epoch microseconds.
	stage string
	// series are the key columns held once per series.
	series []string
	insert string
	// project maps stage st joined with series s to the insert columns.
	project string
	// key identifies a row inside the stage; rows repeating one must be
	// collapsed before the merge, which refuses to replace a row twice.
	key string
	// time is the target's time column, for the overlap check.
	time string
}

var (
	klineImport = importTable{
		name: "klines", what: "klines",
		stage:   "series INTEGER, t BIGINT, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE",
		series:  []string{"symbol", "interval"},
		insert:  "symbol, interval, open_time, open, high, low, close, volume",
		project: "s.symbol, s.interval, make_timestamp(st.t), st.open, st.high, st.low, st.close, st.volume",
		key:     "st.series, st.t",
		time:    "open_time",
	}
	oiImport = importTable{
		name: "open_interest", what: "open interest rows",
		stage:   "series INTEGER, t BIGINT, open_interest DOUBLE, open_interest_value DOUBLE",
		series:  []string{"symbol"},
		insert:  "symbol, ts, open_interest, open_interest_value",
		project: "s.symbol, make_timestamp(st.t), st.open_interest, st.open_interest_value",
		key:     "st.series, st.t",
		time:    "ts",
	}
)

// sourceError marks an error that came from the caller's rows, to be returned
// as the caller wrote it.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// importRows stages what fill appends in temp tables private to one
// connection and merges them into t with one statement; a failed fill leaves
// t untouched because the merge never runs.
func (s *Store) importRows(ctx context.Context, t importTable, fill func(*duckdb.Appender, *importTracker) (int, error)) (int, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", t.what, err)
	}
	defer conn.Close()
	stage, series := "import_"+t.name, "import_"+t.name+"_series"
	seriesCols := "id INTEGER"
	for _, c := range t.series {
		seriesCols += ", " + c + " VARCHAR"
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s (%s); CREATE OR REPLACE TEMP TABLE %s (%s)`,
		stage, t.stage, series, seriesCols)); err != nil {
		return 0, fmt.Errorf("import %s: create staging tables: %w", t.what, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("DROP TABLE IF EXISTS temp.main.%s; DROP TABLE IF EXISTS temp.main.%s", stage, series))
	var (
		n  int
		tr = newImportTracker()
	)
	err = appendTo(conn, stage, func(app *duckdb.Appender) error {
		var err error
		n, err = fill(app, tr)
		return err
	})
	if se := (*sourceError)(nil); errors.As(err, &se) {
		return 0, se.err
	}
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", t.what, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := tr.writeSeries(ctx, conn, series, len(t.series)); err != nil {
		return 0, fmt.Errorf("import %s: %w", t.what, err)
	}
	// The check and the merge as one write of this process (see writeMu).
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// A plain INSERT costs DuckDB ~20% less than INSERT OR REPLACE, whose
	// conflict probe doubles the index work; it is safe when no stored row
	// falls in the spans imported, the usual case of a first import.
	fresh, err := tr.fresh(ctx, conn, t)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", t.what, err)
	}
	err = s.merge(ctx, conn, t, stage, series, tr.repeats, fresh)
	if fresh && isConstraint(err) {
		// A write between the check and the insert took one of the keys:
		// none can while every writer holds writeMu; kept so that one
		// which does not costs a slower merge, not a failed import.
		err = s.merge(ctx, conn, t, stage, series, tr.repeats, false)
	}
	if err != nil {
		return 0, fmt.Errorf("import %d %s: merge into %s: %w", n, t.what, t.name, err)
	}
	s.changes.record(tr.bySymbol())
	return n, nil
}

// merge moves the staged rows into t in one statement.
func (s *Store) merge(ctx context.Context, conn *sql.Conn, t importTable, stage, series string, repeats, fresh bool) error {
	verb := "INSERT OR REPLACE"
	if fresh {
		verb = "INSERT"
	}
	q := fmt.Sprintf(`%s INTO %s (%s) SELECT %s FROM temp.main.%s st JOIN temp.main.%s s ON s.id = st.series`,
		verb, t.name, t.insert, t.project, stage, series)
	if repeats {
		// rowid is the append order, so the last row of a key wins, as it
		// would with one upsert after another.
		q += fmt.Sprintf(` QUALIFY row_number() OVER (PARTITION BY %s ORDER BY st.rowid DESC) = 1`, t.key)
	}
	_, err := conn.ExecContext(ctx, q)
	return err
}

func isConstraint(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeConstraint
}

// importTracker numbers the series (symbol, interval) of an import, collects
// each one's span and notices whether a key may repeat. Archives are sorted,
// so a series whose times only rise cannot repeat a key and the merge skips
// deduplication; the map is touched only when the series changes, not per row.
type importTracker struct {
	ids     map[[2]string]int32
	names   [][2]string
	spans   []Span // by series id
	cur     int32
	last    time.Time
	repeats bool
}

func newImportTracker() *importTracker {
	return &importTracker{ids: map[[2]string]int32{}, cur: -1}
}

// add notes a row at t of the series and returns the series id.
func (tr *importTracker) add(symbol, interval string, t time.Time) int32 {
	if tr.cur < 0 || tr.names[tr.cur] != [2]string{symbol, interval} {
		tr.switchTo([2]string{symbol, interval})
	} else if !t.After(tr.last) {
		tr.repeats = true
	}
	tr.last = t
	tr.spans[tr.cur] = tr.spans[tr.cur].widen(t)
	return tr.cur
}

func (tr *importTracker) switchTo(series [2]string) {
	id, again := tr.ids[series]
	if again {
		// Coming back to a series means its times may overlap what it had.
		tr.repeats = true
	} else {
		id = int32(len(tr.names))
		tr.ids[series] = id
		tr.names = append(tr.names, series)
		tr.spans = append(tr.spans, Span{})
	}
	tr.cur = id
}

// bySymbol is the change log's view: one span per symbol over its series.
func (tr *importTracker) bySymbol() map[string]Span {
	out := make(map[string]Span, len(tr.names))
	for id, name := range tr.names {
		sp := out[name[0]]
		out[name[0]] = sp.widen(tr.spans[id].Min).widen(tr.spans[id].Max)
	}
	return out
}

// fresh reports whether t holds no row inside the span of any imported
// series, so no key can conflict.
func (tr *importTracker) fresh(ctx context.Context, conn *sql.Conn, t importTable) (bool, error) {
	for id, name := range tr.names {
		q := fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE symbol = ? AND %s BETWEEN ? AND ?`, t.name, t.time)
		args := []any{name[0], tr.spans[id].Min, tr.spans[id].Max}
		if len(t.series) == 2 {
			q += " AND interval = ?"
			args = append(args, name[1])
		}
		var taken bool
		if err := conn.QueryRowContext(ctx, q+")", args...).Scan(&taken); err != nil {
			return false, fmt.Errorf("check overlap of %s: %w", name[0], err)
		}
		if taken {
			return false, nil
		}
	}
	return true, nil
}

// writeSeries stores the series names for the merge to join on.
func (tr *importTracker) writeSeries(ctx context.Context, conn *sql.Conn, table string, cols int) error {
	for id, name := range tr.names {
		args := []any{id, name[0]}
		q := fmt.Sprintf("INSERT INTO temp.main.%s VALUES (?, ?)", table)
		if cols == 2 {
			args = append(args, name[1])
			q = fmt.Sprintf("INSERT INTO temp.main.%s VALUES (?, ?, ?)", table)
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("stage series %s: %w", name[0], err)
		}
	}
	return nil
}
