// Command loadrun runs liqstream's standard load scenarios on this machine
// and reports them next to the floor measured in the same run (package
// scenario). It writes JSON and, with -doc, regenerates its section of
// docs/PERFORMANCE.md. It exits non-zero when a correctness check fails
// (a client could not connect, a frame was lost or reordered).
//
//	make loadtest                # -load standard -doc docs/PERFORMANCE.md
//	make loadtest LOAD=smoke     # a few hundred clients, no doc: part of make test
//	make loadtest LOAD=delta     # full frames vs deltas, ± deflate, at 10,000 clients -doc docs/PERFORMANCE.md
//	make soak SOAK=30m           # -load soak
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/liqstream/liqstream/loadtest/procstat"
	"github.com/liqstream/liqstream/loadtest/scenario"
)

func main() {
	var (
		o       scenario.Options
		load    = flag.String("load", "standard", "smoke, standard, delta or soak")
		only    = flag.String("only", "", "comma-separated scenario names to run out of the load (default all)")
		soakFor = flag.Duration("soak", 30*time.Minute, "how long the soak window lasts")
		out     = flag.String("out", "bin/loadtest.json", "JSON results (empty = none)")
		doc     = flag.String("doc", "", "regenerate this load's section of this markdown file (docs/PERFORMANCE.md)")
		timeout = flag.Duration("timeout", 90*time.Minute, "stop everything after this long")
		via     = flag.String("via", "", "the command that ran this one, for the report (make loadtest)")
		gwArgs  = flag.String("gateway-args", "", "extra flags for every gateway, space-separated (e.g. --ws.send_buffer_bytes=0)")
		clients = flag.Int("clients", 0, "run every scenario with this many clients instead of its own (0: as defined); the report says so")
	)
	flag.StringVar(&o.GatewayBin, "gateway", "bin/gateway", "gateway binary")
	flag.StringVar(&o.FloorBin, "floor", "bin/floor", "floor binary")
	flag.StringVar(&o.RedisBin, "redis-server", "", "redis-server binary (default: from PATH)")
	flag.StringVar(&o.NginxBin, "nginx", "", "nginx binary (default: from PATH or /usr/sbin)")
	flag.StringVar(&o.NginxTemplate, "nginx-template", "deploy/nginx/nginx.conf.tmpl", "the edge's config template")
	flag.IntVar(&o.FrameBytes, "frame-bytes", 18000, "approximate size of each snapshot frame")
	flag.BoolVar(&o.RegenerateFrames, "regenerate-frames", false, "the feeder draws every level afresh each round and sends no deltas (the feeder before deltas)")
	flag.StringVar(&o.ProfileDir, "profile-dir", "bin/loadtest-profiles", "where CPU profiles are written")
	flag.BoolVar(&o.KeepLogs, "keep-logs", false, "keep the temp dir with every process's log")
	flag.Parse()
	o.Log = os.Stdout
	o.GatewayArgs = strings.Fields(*gwArgs)
	command := "bin/loadrun " + strings.Join(os.Args[1:], " ")
	if *via != "" {
		command = *via + "`, that is `" + command
	}
	if err := run(o, scenario.Load(*load), *only, *clients, *soakFor, *out, *doc, *timeout, command); err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

func run(o scenario.Options, load scenario.Load, only string, clients int, soakFor time.Duration, out, doc string, timeout time.Duration, command string) error {
	all, err := scenario.Scenarios(load, soakFor)
	if err != nil {
		return err
	}
	if clients > 0 {
		for i := range all {
			all[i].N = clients
			all[i].Ramp = min(all[i].Ramp, clients)
			all[i].Title += fmt.Sprintf(" — run here at %d clients (-clients)", clients)
		}
	}
	list := all
	if only != "" {
		list = nil
		for _, name := range strings.Split(only, ",") {
			found := false
			for _, s := range all {
				if s.Name == name {
					list, found = append(list, s), true
				}
			}
			if !found {
				return fmt.Errorf("-only: no scenario %q in load %s", name, load)
			}
		}
	}
	// Client sockets live here; each target holds its own.
	if _, err := procstat.RaiseNoFile(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := scenario.NewRunner(ctx, o)
	if err != nil {
		return err
	}
	defer r.Close()
	rep, runErr := r.Run(ctx, load, list)
	rep.Command = command
	if out != "" && rep != nil {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", out)
	}
	if runErr != nil {
		return runErr
	}
	fmt.Println()
	fmt.Println(rep.Markdown())
	if doc != "" {
		if only != "" {
			return fmt.Errorf("-doc regenerates a whole load's section: run without -only")
		}
		if err := rep.WriteDoc(doc); err != nil {
			return err
		}
		fmt.Println("regenerated the", load, "section of", doc)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("%d correctness checks failed:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}
