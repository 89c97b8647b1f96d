package history

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// weighted is a cache-missing query: each n has its own leverage_weights.
func weighted(n int) string {
	return fmt.Sprintf("symbol=BTCUSDT&time_window=48h&interval=1h&leverage_weights=5:15,10:30,25:25,50:20,100:%d", 10+n)
}

// waitFor polls cond (admission state has no event to await from outside);
// the deadline only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type httpResult struct {
	code       int
	retryAfter string
	body       []byte
}

func goFetch(srv *httptest.Server, q string) <-chan httpResult {
	ch := make(chan httpResult, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/?" + q)
		if err != nil {
			ch <- httpResult{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- httpResult{resp.StatusCode, resp.Header.Get("Retry-After"), b}
	}()
	return ch
}

func TestBusyHistoryIs503WithRetryAfter(t *testing.T) {
	gs := newGatedStore(seeded(t))
	d := defaults()
	d.Workers, d.Queue = 1, 2
	h := New(gs, d, func() time.Time { return now }, discard())
	joined := make(chan struct{}, 16)
	h.joined = func() { joined <- struct{}{} }
	srv := httptest.NewServer(h)
	defer srv.Close()

	// One runs (held in the store), two wait for the worker.
	running := goFetch(srv, weighted(0))
	recv(t, gs.entered, "the first computation to start")
	queued := []<-chan httpResult{goFetch(srv, weighted(1)), goFetch(srv, weighted(2))}
	waitFor(t, "two computations queued", func() bool { return h.Stats().Queued == 2 })

	// A fourth distinct computation has no place: refused at once.
	r := recv(t, goFetch(srv, weighted(3)), "the refused request")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "history is busy: 1 computations running and 2 queued") {
		t.Fatalf("past the queue: %d %s, want 503 naming the limits", r.code, r.body)
	}
	if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q, want whole seconds in [1, 60]", r.retryAfter)
	}
	// Asking for what already runs or waits costs no place: it joins.
	for range 4 {
		<-joined
	}
	same := goFetch(srv, weighted(1))
	recv(t, joined, "the duplicate to join the queued computation")
	if st := h.Stats(); st.Refused != 1 || st.Running != 1 || st.Queued != 2 {
		t.Fatalf("stats %+v, want 1 running, 2 queued, 1 refused", st)
	}

	close(gs.release)
	for i, ch := range append([]<-chan httpResult{running, same}, queued...) {
		if r := recv(t, ch, "an admitted request"); r.code != http.StatusOK {
			t.Fatalf("admitted request %d: %d %s", i, r.code, r.body)
		}
	}
	if n := gs.calls.Load(); n != 3 {
		t.Fatalf("%d computations, want 3 (the duplicate shared one)", n)
	}
	// Drained: the refused request now succeeds.
	if r := recv(t, goFetch(srv, weighted(3)), "the retried request"); r.code != http.StatusOK {
		t.Fatalf("after the queue drained: %d %s", r.code, r.body)
	}
	if st := h.Stats(); st.Running != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v after every request ended", st)
	}
}

func TestGateRetryAfterFollowsRunTime(t *testing.T) {
	clock := now
	g := newGate(2, 1, func() time.Time { return clock })
	var releases []func()
	for range 3 {
		if len(releases) == 2 {
			// The third waits for a worker; let it in by ending one.
			done := make(chan func(), 1)
			go func() {
				r, err := g.enter(context.Background())
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
			waitFor(t, "the third to queue", func() bool { return g.stats().Queued == 1 })
			_, err := g.enter(context.Background())
			var busy *BusyError
			if !errors.As(err, &busy) || busy.Running != 2 || busy.Queued != 1 || busy.RetryAfter != 2*time.Second {
				t.Fatalf("full gate: %v, want busy with 2 running, 1 queued, 2 rounds of the 1 s first guess", err)
			}
			clock = clock.Add(9 * time.Second)
			releases[0]()
			releases = append(releases[1:], recv(t, done, "the queued one to start"))
			continue
		}
		r, err := g.enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	// One run of 9 s moved the mean from 1 s by a quarter of the difference.
	g.mu.Lock()
	mean := g.mean
	g.mu.Unlock()
	if mean != 3*time.Second {
		t.Fatalf("mean run time %s, want 3s", mean)
	}
	// A caller whose context ends while queued gives its place back.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.enter(ctx); errc <- err }()
	waitFor(t, "a waiter", func() bool { return g.stats().Queued == 1 })
	cancel()
	if err := recv(t, errc, "the waiter to leave"); !errors.Is(err, context.Canceled) {
		t.Fatalf("left waiter got %v", err)
	}
	if st := g.stats(); st.Queued != 0 || st.Running != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, r := range releases {
		r()
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"identity", false},
		{"*", true},
		{"x-gzip", false},
		{"gzip;q=junk", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Accept-Encoding", tc.header)
		}
		if got := AcceptsGzip(r); got != tc.want {
			t.Errorf("Accept-Encoding %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestTimeseriesGzipAndPlainAgree(t *testing.T) {
	srv := httptest.NewServer(New(seeded(t), defaults(), func() time.Time { return now }, discard()))
	defer srv.Close()
	// Without transparent decompression, to see what is on the wire.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/?symbol=BTCUSDT&time_window=48h&interval=5m", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v %.200s", enc, resp.StatusCode, err, b)
		}
		return resp, b
	}
	zresp, zbody := get("gzip")
	if zresp.Header.Get("Content-Encoding") != "gzip" || zresp.Header.Get("Vary") != "Accept-Encoding" || zresp.Header.Get("Content-Length") != strconv.Itoa(len(zbody)) {
		t.Fatalf("gzip response headers %v", zresp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	inflated, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	presp, plain := get("")
	if presp.Header.Get("Content-Encoding") != "" || presp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("plain response headers %v", presp.Header)
	}
	if !bytes.Equal(plain, inflated) {
		t.Fatalf("plain body (%d bytes) differs from the inflated gzip one (%d)", len(plain), len(inflated))
	}
	if 4*len(zbody) > len(plain) {
		t.Fatalf("gzip body %d bytes for %d plain: want at least 4x smaller", len(zbody), len(plain))
	}
	var resp Response
	if err := json.Unmarshal(plain, &resp); err != nil || resp.Meta.TotalSnapshots != 576 || len(resp.Data) != 576 {
		t.Fatalf("decoded %d entries, meta %+v, err %v", len(resp.Data), resp.Meta, err)
	}
	if _, again := get("gzip;q=0"); !bytes.Equal(again, plain) {
		t.Fatalf("gzip;q=0 was not answered plain")
	}
}
