package e2e

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// The archive: per symbol and calendar month, a Binance USD-M file of 1m
// candles and one of 5m metrics (open interest), over archiveDays up to now,
// so the store it makes serves live heatmaps on 1m candles.
var (
	archiveSymbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	archivePrices  = []float64{90000, 3000, 150}
)

const archiveDays = 30

// archiveFile is one generated file and the rows it holds.
type archiveFile struct {
	name       string
	klines, oi int64
}

// writeArchive writes the archive into dir and returns its files in the
// order `snapshotter import DIR` walks them (lexical).
func writeArchive(t *testing.T, dir string, end time.Time) []archiveFile {
	t.Helper()
	start := end.Add(-archiveDays * 24 * time.Hour).Truncate(5 * time.Minute)
	type out struct {
		f  *os.File
		w  *bufio.Writer
		af *archiveFile
	}
	files := map[string]*out{}
	open := func(name, header string) *out {
		if o, ok := files[name]; ok {
			return o
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		o := &out{f: f, w: bufio.NewWriterSize(f, 1<<16), af: &archiveFile{name: name}}
		o.w.WriteString(header + "\n")
		files[name] = o
		return o
	}
	var b []byte
	num := func(v float64) { b = strconv.AppendFloat(b, v, 'f', 4, 64) }
	for si, sym := range archiveSymbols {
		i := 0
		for ts := start; !ts.After(end); ts, i = ts.Add(time.Minute), i+1 {
			month := ts.Format("2006-01")
			p := archivePrices[si] * (1 + float64(i%50)/1000)
			ms := ts.UnixMilli()
			b = strconv.AppendInt(b[:0], ms, 10)
			for _, v := range []float64{p, p * 1.002, p * 0.998, p * 1.001, 2 + float64(i%7)} {
				b = append(b, ',')
				num(v)
			}
			b = append(b, ',')
			b = strconv.AppendInt(b, ms+59999, 10)
			b = append(b, ",1000.5,42,1.0,500.25,0\n"...)
			k := open(sym+"-1m-"+month+".csv", "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore")
			k.w.Write(b)
			k.af.klines++
			if ts.Minute()%5 != 0 {
				continue
			}
			b = append(b[:0], ts.Format("2006-01-02 15:04:05")+","+sym+","...)
			num(1e6 + float64(i))
			b = append(b, ',')
			num((1e6 + float64(i)) * p)
			b = append(b, ",1.5,1.4,1.3,0.9\n"...)
			m := open(sym+"-metrics-"+month+".csv", "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
			m.w.Write(b)
			m.af.oi++
		}
	}
	var list []archiveFile
	for _, o := range files {
		if err := o.w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := o.f.Close(); err != nil {
			t.Fatal(err)
		}
		list = append(list, *o.af)
	}
	slices.SortFunc(list, func(a, b archiveFile) int { return strings.Compare(a.name, b.name) })
	return list
}

// archivePrefix returns k when c is exactly the rows of the first k files,
// the only states an import that stores each file whole can leave (every run
// walks the files in the same order), and -1 otherwise.
func archivePrefix(files []archiveFile, c storeCounts) int {
	var k, oi int64
	for i := 0; ; i++ {
		if c.Klines == k && c.OpenInterest == oi {
			return i
		}
		if i == len(files) {
			return -1
		}
		k, oi = k+files[i].klines, oi+files[i].oi
	}
}

func launchImport(t *testing.T, db string, paths ...string) *testenv.Proc {
	t.Helper()
	return testenv.Launch(t, "snapshotter", "", append([]string{"import", "--db", db}, paths...)...)
}

// killDelay is a seeded-random kill delay for a run that has the fraction
// left of the work a clean run does in window: anywhere up to a little past
// the run's expected end, so that most kills land inside the work and some
// after. margin covers what does not shrink with the work (starting, opening
// the store, the first request), or a run with little left would never get
// through.
func killDelay(rng *rand.Rand, window time.Duration, left float64, margin time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(1.1*left*float64(window)) + int64(margin)))
}

// startArchiveServer starts a snapshotter serving the imported store: no demo
// data, no simulator, heatmaps on the archive's 1m candles.
func startArchiveServer(t *testing.T, db string) *testenv.Proc {
	t.Helper()
	return testenv.Launch(t, "snapshotter", "", "--db", db, "--listen", "127.0.0.1:0", "--symbols", strings.Join(archiveSymbols, ","),
		"--demo.enabled=false", "--simulator.enabled=false", "--snapshot.candle_interval=1m", "--log_summary_interval=1h")
}

