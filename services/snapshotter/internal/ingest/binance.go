package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/liqstream/liqstream/pkg/logging"
	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// DefaultBaseURL is Binance's USD-M futures REST endpoint.
const DefaultBaseURL = "https://fapi.binance.com"

// Binance's request limits: rows per klines and per openInterestHist call.
const (
	MaxKlineLimit = 1500
	MaxOILimit    = 500
)

// DefaultKlineLimit is the rows per klines request unless configured:
// Binance weighs 1000 rows 5 and 1001–1500 rows 10, so pages of 1000 fetch a
// backfill for about three quarters of the weight of pages of 1500; the
// budget, not the number of requests, is what limits a backfill.
const DefaultKlineLimit = 1000

// oiHistory is how far back openInterestHist answers (Binance keeps the last
// 30 days); asking earlier gets a 400, so no request starts earlier than this.
const oiHistory = 29 * 24 * time.Hour

// BinanceConfig configures the live Binance source; zero fields take the
// defaults documented on each.
type BinanceConfig struct {
	BaseURL  string   // DefaultBaseURL
	Symbols  []string // required
	Interval string   // candle interval, "5m"
	// OIPeriod is openInterestHist's period: 5m, 15m, 30m, 1h, 2h, 4h, 6h,
	// 12h or 1d; "5m".
	OIPeriod     string
	PollInterval time.Duration // 10s
	// Lookback is how much history an empty store gets; 7 days.
	Lookback time.Duration
	// MaxBackfill caps the gap filled after the store's newest row; 30 days.
	MaxBackfill    time.Duration
	RequestTimeout time.Duration // per HTTP request, 10s
	// MinBackoff and MaxBackoff bound the exponential wait after a 5xx,
	// a 429/418 without Retry-After or a network error; 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// WeightPerMinute and OIPer5Minutes are the share of Binance's per-IP
	// limits this source allows itself (other clients may share the
	// address); half of each by default: 1200 and 500.
	WeightPerMinute, OIPer5Minutes int
	KlineLimit                     int          // rows per klines request, ≤ MaxKlineLimit; DefaultKlineLimit
	OILimit                        int          // rows per openInterestHist request, ≤ MaxOILimit
	Client                         *http.Client // a plain http.Client; RequestTimeout bounds each call
	Clock                          Clock        // RealClock
}

// Clock is injected so tests decide what "now" is and when a wait ends.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the Clock of the time package.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// LiveStore is the part of the store the live source reads and writes; the
// upsert records the change log, so the compute loop sees new rows. Upsert
// stores candles and open interest in one transaction.
type LiveStore interface {
	LastKline(ctx context.Context, symbol, interval string) (store.Kline, bool, error)
	LastOpenInterest(ctx context.Context, symbol string) (store.OpenInterest, bool, error)
	Upsert(ctx context.Context, ks []store.Kline, ois []store.OpenInterest) error
}

// Error kinds counted in Stats.Errors.
const (
	ErrRateLimited = "rate_limited" // 429
	ErrBanned      = "ip_banned"    // 418: Binance's ban after ignoring 429s
	ErrForbidden   = "forbidden"    // 403: Binance's WAF limit
	ErrServer      = "server"       // 5xx
	ErrClient      = "client"       // other 4xx, e.g. an unknown symbol
	ErrNetwork     = "network"      // no HTTP answer: DNS, connect, timeout
	ErrDecode      = "decode"       // an answer that is not what the API documents
	ErrStore       = "store"        // reading or writing the store
)

// Stats is a snapshot of the source's counters, for metrics.
type Stats struct {
	Polls               uint64            // polls started, successful or not
	KlinesWritten       uint64            // candles upserted, the open one again on every poll
	OpenInterestWritten uint64            // observations upserted
	Errors              map[string]uint64 // by kind, see the Err constants
	// LastSuccess is, per symbol, when a poll last brought it up to date;
	// now minus it is the ingest lag.
	LastSuccess map[string]time.Time
	// NewestCandle is, per symbol, the open time of the newest candle written.
	NewestCandle map[string]time.Time
	// Paced is how long requests waited for the source's own share of
	// Binance's limits (WeightPerMinute, OIPer5Minutes).
	Paced time.Duration
}

