package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
	"github.com/liqstream/liqstream/services/snapshotter/internal/ingest"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Import is `snapshotter import --db FILE PATH...`: it loads Binance archive
// files into the store, printing one line per file, and returns the exit
// code: 0 when every file was imported, 1 when any was rejected, 2 on usage
// errors. DuckDB locks the file, so it cannot run beside a snapshotter that
// has the same file open.
func Import(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("snapshotter import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", conf.Default().DB, "DuckDB file to import into (created when missing)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: snapshotter import [--db FILE] PATH...")
		fmt.Fprintln(stderr, "PATH: Binance USD-M archive files (BTCUSDT-5m-2024-01-01.zip, BTCUSDT-metrics-2024-01-01.zip, .csv) or directories of them")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintln(stderr, "snapshotter import:", err)
		return 1
	}
	sum, err := ingest.Import(ctx, st, fs.Args(), stdout)
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	rows := sum.Rows()
	fmt.Fprintf(stderr, "imported %d klines, %d open interest rows and %d liquidations; %d file(s) rejected\n",
		rows[ingest.KindKlines], rows[ingest.KindMetrics], rows[ingest.KindLiquidations], sum.Rejected())
	if err != nil {
		fmt.Fprintln(stderr, "snapshotter import:", err)
		return 1
	}
	if sum.Rejected() > 0 {
		return 1
	}
	return 0
}
