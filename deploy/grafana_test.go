package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The Grafana dashboard deploy/grafana/liqstream.json: valid JSON, the
// datasource/symbol/instance variables, every panel and query on the
// datasource variable, every expr valid PromQL once Grafana's variables are
// substituted, and every metric one the services export.

type gfMetricKind string

const (
	gfCounter   gfMetricKind = "counter"
	gfGauge     gfMetricKind = "gauge"
	gfHistogram gfMetricKind = "histogram"
)

// dashboardKnownMetrics is every metric the dashboard may use: what the gateway and
// the snapshotter export (services/gateway/internal/metrics/metrics.go,
// services/gateway/internal/app/app.go, services/snapshotter/internal/app/metrics.go,
// pkg/buildinfo) plus the Go and process collectors both register. The one
// list of names in this file; a histogram's _bucket/_sum/_count series are
// derived from its kind.
var dashboardKnownMetrics = map[string]gfMetricKind{
	// gateway
	"ws_active_connections":                    gfGauge,
	"ws_max_connections":                       gfGauge,
	"ws_connections_total":                     gfCounter,
	"ws_disconnects_total":                     gfCounter,
	"ws_messages_sent_total":                   gfCounter,
	"ws_frames_dropped_total":                  gfCounter,
	"ws_slow_consumers_total":                  gfCounter,
	"ws_broadcast_duration_seconds":            gfHistogram,
	"ws_delivery_latency_seconds":              gfHistogram,
	"ws_frame_bytes":                           gfHistogram,
	"ws_client_errors_total":                   gfCounter,
	"gateway_frames_received_total":            gfCounter,
	"gateway_redis_up":                         gfGauge,
	"gateway_fallback_active":                  gfGauge,
	"gateway_redis_reconnects_total":           gfCounter,
	"gateway_fallback_switches_total":          gfCounter,
	"gateway_rebalance_shed_total":             gfCounter,
	"gateway_rebalance_peers":                  gfGauge,
	"gateway_rebalance_fleet_mean_connections": gfGauge,
	"gateway_last_frame_timestamp_seconds":     gfGauge,
	// snapshotter
	"snapshotter_redis_up":                      gfGauge,
	"snapshotter_redis_published_total":         gfCounter,
	"snapshotter_redis_failures_total":          gfCounter,
	"ingest_rows_written_total":                 gfCounter,
	"ingest_errors_total":                       gfCounter,
	"ingest_polls_total":                        gfCounter,
	"ingest_lag_seconds":                        gfGauge,
	"store_rows":                                gfGauge,
	"snapshot_compute_duration_seconds":         gfHistogram,
	"snapshot_published_total":                  gfCounter,
	"snapshot_last_published_timestamp_seconds": gfGauge,
	"snapshot_interval_seconds":                 gfGauge,
	// both: pkg/buildinfo and the client_golang Go/process collectors
	"build_info":                    gfGauge,
	"process_resident_memory_bytes": gfGauge,
	"process_virtual_memory_bytes":  gfGauge,
	"process_cpu_seconds_total":     gfCounter,
	"process_open_fds":              gfGauge,
	"process_max_fds":               gfGauge,
	"process_start_time_seconds":    gfGauge,
	"go_goroutines":                 gfGauge,
	"go_threads":                    gfGauge,
}

// dashboardRequiredMetrics are the metrics the dashboard must chart (the panels the
// issue asks for); a panel dropped by accident fails TestGrafanaDashboard/coverage.
var dashboardRequiredMetrics = []string{
	"ws_active_connections",         // connections per gateway
	"ws_messages_sent_total",        // messages/s per symbol
	"ws_delivery_latency_seconds",   // delivery latency quantiles
	"ws_broadcast_duration_seconds", // broadcast time
	"ws_slow_consumers_total",       // slow consumers
	"ws_frames_dropped_total",       // drops by reason
	"gateway_fallback_active",       // fallback state per gateway
	"snapshot_compute_duration_seconds",
	"snapshot_published_total",
	"ingest_lag_seconds",
	"process_resident_memory_bytes",
	"process_cpu_seconds_total",
	"go_goroutines",
}