// Binance polls Binance's USD-M REST API and writes candles and open interest
// through the store.
type Binance struct {
	cfg    BinanceConfig
	step   time.Duration
	period time.Duration
	st     LiveStore
	clk    Clock
	log    *slog.Logger

	// Only Run's goroutine touches symbols, failures and the budgets.
	weights, oiReqs *budget
	symbols         map[string]*symbolState
	failures        int
	prepared        bool

	// wake cuts the wait before the next poll short: a stream came up and
	// its symbols need their backfill now.
	wake chan struct{}

	mu    sync.Mutex
	stats Stats
	// streams is, per symbol, what the live stream reports (StreamUp,
	// StreamDown, MarkFinal); guarded by mu.
	streams map[string]*streamState
}

// streamState is what the stream told the poller about one symbol.
type streamState struct {
	up bool // a connection carries the symbol: its candles come from there
	// final is the newest candle stored closed with every candle before it
	// (back to the resume point) stored closed too.
	final time.Time
	// pending asks for a backfill from `from` (the poller's cursor when
	// zero), fixed when the stream came up; gen tells backfills apart.
	pending bool
	from    time.Time
	gen     uint64
	// streamFinal is the newest candle the current connection stored
	// closed while its backfill was pending: it joins final only once the
	// backfill has filled the hole before it.
	streamFinal time.Time
}

type symbolState struct {
	ready bool
	// klineNext is the open time the next klines request starts at: the
	// newest candle seen, which may still be open and must be fetched again.
	klineNext time.Time
	// oiNext is the start of the next openInterestHist window; oiLast the
	// newest observation, to skip polls before the next one is due.
	oiNext, oiLast time.Time
}

var oiPeriods = []string{"5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"}

