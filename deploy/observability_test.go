package deploy

// The observability stack against the real thing: a redis-server, both
// services built from this tree, and a Prometheus server loading the shipped
// rules, all on free loopback ports. What the dashboards and alerts promise
// is read back through Prometheus' HTTP API, and every metric name the rules,
// the dashboard and the docs use is checked against what the running
// services export.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// The shipped alert that must fire when frames stop.
const obsNotPublishingAlert = "LiqstreamSnapshotterNotPublishing"

// obsClients is how many WebSocket clients the test holds.
const obsClients = 7

// TestObservability starts redis, a snapshotter (demo data, 1 s interval), a
// gateway with rebalancing on, a second snapshotter on the Binance source
// (against a fake Binance), and Prometheus with the shipped rules scraping
// the first two. The subtests run in order: the last stops the snapshotter.
func TestObservability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis, both services and Prometheus")
	}
	redisBin := obsNeed(t, "redis-server")
	bins := buildServices(t)
	dir := t.TempDir()

	redis := obsStartRedis(t, redisBin, dir)
	redisURL := "redis://" + redis + "/0"
	snapAddr, gwAddr := obsFreeAddr(t), obsFreeAddr(t)
	snap := obsStart(t, "snapshotter", filepath.Join(bins, "snapshotter"),
		"--listen="+snapAddr, "--db="+filepath.Join(dir, "snap", "liqstream.duckdb"), "--redis_url="+redisURL,
		"--snapshot.interval=1s", "--demo.days=2", "--simulator.tick=200ms")
	gw := obsStart(t, "gateway", filepath.Join(bins, "gateway"),
		"--listen="+gwAddr, "--snapshotter_url=http://"+snapAddr, "--redis_url="+redisURL,
		"--rebalance.enabled", "--drain_timeout=2s")

	// The Binance-source snapshotter: ingest_* exist only while the live
	// source runs (metrics.go registers them in watchBinance), and it cannot
	// run beside the demo data and simulator. It is scraped for the
	// dead-name check only, not by Prometheus: it publishes nothing.
	fake := obsFakeBinance(t)
	binAddr := obsFreeAddr(t)
	bin := obsStart(t, "snapshotter-binance", filepath.Join(bins, "snapshotter"),
		"--listen="+binAddr, "--db="+filepath.Join(dir, "binance", "liqstream.duckdb"),
		"--binance.enabled", "--demo.enabled=false", "--simulator.enabled=false",
		"--binance.base_url="+fake.URL, "--binance.poll_interval=1s",
		// The fake serves no streams: the handshake is refused at once and
		// the source polls, with its stream metrics exported all the same.
		"--binance.stream_url="+strings.Replace(fake.URL, "http://", "ws://", 1), "--binance.lookback=6h",
		"--snapshot.interval=1s")

	// Prometheus starts as early as it can, so it has history by the time
	// the alert is checked.
	var prom *obsProm
	promBin, promMissing := obsLook("prometheus", "/usr/bin/prometheus")
	if promMissing == "" {
		prom = obsStartPrometheus(t, promBin, snapAddr, gwAddr)
	}

	obsWaitReady(t, snap, "http://"+snapAddr+"/readyz", 2*time.Minute)
	obsWaitReady(t, gw, "http://"+gwAddr+"/readyz", time.Minute)
	obsWaitReady(t, bin, "http://"+binAddr+"/readyz", 2*time.Minute)

	wsURL := "ws://" + gwAddr + "/ws/heatmap"
	var held []*obsWS
	for range obsClients {
		held = append(held, obsDial(t, wsURL))
	}
	for i, c := range held {
		if err := c.waitSnapshot(30 * time.Second); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}

	t.Run("no dead metric names", func(t *testing.T) {
		exported := map[string]string{}
		for _, target := range []struct{ name, addr string }{{"snapshotter", snapAddr}, {"gateway", gwAddr}, {"snapshotter (binance source)", binAddr}} {
			if target.addr == binAddr {
				// The source's counters and lag appear after its first poll.
				obsEventually(t, time.Minute, "the binance source's first successful poll", func() (bool, string) {
					names, err := obsScrape("http://" + binAddr + "/metrics")
					return err == nil && names["ingest_lag_seconds"], fmt.Sprintf("err %v; fake served %d requests", err, fake.requests.Load())
				})
			}
			names, err := obsScrape("http://" + target.addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			for n := range names {
				if exported[n] == "" {
					exported[n] = target.name
				}
			}
		}
		refs := obsReferencedNames(t, bins)
		if len(refs.names) < 10 {
			t.Fatalf("only %d metric names referenced; the collection is broken: %v", len(refs.names), refs.names)
		}
		if dead := obsDeadNames(refs, exported); len(dead) > 0 {
			t.Errorf("%d metric names are used but no running service exports them:\n  %s", len(dead), strings.Join(dead, "\n  "))
		}
		// The same check on the live set catches a name nobody exports.
		bogus := obsRefs{names: map[string][]string{"ws_made_up_total": {"this test"}}}
		if dead := obsDeadNames(bogus, exported); len(dead) != 1 {
			t.Errorf("a made-up name is not reported dead: %v", dead)
		}
		t.Logf("%d referenced names checked against %d exported ones", len(refs.names), len(exported))
	})

	t.Run("prometheus", func(t *testing.T) {
		if prom == nil {
			obsMissing(t, promMissing)
		}
		t.Run("ws_active_connections", func(t *testing.T) {
			want := len(held)
			prom.waitValue(t, `ws_active_connections{job="`+prom.gatewayJob+`"}`, want, 60*time.Second)
			// Fewer held clients, a lower count: the gauge follows, it is not a constant.
			for _, c := range held[:2] {
				c.close(t)
			}
			held = held[2:]
			prom.waitValue(t, `ws_active_connections{job="`+prom.gatewayJob+`"}`, len(held), 60*time.Second)
		})
		t.Run("not-publishing alert", func(t *testing.T) {
			prom.waitInactive(t, obsNotPublishingAlert, snapAddr)
			stopped := time.Now()
			if err := snap.stop(); err != nil {
				t.Logf("snapshotter exit: %v", err)
			}
			state := prom.waitAlert(t, obsNotPublishingAlert, 4*time.Minute)
			t.Logf("%s %s %.1fs after the snapshotter stopped", obsNotPublishingAlert, state, time.Since(stopped).Seconds())
		})
	})
}

