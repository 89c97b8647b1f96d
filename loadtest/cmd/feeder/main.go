// Command feeder publishes spec-shaped snapshot frames of BTCUSDT and
// ETHUSDT every -interval, to Redis and/or on the snapshotter's HTTP API, so
// gateways can be driven at a chosen cadence without a snapshotter. Like the
// snapshotter's, its frames carry an epoch, change by a few levels a round
// and come with their delta frames (-regenerate: every level redrawn each
// round, and no deltas).
//
//	feeder -redis_url redis://127.0.0.1:6379/0 -interval 1s            # gateways on Redis
//	feeder -listen 127.0.0.1:8081 -interval 1s                         # gateways with --snapshotter_url http://127.0.0.1:8081
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/loadtest/feeder"
	"github.com/liqstream/liqstream/pkg/bus"
)

func main() {
	var (
		redisURL   = flag.String("redis_url", "", "publish to this Redis (empty = HTTP only)")
		listen     = flag.String("listen", "", "serve the snapshotter's HTTP API here (empty = Redis only)")
		interval   = flag.Duration("interval", time.Second, "one frame per symbol this often")
		frameBytes = flag.Int("frame-bytes", 18000, "approximate frame size")
		symbols    = flag.String("symbols", "BTCUSDT,ETHUSDT", "comma-separated symbols")
		o          feeder.Options
	)
	flag.Uint64Var(&o.Epoch, "epoch", 0, "the epoch every frame carries (0: the unix second the feeder starts)")
	flag.BoolVar(&o.Regenerate, "regenerate", false, "draw every level afresh each round (no deltas) instead of changing a few")
	flag.Parse()
	if err := run(*redisURL, *listen, *interval, *frameBytes, strings.Split(*symbols, ","), o); err != nil {
		log.Fatal("feeder: ", err)
	}
}

func run(redisURL, listen string, interval time.Duration, frameBytes int, symbols []string, o feeder.Options) error {
	if redisURL == "" && listen == "" {
		return fmt.Errorf("nothing to feed: set -redis_url, -listen or both")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rc *redis.Client
	if redisURL != "" {
		var err error
		if rc, err = bus.NewRedisClient(redisURL); err != nil {
			return err
		}
		defer rc.Close()
	}
	f, err := feeder.NewWithOptions(symbols, interval, frameBytes, rc, o)
	if err != nil {
		return err
	}
	if err := f.Start(ctx); err != nil {
		return err
	}
	log.Printf("feeding %s every %s, epoch %d", f.Sizes(), interval, f.Epoch())
	if listen == "" {
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{Addr: listen, Handler: f, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
