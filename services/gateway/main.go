// Command gateway holds browsers' WebSocket connections and relays the
// snapshotter's pre-encoded heatmap frames to them. It has no database and no
// cgo, and never decodes a heatmap.
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
	"github.com/liqstream/liqstream/services/gateway/internal/app"
	"github.com/liqstream/liqstream/services/gateway/internal/conf"
)

func main() {
	cfg := conf.Default()
	if err := config.Load("gateway", os.Args[1:], os.Stderr, &cfg); err != nil {
		if errors.Is(err, config.ErrHelp) || errors.Is(err, config.ErrVersion) || errors.Is(err, config.ErrChecked) {
			return
		}
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = logging.DefaultInstance()
	}
	log, err := logging.New(os.Stderr, cfg.LogLevel, "gateway", cfg.InstanceID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gw, err := app.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	if err := gw.Run(ctx); err != nil {
		log.Error("gateway stopped", logging.KeyErr, err)
		os.Exit(1)
	}
	log.Info("gateway stopped")
}
