// Command snapshotter owns liqstream's DuckDB file: it ingests candles and open
// interest, computes the liquidation heatmap of each symbol every interval and
// serves the encoded frames to gateways.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/liqstream/liqstream/pkg/config"
	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/app"
	"github.com/liqstream/liqstream/services/snapshotter/internal/conf"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "import" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := app.Import(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	cfg := conf.Default()
	if err := config.Load("snapshotter", os.Args[1:], os.Stderr, &cfg); err != nil {
		if errors.Is(err, config.ErrHelp) || errors.Is(err, config.ErrVersion) || errors.Is(err, config.ErrChecked) {
			return
		}
		fmt.Fprintln(os.Stderr, "snapshotter:", err)
		os.Exit(2)
	}
	log, err := logging.New(os.Stderr, cfg.LogLevel, "snapshotter", cfg.InstanceID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshotter:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("snapshotter stopped", logging.KeyErr, err)
		os.Exit(1)
	}
	log.Info("snapshotter stopped")
}
