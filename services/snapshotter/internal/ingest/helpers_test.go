package ingest

import (
	"archive/zip"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// openStore opens a real DuckDB file in a temp dir and a second handle on the
// same database for fingerprint queries (duckdb-go shares the instance).
func openStore(t testing.TB) (*store.Store, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.duckdb")
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		st.Close()
	})
	return st, db
}

// fingerprint is the content of both tables, or of one symbol's rows when
// symbol is set, summed by row hash.
type fingerprint struct {
	klines, oi        int64
	klineHash, oiHash string
}

func fingerprintOf(t testing.TB, db *sql.DB, symbol string) fingerprint {
	t.Helper()
	var f fingerprint
	err := db.QueryRow(`SELECT
		(SELECT count(*) FROM klines WHERE $1 = '' OR symbol = $1),
		(SELECT coalesce(sum(hash(symbol, interval, open_time, open, high, low, close, volume))::VARCHAR, '') FROM klines WHERE $1 = '' OR symbol = $1),
		(SELECT count(*) FROM open_interest WHERE $1 = '' OR symbol = $1),
		(SELECT coalesce(sum(hash(symbol, ts, open_interest, open_interest_value))::VARCHAR, '') FROM open_interest WHERE $1 = '' OR symbol = $1)`, symbol).
		Scan(&f.klines, &f.klineHash, &f.oi, &f.oiHash)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var day = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// klineCSVOpts shapes a generated klines CSV.
type klineCSVOpts struct {
	n      int
	start  time.Time
	step   time.Duration
	header bool
	micros bool
	crlf   bool
}

// klineCSV writes n valid candles in Binance's column layout; prices walk so
// every row differs.
func klineCSV(o klineCSVOpts) string {
	if o.step == 0 {
		o.step = 5 * time.Minute
	}
	if o.start.IsZero() {
		o.start = day
	}
	var b strings.Builder
	nl := "\n"
	if o.crlf {
		nl = "\r\n"
	}
	if o.header {
		b.WriteString("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore" + nl)
	}
	for i := range o.n {
		t := o.start.Add(time.Duration(i) * o.step)
		ot, ct := t.UnixMilli(), t.Add(o.step).UnixMilli()-1
		if o.micros {
			ot, ct = t.UnixMicro(), t.Add(o.step).UnixMicro()-1
		}
		p := 42000 + float64(i%997)
		fmt.Fprintf(&b, "%d,%.1f,%.1f,%.1f,%.1f,%.3f,%d,123.4,10,1.5,60000.1,0%s", ot, p, p+50, p-50, p+10, 1+float64(i%13), ct, nl)
	}
	return b.String()
}

// metricsCSV writes n metrics rows at 5-minute steps.
func metricsCSV(sym string, n int, header bool) string {
	var b strings.Builder
	if header {
		b.WriteString("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n")
	}
	for i := range n {
		t := day.Add(time.Duration(i) * 5 * time.Minute)
		fmt.Fprintf(&b, "%s,%s,%.3f,%.8f,1.5,1.4,1.3,0.9\n", t.Format(metricsTimeLayout), sym, 80000+float64(i), 3.4e9+float64(i)*1e5)
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeZip writes a zip at path holding content under the archive's CSV name.
func writeZip(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.Create(strings.TrimSuffix(filepath.Base(path), ".zip") + ".csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceLine swaps line n (1-based) of csv for s.
func replaceLine(csv string, n int, s string) string {
	lines := strings.SplitAfter(csv, "\n")
	lines[n-1] = s + "\n"
	return strings.Join(lines, "")
}