// TestObservabilityCheckersCatch feeds the name collectors and the dead-name
// check known input: a made-up name is dead, recorded and exported names are
// not, and what only looks like a metric (a config key, a k6 metric, a file,
// an nginx variable) is not collected.
func TestObservabilityCheckersCatch(t *testing.T) {
	exposition := `# HELP ws_active_connections Open WebSocket connections.
# TYPE ws_active_connections gauge
ws_active_connections 3
# TYPE ws_delivery_latency_seconds histogram
ws_delivery_latency_seconds_bucket{le="0.001"} 0
ws_delivery_latency_seconds_bucket{le="+Inf"} 2
ws_delivery_latency_seconds_sum 0.01
ws_delivery_latency_seconds_count 2
build_info{service="gateway",version="dev"} 1
`
	exported := map[string]string{}
	for n := range obsParseExposition(exposition) {
		exported[n] = "gateway"
	}
	for _, n := range []string{"ws_active_connections", "ws_delivery_latency_seconds", "ws_delivery_latency_seconds_bucket",
		"ws_delivery_latency_seconds_count", "build_info"} {
		if exported[n] == "" {
			t.Errorf("exposition parser misses %s: %v", n, exported)
		}
	}

	refs := obsRefs{names: map[string][]string{}, recorded: map[string]bool{}}
	err := refs.addRules("rules.yaml", []byte(`groups:
  - name: t
    rules:
      - record: job:ws_active_connections:sum
        expr: sum by (job) (ws_active_connections)
      - alert: Made
        expr: job:ws_active_connections:sum > 1 and rate(ws_made_up_total[5m]) > 0
          and histogram_quantile(0.99, sum by (le) (rate(ws_delivery_latency_seconds_bucket[5m]))) > 1
`))
	if err != nil {
		t.Fatal(err)
	}
	refs.addDoc("doc.md", "Watch `ws_active_connections{job=\"x\"}` and `rate(ws_retired_total[1m])`; set `ws_enabled`,\n"+
		"run `loadtest/k6/ws_load_test.js`, read `snapshot_ok`, see `ws_delivery_latency_seconds`.\n"+
		"```\nproxy_pass http://$gateway_pool;\n  matches: ^ws_renamed_total$\n```\n",
		map[string]bool{"ws_enabled": true, "snapshot_ok": true})
	dead := obsDeadNames(refs, exported)
	want := []string{"ws_made_up_total (rules.yaml)", "ws_renamed_total (doc.md)", "ws_retired_total (doc.md)"}
	if !slices.Equal(dead, want) {
		t.Errorf("dead = %q, want %q", dead, want)
	}
}