// NewBinance checks cfg, fills its defaults and returns the source; a nil
// logger discards logs.
func NewBinance(cfg BinanceConfig, st LiveStore, log *slog.Logger) (*Binance, error) {
	if len(cfg.Symbols) == 0 {
		return nil, errors.New("binance source: no symbols")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("binance source: base url: %w", err)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Interval == "" {
		cfg.Interval = "5m"
	}
	if cfg.OIPeriod == "" {
		cfg.OIPeriod = "5m"
	}
	def(&cfg.PollInterval, 10*time.Second)
	def(&cfg.Lookback, 7*24*time.Hour)
	def(&cfg.MaxBackfill, 30*24*time.Hour)
	def(&cfg.RequestTimeout, 10*time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 5*time.Minute)
	if cfg.WeightPerMinute <= 0 || cfg.WeightPerMinute > BinanceWeightPerMinute {
		cfg.WeightPerMinute = BinanceWeightPerMinute / 2
	}
	if cfg.OIPer5Minutes <= 0 || cfg.OIPer5Minutes > BinanceOIPer5Minutes {
		cfg.OIPer5Minutes = BinanceOIPer5Minutes / 2
	}
	if cfg.KlineLimit <= 0 || cfg.KlineLimit > MaxKlineLimit {
		cfg.KlineLimit = DefaultKlineLimit
	}
	if cfg.OILimit <= 0 || cfg.OILimit > MaxOILimit {
		cfg.OILimit = MaxOILimit
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	step, err := store.IntervalDuration(cfg.Interval)
	if err != nil {
		return nil, fmt.Errorf("binance source: interval: %w", err)
	}
	period, err := store.IntervalDuration(cfg.OIPeriod)
	ok := false
	for _, p := range oiPeriods {
		ok = ok || p == cfg.OIPeriod
	}
	if err != nil || !ok {
		return nil, fmt.Errorf("binance source: oi period %q: want one of %s", cfg.OIPeriod, strings.Join(oiPeriods, ", "))
	}
	b := &Binance{cfg: cfg, step: step, period: period, st: st, clk: cfg.Clock, log: log,
		weights: newBudget(cfg.Clock, time.Minute, cfg.WeightPerMinute), oiReqs: newBudget(cfg.Clock, 5*time.Minute, cfg.OIPer5Minutes),
		symbols: map[string]*symbolState{}, wake: make(chan struct{}, 1), streams: map[string]*streamState{},
		stats: Stats{Errors: map[string]uint64{}, LastSuccess: map[string]time.Time{}, NewestCandle: map[string]time.Time{}}}
	for _, s := range cfg.Symbols {
		b.symbols[s] = &symbolState{}
		b.streams[s] = &streamState{}
	}
	return b, nil
}

// Prepare reads from the store where each symbol resumes. Run does it
// itself when it was not done; a live stream needs it done before it
// writes its first candle, or the resume point would be that candle and the
// history before it would never be fetched.
func (b *Binance) Prepare(ctx context.Context) error {
	now := b.clk.Now().UTC()
	for _, sym := range b.cfg.Symbols {
		if s := b.symbols[sym]; !s.ready {
			if err := b.initSymbol(ctx, sym, s, now); err != nil {
				return fmt.Errorf("binance source: resume %s: %w", sym, err)
			}
		}
	}
	b.prepared = true
	return nil
}

// StreamUp tells the poller that a stream connection now carries symbols'
// candles: from here on it fetches their candles only to backfill, once,
// from the first candle not yet stored closed, which is exactly what a
// disconnection may have missed. The stream calls it after storing
// everything the previous connection delivered.
func (b *Binance) StreamUp(symbols []string) {
	b.mu.Lock()
	for _, sym := range symbols {
		if st := b.streams[sym]; st != nil {
			st.up, st.pending, st.streamFinal = true, true, time.Time{}
			st.from = time.Time{}
			if !st.final.IsZero() {
				st.from = st.final.Add(b.step)
			}
			st.gen++
		}
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// StreamDown tells the poller that symbols' stream connection is gone: it
// polls their candles again until a stream is back.
func (b *Binance) StreamDown(symbols []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, sym := range symbols {
		if st := b.streams[sym]; st != nil {
			st.up, st.streamFinal = false, time.Time{}
		}
	}
}

// MarkFinal records that the stream stored symbol's candle opening at open
// closed. Before the backfill of its connection is done there may be a
// hole behind it, so it only counts once the backfill has filled that; a
// connection already gone says nothing that can be relied on.
func (b *Binance) MarkFinal(symbol string, open time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.streams[symbol]
	switch {
	case st == nil || !st.up:
	case st.pending:
		st.streamFinal = later(st.streamFinal, open)
	default:
		st.final = later(st.final, open)
	}
}

// klinePlan says whether this poll fetches sym's candles and from where: a
// symbol no stream carries is polled from the first candle not stored
// closed; a streamed one only when a backfill is pending, and gen names
// that backfill.
func (b *Binance) klinePlan(sym string, s *symbolState) (fetch bool, from time.Time, backfill bool, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.streams[sym]
	switch {
	case !st.up && !st.final.IsZero():
		return true, later(s.klineNext, st.final.Add(b.step)), false, 0
	case !st.up:
		return true, s.klineNext, false, 0
	case !st.pending:
		return false, time.Time{}, false, 0
	case st.from.IsZero():
		return true, s.klineNext, true, st.gen
	}
	return true, st.from, true, st.gen
}

// fetched records a poll's stored candles: all but the newest are closed
// (the newest may be the open one) and, the poll having started at the
// first candle not stored closed, so is everything before them. Backfill
// gen, if any, is done unless a newer StreamUp asked for another meanwhile;
// what its connection stored closed in the meantime then counts.
func (b *Binance) fetched(sym string, ks []store.Kline, backfill bool, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.streams[sym]
	if len(ks) > 1 {
		st.final = later(st.final, ks[len(ks)-2].OpenTime)
	}
	if backfill && st.gen == gen && st.up {
		st.pending = false
		st.final = later(st.final, st.streamFinal)
		st.streamFinal = time.Time{}
	}
}

// Stats returns a copy of the counters.
func (b *Binance) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Errors = maps.Clone(s.Errors)
	s.LastSuccess = maps.Clone(s.LastSuccess)
	s.NewestCandle = maps.Clone(s.NewestCandle)
	return s
}

// Run polls until ctx ends and then returns nil. HTTP and store errors never
// stop it: they are logged and counted, and rate limits and server errors
// pause every request (Binance limits per IP, so the other symbols would hit
// the same wall) for Retry-After or an exponential backoff.
func (b *Binance) Run(ctx context.Context) error {
	b.log.Info("binance source started", "base_url", b.cfg.BaseURL, "symbols", b.cfg.Symbols,
		"interval", b.cfg.Interval, "poll_interval", b.cfg.PollInterval.String())
	if !b.prepared {
		if err := b.Prepare(ctx); err != nil && ctx.Err() == nil {
			// A store error; each poll tries again for its symbol.
			b.log.Warn("binance source could not read where to resume", logging.KeyErr, err)
		}
	}
	for {
		wait := b.poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.clk.After(wait):
		case <-b.wake:
			if b.failures > 0 {
				// Backing off: a stream coming up does not lift a rate limit.
				select {
				case <-ctx.Done():
					return nil
				case <-b.clk.After(wait):
				}
			}
		}
	}
}

// poll brings every symbol up to date once and returns the wait before the
// next poll.
func (b *Binance) poll(ctx context.Context) time.Duration {
	b.mu.Lock()
	b.stats.Polls++
	b.mu.Unlock()
	for _, sym := range b.cfg.Symbols {
		err := b.pollSymbol(ctx, sym, b.symbols[sym])
		if ctx.Err() != nil {
			return 0
		}
		if err == nil {
			b.mu.Lock()
			b.stats.LastSuccess[sym] = b.clk.Now()
			b.mu.Unlock()
			continue
		}
		kind, retryAfter := classify(err)
		b.mu.Lock()
		b.stats.Errors[kind]++
		b.mu.Unlock()
		if !retryable(kind) {
			b.log.Warn("binance poll failed", logging.KeySymbol, sym, "kind", kind, logging.KeyErr, err)
			continue
		}
		b.failures++
		wait := retryAfter
		if wait <= 0 {
			wait = b.cfg.MinBackoff
			for i := 1; i < b.failures && wait < b.cfg.MaxBackoff; i++ {
				wait *= 2
			}
			wait = min(wait, b.cfg.MaxBackoff)
		}
		b.log.Warn("binance poll failed, backing off", logging.KeySymbol, sym, "kind", kind, logging.KeyErr, err,
			"retry_in", wait.String(), "failures", b.failures)
		return wait
	}
	b.failures = 0
	return b.cfg.PollInterval
}

func retryable(kind string) bool {
	switch kind {
	case ErrRateLimited, ErrBanned, ErrForbidden, ErrServer, ErrNetwork:
		return true
	}
	return false
}

// pollSymbol fetches what is new of sym and stores it as one batch: every
// page of candles and window of open interest of the poll in one Upsert, so
// a crash leaves all of it or none, never candles without their open
// interest. The cursors move on a copy, kept only once the batch is stored;
// a failed fetch or write leaves them for the next poll to start over.
func (b *Binance) pollSymbol(ctx context.Context, sym string, s *symbolState) error {
	now := b.clk.Now().UTC()
	if !s.ready {
		if err := b.initSymbol(ctx, sym, s, now); err != nil {
			return err
		}
	}
	next := *s
	var ks []store.Kline
	var err error
	fetch, from, backfill, gen := b.klinePlan(sym, s)
	if fetch {
		next.klineNext = from
		if ks, err = b.pollKlines(ctx, sym, &next, now); err != nil {
			return err
		}
	}
	var ois []store.OpenInterest
	if next.oiLast.IsZero() || !now.Before(next.oiLast.Add(b.period)) {
		if ois, err = b.pollOI(ctx, sym, &next, now); err != nil {
			return err
		}
	}
	if err := b.st.Upsert(ctx, ks, ois); err != nil {
		return &storeError{err}
	}
	if fetch {
		b.fetched(sym, ks, backfill, gen)
		if backfill {
			b.log.Info("binance stream backfill", logging.KeySymbol, sym, "from", from, "candles", len(ks))
		}
		if next.klineNext.Before(s.klineNext) {
			next.klineNext = s.klineNext
		}
	}
	*s = next
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.KlinesWritten += uint64(len(ks))
	b.stats.OpenInterestWritten += uint64(len(ois))
	if len(ks) > 0 {
		if last := ks[len(ks)-1].OpenTime; last.After(b.stats.NewestCandle[sym]) {
			b.stats.NewestCandle[sym] = last
		}
	}
	return nil
}

// initSymbol finds where fetching resumes: at the newest stored candle (it
// may have been stored while still open), or Lookback ago for an empty store,
// never further back than MaxBackfill.
func (b *Binance) initSymbol(ctx context.Context, sym string, s *symbolState, now time.Time) error {
	earliest := now.Add(-b.cfg.MaxBackfill)
	k, ok, err := b.st.LastKline(ctx, sym, b.cfg.Interval)
	if err != nil {
		return &storeError{err}
	}
	s.klineNext = now.Add(-b.cfg.Lookback)
	if ok {
		s.klineNext = k.OpenTime
	}
	s.klineNext = alignDown(later(s.klineNext, earliest), b.step)

	o, ok, err := b.st.LastOpenInterest(ctx, sym)
	if err != nil {
		return &storeError{err}
	}
	s.oiNext = now.Add(-b.cfg.Lookback)
	if ok {
		s.oiLast = o.TS
		s.oiNext = o.TS.Add(time.Millisecond)
	}
	s.oiNext = later(s.oiNext, later(earliest, now.Add(-oiHistory)))
	s.ready = true
	b.log.Info("binance source resumes", logging.KeySymbol, sym, "klines_from", s.klineNext, "open_interest_from", s.oiNext)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func alignDown(t time.Time, step time.Duration) time.Time {
	us := t.UnixMicro()
	return time.UnixMicro(us - us%step.Microseconds()).UTC()
}

// pollKlines fetches from klineNext on, page by page, returns the candles for
// pollSymbol to store, and leaves klineNext at the newest candle, which is
// the open one once caught up: every poll refreshes it.
func (b *Binance) pollKlines(ctx context.Context, sym string, s *symbolState, now time.Time) ([]store.Kline, error) {
	var all []store.Kline
	start := s.klineNext
	for {
		// Binance weighs a klines request by its limit (1 below 100, 10 above
		// 1000), so a caught-up poll asks for the few candles it expects.
		limit := min(int(now.Sub(start)/b.step)+2, b.cfg.KlineLimit)
		limit = max(limit, 1)
		ks, err := b.fetchKlines(ctx, sym, start, limit)
		if err != nil {
			return nil, err
		}
		if len(ks) == 0 {
			return all, nil
		}
		all = append(all, ks...)
		last := ks[len(ks)-1].OpenTime
		if last.After(s.klineNext) {
			s.klineNext = last
		}
		if len(ks) < limit || !last.After(start) {
			return all, nil
		}
		start = last.Add(b.step)
	}
}

// pollOI fetches openInterestHist in windows of OILimit periods from oiNext
// to now and returns the observations for pollSymbol to store. Windows,
// rather than startTime alone, because Binance answers a bare startTime with
// the newest rows; and an empty window (an outage on Binance's side) is
// stepped over instead of being asked for forever.
func (b *Binance) pollOI(ctx context.Context, sym string, s *symbolState, now time.Time) ([]store.OpenInterest, error) {
	var all []store.OpenInterest
	// Checked on every poll, not only at start: after a long pause (an
	// outage, a suspended VM) the cursor falls out of what Binance serves,
	// and its 400 for a too-old start would repeat forever.
	if horizon := now.Add(-oiHistory); s.oiNext.Before(horizon) {
		b.log.Warn("open interest older than Binance keeps is skipped", logging.KeySymbol, sym,
			"from", s.oiNext, "to", horizon, "skipped", horizon.Sub(s.oiNext).String())
		s.oiNext = horizon
	}
	for start := s.oiNext; !start.After(now); {
		end := start.Add(time.Duration(b.cfg.OILimit)*b.period - time.Millisecond)
		if end.After(now) {
			end = now
		}
		ois, err := b.fetchOI(ctx, sym, start, end)
		if err != nil {
			return nil, err
		}
		all = append(all, ois...)
		for _, o := range ois {
			if o.TS.After(s.oiLast) {
				s.oiLast = o.TS
			}
		}
		if end.Equal(now) {
			// The newest observation may not be published yet: ask again
			// from just after the last one seen.
			s.oiNext = later(start, s.oiLast.Add(time.Millisecond))
			return all, nil
		}
		start = end.Add(time.Millisecond)
		s.oiNext = start
	}
	return all, nil
}

// storeError marks a failure of the store rather than of Binance.
type storeError struct{ err error }

func (e *storeError) Error() string { return "store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// httpError is a non-2xx answer.
type httpError struct {
	status     int
	retryAfter time.Duration
	body       string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// decodeError is an answer that does not parse as the documented shape.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "decode: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// classify names the kind of a poll error and the wait the server asked for.
func classify(err error) (kind string, retryAfter time.Duration) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		switch {
		case he.status == http.StatusTooManyRequests:
			return ErrRateLimited, he.retryAfter
		case he.status == http.StatusTeapot:
			return ErrBanned, he.retryAfter
		case he.status == http.StatusForbidden:
			return ErrForbidden, he.retryAfter
		case he.status >= 500:
			return ErrServer, he.retryAfter
		}
		return ErrClient, 0
	case errors.As(err, new(*storeError)):
		return ErrStore, 0
	case errors.As(err, new(*decodeError)):
		return ErrDecode, 0
	}
	return ErrNetwork, 0
}

// pace waits for n tokens of bg, counting the wait.
func (b *Binance) pace(ctx context.Context, bg *budget, n int) error {
	waited, err := bg.take(ctx, n)
	if waited > 0 {
		b.mu.Lock()
		b.stats.Paced += waited
		b.mu.Unlock()
	}
	return err
}

// get fetches one API path and decodes its JSON into v.
func (b *Binance) get(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	u := b.cfg.BaseURL + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "liqstream-snapshotter")
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer func() {
		// Draining lets the connection be reused for the next request.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %w", u, &httpError{
			status:     resp.StatusCode,
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), b.clk.Now()),
			body:       strings.TrimSpace(string(msg)),
		})
	}
	// Caps a misbehaving server, not Binance: 1500 candles are ~250 KB.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, &decodeError{err})
	}
	return nil
}

