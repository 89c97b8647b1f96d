// Package symscale measures one snapshotter serving many symbols from the
// live Binance source (REST poller and market streams) against
// pkg/fakebinance in real time: the CPU it spends per snapshot interval, its
// memory, its frame sizes and the Binance request budget it uses, for each
// symbol count asked for. cmd/symscale runs it and prints a markdown report.
// It measures; it asserts nothing.
package symscale

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/liqstream/liqstream/pkg/fakebinance"
)

// Symbols returns n symbol names: BTCUSDT, ETHUSDT, then made-up S001USDT,
// S002USDT, ... for the rest.
func Symbols(n int) []string {
	var out []string
	for i := range n {
		switch i {
		case 0:
			out = append(out, "BTCUSDT")
		case 1:
			out = append(out, "ETHUSDT")
		default:
			out = append(out, fmt.Sprintf("S%03dUSDT", i-1))
		}
	}
	return out
}

// BinSize is the heatmap bucket for a symbol trading near price: a
// thousandth of it, rounded, within the snapshotter's 1..1000 USD, so every
// symbol gets a heatmap of the same ordinary resolution whatever its price.
func BinSize(price float64) int {
	return int(math.Min(1000, math.Max(1, math.Round(price/1000))))
}

// BinSizes is the heatmap.bin_sizes value for symbols at their prices.
func BinSizes(symbols []string, price func(string) float64) string {
	parts := make([]string, len(symbols))
	for i, s := range symbols {
		parts[i] = fmt.Sprintf("%s:%d", s, BinSize(price(s)))
	}
	return strings.Join(parts, ",")
}

// Point is a counter's value at a time.
type Point struct {
	At    time.Time
	Value float64
}

// PeakIn is the largest increase of a non-decreasing counter within any
// window-long span of its samples (points in time order): the request
// weight Binance would have counted in its worst rolling minute, to the
// resolution of the sampling.
func PeakIn(points []Point, window time.Duration) float64 {
	peak, j := 0.0, 0
	for i := range points {
		for points[i].At.Sub(points[j].At) > window {
			j++
		}
		if d := points[i].Value - points[j].Value; d > peak {
			peak = d
		}
	}
	return peak
}

// Stats is the mean, the smallest and the largest of a set of values.
type Stats struct {
	N              int
	Mean, Min, Max float64
}

// Describe summarises values.
func Describe(values []float64) Stats {
	if len(values) == 0 {
		return Stats{}
	}
	s := Stats{N: len(values), Min: math.Inf(1), Max: math.Inf(-1)}
	for _, v := range values {
		s.Mean += v
		s.Min, s.Max = math.Min(s.Min, v), math.Max(s.Max, v)
	}
	s.Mean /= float64(len(values))
	return s
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MidTick is the first moment after now halfway between two ticks of a
// loop that ticks every interval and published at unix second `published`
// (a frame of its first symbol, stamped just after a tick started).
func MidTick(published float64, interval time.Duration, now time.Time) time.Time {
	t := time.Unix(0, int64(published*1e9)).Add(interval / 2)
	if t.After(now) {
		return t
	}
	k := now.Sub(t)/interval + 1
	return t.Add(k * interval)
}

// LookbackSkipped lists the symbols none of whose klines requests started
// before since: their history was never asked for, only recent candles.
func LookbackSkipped(reqs []fakebinance.KlineRequest, symbols []string, since time.Time) []string {
	earliest := map[string]time.Time{}
	for _, r := range reqs {
		if r.Start.IsZero() {
			continue
		}
		if e, ok := earliest[r.Symbol]; !ok || r.Start.Before(e) {
			earliest[r.Symbol] = r.Start
		}
	}
	var out []string
	for _, s := range symbols {
		if e, ok := earliest[s]; !ok || !e.Before(since) {
			out = append(out, s)
		}
	}
	return out
}

// LogCounts is what a JSON log (log/slog's JSON handler, one object a line)
// holds above INFO.
type LogCounts struct {
	Warn, Error int
	// Messages counts WARN and ERROR lines by message.
	Messages map[string]int
}

// CountLog reads a JSON log; lines that are not JSON are skipped.
func CountLog(r io.Reader) LogCounts {
	c := LogCounts{Messages: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Level {
		case "WARN":
			c.Warn++
		case "ERROR":
			c.Error++
		default:
			continue
		}
		c.Messages[l.Msg]++
	}
	return c
}

// Top is the most frequent messages, most frequent first, as "n× msg".
func (c LogCounts) Top(n int) []string {
	keys := sortedKeys(c.Messages)
	sort.SliceStable(keys, func(i, j int) bool { return c.Messages[keys[i]] > c.Messages[keys[j]] })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%d× %s", c.Messages[k], k))
	}
	return out
}