// --- which names are used, which are exported ------------------------------

// obsRefs are the metric names something refers to, each with where.
type obsRefs struct {
	names    map[string][]string
	recorded map[string]bool // names recording rules define
}

func (r *obsRefs) add(name, where string) {
	if !slices.Contains(r.names[name], where) {
		r.names[name] = append(r.names[name], where)
	}
}

// obsPrometheusNames are series Prometheus itself makes, not a service.
var obsPrometheusNames = map[string]bool{"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true,
	"scrape_duration_seconds": true, "scrape_samples_scraped": true, "scrape_series_added": true,
	"scrape_samples_post_metric_relabeling": true}

// obsDeadNames lists, sorted, every referenced name that is neither exported,
// recorded by a rule nor made by Prometheus, with where it is used.
func obsDeadNames(refs obsRefs, exported map[string]string) []string {
	var dead []string
	for n, where := range refs.names {
		if exported[n] != "" || refs.recorded[n] || obsPrometheusNames[n] {
			continue
		}
		dead = append(dead, fmt.Sprintf("%s (%s)", n, strings.Join(where, ", ")))
	}
	sort.Strings(dead)
	return dead
}

// obsReferencedNames collects the names the shipped rules, the dashboard and
// the docs use.
func obsReferencedNames(t *testing.T, bins string) obsRefs {
	t.Helper()
	root := repoRoot(t)
	refs := obsRefs{names: map[string][]string{}, recorded: map[string]bool{}}

	rules := filepath.Join(root, "deploy", "prometheus", "liqstream-rules.yaml")
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := refs.addRules("deploy/prometheus/liqstream-rules.yaml", b); err != nil {
		t.Fatal(err)
	}

	for _, n := range dashboardMetricNames(t) {
		refs.add(n, "deploy/grafana/liqstream.json")
	}

	// Backticked words that are config keys (snapshotter_url, ws_enabled)
	// or the k6 scripts' own metrics (snapshot_ok) are not ours to export.
	notMetrics := map[string]bool{}
	for _, svc := range []string{"snapshotter", "gateway"} {
		for e := range knownEnv(t, filepath.Join(bins, svc)) {
			notMetrics[strings.ToLower(strings.TrimPrefix(e, "LIQSTREAM_"))] = true
		}
	}
	k6, err := filepath.Glob(filepath.Join(root, "loadtest", "k6", "*.js"))
	if err != nil || len(k6) == 0 {
		t.Fatalf("no k6 scripts under loadtest/k6: %v", err)
	}
	for _, f := range k6 {
		for _, m := range obsK6MetricRE.FindAllStringSubmatch(readFile(t, f), -1) {
			notMetrics[m[1]] = true
		}
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "k8s", "liqstream", "README.md"))
	for _, f := range docs {
		rel, _ := filepath.Rel(root, f)
		refs.addDoc(rel, readFile(t, f), notMetrics)
	}
	return refs
}

var obsK6MetricRE = regexp.MustCompile(`new\s+(?:Trend|Rate|Counter|Gauge)\(\s*["']([A-Za-z0-9_]+)["']`)