// importedCounts starts a snapshotter on db (replaying what the killed
// import left), returns the row counts it found and kills it.
func importedCounts(t *testing.T, db string) storeCounts {
	t.Helper()
	p := startArchiveServer(t, db)
	defer p.Kill()
	return opened(t, p)
}

// TestCrashDuringArchiveImport kills `snapshotter import` with SIGKILL at
// seeded-random moments while it imports a directory of archive files, and
// after each kill opens the store with a snapshotter: it holds whole files,
// the first k of the import's order, never part of one. The next run imports
// the files the store lacks, so every kill lands on files not yet stored.
// Finally the import is run again over the whole directory: the store then
// holds what an uninterrupted import writes, and serves.
func TestCrashDuringArchiveImport(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real snapshotter dozens of times")
	}
	kills := faultKills(t, 4, 20)
	maxRuns := kills * 3
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	if err := os.Mkdir(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	files := writeArchive(t, archive, time.Now().UTC().Truncate(time.Minute).Add(-time.Minute))
	var want storeCounts
	for _, f := range files {
		want.Klines += f.klines
		want.OpenInterest += f.oi
	}
	summary := fmt.Sprintf("imported %d klines, %d open interest rows and 0 liquidations; 0 file(s) rejected", want.Klines, want.OpenInterest)

	// The reference: an uninterrupted import, and how long it takes (the
	// binaries built first, not timed).
	testenv.Binaries(t)
	cleanDB := filepath.Join(dir, "clean", "store.duckdb")
	began := time.Now()
	clean := launchImport(t, cleanDB, archive)
	if line := clean.WaitLog(t, "imported ", 5*time.Minute); !strings.Contains(line, summary) {
		t.Fatalf("clean import: %q, want %q", line, summary)
	}
	window := time.Since(began)
	clean.Kill()
	if got := importedCounts(t, cleanDB); got != want {
		t.Fatalf("clean import stored %+v, want %+v", got, want)
	}
	// And what an import costs beyond its rows (starting, opening a full
	// store): the smallest file again.
	small := slices.MinFunc(files, func(a, b archiveFile) int { return cmp.Compare(a.klines+a.oi, b.klines+b.oi) })
	began = time.Now()
	one := launchImport(t, cleanDB, filepath.Join(archive, small.name))
	if line := one.WaitLog(t, "imported ", 5*time.Minute); !strings.Contains(line, "; 0 file(s) rejected") {
		t.Fatalf("import of %s: %q", small.name, line)
	}
	overhead := time.Since(began)
	one.Kill()
	t.Logf("clean import of %d files (%d klines, %d open interest rows): %s; of %s alone (%d rows): %s", len(files), want.Klines, want.OpenInterest,
		window.Round(time.Millisecond), small.name, small.klines+small.oi, overhead.Round(time.Millisecond))

	rng := crashRand(t, 16)
	store, stores, last := "", 0, cleanDB
	held := 0 // files the current store held before this run
	mid, grew, after, run := 0, 0, 0, 0
	total := float64(want.Klines + want.OpenInterest)
	for mid < kills {
		run++
		if run > maxRuns {
			t.Fatalf("only %d of %d kills landed mid-import; want %d", mid, run-1, kills)
		}
		if store == "" {
			stores++
			store, held = filepath.Join(dir, fmt.Sprintf("crash%d", stores), "store.duckdb"), 0
		}
		var paths []string
		rows := 0.0
		for _, f := range files[held:] {
			paths = append(paths, filepath.Join(archive, f.name))
			rows += float64(f.klines + f.oi)
		}
		p := launchImport(t, store, paths...)
		// Kill anywhere from the start to a little past the time a clean
		// import takes for these files; the margin (measured overhead and a
		// quarter of the clean import) covers a store that was just
		// recovered, and a loaded machine.
		delay := killDelay(rng, window, rows/total, overhead+window/4)
		time.Sleep(delay)
		finished := p.HasLine("imported ")
		p.Kill()
		c := importedCounts(t, store)
		k := archivePrefix(files, c)
		if k < 0 {
			t.Fatalf("run %d: killed after %s, the store holds %+v: not the rows of whole files (%d of them)", run, delay.Round(time.Millisecond), c, len(files))
		}
		if k < held || (finished && k != len(files)) {
			t.Fatalf("run %d: store held %d files, now %d after an import that finished: %v", run, held, k, finished)
		}
		if finished {
			if line := p.WaitLog(t, "imported ", 0); !strings.Contains(line, "; 0 file(s) rejected") {
				t.Fatalf("run %d: %s", run, line)
			}
		}
		t.Logf("run %d: store %d held %d/%d files, killed after %s, holds %d (%d klines, %d open interest rows)",
			run, stores, held, len(files), delay.Round(time.Millisecond), k, c.Klines, c.OpenInterest)
		if k == len(files) {
			// Imported whole: the next kills go to a fresh store.
			after++
			last, store = store, ""
			continue
		}
		mid++
		if k > held {
			grew++
		}
		held = k
	}
	t.Logf("%d kills: %d mid-import (in %d of them the run had stored one or more whole files first), %d after the last file was stored; %d stores",
		run, mid, grew, after, stores)

	// Run the import over the whole directory into the last store to the
	// end: it then holds what the clean import wrote, and serves.
	if store != "" {
		p := launchImport(t, store, archive)
		if line := p.WaitLog(t, "imported ", 5*time.Minute); !strings.Contains(line, summary) {
			t.Fatalf("import after the crashes: %q, want %q", line, summary)
		}
		p.Kill()
		last = store
	}
	srv := startArchiveServer(t, last)
	if got := opened(t, srv); got != want {
		t.Fatalf("after the final import the store holds %+v, the clean import %+v", got, want)
	}
	crashReady(t, srv, 2*time.Minute)
}

