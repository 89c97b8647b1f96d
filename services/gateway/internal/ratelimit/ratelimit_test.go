package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestAllowPerKey(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	l := New(2, 3, c.now)
	steps := []struct {
		key       string
		advance   time.Duration
		ok        bool
		wantDelay time.Duration
	}{
		{"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0}, // the burst
		{"a", 0, false, 500 * time.Millisecond}, // empty: one token per 500 ms
		{"b", 0, true, 0},                       // another address has its own bucket
		{"a", 0, false, 500 * time.Millisecond}, // a refusal did not use up the next token
		{"a", 500 * time.Millisecond, true, 0},
		{"a", 0, false, 500 * time.Millisecond},
		{"a", 2 * time.Second, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0}, // refilled to the burst, no more
		{"a", 0, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		c.advance(s.advance)
		ok, d := l.Allow(s.key)
		if ok != s.ok || d != s.wantDelay {
			t.Fatalf("step %d (%s): allowed %v, delay %s; want %v, %s", i, s.key, ok, d, s.ok, s.wantDelay)
		}
	}
}

func TestSweepDropsRefilledBuckets(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	l := New(1, 5, c.now)
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k)
	}
	c.advance(sweepEvery)
	l.Allow("d") // the sweep runs before d is added
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want only d's", n)
	}
	c.advance(3 * time.Second)
	l.Allow("d")
	c.advance(sweepEvery - 3*time.Second)
	l.Allow("e")
	// d was last seen 57 s ago, longer than its bucket takes to refill (5 s).
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets, want e's", n)
	}
}

func TestHandlerAnswers429WithRetryAfter(t *testing.T) {
	c := &clock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	l := New(0.5, 1, c.now)
	h := l.Handler(func(r *http.Request) string { return r.Header.Get("X-Test-Client") }, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(client string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/data/gaps", nil)
		r.Header.Set("X-Test-Client", client)
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := do("10.0.0.1"); rec.Code != http.StatusNoContent {
		t.Fatalf("first request: %d", rec.Code)
	}
	rec := do("10.0.0.1")
	var body struct{ Error string }
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" ||
		!strings.Contains(body.Error, "too many requests from 10.0.0.1: the API allows 0.5 per second per client address (bursts of 1); retry after 2 s") {
		t.Fatalf("second request: %d Retry-After %q %q", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if rec := do("10.0.0.2"); rec.Code != http.StatusNoContent {
		t.Fatalf("another client: %d", rec.Code)
	}
	if n := l.Refused.Load(); n != 1 {
		t.Fatalf("refused %d, want 1", n)
	}
	c.advance(2 * time.Second)
	if rec := do("10.0.0.1"); rec.Code != http.StatusNoContent {
		t.Fatalf("after Retry-After: %d", rec.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{DefaultConfig(), ""},
		{Config{RatePerAddress: 0, Burst: 1}, ""},
		{Config{RatePerAddress: -1, Burst: 1}, "api.rate_per_address"},
		{Config{RatePerAddress: 0.001, Burst: 1}, "api.rate_per_address"},
		{Config{RatePerAddress: 1, Burst: 0}, "api.burst"},
	} {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want+":")) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