// obsRulesFile is a Prometheus rules file, as far as names go.
type obsRulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// addRules adds every metric an expression of a rules file selects, and
// notes the names its recording rules define. (Prometheus' own rulefmt
// would drag its whole query engine into this module; the server started
// by TestObservability validates the file for real.)
func (r *obsRefs) addRules(where string, content []byte) error {
	var f obsRulesFile
	if err := yaml.Unmarshal(content, &f); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if len(f.Groups) == 0 {
		return fmt.Errorf("%s: no rule groups", where)
	}
	p := parser.NewParser(parser.Options{})
	for _, g := range f.Groups {
		for _, rule := range g.Rules {
			if rule.Record != "" {
				r.recorded[rule.Record] = true
			}
			expr, err := p.ParseExpr(rule.Expr)
			if err != nil {
				return fmt.Errorf("%s: %s%s: %w", where, rule.Alert, rule.Record, err)
			}
			for _, n := range obsSelectorNames(expr) {
				r.add(n, where)
			}
		}
	}
	return nil
}

// obsSelectorNames are the metric names an expression's selectors name.
func obsSelectorNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && name == "" {
					name = m.Value
				}
			}
			if name != "" {
				names = append(names, name)
			}
		}
		return nil
	})
	return names
}

var (
	obsFenceRE  = regexp.MustCompile("(?ms)^\\s*```[^\\n]*\\n(.*?)^\\s*```")
	obsInlineRE = regexp.MustCompile("`([^`\\n]+)`")
	// Label sets and range/subquery brackets are dropped before words are cut.
	obsLabelsRE = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	obsWordRE   = regexp.MustCompile(`[$A-Za-z0-9_:./-]+`)
	// Our metrics: the prefixes the services use, and recording-rule names
	// (level:metric:operations) built on them.
	obsMetricRE   = regexp.MustCompile(`^(?:(?:ws|gateway|snapshotter|snapshot|ingest|store|process|go)_[a-z0-9_]+|build_info)$`)
	obsRecordedRE = regexp.MustCompile(`^[a-z_]+:(?:ws|gateway|snapshotter|snapshot|ingest|store)_[a-z0-9_]*(?::[a-z0-9_]+)*$`)
)

// addDoc adds the metric names in a markdown file's code: inline spans and
// fenced blocks. A word must be a whole metric name: a file name
// (ws_load_test.js), a flag (--snapshotter_url) or an nginx variable
// ($gateway_pool) is not one.
func (r *obsRefs) addDoc(where, text string, notMetrics map[string]bool) {
	var code []string
	for _, m := range obsFenceRE.FindAllStringSubmatch(text, -1) {
		code = append(code, m[1])
	}
	text = obsFenceRE.ReplaceAllString(text, "")
	for _, m := range obsInlineRE.FindAllStringSubmatch(text, -1) {
		code = append(code, m[1])
	}
	for _, c := range code {
		for _, w := range obsWordRE.FindAllString(obsLabelsRE.ReplaceAllString(c, " "), -1) {
			w = strings.TrimSuffix(w, "$") // a regex anchor: ^name$
			if strings.HasPrefix(w, "$") || notMetrics[w] {
				continue
			}
			if obsMetricRE.MatchString(w) || obsRecordedRE.MatchString(w) {
				r.add(w, where)
			}
		}
	}
}

// obsScrape returns the metric names a /metrics endpoint exports.
func obsScrape(u string) (map[string]bool, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s\n%s", u, resp.Status, b)
	}
	names := obsParseExposition(string(b))
	if len(names) == 0 {
		return nil, fmt.Errorf("GET %s: no metrics in\n%s", u, b)
	}
	return names, nil
}

// obsParseExposition reads the text exposition format: every family named
// by # TYPE and every sample's series name (so a histogram gives its name and
// its _bucket, _sum and _count).
func obsParseExposition(text string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// --- processes -------------------------------------------------------------

// obsLook finds a binary; the reason it is missing otherwise.
func obsLook(binary string, alt ...string) (path, missing string) {
	for _, b := range append([]string{binary}, alt...) {
		if p, err := exec.LookPath(b); err == nil {
			return p, ""
		}
	}
	return "", binary + " is not installed (.ci/run apt-installs it); this test needs the real server"
}

// obsMissing is pkg/testenv.Missing, which this module cannot import: skip
// loudly, but fail under CI, where every part is installed and a skip would
// pass silently.
func obsMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("MISSING under CI: %s", why)
	}
	t.Skipf("SKIPPED: %s", why)
}