const gfDatasourceVar = "${datasource}"

// The dashboard's JSON, as much of it as the checks read.
type gfDashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []gfVariable `json:"list"`
	} `json:"templating"`
	Panels []gfPanel `json:"panels"`
}

type gfVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource json.RawMessage `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

type gfPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []gfTarget `json:"targets"`
	Panels  []gfPanel  `json:"panels"` // a collapsed row's panels
}

type gfTarget struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource json.RawMessage `json:"datasource"`
}

func grafanaDashboardPath(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deploy", "grafana", "liqstream.json")
}

// parseGrafanaDashboard decodes a dashboard, failing on invalid JSON and on a
// dashboard without title, uid, schemaVersion or panels.
func parseGrafanaDashboard(b []byte) (*gfDashboard, error) {
	if !json.Valid(b) {
		var v any
		return nil, fmt.Errorf("invalid JSON: %v", json.Unmarshal(b, &v))
	}
	var d gfDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("not a dashboard: %v", err)
	}
	switch {
	case d.Title == "" || d.UID == "":
		return nil, fmt.Errorf("no title or uid")
	case d.SchemaVersion < 36:
		return nil, fmt.Errorf("schemaVersion %d, want >= 36 (Grafana 9+)", d.SchemaVersion)
	case len(d.Panels) == 0:
		return nil, fmt.Errorf("no panels")
	}
	return &d, nil
}

func loadGrafanaDashboard(t testing.TB) *gfDashboard {
	t.Helper()
	d, err := parseGrafanaDashboard([]byte(readFile(t, grafanaDashboardPath(t))))
	if err != nil {
		t.Fatalf("%s: %v", grafanaDashboardPath(t), err)
	}
	return d
}

// allPanels is every panel, rows and the panels of collapsed rows included.
func gfAllPanels(d *gfDashboard) []gfPanel {
	var out []gfPanel
	var walk func([]gfPanel)
	walk = func(ps []gfPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func gfPanelName(p gfPanel) string { return fmt.Sprintf("panel %d %q", p.ID, p.Title) }

// datasourceUID reads a {"type":..., "uid":...} datasource reference.
func gfDatasourceUID(raw json.RawMessage) (typ, uid string, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", fmt.Errorf("no datasource")
	}
	var ref struct{ Type, UID string }
	if err := json.Unmarshal(raw, &ref); err != nil {
		return "", "", fmt.Errorf("datasource %s is not a {type, uid} reference", raw)
	}
	return ref.Type, ref.UID, nil
}

func gfCheckDatasourceRef(what string, raw json.RawMessage) error {
	typ, uid, err := gfDatasourceUID(raw)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	if uid != gfDatasourceVar || typ != "prometheus" {
		return fmt.Errorf("%s: datasource {type %q, uid %q}, want {prometheus, %s}", what, typ, uid, gfDatasourceVar)
	}
	return nil
}

func (d *gfDashboard) variable(name string) *gfVariable {
	for i := range d.Templating.List {
		if d.Templating.List[i].Name == name {
			return &d.Templating.List[i]
		}
	}
	return nil
}

// variableQuery is a query variable's query: a string, or the object newer
// Grafana writes ({"query": ..., "qryType": ..., "refId": ...}).
func gfVariableQuery(v *gfVariable) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

var gfLabelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// queryVariables are the dashboard's query variables and the label each lists.
var gfQueryVariables = map[string]string{"symbol": "symbol", "instance": "instance"}

// gfCheckVariables: a datasource variable of type datasource for Prometheus, and
// symbol and instance query variables, multi-valued with All, listing their
// label with label_values over a metric selector on the datasource variable.
func gfCheckVariables(d *gfDashboard) []error {
	var errs []error
	if v := d.variable("datasource"); v == nil {
		errs = append(errs, fmt.Errorf("no datasource variable"))
	} else {
		var q string
		_ = json.Unmarshal(v.Query, &q)
		if v.Type != "datasource" || q != "prometheus" {
			errs = append(errs, fmt.Errorf("datasource variable: type %q query %s, want type datasource query \"prometheus\"", v.Type, v.Query))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(gfQueryVariables)) {
		v := d.variable(name)
		if v == nil {
			errs = append(errs, fmt.Errorf("no %s variable", name))
			continue
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll {
			errs = append(errs, fmt.Errorf("%s variable: type %q multi %v includeAll %v, want a multi-valued query variable with All", name, v.Type, v.Multi, v.IncludeAll))
		}
		if err := gfCheckDatasourceRef(name+" variable", v.Datasource); err != nil {
			errs = append(errs, err)
		}
		q := gfVariableQuery(v)
		m := gfLabelValuesRe.FindStringSubmatch(q)
		if m == nil || m[2] != gfQueryVariables[name] {
			errs = append(errs, fmt.Errorf("%s variable: query %q, want label_values(<metric>, %s)", name, q, gfQueryVariables[name]))
			continue
		}
		if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector(m[1]); err != nil {
			errs = append(errs, fmt.Errorf("%s variable: %q is not a metric selector: %v", name, m[1], err))
		}
	}
	return errs
}

// gfCheckDatasources: every panel, rows included, and every target query the
// datasource variable, never a fixed datasource.
func gfCheckDatasources(d *gfDashboard) []error {
	var errs []error
	for _, p := range gfAllPanels(d) {
		if err := gfCheckDatasourceRef(gfPanelName(p), p.Datasource); err != nil {
			errs = append(errs, err)
		}
		for _, tg := range p.Targets {
			if err := gfCheckDatasourceRef(gfPanelName(p)+" target "+tg.RefID, tg.Datasource); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// gfCheckPanels: ids positive and unique, every panel but a row titled with at
// least one query, each target with a refId unique in its panel, and each
// panel inside the 24-column grid.
func gfCheckPanels(d *gfDashboard) []error {
	var errs []error
	seen := map[int]string{}
	for _, p := range gfAllPanels(d) {
		name := gfPanelName(p)
		if p.ID <= 0 {
			errs = append(errs, fmt.Errorf("%s: no id", name))
		} else if other, dup := seen[p.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id %d already used by %s", name, p.ID, other))
		} else {
			seen[p.ID] = name
		}
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			errs = append(errs, fmt.Errorf("%s: gridPos %+v outside the 24-column grid", name, g))
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				errs = append(errs, fmt.Errorf("%s: a row with queries", name))
			}
			continue
		}
		if p.Title == "" || len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: a %s panel needs a title and queries", name, p.Type))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
				errs = append(errs, fmt.Errorf("%s: target refId %q missing, repeated or without expr", name, tg.RefID))
			}
			refs[tg.RefID] = true
		}
	}
	return errs
}

// grafanaBuiltins are the values substituteGrafanaVars gives Grafana's own
// variables: durations where Grafana writes durations, numbers where numbers.
var grafanaBuiltins = map[string]string{
	"__rate_interval":    "1m",
	"__rate_interval_ms": "60000",
	"__interval":         "15s",
	"__interval_ms":      "15000",
	"__range":            "1h",
	"__range_s":          "3600",
	"__range_ms":         "3600000",
}

// gfTemplateValue is what a dashboard variable ($symbol, ${instance}, ...)
// becomes: a literal that is only valid PromQL inside a quoted matcher value,
// and recognisable there.
const gfTemplateValue = "grafana_template_value"

var grafanaVarRe = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+))?\}|([A-Za-z0-9_]+))`)

