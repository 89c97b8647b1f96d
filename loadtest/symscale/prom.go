package symscale

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/liqstream/liqstream/loadtest/scenario"
)

// Sample is one line of a Prometheus text exposition: a name, its labels
// and its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is a parsed /metrics page.
type Metrics []Sample

// ParseMetrics reads the Prometheus text format (version 0.0.4): comments
// and blank lines are skipped, a trailing timestamp is ignored, label values
// may hold escaped quotes, backslashes and newlines.
func ParseMetrics(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLine(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("%q: no value", line)
	}
	s.Name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t,")
			if line == "" {
				return s, fmt.Errorf("unterminated labels")
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || len(line) < eq+2 || line[eq+1] != '"' {
				return s, fmt.Errorf("bad label in %q", line)
			}
			key := strings.TrimSpace(line[:eq])
			val, rest, err := unquote(line[eq+2:])
			if err != nil {
				return s, err
			}
			s.Labels[key], line = val, rest
		}
	}
	f := strings.Fields(line)
	if len(f) < 1 {
		return s, fmt.Errorf("%s: no value", s.Name)
	}
	v, err := strconv.ParseFloat(f[0], 64) // +Inf, -Inf and NaN included
	if err != nil {
		return s, fmt.Errorf("%s: value %q: %w", s.Name, f[0], err)
	}
	s.Value = v
	return s, nil
}

// unquote reads a label value up to its closing quote and returns the rest.
func unquote(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("dangling escape")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

// matches reports whether s has every label of want.
func (s Sample) matches(want map[string]string) bool {
	for k, v := range want {
		if s.Labels[k] != v {
			return false
		}
	}
	return true
}

// Sum adds the values of name's samples that carry every label of match
// (all of name's samples when match is empty).
func (m Metrics) Sum(name string, match map[string]string) float64 {
	var t float64
	for _, s := range m {
		if s.Name == name && s.matches(match) {
			t += s.Value
		}
	}
	return t
}

// By returns name's values by the value of label (summed over the other
// labels).
func (m Metrics) By(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.Name == name {
			if v, ok := s.Labels[label]; ok {
				out[v] += s.Value
			}
		}
	}
	return out
}

// Histogram sums the buckets of histogram name over all its label sets
// (every symbol's compute times into one).
func (m Metrics) Histogram(name string) scenario.Buckets {
	out := scenario.Buckets{}
	for _, s := range m {
		if s.Name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err == nil {
			out[le] += s.Value
		}
	}
	return out
}