// fakeExchange is Binance's USD-M REST API for the live source, serving 5m
// candles and open interest of a fixed span that ends before now. Like a
// market that keeps moving, it publishes in steps: a klines answer holds at
// most batch candles from startTime, and open interest is published up to
// the newest candle a symbol's last klines answer held. So each poll of a
// symbol brings the next batch of candles and the observations at the same
// times, and batch boundaries follow from what the store holds.
type fakeExchange struct {
	symbols     []string
	prices      map[string]float64
	first, last time.Time
	batch       int
	// latency delays each openInterestHist answer, as the network does, so
	// that kills also land between a poll's candles and its open interest.
	latency time.Duration

	mu       sync.Mutex
	cutoff   map[string]time.Time
	served   map[string]bool
	allOut   time.Time // when the last candle had been served for every symbol
	caught   map[string]bool
	caughtUp chan struct{} // closed when every symbol asked for klines from the last candle
	klinesQs int
}

func (f *fakeExchange) perSymbol() int64 { return int64(f.last.Sub(f.first)/(5*time.Minute)) + 1 }

// newStore forgets what the exchange saw of the previous store.
func (f *fakeExchange) newStore() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutoff, f.served, f.allOut = map[string]time.Time{}, map[string]bool{}, time.Time{}
	f.caught, f.caughtUp = map[string]bool{}, make(chan struct{})
}

// lastServed is when every symbol's last batch had been served, zero before.
func (f *fakeExchange) lastServed() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.allOut
}

func (f *fakeExchange) klinesRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.klinesQs
}

// awaitCaughtUp waits until the snapshotter has asked for candles from the
// last one for every symbol: the poller resumes from the newest candle
// stored, so by then the store holds the whole span.
func (f *fakeExchange) awaitCaughtUp(t *testing.T, p *testenv.Proc, timeout time.Duration) {
	t.Helper()
	f.mu.Lock()
	ch := f.caughtUp
	f.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("the snapshotter did not catch up within %s:\n%s", timeout, p.Logs())
	}
}

