// Command floor runs the bare gws broadcaster (package floor) that load runs
// measure the gateway against.
//
//	floor -listen 127.0.0.1:8090 -redis_url redis://127.0.0.1:6379/0 [-debug_listen 127.0.0.1:6061]
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/liqstream/liqstream/loadtest/floor"
)

func main() {
	var o floor.Options
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:8090", "HTTP listen address of /ws/heatmap and /readyz")
	flag.StringVar(&o.RedisURL, "redis_url", "redis://127.0.0.1:6379/0", "Redis the snapshotter publishes to")
	flag.StringVar(&o.DebugListen, "debug_listen", "", "serve net/http/pprof on this address (empty = off)")
	flag.BoolVar(&o.Compression, "compression", true, "negotiate permessage-deflate when offered (the gateway's default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := floor.Run(ctx, o); err != nil {
		log.Fatal(err)
	}
}
