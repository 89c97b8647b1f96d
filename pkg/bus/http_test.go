package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream speaks the snapshotter's long-poll contract: 200 with a new ETag
// when the frame differs from If-None-Match, else 304 after ?wait.
type upstream struct {
	mu      sync.Mutex
	seq     int
	changed chan struct{}
	fail    int // answer this many polls with 500 first
	polls   int
	body    func(seq int) []byte // default {"seq":N}
}

func newUpstream() *upstream { return &upstream{changed: make(chan struct{})} }

func (u *upstream) publish() {
	u.mu.Lock()
	u.seq++
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/symbols" {
		fmt.Fprint(w, `{"symbols":["BTCUSDT"]}`)
		return
	}
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		u.mu.Lock()
		u.polls++
		if u.fail > 0 {
			u.fail--
			u.mu.Unlock()
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		seq, ch := u.seq, u.changed
		u.mu.Unlock()
		tag := fmt.Sprintf(`"e-%d"`, seq)
		if seq > 0 && tag != r.Header.Get("If-None-Match") {
			w.Header().Set("ETag", tag)
			if u.body != nil {
				w.Write(u.body(seq))
				return
			}
			fmt.Fprintf(w, `{"seq":%d}`, seq)
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func newSource(t *testing.T, url string) *HTTPSource {
	t.Helper()
	s, err := NewHTTPSource(url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.minBackoff, s.maxBackoff = time.Millisecond, 10*time.Millisecond
	return s
}

func TestRunDeliversEachNewFrameOnce(t *testing.T) {
	up := newUpstream()
	up.fail = 3 // the source must retry through errors
	srv := httptest.NewServer(up)
	defer srv.Close()
	src := newSource(t, srv.URL)
	src.wait = 100 * time.Millisecond // exercises 304 round trips too

	got := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, []string{"BTCUSDT"}, func(f Frame) { got <- f.Symbol + string(f.Bytes) }) }()

	for i := 1; i <= 3; i++ {
		up.publish()
		select {
		case g := <-got:
			if want := fmt.Sprintf(`BTCUSDT{"seq":%d}`, i); g != want {
				t.Fatalf("frame %d: got %s, want %s", i, g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d not delivered", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	select {
	case g := <-got:
		t.Fatalf("duplicate or extra frame delivered: %s", g)
	default:
	}
}

func TestSymbols(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		wantErr string
	}{
		{"ok", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"symbols":["BTCUSDT","ETHUSDT"]}`) }, "BTCUSDT,ETHUSDT", ""},
		{"status", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "x", 502) }, "", "502"},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `<html>`) }, "", "decode"},
		{"empty", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"symbols":[]}`) }, "", "serves no symbols"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			got, err := newSource(t, srv.URL).Symbols(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v %v, want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.want {
				t.Fatalf("got %v %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestNewHTTPSourceRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8081", "ftp://x", "http://"} {
		if _, err := NewHTTPSource(u, slog.Default()); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
