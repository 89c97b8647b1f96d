// Package bus carries encoded snapshot frames from the snapshotter to gateways.
// HTTPSource long-polls the snapshotter directly: the embedded default with no
// Redis, and the gateway's fallback while Redis is down.
package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Frame is one encoded snapshot frame; the bus never looks inside Bytes.
type Frame struct {
	Symbol string
	Bytes  []byte
	// Delta is the delta frame from the previous frame to this one, or nil:
	// the producer did not make one, or it was lost on the way (a client
	// then gets Bytes, which is always whole).
	Delta []byte
}

// maxFrameBytes bounds what one poll may read, so a broken upstream cannot exhaust memory.
const maxFrameBytes = 16 << 20

// HTTPSource long-polls GET {base}/v1/snapshots/{symbol}.
type HTTPSource struct {
	base   string
	client *http.Client
	wait   time.Duration
	log    *slog.Logger

	// backoff bounds the retry delay after a failed poll.
	minBackoff, maxBackoff time.Duration

	mu   sync.Mutex
	down map[string]bool // symbols whose last poll failed, to log state changes once
}

// NewHTTPSource returns a source for the snapshotter at baseURL (http://host:port).
func NewHTTPSource(baseURL string, log *slog.Logger) (*HTTPSource, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("snapshotter url %q: want http://host:port", baseURL)
	}
	const wait = 25 * time.Second
	return &HTTPSource{
		base:       strings.TrimRight(baseURL, "/"),
		client:     &http.Client{Timeout: wait + 10*time.Second},
		wait:       wait,
		log:        log,
		minBackoff: 200 * time.Millisecond,
		maxBackoff: 5 * time.Second,
		down:       map[string]bool{},
	}, nil
}

// Symbols asks the snapshotter which symbols it serves.
func (s *HTTPSource) Symbols(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/symbols", nil)
	if err != nil {
		return nil, fmt.Errorf("list symbols: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list symbols from %s: %w", s.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list symbols from %s: status %s", s.base, resp.Status)
	}
	var body struct {
		Symbols []string `json:"symbols"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("list symbols from %s: decode: %w", s.base, err)
	}
	if len(body.Symbols) == 0 {
		return nil, fmt.Errorf("list symbols from %s: the snapshotter serves no symbols", s.base)
	}
	return body.Symbols, nil
}

// Run long-polls every symbol and calls deliver with each new frame, in order
// per symbol, until ctx ends. Failures are retried with backoff, never fatal.
func (s *HTTPSource) Run(ctx context.Context, symbols []string, deliver func(Frame)) error {
	var wg sync.WaitGroup
	for _, sym := range symbols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.poll(ctx, sym, deliver)
		}()
	}
	wg.Wait()
	return nil
}

func (s *HTTPSource) poll(ctx context.Context, sym string, deliver func(Frame)) {
	etag := ""
	delay := s.minBackoff
	for ctx.Err() == nil {
		f, delta, tag, err := s.fetch(ctx, sym, etag)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.setDown(sym, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, s.maxBackoff)
			continue
		}
		s.setUp(sym)
		delay = s.minBackoff
		etag = tag
		if f != nil {
			deliver(Frame{Symbol: sym, Bytes: f, Delta: delta})
		}
	}
}

// fetch returns the next frame, or nil when the poll timed out unchanged.
func (s *HTTPSource) fetch(ctx context.Context, sym, etag string) (full, delta []byte, tag string, err error) {
	u := fmt.Sprintf("%s/v1/snapshots/%s?wait=%s&delta=1", s.base, url.PathEscape(sym), s.wait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, etag, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, etag, fmt.Errorf("poll %s: %w", sym, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxFrameBytes+1))
		if err != nil {
			return nil, nil, etag, fmt.Errorf("poll %s: read body: %w", sym, err)
		}
		if len(b) > maxFrameBytes {
			return nil, nil, etag, fmt.Errorf("poll %s: frame larger than %d bytes", sym, maxFrameBytes)
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), NDJSON) {
			// The delta line, then the frame: see SplitPair.
			d, f, ok := SplitPair(b)
			if !ok {
				return nil, nil, etag, fmt.Errorf("poll %s: malformed delta and frame pair (%d bytes)", sym, len(b))
			}
			return f, d, resp.Header.Get("ETag"), nil
		}
		return b, nil, resp.Header.Get("ETag"), nil
	case http.StatusNotModified:
		return nil, nil, etag, nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, nil, etag, fmt.Errorf("poll %s: status %s: %s", sym, resp.Status, strings.TrimSpace(string(msg)))
	}
}

func (s *HTTPSource) setDown(sym string, err error) {
	s.mu.Lock()
	was := s.down[sym]
	s.down[sym] = true
	s.mu.Unlock()
	if !was {
		s.log.Warn("snapshotter poll failing", "symbol", sym, "err", err)
	}
}

func (s *HTTPSource) setUp(sym string) {
	s.mu.Lock()
	was := s.down[sym]
	s.down[sym] = false
	s.mu.Unlock()
	if was {
		s.log.Info("snapshotter poll recovered", "symbol", sym)
	}
}

// NDJSON is the content type of a long-poll answer that carries a delta
// frame with its full frame (?delta=1).
const NDJSON = "application/x-ndjson"

// JoinPair is the body of such an answer: the delta frame and the full
// frame, one per line. Compact JSON holds no raw newline, so the first one
// splits them.
func JoinPair(delta, full []byte) []byte {
	b := make([]byte, 0, len(delta)+len(full)+2)
	b = append(append(b, delta...), '\n')
	return append(append(b, full...), '\n')
}

// SplitPair undoes JoinPair.
func SplitPair(b []byte) (delta, full []byte, ok bool) {
	delta, rest, ok := bytes.Cut(b, []byte{'\n'})
	full = bytes.TrimSuffix(rest, []byte{'\n'})
	if !ok || len(delta) == 0 || len(full) == 0 || bytes.IndexByte(full, '\n') >= 0 {
		return nil, nil, false
	}
	return delta, full, true
}