// substituteGrafanaVars replaces Grafana's variables in expr the way Grafana
// would before sending it to Prometheus: its built-in intervals become
// durations (grafanaBuiltins) and the dashboard's variables (userVars)
// gfTemplateValue. An unknown variable, a stray $ or the deprecated [[var]]
// syntax is an error.
func substituteGrafanaVars(expr string, userVars []string) (string, error) {
	if strings.Contains(expr, "[[") {
		return "", fmt.Errorf("deprecated [[variable]] syntax in %q", expr)
	}
	var errs []string
	out := grafanaVarRe.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVarRe.FindStringSubmatch(m)
		name, format := sm[1]+sm[3], sm[2]
		if v, ok := grafanaBuiltins[name]; ok {
			if format != "" {
				errs = append(errs, fmt.Sprintf("format %q on built-in %s", format, m))
			}
			return v
		}
		if slices.Contains(userVars, name) {
			return gfTemplateValue
		}
		errs = append(errs, fmt.Sprintf("unknown variable %s", m))
		return m
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s in %q", strings.Join(errs, ", "), expr)
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("stray $ in %q", expr)
	}
	return out, nil
}

func (d *gfDashboard) variableNames() []string {
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	return names
}

// parsedTarget is one target's expr, substituted and parsed.
type gfParsedTarget struct {
	where string
	raw   string
	expr  parser.Expr
}

