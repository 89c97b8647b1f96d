// Command wsload drives WebSocket clients against targets that are already
// running on this machine (a gateway, make fleet's nginx, the floor) and
// prints what they saw: connects, latency, bytes, seq gaps, delta chain
// breaks, closes and warnings by code, and the CPU and RSS of the processes
// named by -pids.
// make loadtest starts its own targets instead (loadtest/cmd/loadrun).
//
//	wsload -targets ws://127.0.0.1:8080/ws/heatmap -n 1000 -window 30s
//	wsload -targets ws://127.0.0.1:8080/ws/heatmap -origin http://127.0.0.1:8080 -n 5000 -slow-fraction 0.01 -pids $(pgrep -d, gateway)
//
// Targets must be loopback addresses; the run is bounded by -n and -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/loadtest/wsload"
)

// Result is the JSON written to -out.
type Result struct {
	Machine   procstat.Machine `json:"machine"`
	Config    wsload.Config    `json:"config"`
	Connect   wsload.Connect   `json:"connect"`
	Window    wsload.Window    `json:"window"`
	Processes []Proc           `json:"processes,omitempty"`
}

// Proc is one sampled target process over the window.
type Proc struct {
	PID      int     `json:"pid"`
	CPUPct   float64 `json:"cpu_pct_of_core"`
	RSSEndK  int64   `json:"rss_end_kb"`
	RSSPeakK int64   `json:"rss_peak_kb"`
	FDs      int     `json:"fds"`
}

func main() {
	var (
		c       wsload.Config
		targets = flag.String("targets", "ws://127.0.0.1:8080/ws/heatmap", "comma-separated ws:// URLs on loopback; clients are spread over them")
		mix     = flag.String("mix", "BTCUSDT;BTCUSDT,ETHUSDT", "subscriptions, ';' between clients' lists, ',' within one; client i takes the (i mod count)th")
		settle  = flag.Duration("settle", 10*time.Second, "wait after the last connection before the window")
		window  = flag.Duration("window", 30*time.Second, "measurement window")
		pids    = flag.String("pids", "", "comma-separated PIDs of the target processes to sample from /proc")
		out     = flag.String("out", "", "write the result as JSON here")
		timeout = flag.Duration("timeout", 30*time.Minute, "stop after this long")
	)
	flag.IntVar(&c.N, "n", 1000, "clients")
	flag.IntVar(&c.Ramp, "ramp", 1000, "connections opened per second")
	flag.IntVar(&c.Sources, "sources", 256, "source addresses 127.X.Y.1 the clients are spread over")
	flag.IntVar(&c.UpdateInterval, "update-interval", 5, "clients' update_interval in seconds (the page's default is 5)")
	flag.DurationVar(&c.Interval, "interval", 5*time.Second, "the producer's interval (snapshot.interval): frames expected, and whether skipped seqs count as lost")
	flag.BoolVar(&c.Deflate, "deflate", false, "offer permessage-deflate")
	flag.StringVar(&c.Encoding, "encoding", "", `"encoding" of every subscribe: full or delta (empty: none sent, the gateway's default, full)`)
	flag.StringVar(&c.Origin, "origin", "", "Origin header (through an edge, the page's origin)")
	flag.Float64Var(&c.SlowFraction, "slow-fraction", 0, "fraction of clients that read slowly")
	flag.IntVar(&c.SlowRate, "slow-rate", 2048, "bytes per second a slow client reads")
	flag.Parse()
	c.Targets = strings.Split(*targets, ",")
	var err error
	if c.Mix, err = wsload.ParseMix(*mix); err == nil {
		err = run(c, *settle, *window, *pids, *out, *timeout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

func run(c wsload.Config, settle, window time.Duration, pidList, out string, timeout time.Duration) error {
	var pids []int
	for _, f := range strings.FieldsFunc(pidList, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("-pids: %q is not a PID", f)
		}
		pids = append(pids, p)
	}
	if _, err := procstat.RaiseNoFile(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := Result{Machine: procstat.Describe(), Config: c}
	fmt.Println("machine:", res.Machine)
	pool, err := wsload.Dial(ctx, c)
	if pool != nil {
		defer pool.Close()
	}
	if err != nil {
		return err
	}
	res.Connect = pool.ConnectResult()
	fmt.Printf("connected %d of %d in %.1fs, handshake p50 %.1f p99 %.1f ms, by gateway %v\n", res.Connect.Connected, res.Connect.Attempted,
		res.Connect.Seconds, res.Connect.TimeMs.P50, res.Connect.TimeMs.P99, res.Connect.ByGateway)
	if res.Connect.FirstError != "" {
		fmt.Println("first error:", res.Connect.FirstError)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
	}
	before := sample(pids)
	pool.Begin()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	res.Window = pool.End()
	for i, s := range sample(pids) {
		res.Processes = append(res.Processes, Proc{PID: pids[i], CPUPct: procstat.CPUPercent(before[i], s), RSSEndK: s.RSSK, RSSPeakK: s.HWMK, FDs: s.FDs})
	}
	for _, cl := range []struct {
		name string
		c    wsload.Class
	}{{"fast", res.Window.Fast}, {"slow", res.Window.Slow}} {
		if cl.c.Clients == 0 {
			continue
		}
		l := cl.c.Latency
		fmt.Printf("%s clients %d (open %d): frames %d (expected %d; %d deltas, %d delta chain breaks), latency p50 %.1f p90 %.1f p99 %.1f max %.1f ms, seq gaps %d, out of order %d, %.1f KB/s each on the wire (%.1f KB/s of messages), closes %v, warnings %v, errors %v\n",
			cl.name, cl.c.Clients, cl.c.Open, cl.c.Frames, cl.c.FramesExpected, cl.c.Deltas, cl.c.ChainBreaks, l.P50, l.P90, l.P99, l.Max, cl.c.Gaps, cl.c.OutOfOrder,
			cl.c.BytesPerClientPerS/1024, cl.c.PayloadBytesPerClientPerS/1024, cl.c.Closes, cl.c.Warnings, cl.c.Errors)
	}
	for _, p := range res.Processes {
		fmt.Printf("pid %d: cpu %.1f%% of a core, rss %.1f MB (peak %.1f), %d fds\n", p.PID, p.CPUPct, float64(p.RSSEndK)/1024, float64(p.RSSPeakK)/1024, p.FDs)
	}
	if out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(out, append(b, '\n'), 0o644)
	}
	return nil
}

func sample(pids []int) []procstat.Sample {
	out := make([]procstat.Sample, len(pids))
	for i, p := range pids {
		out[i], _ = procstat.Read(p)
	}
	return out
}
