// Package serve runs an HTTP server for the life of a context, so every
// service starts and drains the same way.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ListeningMsg is the log message carrying the bound address; tests and
// scripts that start a service on port 0 read the address from it.
const ListeningMsg = "listening"

// HTTP listens on addr and serves h until ctx ends, then shuts down, giving
// in-flight requests up to grace to finish.
func HTTP(ctx context.Context, addr string, h http.Handler, grace time.Duration, log *slog.Logger) error {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	ln := newFDListener(raw, log)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests inherit ctx so long polls end at shutdown instead of holding it up.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	log.Info(ListeningMsg, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown %s: %w", addr, err)
	}
	srv.Close()
	return nil
}
