// Command symscale measures one snapshotter serving N symbols from the live
// Binance source against an in-process fake Binance (pkg/fakebinance), for
// each N of -symbols in turn: backfill time and request weight, then over a
// window at the snapshot interval the CPU per interval, memory, compute
// time, frame sizes, the REST and WebSocket budget, and whether every symbol
// published every interval. It prints a markdown report (package symscale);
// it measures and asserts nothing.
//
//	make build && make symscale                   # 2, 20 and 100 symbols, 5 minutes each
//	bin/symscale -symbols 100 -measure 3m -out bin/symscale.md
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/loadtest/symscale"
)

func main() {
	var o symscale.Options
	symbols := flag.String("symbols", "2,20,100", "comma-separated symbol counts, one snapshotter each")
	out := flag.String("out", "", "markdown report file (default stdout)")
	via := flag.String("via", "", "the command that ran this one, for the report (make symscale)")
	extra := flag.String("snapshotter-args", "", "extra snapshotter flags, space-separated")
	flag.StringVar(&o.Snapshotter, "snapshotter", "bin/snapshotter", "snapshotter binary")
	flag.DurationVar(&o.Warm, "warm", 30*time.Second, "wait after every symbol published on its full history, before the window")
	flag.DurationVar(&o.Measure, "measure", 5*time.Minute, "measurement window per symbol count")
	flag.DurationVar(&o.UpdateEvery, "update-every", 250*time.Millisecond, "how often the fake pushes each symbol's open candle (Binance: 250ms)")
	flag.Float64Var(&o.LiquidationsPerMinute, "liquidations", 1, "mean liquidations per symbol per minute on the fake's !forceOrder@arr")
	flag.DurationVar(&o.Lookback, "lookback", 7*24*time.Hour, "binance.lookback: history fetched at start (the snapshot lookback's 7 days)")
	flag.Uint64Var(&o.Seed, "seed", 1, "the fake market's seed")
	flag.DurationVar(&o.BackfillTimeout, "backfill-timeout", 15*time.Minute, "longest wait for the backfill and the first frames")
	flag.DurationVar(&o.FrameEvery, "frames-every", time.Minute, "how often every symbol's frame is fetched in the window")
	flag.BoolVar(&o.KeepDir, "keep", false, "keep each run's temp dir (DuckDB file, snapshotter log)")
	flag.Parse()
	o.Log = os.Stderr
	o.ExtraArgs = strings.Fields(*extra)

	var counts []int
	for _, s := range strings.Split(*symbols, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000 {
			fmt.Fprintf(os.Stderr, "symscale: -symbols: %q is not a count between 1 and 1000\n", s)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	if _, err := os.Stat(o.Snapshotter); err != nil {
		fmt.Fprintf(os.Stderr, "symscale: %v (make build first)\n", err)
		os.Exit(2)
	}
	command := "bin/symscale " + strings.Join(os.Args[1:], " ")
	if *via != "" {
		command = *via + "`, that is `" + command
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	h := symscale.Header{Command: command, At: time.Now(), Machine: procstat.Describe(), Options: o}
	var results []*symscale.Result
	for _, n := range counts {
		o := o
		o.Symbols = n
		r, err := symscale.Run(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "symscale: %d symbols: %v\n", n, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		fmt.Fprintln(os.Stderr, "symscale: nothing measured")
		os.Exit(1)
	}
	var buf bytes.Buffer
	symscale.Report(&buf, h, results)
	var w io.Writer = os.Stdout
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "symscale:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "symscale: report in", *out)
		return
	}
	w.Write(buf.Bytes())
}