// parseTargets substitutes and parses every target's expr.
func gfParseTargets(d *gfDashboard) ([]gfParsedTarget, []error) {
	var out []gfParsedTarget
	var errs []error
	p := parser.NewParser(parser.Options{})
	for _, pn := range gfAllPanels(d) {
		for _, tg := range pn.Targets {
			where := gfPanelName(pn) + " target " + tg.RefID
			s, err := substituteGrafanaVars(tg.Expr, d.variableNames())
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", where, err))
				continue
			}
			e, err := p.ParseExpr(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q does not parse: %v", where, s, err))
				continue
			}
			out = append(out, gfParsedTarget{where: where, raw: tg.Expr, expr: e})
		}
	}
	return out, errs
}

// gfResolveMetric maps a selector's name to the exported metric: itself, or for
// <h>_bucket/_sum/_count of a known histogram h, h and the suffix.
func gfResolveMetric(name string) (base, suffix string, kind gfMetricKind, ok bool) {
	if k, ok := dashboardKnownMetrics[name]; ok {
		return name, "", k, true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, found := strings.CutSuffix(name, s); found && dashboardKnownMetrics[b] == gfHistogram {
			return b, s, gfHistogram, true
		}
	}
	return name, "", "", false
}

func gfSelectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

var gfRangeRe = regexp.MustCompile(`\[([^\]]*)\]`)