// parseRetryAfter reads Retry-After as seconds (what Binance sends) or an HTTP
// date; 0 when absent or unreadable.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// fetchKlines gets up to limit candles opening at start or later.
func (b *Binance) fetchKlines(ctx context.Context, sym string, start time.Time, limit int) ([]store.Kline, error) {
	q := url.Values{
		"symbol":    {sym},
		"interval":  {b.cfg.Interval},
		"startTime": {strconv.FormatInt(start.UnixMilli(), 10)},
		"limit":     {strconv.Itoa(limit)},
	}
	if err := b.pace(ctx, b.weights, klineWeight(limit)); err != nil {
		return nil, err
	}
	var rows [][]json.RawMessage
	if err := b.get(ctx, "/fapi/v1/klines", q, &rows); err != nil {
		return nil, fmt.Errorf("klines %s: %w", sym, err)
	}
	m, err := newKlineMaker(sym, b.cfg.Interval)
	if err != nil {
		return nil, err
	}
	ks := make([]store.Kline, 0, len(rows))
	for i, r := range rows {
		k, err := decodeKline(m, r)
		if err != nil {
			return nil, fmt.Errorf("klines %s: row %d: %w", sym, i, &decodeError{err})
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// decodeKline reads [openTime, "open", "high", "low", "close", "volume",
// closeTime, ...] and checks it like an archive row.
func decodeKline(m klineMaker, r []json.RawMessage) (store.Kline, error) {
	if len(r) < 6 {
		return store.Kline{}, fmt.Errorf("%d fields, want at least 6", len(r))
	}
	var f klineFields
	f.openTime = string(r[0])
	for i, dst := range []*string{&f.open, &f.high, &f.low, &f.close, &f.volume} {
		if err := json.Unmarshal(r[i+1], dst); err != nil {
			return store.Kline{}, fmt.Errorf("field %d: want a string, got %s", i+1, r[i+1])
		}
	}
	return m.make(f)
}

// oiRow is one openInterestHist object.
type oiRow struct {
	Symbol               string      `json:"symbol"`
	SumOpenInterest      string      `json:"sumOpenInterest"`
	SumOpenInterestValue string      `json:"sumOpenInterestValue"`
	Timestamp            json.Number `json:"timestamp"`
}

// fetchOI gets the observations in [start, end].
func (b *Binance) fetchOI(ctx context.Context, sym string, start, end time.Time) ([]store.OpenInterest, error) {
	q := url.Values{
		"symbol":    {sym},
		"period":    {b.cfg.OIPeriod},
		"limit":     {strconv.Itoa(b.cfg.OILimit)},
		"startTime": {strconv.FormatInt(start.UnixMilli(), 10)},
		"endTime":   {strconv.FormatInt(end.UnixMilli(), 10)},
	}
	if err := b.pace(ctx, b.oiReqs, 1); err != nil {
		return nil, err
	}
	var rows []oiRow
	if err := b.get(ctx, "/futures/data/openInterestHist", q, &rows); err != nil {
		return nil, fmt.Errorf("open interest %s: %w", sym, err)
	}
	out := make([]store.OpenInterest, 0, len(rows))
	for i, r := range rows {
		o, err := decodeOI(sym, r)
		if err != nil {
			return nil, fmt.Errorf("open interest %s: row %d: %w", sym, i, &decodeError{err})
		}
		out = append(out, o)
	}
	return out, nil
}

func decodeOI(sym string, r oiRow) (store.OpenInterest, error) {
	us, err := epochMicros("timestamp", r.Timestamp.String())
	if err != nil {
		return store.OpenInterest{}, err
	}
	oi, err := parseNumber("sumOpenInterest", r.SumOpenInterest)
	if err != nil {
		return store.OpenInterest{}, err
	}
	val, err := parseNumber("sumOpenInterestValue", r.SumOpenInterestValue)
	if err != nil {
		return store.OpenInterest{}, err
	}
	if oi < 0 || val < 0 {
		return store.OpenInterest{}, fmt.Errorf("negative open interest %s / %s", r.SumOpenInterest, r.SumOpenInterestValue)
	}
	return store.OpenInterest{Symbol: sym, TS: time.UnixMicro(us).UTC(), OpenInterest: oi, OpenInterestValue: val}, nil
}