func (f *fakeExchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sym := q.Get("symbol")
	ms := func(name string, def int64) (int64, bool) {
		if q.Get(name) == "" {
			return def, true
		}
		n, err := strconv.ParseInt(q.Get(name), 10, 64)
		return n, err == nil
	}
	start, ok1 := ms("startTime", 0)
	end, ok2 := ms("endTime", 1<<62)
	limit, ok3 := ms("limit", 500)
	base, known := f.prices[sym]
	if !ok1 || !ok2 || !ok3 || !known {
		http.Error(w, `{"code":-1100,"msg":"bad request"}`, http.StatusBadRequest)
		return
	}
	idx := func(ts time.Time) int { return int(ts.Sub(f.first) / (5 * time.Minute)) }
	price := func(i int) float64 { return base * (1 + float64(i%50)/1000) }
	switch r.URL.Path {
	case "/fapi/v1/klines":
		if q.Get("interval") != "5m" {
			http.Error(w, `{"code":-1120,"msg":"Invalid interval."}`, http.StatusBadRequest)
			return
		}
		rows := [][]any{}
		for ts := f.first; !ts.After(f.last) && len(rows) < min(int(limit), f.batch); ts = ts.Add(5 * time.Minute) {
			if ts.UnixMilli() < start {
				continue
			}
			p := price(idx(ts))
			fs := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
			rows = append(rows, []any{ts.UnixMilli(), fs(p), fs(p * 1.002), fs(p * 0.998), fs(p * 1.001), fs(2 + float64(idx(ts)%7)),
				ts.Add(5*time.Minute).UnixMilli() - 1, "1000.5", 42, "1.0", "500.25", "0"})
		}
		f.mu.Lock()
		f.klinesQs++
		if len(rows) > 0 {
			f.cutoff[sym] = time.UnixMilli(rows[len(rows)-1][0].(int64)).UTC()
			if f.cutoff[sym].Equal(f.last) && !f.served[sym] {
				f.served[sym] = true
				if len(f.served) == len(f.symbols) {
					f.allOut = time.Now()
				}
			}
		}
		if start == f.last.UnixMilli() && !f.caught[sym] {
			f.caught[sym] = true
			if len(f.caught) == len(f.symbols) {
				close(f.caughtUp)
			}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(rows)
	case "/futures/data/openInterestHist":
		if q.Get("period") != "5m" {
			http.Error(w, `{"code":-1100,"msg":"bad period"}`, http.StatusBadRequest)
			return
		}
		time.Sleep(f.latency)
		f.mu.Lock()
		cutoff := f.cutoff[sym]
		f.mu.Unlock()
		rows := []map[string]any{}
		for ts := f.first; !ts.After(cutoff) && len(rows) < int(limit); ts = ts.Add(5 * time.Minute) {
			if at := ts.UnixMilli(); at < start || at > end {
				continue
			}
			oi := 1e6 + float64(idx(ts))
			rows = append(rows, map[string]any{"symbol": sym, "sumOpenInterest": strconv.FormatFloat(oi, 'f', 4, 64),
				"sumOpenInterestValue": strconv.FormatFloat(oi*price(idx(ts)), 'f', 4, 64), "timestamp": ts.UnixMilli()})
		}
		json.NewEncoder(w).Encode(rows)
	default:
		http.NotFound(w, r)
	}
}

// liveTotals are the row counts a store can hold when every poll is stored
// whole: per symbol 0, batch, then batch-1 more per poll (each poll asks again
// for the newest candle it has) up to n; summed over symbols.
func liveTotals(symbols int, n, batch int64) map[int64]bool {
	per := []int64{0}
	for c := batch; ; c += batch - 1 {
		per = append(per, min(c, n))
		if c >= n {
			break
		}
	}
	totals := map[int64]bool{0: true}
	for range symbols {
		next := map[int64]bool{}
		for t := range totals {
			for _, c := range per {
				next[t+c] = true
			}
		}
		totals = next
	}
	return totals
}

// TestCrashDuringLiveIngest kills the snapshotter with SIGKILL at
// seeded-random moments while its live source backfills from a fake Binance
// in batches, restarts it on the same file, and checks after every restart
// that each poll's batch is there whole or not at all, candles and open
// interest together. Once let catch up, the store holds what an
// uninterrupted run writes, and serves.
func TestCrashDuringLiveIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real snapshotter dozens of times")
	}
	kills := faultKills(t, 4, 20)
	maxRuns := kills * 4
	end := time.Now().UTC().Truncate(5 * time.Minute).Add(-5 * time.Minute)
	fx := &fakeExchange{
		symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"},
		prices:  map[string]float64{"BTCUSDT": 90000, "ETHUSDT": 3000, "SOLUSDT": 150},
		first:   end.Add(-36 * time.Hour), last: end, batch: 100, latency: 50 * time.Millisecond,
	}
	srv := httptest.NewServer(fx)
	// A cleanup, so it runs after those killing the snapshotters.
	t.Cleanup(srv.Close)
	n := fx.perSymbol()
	want := storeCounts{Klines: n * int64(len(fx.symbols)), OpenInterest: n * int64(len(fx.symbols))}
	totals := liveTotals(len(fx.symbols), n, int64(fx.batch))
	// The lookback (40h, the 36h span inside it) is shorter than one
	// openInterestHist window of 500 periods, so each poll asks for open
	// interest once, from just after the newest stored observation. Over
	// several windows the poller steps past one that answers empty, as
	// Binance's history has no holes, and this fake's late publishing would
	// lose observations there.
	start := func(db string) *testenv.Proc {
		return testenv.Launch(t, "snapshotter", "", "--db", db, "--listen", "127.0.0.1:0", "--symbols", strings.Join(fx.symbols, ","),
			"--demo.enabled=false", "--simulator.enabled=false", "--binance.enabled=true", "--binance.stream=false", "--binance.base_url="+srv.URL,
			"--binance.poll_interval=1s", "--binance.lookback=40h", "--log_summary_interval=1h")
	}
	check := func(run int, c storeCounts) {
		t.Helper()
		if c.Klines != c.OpenInterest || !totals[c.Klines] {
			t.Fatalf("run %d: store holds %d candles and %d open interest rows; want equal, whole batches of %d per symbol",
				run, c.Klines, c.OpenInterest, fx.batch)
		}
	}
	dir := t.TempDir()

	// The reference: an uninterrupted backfill, and how long it takes from
	// the store opening until the last batch is out.
	cleanDB := filepath.Join(dir, "clean", "store.duckdb")
	fx.newStore()
	clean := start(cleanDB)
	if c := opened(t, clean); c != (storeCounts{}) {
		t.Fatalf("fresh store holds %+v", c)
	}
	began := time.Now()
	fx.awaitCaughtUp(t, clean, 2*time.Minute)
	window := fx.lastServed().Sub(began)
	clean.Kill()
	ref := start(cleanDB)
	if got := opened(t, ref); got != want {
		t.Fatalf("clean run stored %+v, want %+v", got, want)
	}
	ref.Kill()
	t.Logf("clean backfill of %d symbols x %d candles and observations in batches of %d: %s", len(fx.symbols), n, fx.batch, window.Round(time.Millisecond))

	rng := crashRand(t, 17)
	store, stores, lastStore := "", 0, cleanDB
	var (
		p        *testenv.Proc
		held     storeCounts // what the store held when p started
		launched int         // klines requests before p started
	)
	mid, grew, early, after, run := 0, 0, 0, 0, 0
	for mid < kills {
		run++
		if run > maxRuns {
			t.Fatalf("only %d of %d kills landed mid-ingest; want %d", mid, run-1, kills)
		}
		if store == "" {
			stores++
			store = filepath.Join(dir, fmt.Sprintf("crash%d", stores), "store.duckdb")
			fx.newStore()
			launched = fx.klinesRequests()
			p = start(store)
			held = opened(t, p)
			check(run, held)
		}
		// Kill anywhere from the store opening to a little past the time a
		// clean backfill takes for what the store lacks (the first poll
		// comes right after the store opens and takes a few hundred ms).
		delay := killDelay(rng, window, 1-float64(held.Klines)/float64(want.Klines), 500*time.Millisecond)
		time.Sleep(delay)
		asked := fx.klinesRequests() > launched
		p.Kill()
		// The restart shows what the killed run left.
		launched = fx.klinesRequests()
		next := start(store)
		c := opened(t, next)
		check(run, c)
		if c.Klines < held.Klines {
			t.Fatalf("run %d: store held %+v, after the kill %+v", run, held, c)
		}
		t.Logf("run %d: store %d held %d/%d rows, killed after %s (asked for candles: %v), holds %d/%d",
			run, stores, held.Klines, held.OpenInterest, delay.Round(time.Millisecond), asked, c.Klines, c.OpenInterest)
		switch {
		case c == want:
			// Caught up before the kill: the next kills go to a fresh store.
			after++
			next.Kill()
			lastStore, store = store, ""
			continue
		case !asked:
			early++
		default:
			mid++
			if c != held {
				grew++
			}
		}
		p, held = next, c
	}
	t.Logf("%d kills: %d mid-ingest (in %d of them the run had stored one or more batches first), %d before the first request, %d after catching up; %d stores",
		run, mid, grew, early, after, stores)

	// Let the last run catch up: the store then holds what the clean run
	// wrote, and serves.
	if store != "" {
		fx.awaitCaughtUp(t, p, 2*time.Minute)
		p.Kill()
		lastStore = store
	}
	final := start(lastStore)
	if got := opened(t, final); got != want {
		t.Fatalf("after catching up the store holds %+v, the clean run %+v", got, want)
	}
	crashReady(t, final, 2*time.Minute)
}