// gfCheckExprs: every target parses once substituted; the dashboard's variables
// appear only in regex matchers (a multi-valued or All variable expands to a
// regex); every range is $__rate_interval; rate/irate/increase take counters
// or histogram series and counters are never charted raw; histogram_quantile
// aggregates keep le; every selector names a metric.
func gfCheckExprs(d *gfDashboard) []error {
	targets, errs := gfParseTargets(d)
	for _, pt := range targets {
		for _, m := range gfRangeRe.FindAllStringSubmatch(pt.raw, -1) {
			if m[1] != "$__rate_interval" && m[1] != "${__rate_interval}" {
				errs = append(errs, fmt.Errorf("%s: range [%s], want [$__rate_interval]", pt.where, m[1]))
			}
		}
		var inRegex int
		parser.Inspect(pt.expr, func(n parser.Node, path []parser.Node) error {
			switch n := n.(type) {
			case *parser.VectorSelector:
				for _, m := range n.LabelMatchers {
					if c := strings.Count(m.Value, gfTemplateValue); c > 0 {
						if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
							inRegex += c
						} else {
							errs = append(errs, fmt.Errorf("%s: variable in %s matcher %s, want =~ (multi-valued variables expand to a regex)", pt.where, m.Type, m.Name))
							inRegex += c // reported already
						}
					}
				}
				name := gfSelectorName(n)
				if name == "" {
					errs = append(errs, fmt.Errorf("%s: selector %s names no metric", pt.where, n))
					return nil
				}
				_, suffix, kind, _ := gfResolveMetric(name)
				cumulative := kind == gfCounter || suffix != ""
				rated := len(path) >= 2
				if rated {
					_, isMatrix := path[len(path)-1].(*parser.MatrixSelector)
					call, isCall := path[len(path)-2].(*parser.Call)
					rated = isMatrix && isCall && slices.Contains([]string{"rate", "irate", "increase"}, call.Func.Name)
				}
				switch {
				case rated && !cumulative:
					errs = append(errs, fmt.Errorf("%s: rate over %s, which is not a counter", pt.where, name))
				case !rated && cumulative:
					errs = append(errs, fmt.Errorf("%s: counter %s charted without rate/increase", pt.where, name))
				}
			case *parser.Call:
				if n.Func.Name != "histogram_quantile" || len(n.Args) != 2 {
					return nil
				}
				arg := n.Args[1]
				for {
					p, ok := arg.(*parser.ParenExpr)
					if !ok {
						break
					}
					arg = p.Expr
				}
				if agg, ok := arg.(*parser.AggregateExpr); ok && (agg.Without || !slices.Contains(agg.Grouping, "le")) {
					errs = append(errs, fmt.Errorf("%s: histogram_quantile over %s, which drops le", pt.where, agg.ShortString()))
				}
			}
			return nil
		})
		if want := strings.Count(pt.raw, "$") - strings.Count(pt.raw, "$__"); inRegex != want {
			errs = append(errs, fmt.Errorf("%s: %d dashboard variables, %d of them in regex matchers", pt.where, want, inRegex))
		}
	}
	return errs
}

// gfMetricNames is every metric the dashboard uses: its targets' selectors and
// its label_values variables, histogram series resolved to the histogram,
// sorted and unique.
func gfMetricNames(d *gfDashboard) ([]string, []error) {
	targets, errs := gfParseTargets(d)
	set := map[string]bool{}
	add := func(n string) {
		base, _, _, _ := gfResolveMetric(n)
		set[base] = true
	}
	for _, pt := range targets {
		parser.Inspect(pt.expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && gfSelectorName(vs) != "" {
				add(gfSelectorName(vs))
			}
			return nil
		})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := gfLabelValuesRe.FindStringSubmatch(gfVariableQuery(&v))
		if m == nil {
			continue
		}
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(m[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s variable: %v", v.Name, err))
			continue
		}
		for _, mt := range ms {
			if mt.Name == labels.MetricName && mt.Type == labels.MatchEqual {
				add(mt.Value)
			}
		}
	}
	return slices.Sorted(maps.Keys(set)), errs
}

// dashboardMetricNames is every metric deploy/grafana/liqstream.json uses
// (histograms by their base name, not _bucket/_sum/_count), sorted, for tests
// that check the names against what the services really export.
func dashboardMetricNames(t testing.TB) []string {
	t.Helper()
	names, errs := gfMetricNames(loadGrafanaDashboard(t))
	for _, err := range errs {
		t.Error(err)
	}
	return names
}

// gfCheckMetricNames: every name is one dashboardKnownMetrics lists.
func gfCheckMetricNames(names []string) []error {
	var errs []error
	for _, n := range names {
		if _, ok := dashboardKnownMetrics[n]; !ok {
			errs = append(errs, fmt.Errorf("metric %s is not one the services export", n))
		}
	}
	return errs
}

// gfCheckCoverage: every required metric is charted.
func gfCheckCoverage(names []string) []error {
	var errs []error
	for _, n := range dashboardRequiredMetrics {
		if !slices.Contains(names, n) {
			errs = append(errs, fmt.Errorf("no panel charts %s", n))
		}
	}
	return errs
}

func gfNamesCheck(check func([]string) []error) func(*gfDashboard) []error {
	return func(d *gfDashboard) []error {
		names, errs := gfMetricNames(d)
		return append(errs, check(names)...)
	}
}