func obsNeed(t *testing.T, binary string, alt ...string) string {
	t.Helper()
	p, missing := obsLook(binary, alt...)
	if missing != "" {
		obsMissing(t, missing)
	}
	return p
}

// obsFreeAddr is a loopback address that was free a moment ago.
func obsFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// obsBuffer is a process's output, written by its pipe copier, read by the test.
type obsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *obsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *obsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type obsProc struct {
	name string
	cmd  *exec.Cmd
	out  obsBuffer
	done chan struct{}
	err  error
}

// obsStart runs bin with args (and no LIQSTREAM_* from the caller's
// environment); the test's end stops it with SIGTERM.
func obsStart(t *testing.T, name, bin string, args ...string) *obsProc {
	t.Helper()
	p := &obsProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIQSTREAM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.WaitDelay = 5 * time.Second
	// If the test binary dies (a timeout panic skips Cleanup), so does the process.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out := p.out.String()
			if len(out) > 6000 {
				out = "...\n" + out[len(out)-6000:]
			}
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return p
}

func (p *obsProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits, killing the process after 20 s.
func (p *obsProc) stop() error {
	if p.exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s ignored SIGTERM for 20s and was killed", p.name)
	}
	return p.err
}

// obsWaitReady polls a readiness endpoint until it answers 200, failing if the
// process exits first.
func obsWaitReady(t *testing.T, p *obsProc, u string, timeout time.Duration) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	obsEventually(t, timeout, p.name+" ready at "+u, func() (bool, string) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before it was ready:\n%s", p.name, p.err, p.out.String())
		}
		resp, err := c.Get(u)
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status + " " + string(b)
	})
}

