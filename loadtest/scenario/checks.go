package scenario

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Check is one goal of a scenario against what was measured.
type Check struct {
	Target string `json:"target"`
	What   string `json:"what"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
	// Hard checks are correctness (everyone connected, nothing lost): a
	// miss fails the invocation. The others are performance goals,
	// reported as met or not on this noisy shared machine.
	Hard bool `json:"hard,omitempty"`
}

// RatioPair is a target's numbers divided by the mean of the floor runs.
type RatioPair struct {
	P50        float64 `json:"latency_p50"`
	P99        float64 `json:"latency_p99"`
	CPU        float64 `json:"cpu"`
	RSSPerConn float64 `json:"rss_per_conn"`
	HeapLive   float64 `json:"heap_live_per_conn"`
}

// RatioFull is a run's numbers divided by the mean of the same kind's
// full-frame runs without deflate (the delta scenario).
type RatioFull struct {
	WireBytes    float64 `json:"wire_bytes"`
	PayloadBytes float64 `json:"payload_bytes"`
	CPU          float64 `json:"cpu"`
	P50          float64 `json:"latency_p50"`
	P99          float64 `json:"latency_p99"`
}

// Failed lists the hard checks that were missed.
func (r *Report) Failed() []string {
	var out []string
	for _, s := range r.Scenarios {
		for _, c := range s.Checks {
			if c.Hard && !c.Met {
				out = append(out, fmt.Sprintf("%s/%s: %s: want %s, got %s", s.Scenario.Name, c.Target, c.What, c.Want, c.Got))
			}
		}
	}
	return out
}

func (r *Result) run(target string) *Run {
	for _, x := range r.Runs {
		if x.Target == target {
			return x
		}
	}
	return nil
}

func (rep *Report) scenario(name string) *Result {
	for _, s := range rep.Scenarios {
		if s.Scenario.Name == name {
			return s
		}
	}
	return nil
}

// floorMean averages v over the plain floor runs of a scenario (0 if none).
func (r *Result) floorMean(v func(*Run) float64) float64 { return r.floorMeanOf(Floor, v) }

// floorMeanOf averages v over the runs of floor target f.
func (r *Result) floorMeanOf(f string, v func(*Run) float64) float64 {
	sum, n := 0.0, 0
	for _, x := range r.Runs {
		if x.Target == f {
			sum += v(x)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(100*a/b) / 100
}

// ratio3 is ratio to three decimals: bytes of deltas are a few hundredths.
func ratio3(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(1000*a/b) / 1000
}

func wire(r *Run) float64    { return r.Window.Fast.BytesPerClientPerS }
func payload(r *Run) float64 { return r.Window.Fast.PayloadBytesPerClientPerS }
func p99(r *Run) float64     { return r.Window.Fast.Latency.P99 }
func p50(r *Run) float64     { return r.Window.Fast.Latency.P50 }
func cpu(r *Run) float64     { return r.Server.CPUPct }
func rssConn(r *Run) float64 { return r.Server.RSSPerConnK }

// evaluate fills every scenario's ratios and checks.
func evaluate(rep *Report) {
	for _, res := range rep.Scenarios {
		s := &res.Scenario
		res.Ratios = map[string]RatioPair{}
		for _, run := range res.Runs {
			fl := floorOf(run.Target)
			if k, _ := kind(run.Target); k == Floor || res.floorMeanOf(fl, p99) == 0 {
				continue
			}
			mean := func(v func(*Run) float64) float64 { return res.floorMeanOf(fl, v) }
			res.Ratios[run.Target] = RatioPair{
				P50: ratio(p50(run), mean(p50)), P99: ratio(p99(run), mean(p99)),
				CPU: ratio(cpu(run), mean(cpu)), RSSPerConn: ratio(rssConn(run), mean(rssConn)),
				HeapLive: ratio(run.HeapLivePerK, mean(func(r *Run) float64 { return r.HeapLivePerK })),
			}
		}
		add := func(target, what, want, got string, met, hard bool) {
			res.Checks = append(res.Checks, Check{Target: target, What: what, Want: want, Got: got, Met: met, Hard: hard})
		}
		withDelta := false
		for _, run := range res.Runs {
			if _, _, d := parse(run.Target); d {
				withDelta = true
			}
		}
		// Correctness, on every run.
		for _, run := range res.Runs {
			c, w := run.Connect, run.Window
			add(run.Target, "connected", fmt.Sprintf("%d (100 %%)", c.Attempted), fmt.Sprintf("%d%s", c.Connected, firstErr(c.FirstError)), c.Connected == c.Attempted, true)
			if !w.GapsNotCounted {
				add(run.Target, "seq gaps (fast clients)", "0", fmt.Sprint(w.Fast.Gaps), w.Fast.Gaps == 0, true)
			}
			add(run.Target, "frames out of order (fast clients)", "0", fmt.Sprint(w.Fast.OutOfOrder), w.Fast.OutOfOrder == 0, true)
			closed := run.LifetimeFast.Closes
			add(run.Target, "fast clients closed by the server", "none", fmtCodes(closed), len(closed) == 0, true)
			// The window's edges may miss one round of frames.
			every := max(s.Interval.Seconds(), float64(s.UpdateInterval))
			least := int64(float64(w.Fast.FramesExpected) * (1 - 1.5*every/w.Seconds))
			add(run.Target, "frames read (fast clients)", fmt.Sprintf("≥ %d (of %d expected)", least, w.Fast.FramesExpected),
				fmt.Sprint(w.Fast.Frames), w.Fast.Frames >= least && w.Fast.Frames > 0, true)
			// The feeder shares the load generator's process: a late or
			// skipped round says the generator, not the target, was short of CPU.
			pr := run.Producer
			add(run.Target, "feeder rounds late (> a tenth of the interval) or skipped in the window", "0",
				fmt.Sprintf("%d late of %d (latest %.0f ms), %d skipped", pr.LateTicks, pr.Ticks, pr.MaxLateMs, pr.SkippedTicks),
				pr.LateTicks == 0 && pr.SkippedTicks == 0, false)
			if !withDelta {
				continue
			}
			if _, _, delta := parse(run.Target); delta {
				// A delta whose base the client does not hold is one it could not apply.
				add(run.Target, "delta chain violations (fast clients)", "0", fmt.Sprintf("%d of %d deltas", w.Fast.ChainBreaks, w.Fast.Deltas), w.Fast.ChainBreaks == 0, true)
				add(run.Target, "delta frames read (fast clients)", "> 0", fmt.Sprint(w.Fast.Deltas), w.Fast.Deltas > 0, true)
				share := 0.0
				if w.Fast.Frames > 0 {
					share = float64(w.Fast.Deltas) / float64(w.Fast.Frames)
				}
				add(run.Target, "frames sent as deltas", "≥ 90 %", fmt.Sprintf("%.1f %%", 100*share), share >= 0.9, false)
			} else {
				add(run.Target, "delta frames to clients that asked for full frames", "0", fmt.Sprint(w.Fast.Deltas), w.Fast.Deltas == 0, true)
			}
		}
		if withDelta {
			res.ToFull = map[string]RatioFull{}
			for _, run := range res.Runs {
				k, deflate, delta := parse(run.Target)
				full := func(v func(*Run) float64) float64 { return res.floorMeanOf(k, v) }
				if (!deflate && !delta) || full(p99) == 0 {
					continue
				}
				q := RatioFull{WireBytes: ratio3(wire(run), full(wire)), PayloadBytes: ratio3(payload(run), full(payload)),
					CPU: ratio(cpu(run), full(cpu)), P50: ratio(p50(run), full(p50)), P99: ratio(p99(run), full(p99))}
				res.ToFull[run.Target] = q
				add(run.Target, "bytes per client per second on the wire / full frames'", "reported",
					fmt.Sprintf("%.3f× (%.2f / %.2f KB/s)", q.WireBytes, wire(run)/1024, full(wire)/1024), true, false)
				add(run.Target, "gateway CPU / full frames'", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f %%)", q.CPU, cpu(run), full(cpu)), true, false)
				add(run.Target, "p99 / full frames'", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", q.P99, p99(run), full(p99)), true, false)
			}
		}
		gw := res.run(Gateway)
		withFloor := res.floorMean(p99) > 0
		switch s.Name {
		case "one-gateway":
			for _, t := range []string{Gateway, GatewayHTTP} {
				g := res.run(t)
				if g == nil || !withFloor {
					continue
				}
				q := res.Ratios[t]
				add(t, "p99 latency / floor's", "≤ 1.10×", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", q.P99, p99(g), res.floorMean(p99)), q.P99 <= 1.10, false)
				add(t, "RSS per connection", "≤ 16 KB", fmt.Sprintf("%.1f KB", rssConn(g)), rssConn(g) <= 16, false)
				add(t, "CPU / floor's", "≤ 1.30×", fmt.Sprintf("%.2f× (%.1f / %.1f %%)", q.CPU, cpu(g), res.floorMean(cpu)), q.CPU <= 1.30, false)
			}
		case "defaults":
			if gw != nil && withFloor {
				q := res.Ratios[Gateway]
				add(Gateway, "p99 latency / floor's", "≤ 1.10×", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", q.P99, p99(gw), res.floorMean(p99)), q.P99 <= 1.10, false)
			}
		case "slow-readers":
			if gw == nil {
				break
			}
			nSlow := gw.LifetimeSlow.Clients
			add(Gateway, "slow clients told (SLOW_CONSUMER or 4008)", fmt.Sprintf("%d of %d", nSlow, nSlow), fmt.Sprintf("%d", gw.SlowFlagged), gw.SlowFlagged == nSlow && nSlow > 0, false)
			sc := gw.ServerDisconnects["slow_consumer"]
			add(Gateway, "gateway's slow_consumer disconnects", fmt.Sprintf("%d", nSlow), fmt.Sprintf("%.0f (all reasons: %s)", sc, fmtCodes(gw.ServerDisconnects)), int(sc) == nSlow, false)
			if ref := rep.scenario("one-gateway"); ref != nil && ref.run(Gateway) != nil {
				r0 := ref.run(Gateway)
				q := ratio(p99(gw), p99(r0))
				add(Gateway, "fast clients' p99 / without slow readers", "≤ 1.10×", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", q, p99(gw), p99(r0)), q <= 1.10, false)
				m := ratio(float64(gw.Server.RSSPeakK), float64(r0.Server.RSSPeakK))
				add(Gateway, "peak RSS / without slow readers", "≤ 1.25×", fmt.Sprintf("%.2f× (%.0f / %.0f MB)", m, float64(gw.Server.RSSPeakK)/1024, float64(r0.Server.RSSPeakK)/1024), m <= 1.25, false)
			}
		case "fleet":
			for _, t := range []string{Fleet, FleetDirect} {
				f := res.run(t)
				if f == nil {
					continue
				}
				var counts []string
				least := f.Connect.Connected
				for _, p := range f.Processes {
					if strings.HasPrefix(p.Name, "gateway") {
						counts = append(counts, fmt.Sprintf("%s %d", p.Name, p.Clients))
						least = min(least, p.Clients)
					}
				}
				fair := f.Connect.Connected / FleetSize
				add(t, "clients on the least-loaded gateway", fmt.Sprintf("≥ %d (half a fair share)", fair/2), strings.Join(counts, ", "), least >= fair/2, false)
			}
			if f, d := res.run(Fleet), res.run(FleetDirect); f != nil && d != nil {
				q := ratio(p99(f), p99(d))
				add(Fleet, "p99 through nginx / direct", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", q, p99(f), p99(d)), true, false)
			}
		case "19k":
			if gw != nil {
				add(Gateway, "p99 latency", "reported", fmt.Sprintf("%.1f ms (floor %.1f ms)", p99(gw), res.floorMean(p99)), true, false)
			}
		case "deflate":
			for _, k := range []string{Floor, Gateway} {
				plain, comp := res.run(k), res.run(k+WithDeflate)
				if plain == nil || comp == nil {
					continue
				}
				bp, bc := plain.Window.Fast.BytesPerClientPerS, comp.Window.Fast.BytesPerClientPerS
				add(k+WithDeflate, "bytes per client per second, deflate / plain", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f KB/s)", ratio(bc, bp), bc/1024, bp/1024), true, false)
				add(k+WithDeflate, "p99, deflate / plain", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f ms)", ratio(p99(comp), p99(plain)), p99(comp), p99(plain)), true, false)
				add(k+WithDeflate, "server CPU, deflate / plain", "reported", fmt.Sprintf("%.2f× (%.1f / %.1f %%)", ratio(cpu(comp), cpu(plain)), cpu(comp), cpu(plain)), true, false)
			}
		case "soak":
			if gw == nil || len(gw.Samples) < 2 {
				break
			}
			first, last := gw.Samples[0], gw.Samples[len(gw.Samples)-1]
			growth := gw.RSSSlopeKBMin * (last.Minute - first.Minute)
			add(Gateway, "RSS growth over the window (fitted slope × minutes)", fmt.Sprintf("≤ 5 %% of %.0f MB", float64(first.RSSK)/1024),
				fmt.Sprintf("%+.0f KB (%+.1f KB/min)", growth, gw.RSSSlopeKBMin), growth <= 0.05*float64(first.RSSK), false)
			lo, hi := first.Goroutines, first.Goroutines
			for _, x := range gw.Samples {
				lo, hi = min(lo, x.Goroutines), max(hi, x.Goroutines)
			}
			add(Gateway, "goroutines, min..max over the window", "flat (spread ≤ 10)", fmt.Sprintf("%d..%d (%+.2f/min)", lo, hi, gw.GorSlopeMin), hi-lo <= 10, false)
		}
	}
}

// fmtCodes renders counts by code, sorted: "1001×2, 4008×1", or "none".
func fmtCodes[V int64 | float64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