// grafanaDashboardChecks are the checks the real dashboard must pass and the broken
// ones in TestGrafanaDashboardChecksFail must not.
var grafanaDashboardChecks = []struct {
	name  string
	check func(*gfDashboard) []error
}{
	{"variables", gfCheckVariables},
	{"datasources", gfCheckDatasources},
	{"panels", gfCheckPanels},
	{"exprs", gfCheckExprs},
	{"metric names", gfNamesCheck(gfCheckMetricNames)},
	{"coverage", gfNamesCheck(gfCheckCoverage)},
}

func TestGrafanaDashboard(t *testing.T) {
	d := loadGrafanaDashboard(t)
	for _, c := range grafanaDashboardChecks {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range c.check(d) {
				t.Error(err)
			}
		})
	}
}

func TestGrafanaDashboardMetricNames(t *testing.T) {
	names := dashboardMetricNames(t)
	if len(names) == 0 {
		t.Fatal("no metric names")
	}
	for _, n := range names {
		if strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_count") {
			t.Errorf("%s: histogram series not resolved to its histogram", n)
		}
	}
	var unused []string
	for n := range dashboardKnownMetrics {
		if !slices.Contains(names, n) {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	t.Logf("dashboard uses %d metrics; not charted: %s", len(names), strings.Join(unused, " "))
}

func TestGrafanaDashboardInvalidJSON(t *testing.T) {
	good := readFile(t, grafanaDashboardPath(t))
	for name, b := range map[string]string{
		"truncated":      good[:len(good)/2],
		"trailing comma": `{"title": "x", "uid": "x", "schemaVersion": 39, "panels": [{"id": 1},]}`,
		"not an object":  `[]`,
		"no panels":      `{"title": "x", "uid": "x", "schemaVersion": 39, "panels": []}`,
		"old schema":     `{"title": "x", "uid": "x", "schemaVersion": 16, "panels": [{"id": 1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseGrafanaDashboard([]byte(b)); err == nil {
				t.Error("parsed")
			}
		})
	}
}

// TestGrafanaDashboardChecksFail breaks a copy of the dashboard one way at a
// time: the check named must report it, with an error containing want.
func TestGrafanaDashboardChecksFail(t *testing.T) {
	raw := []byte(readFile(t, grafanaDashboardPath(t)))
	firstQuery := func(d *gfDashboard) *gfPanel {
		for i := range d.Panels {
			if d.Panels[i].Type != "row" {
				return &d.Panels[i]
			}
		}
		t.Fatal("no query panel")
		return nil
	}
	setExpr := func(expr string) func(*gfDashboard) {
		return func(d *gfDashboard) { firstQuery(d).Targets[0].Expr = expr }
	}
	setVar := func(name string, f func(*gfVariable)) func(*gfDashboard) {
		return func(d *gfDashboard) {
			v := d.variable(name)
			if v == nil {
				t.Fatalf("no %s variable", name)
			}
			f(v)
		}
	}
	for _, tc := range []struct {
		name, check, want string
		breakIt           func(*gfDashboard)
	}{
		{"no datasource variable", "variables", "no datasource variable", func(d *gfDashboard) {
			d.Templating.List = slices.DeleteFunc(d.Templating.List, func(v gfVariable) bool { return v.Name == "datasource" })
		}},
		{"datasource variable not a datasource", "variables", "datasource variable", setVar("datasource", func(v *gfVariable) { v.Type = "custom" })},
		{"no symbol variable", "variables", "no symbol variable", func(d *gfDashboard) {
			d.Templating.List = slices.DeleteFunc(d.Templating.List, func(v gfVariable) bool { return v.Name == "symbol" })
		}},
		{"instance not multi", "variables", "multi false", setVar("instance", func(v *gfVariable) { v.Multi = false })},
		{"symbol without All", "variables", "includeAll false", setVar("symbol", func(v *gfVariable) { v.IncludeAll = false })},
		{"instance not label_values", "variables", "want label_values", setVar("instance", func(v *gfVariable) { v.Query = json.RawMessage(`"up"`) })},
		{"symbol lists the wrong label", "variables", "want label_values", setVar("symbol", func(v *gfVariable) {
			v.Query = json.RawMessage(`"label_values(ws_messages_sent_total, instance)"`)
		})},
		{"variable on a fixed datasource", "variables", "want {prometheus", setVar("symbol", func(v *gfVariable) {
			v.Datasource = json.RawMessage(`{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}`)
		})},
		{"panel on a fixed datasource", "datasources", "want {prometheus", func(d *gfDashboard) {
			firstQuery(d).Datasource = json.RawMessage(`{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}`)
		}},
		{"row without datasource", "datasources", "no datasource", func(d *gfDashboard) { d.Panels[0].Datasource = nil }},
		{"target without datasource", "datasources", "no datasource", func(d *gfDashboard) { firstQuery(d).Targets[0].Datasource = nil }},
		{"legacy string datasource", "datasources", "not a {type, uid} reference", func(d *gfDashboard) {
			firstQuery(d).Targets[0].Datasource = json.RawMessage(`"${datasource}"`)
		}},
		{"duplicate panel id", "panels", "already used", func(d *gfDashboard) { d.Panels[2].ID = d.Panels[1].ID }},
		{"panel without id", "panels", "no id", func(d *gfDashboard) { d.Panels[1].ID = 0 }},
		{"duplicate id in a collapsed row", "panels", "already used", func(d *gfDashboard) {
			d.Panels[0].Panels = append(d.Panels[0].Panels, *firstQuery(d))
		}},
		{"panel off the grid", "panels", "24-column grid", func(d *gfDashboard) { firstQuery(d).GridPos.X = 20 }},
		{"panel without queries", "panels", "needs a title and queries", func(d *gfDashboard) { firstQuery(d).Targets = nil }},
		{"repeated refId", "panels", "repeated", func(d *gfDashboard) {
			p := firstQuery(d)
			p.Targets = append(p.Targets, p.Targets[0])
		}},
		{"unbalanced paren", "exprs", "does not parse", setExpr(`sum(rate(ws_messages_sent_total[$__rate_interval])`)},
		{"unknown function", "exprs", "does not parse", setExpr(`sum(rated(ws_messages_sent_total[$__rate_interval]))`)},
		{"unknown variable", "exprs", "unknown variable $sym", setExpr(`sum(rate(ws_messages_sent_total{symbol=~"$sym"}[$__rate_interval]))`)},
		{"variable in an equality matcher", "exprs", "want =~", setExpr(`sum(ws_active_connections{instance="$instance"})`)},
		{"variable outside a matcher", "exprs", "in regex matchers", setExpr(`label_replace(ws_active_connections, "x", "$instance", "", "")`)},
		{"fixed range", "exprs", "want [$__rate_interval]", setExpr(`sum(rate(ws_messages_sent_total[5m]))`)},
		{"raw counter", "exprs", "without rate", setExpr(`sum(ws_messages_sent_total)`)},
		{"rate over a gauge", "exprs", "not a counter", setExpr(`rate(ws_active_connections[$__rate_interval])`)},
		{"quantile dropping le", "exprs", "drops le", setExpr(`histogram_quantile(0.9, sum by (symbol) (rate(ws_broadcast_duration_seconds_bucket[$__rate_interval])))`)},
		{"selector without a name", "exprs", "names no metric", setExpr(`sum({instance=~"$instance"})`)},
		{"misspelt metric", "metric names", "ws_active_connection is not", setExpr(`sum(ws_active_connection{instance=~"$instance"})`)},
		{"histogram suffix on a counter", "metric names", "ws_messages_sent_total_count is not", setExpr(`rate(ws_messages_sent_total_count[$__rate_interval])`)},
		{"unknown metric in a variable", "metric names", "ws_connections is not", setVar("instance", func(v *gfVariable) {
			v.Query = json.RawMessage(`{"query": "label_values(ws_connections, instance)"}`)
		})},
		{"required panel gone", "coverage", "no panel charts go_goroutines", func(d *gfDashboard) {
			for _, p := range gfAllPanels(d) {
				for i := range p.Targets {
					p.Targets[i].Expr = strings.ReplaceAll(p.Targets[i].Expr, "go_goroutines", "go_threads")
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseGrafanaDashboard(raw)
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(d)
			var check func(*gfDashboard) []error
			for _, c := range grafanaDashboardChecks {
				if c.name == tc.check {
					check = c.check
				}
			}
			if check == nil {
				t.Fatalf("no check %q", tc.check)
			}
			errs := check(d)
			if len(errs) == 0 {
				t.Fatalf("check %q passed a dashboard with %s", tc.check, tc.name)
			}
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("check %q: no error mentions %q: %v", tc.check, tc.want, errs)
		})
	}
}

func TestSubstituteGrafanaVars(t *testing.T) {
	vars := []string{"datasource", "symbol", "instance"}
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: `rate(x[$__rate_interval])`, want: `rate(x[1m])`},
		{in: `rate(x[${__rate_interval}])`, want: `rate(x[1m])`},
		{in: `avg_over_time(x[$__interval])`, want: `avg_over_time(x[15s])`},
		{in: `increase(x[$__range])`, want: `increase(x[1h])`},
		{in: `x / $__interval_ms`, want: `x / 15000`},
		{in: `x / $__range_s`, want: `x / 3600`},
		{in: `x{symbol=~"$symbol"}`, want: `x{symbol=~"` + gfTemplateValue + `"}`},
		{in: `x{symbol=~"${symbol}", instance=~"$instance"}`, want: `x{symbol=~"` + gfTemplateValue + `", instance=~"` + gfTemplateValue + `"}`},
		{in: `x{symbol=~"${symbol:regex}"}`, want: `x{symbol=~"` + gfTemplateValue + `"}`},
		{in: `x{symbol=~"$symbol|$symbol"}`, want: `x{symbol=~"` + gfTemplateValue + `|` + gfTemplateValue + `"}`},
		{in: `sum(x)`, want: `sum(x)`},
		{in: `x{symbol=~"$sym"}`, wantErr: "unknown variable $sym"},
		{in: `x{symbol=~"${symbols}"}`, wantErr: "unknown variable ${symbols}"},
		{in: `rate(x[$__rate_intervals])`, wantErr: "unknown variable"},
		{in: `rate(x[${__rate_interval:raw}])`, wantErr: "format"},
		{in: `x{symbol=~"[[symbol]]"}`, wantErr: "deprecated"},
		{in: `x{symbol=~"$"}`, wantErr: "stray $"},
		{in: `x{symbol=~"${}"}`, wantErr: "stray $"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := substituteGrafanaVars(tc.in, vars)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("error %v", err)
			case got != tc.want:
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestResolveMetric(t *testing.T) {
	for _, tc := range []struct {
		in, base string
		kind     gfMetricKind
		ok       bool
	}{
		{"ws_active_connections", "ws_active_connections", gfGauge, true},
		{"ws_delivery_latency_seconds_bucket", "ws_delivery_latency_seconds", gfHistogram, true},
		{"ws_frame_bytes_sum", "ws_frame_bytes", gfHistogram, true},
		{"snapshot_compute_duration_seconds_count", "snapshot_compute_duration_seconds", gfHistogram, true},
		{"ws_messages_sent_total_count", "ws_messages_sent_total_count", "", false}, // a counter, not a histogram
		{"nope_bucket", "nope_bucket", "", false},
	} {
		base, _, kind, ok := gfResolveMetric(tc.in)
		if base != tc.base || kind != tc.kind || ok != tc.ok {
			t.Errorf("resolveMetric(%q) = %q, %q, %v; want %q, %q, %v", tc.in, base, kind, ok, tc.base, tc.kind, tc.ok)
		}
	}
}