// obsEventually polls cond until it holds, failing with its last word after timeout.
func obsEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; last: %s", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// obsStartRedis starts a redis-server without persistence and returns its address.
func obsStartRedis(t *testing.T, bin, dir string) string {
	t.Helper()
	addr := obsFreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := obsStart(t, "redis-server", bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", rdir, "--protected-mode", "no")
	obsEventually(t, 10*time.Second, "redis-server listening on "+addr, func() (bool, string) {
		if p.exited() {
			t.Fatalf("redis-server exited (%v):\n%s", p.err, p.out.String())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return addr
}

// --- a fake Binance ----------------------------------------------------------

type obsBinance struct {
	*httptest.Server
	requests atomic.Int64
}

// obsFakeBinance serves the two USD-M endpoints the live source polls with
// smooth made-up candles and open interest up to now. Its first answer is a
// 400 (what Binance says to an unknown symbol), so the error counter has a
// series as well.
func obsFakeBinance(t *testing.T) *obsBinance {
	t.Helper()
	const step = 5 * time.Minute
	f := &obsBinance{}
	var failed atomic.Bool
	param := func(r *http.Request, name string) int64 {
		n, _ := strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
		return n
	}
	// price and oi move with time, so positions open and close.
	price := func(ts time.Time) float64 {
		return 30000 + 800*math.Sin(float64(ts.Unix())/7200)
	}
	oi := func(ts time.Time) float64 {
		return 80000 + 6000*math.Sin(float64(ts.Unix())/5400) + 2000*math.Cos(float64(ts.Unix())/1300)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fapi/v1/klines", func(w http.ResponseWriter, r *http.Request) {
		if failed.CompareAndSwap(false, true) {
			http.Error(w, `{"code":-1121,"msg":"Invalid symbol."}`, http.StatusBadRequest)
			return
		}
		now, limit := time.Now(), int(param(r, "limit"))
		open := time.UnixMilli(param(r, "startTime")).Truncate(step)
		if open.Before(time.UnixMilli(param(r, "startTime"))) {
			open = open.Add(step)
		}
		rows := [][]any{}
		for ; !open.After(now) && len(rows) < limit; open = open.Add(step) {
			o, c := price(open), price(open.Add(step))
			rows = append(rows, []any{open.UnixMilli(), num(o), num(max(o, c) + 15), num(min(o, c) - 15), num(c), "125.5",
				open.Add(step).UnixMilli() - 1, num(125.5 * c), 900, "60.1", num(60.1 * c), "0"})
		}
		json.NewEncoder(w).Encode(rows)
	})
	mux.HandleFunc("GET /futures/data/openInterestHist", func(w http.ResponseWriter, r *http.Request) {
		now, limit := time.Now(), int(param(r, "limit"))
		end := time.UnixMilli(param(r, "endTime"))
		if end.After(now) || param(r, "endTime") == 0 {
			end = now
		}
		ts := time.UnixMilli(param(r, "startTime")).Truncate(step)
		if ts.Before(time.UnixMilli(param(r, "startTime"))) {
			ts = ts.Add(step)
		}
		rows := []map[string]any{}
		for ; !ts.After(end) && len(rows) < limit; ts = ts.Add(step) {
			rows = append(rows, map[string]any{"symbol": r.URL.Query().Get("symbol"), "sumOpenInterest": num(oi(ts)),
				"sumOpenInterestValue": num(oi(ts) * price(ts)), "timestamp": ts.UnixMilli()})
		}
		json.NewEncoder(w).Encode(rows)
	})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// --- Prometheus --------------------------------------------------------------

type obsProm struct {
	base       string
	gatewayJob string
	proc       *obsProc
}

// obsStartPrometheus runs Prometheus with the shipped rules file, as it is,
// scraping the snapshotter and the gateway every second under the job names
// the shipped deploy/prometheus/prometheus.yml gives them.
func obsStartPrometheus(t *testing.T, bin, snapAddr, gwAddr string) *obsProm {
	t.Helper()
	root := repoRoot(t)
	rules := filepath.Join(root, "deploy", "prometheus", "liqstream-rules.yaml")
	if _, err := os.Stat(rules); err != nil {
		t.Fatal(err)
	}
	snapJob, gwJob := obsShippedJobs(t, filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	dir := t.TempDir()
	p := &obsProm{gatewayJob: gwJob}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %q
    static_configs:
      - targets: [%q]
  - job_name: %q
    static_configs:
      - targets: [%q]
`, rules, snapJob, snapAddr, gwJob, gwAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := obsFreeAddr(t)
	p.base = "http://" + addr
	p.proc = obsStart(t, "prometheus", bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	obsWaitReady(t, p.proc, p.base+"/-/ready", time.Minute)
	return p
}

// obsShippedJobs returns the job names of the shipped Prometheus config:
// the one scraping the snapshotter and the one scraping the gateways.
func obsShippedJobs(t *testing.T, path string) (snapshotter, gateway string) {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, sc := range cfg.ScrapeConfigs {
		switch {
		case strings.Contains(sc.JobName, "gateway"):
			gateway = sc.JobName
		case strings.Contains(sc.JobName, "snapshotter"):
			snapshotter = sc.JobName
		}
	}
	if snapshotter == "" || gateway == "" {
		t.Fatalf("%s: no snapshotter and gateway jobs in %+v", path, cfg.ScrapeConfigs)
	}
	return snapshotter, gateway
}

// api GETs one API path and decodes its data field into v.
func (p *obsProm) api(path string, q url.Values, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

type obsSample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates an instant query, returning its vector.
func (p *obsProm) query(expr string) ([]obsSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want vector", expr, data.ResultType)
	}
	var out []obsSample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v: %w", expr, r.Value, err)
		}
		out = append(out, obsSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// waitValue waits until expr is exactly one series with value want.
func (p *obsProm) waitValue(t *testing.T, expr string, want int, timeout time.Duration) {
	t.Helper()
	obsEventually(t, timeout, fmt.Sprintf("%s = %d in Prometheus", expr, want), func() (bool, string) {
		got, err := p.query(expr)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 1 && got[0].Value == float64(want), fmt.Sprintf("%+v", got)
	})
}

type obsRule struct {
	Name           string    `json:"name"`
	Query          string    `json:"query"`
	Duration       float64   `json:"duration"`
	State          string    `json:"state"`
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Alerts         []struct {
		State  string            `json:"state"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// rule returns the loaded alerting rule named name.
func (p *obsProm) rule(name string) (obsRule, error) {
	var data struct {
		Groups []struct {
			Rules []obsRule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
		return obsRule{}, err
	}
	var names []string
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			if r.Name == name {
				return r, nil
			}
			names = append(names, r.Name)
		}
	}
	return obsRule{}, fmt.Errorf("prometheus loaded no alert %s (it has %v)", name, names)
}

// waitInactive waits until the alert has been evaluated, healthy and
// inactive, after Prometheus holds a frame of every symbol from the gateway
// and has scraped the snapshotter: a rule that fires while frames flow (or
// cannot be evaluated) fails here.
func (p *obsProm) waitInactive(t *testing.T, name, snapAddr string) {
	t.Helper()
	obsEventually(t, time.Minute, "gateway frame timestamps and a snapshotter scrape in Prometheus", func() (bool, string) {
		frames, err := p.query(`gateway_last_frame_timestamp_seconds{job="` + p.gatewayJob + `"}`)
		if err != nil {
			return false, err.Error()
		}
		up, err := p.query(`up{instance="` + snapAddr + `"} == 1`)
		if err != nil {
			return false, err.Error()
		}
		return len(frames) >= 2 && len(up) == 1, fmt.Sprintf("frames %+v, snapshotter up %+v", frames, up)
	})
	since := time.Now()
	var last obsRule
	obsEventually(t, time.Minute, name+" evaluated and inactive while frames flow", func() (bool, string) {
		r, err := p.rule(name)
		if err != nil {
			return false, err.Error()
		}
		last = r
		return r.Health == "ok" && r.LastEvaluation.After(since) && r.State == "inactive" && len(r.Alerts) == 0,
			fmt.Sprintf("%+v", r)
	})
	t.Logf("%s inactive while frames flow (expr %s, for %gs)", name, last.Query, last.Duration)
}

// waitAlert waits until the alert is pending or firing and returns which.
func (p *obsProm) waitAlert(t *testing.T, name string, timeout time.Duration) string {
	t.Helper()
	var state string
	obsEventually(t, timeout, name+" pending or firing", func() (bool, string) {
		var data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := p.api("/api/v1/alerts", nil, &data); err != nil {
			return false, err.Error()
		}
		for _, a := range data.Alerts {
			if a.Labels["alertname"] == name && (a.State == "pending" || a.State == "firing") {
				state = a.State
				return true, ""
			}
		}
		r, err := p.rule(name)
		return false, fmt.Sprintf("alerts %+v; rule %+v %v", data.Alerts, r, err)
	})
	return state
}

// --- WebSocket clients -------------------------------------------------------

// obsWS is one held WebSocket client: it subscribes and keeps reading.
type obsWS struct {
	gws.BuiltinEventHandler
	conn      *gws.Conn
	snapshots chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *obsWS) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(m.Bytes(), &f) == nil && f.Type == "snapshot" {
		select {
		case c.snapshots <- struct{}{}:
		default:
		}
	}
}

func (c *obsWS) OnClose(*gws.Conn, error) { c.closeOnce.Do(func() { close(c.closed) }) }

func obsDial(t *testing.T, u string) *obsWS {
	t.Helper()
	c := &obsWS{snapshots: make(chan struct{}, 1), closed: make(chan struct{})}
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: u})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { c.close(t) })
	if err := conn.WriteString(`{"action":"subscribe","symbols":["BTCUSDT"]}`); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return c
}

func (c *obsWS) waitSnapshot(timeout time.Duration) error {
	select {
	case <-c.snapshots:
		return nil
	case <-c.closed:
		return fmt.Errorf("closed before a snapshot arrived")
	case <-time.After(timeout):
		return fmt.Errorf("no snapshot within %s", timeout)
	}
}

// close sends a normal close and waits for the connection to end.
func (c *obsWS) close(t *testing.T) {
	select {
	case <-c.closed:
		return
	default:
	}
	c.conn.WriteClose(1000, nil)
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		c.conn.NetConn().Close()
		t.Logf("a client's close was not answered within 5s; its socket was closed")
	}
}
