package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// BenchmarkImport1MKlines imports one CSV of 1,000,000 one-minute candles
// (about 95 MB, 694 days) into a fresh DuckDB file per iteration: parse,
// validate, stage with the appender and merge with one INSERT OR REPLACE.
func BenchmarkImport1MKlines(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	path := writeFile(b, filepath.Join(dir, "BTCUSDT-1m-2023-01.csv"),
		klineCSV(klineCSVOpts{n: n, start: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), step: time.Minute, header: true}))
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	ctx := context.Background()
	i := 0
	for b.Loop() {
		b.StopTimer()
		st, err := store.Open(ctx, filepath.Join(dir, "db", time.Now().Format("150405.000000000")+".duckdb"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r := ImportFile(ctx, st, path)
		b.StopTimer()
		if r.Err != nil || r.Rows != n {
			b.Fatalf("import: %d rows, %v", r.Rows, r.Err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()
	}
	b.ReportMetric(float64(n*i)/b.Elapsed().Seconds(), "rows/s")
}
