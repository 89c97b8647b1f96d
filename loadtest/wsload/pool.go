package wsload

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Pool is a load's clients, connected and reading.
type Pool struct {
	cfg Config
	// recording is on during a window: latencies are kept only then.
	recording atomic.Bool
	fast      *class
	slow      *class
	clients   []*client
	connect   Connect
	started   time.Time

	window struct {
		start        time.Time
		fast, slow   counters
		fastB, slowB int64 // wire bytes
		fastP, slowP int64 // payload bytes
	}
}

// Connect is how the clients got in.
type Connect struct {
	Attempted  int            `json:"attempted"`
	Connected  int            `json:"connected"`
	Failed     int            `json:"failed"`
	FirstError string         `json:"first_error,omitempty"`
	Seconds    float64        `json:"seconds"`
	TimeMs     Percentiles    `json:"handshake_ms"`
	ByGateway  map[string]int `json:"by_gateway"`
}

// Dial opens cfg.N clients at cfg.Ramp per second and subscribes each. It
// returns when every attempt has finished (or ctx ended); failures are
// counted, not fatal. Close the pool when done.
func Dial(ctx context.Context, cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	p := &Pool{cfg: cfg, fast: newClass(), slow: newClass(), started: time.Now()}
	p.connect.ByGateway = map[string]int{}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		times []int64
		// Bound the handshakes in flight: a stalled target must not pile up
		// thousands of goroutines and sockets in the generator.
		sem = make(chan struct{}, 256)
	)
	step := time.Second / time.Duration(cfg.Ramp)
	for i := 0; i < cfg.N; i++ {
		if d := time.Until(p.started.Add(time.Duration(i) * step)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		p.connect.Attempted++
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			c, gw, err := p.dialOne(i)
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.connect.Failed++
				if p.connect.FirstError == "" {
					p.connect.FirstError = err.Error()
				}
				return
			}
			times = append(times, took.Microseconds())
			p.connect.ByGateway[gw]++
			p.clients = append(p.clients, c)
		}(i)
	}
	wg.Wait()
	p.connect.Connected = len(p.clients)
	p.connect.Seconds = time.Since(p.started).Seconds()
	p.connect.TimeMs = percentiles(times)
	slices.SortFunc(p.clients, func(a, b *client) int { return a.idx - b.idx })
	return p, ctx.Err()
}

// dialOne connects client i, subscribes it and starts its read loop. gw
// names where it landed: the X-Liqstream-Gateway upgrade header, or the URL.
func (p *Pool) dialOne(i int) (*client, string, error) {
	cfg := &p.cfg
	target := cfg.Targets[i%len(cfg.Targets)]
	u, _ := url.Parse(target)
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
	}
	slow := cfg.slow(i)
	cl := &client{idx: i, recording: &p.recording, class: p.fast, last: map[string]frameID{}, closed: make(chan struct{})}
	if slow {
		cl.class = p.slow
	}
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: SourceIP(i, cfg.Sources)}, Timeout: cfg.HandshakeTimeout}
	raw, err := nd.Dial("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("dial %s from %s: %w", addr, SourceIP(i, cfg.Sources), err)
	}
	cl.wire = &countingConn{Conn: raw}
	if slow {
		cl.wire.rate = cfg.SlowRate
		// A small fixed receive window, as on a slow mobile link: without
		// it loopback autotuning buffers megabytes and the server sees the
		// slowness only minutes later.
		if tc, ok := raw.(*net.TCPConn); ok {
			tc.SetReadBuffer(16 << 10)
		}
	}
	hdr := http.Header{}
	if cfg.Origin != "" {
		hdr.Set("Origin", cfg.Origin)
	}
	conn, resp, err := gws.NewClientFromConn(cl, &gws.ClientOption{
		Addr:              target,
		HandshakeTimeout:  cfg.HandshakeTimeout,
		RequestHeader:     hdr,
		PermessageDeflate: gws.PermessageDeflate{Enabled: cfg.Deflate},
	}, cl.wire)
	if err != nil {
		if resp != nil {
			return nil, "", fmt.Errorf("upgrade %s: HTTP %s", target, resp.Status)
		}
		return nil, "", fmt.Errorf("upgrade %s: %w", target, err)
	}
	cl.conn = conn
	go conn.ReadLoop()
	msg := map[string]any{"action": "subscribe", "symbols": cfg.Mix[i%len(cfg.Mix)], "update_interval": cfg.UpdateInterval}
	if cfg.Encoding != "" {
		msg["encoding"] = cfg.Encoding
	}
	sub, _ := json.Marshal(msg)
	if err := conn.WriteMessage(gws.OpcodeText, sub); err != nil {
		cl.closing.Store(true)
		conn.NetConn().Close()
		return nil, "", fmt.Errorf("subscribe on %s: %w", target, err)
	}
	gw := resp.Header.Get("X-Liqstream-Gateway")
	if gw == "" {
		gw = u.Host
	}
	return cl, gw, nil
}

// ConnectResult is how the clients got in.
func (p *Pool) ConnectResult() Connect { return p.connect }

// Begin starts a measurement window: latencies are kept from now on and
// counters are taken relative to this moment.
func (p *Pool) Begin() {
	p.window.start = time.Now()
	p.window.fast, p.window.slow = p.fast.snapshot(), p.slow.snapshot()
	p.window.fastB, p.window.slowB = p.wireBytes(false), p.wireBytes(true)
	p.window.fastP, p.window.slowP = p.payloadBytes(false), p.payloadBytes(true)
	p.fast.latency.reset()
	p.slow.latency.reset()
	p.recording.Store(true)
}

func (p *Pool) wireBytes(slow bool) int64 {
	var n int64
	for _, c := range p.clients {
		if (c.class == p.slow) == slow {
			n += c.wire.read.Load()
		}
	}
	return n
}

func (p *Pool) payloadBytes(slow bool) int64 {
	var n int64
	for _, c := range p.clients {
		if (c.class == p.slow) == slow {
			n += c.payload.Load()
		}
	}
	return n
}

// End closes the window and returns what it saw.
func (p *Pool) End() Window {
	p.recording.Store(false)
	el := time.Since(p.window.start)
	w := Window{Seconds: el.Seconds()}
	nFast, nSlow := 0, 0
	var subsFast int64
	for _, c := range p.clients {
		if c.class == p.slow {
			nSlow++
			continue
		}
		nFast++
		subsFast += int64(len(p.cfg.Mix[c.idx%len(p.cfg.Mix)]))
	}
	w.Fast = p.fast.since(p.window.fast, nFast)
	w.Slow = p.slow.since(p.window.slow, nSlow)
	w.Fast.Open, w.Slow.Open = p.open(false), p.open(true)
	w.Fast.Latency, w.Slow.Latency = p.fast.latency.percentiles(), p.slow.latency.percentiles()
	if nFast > 0 {
		w.Fast.BytesPerClientPerS = float64(p.wireBytes(false)-p.window.fastB) / float64(nFast) / el.Seconds()
		w.Fast.PayloadBytesPerClientPerS = float64(p.payloadBytes(false)-p.window.fastP) / float64(nFast) / el.Seconds()
	}
	if nSlow > 0 {
		w.Slow.BytesPerClientPerS = float64(p.wireBytes(true)-p.window.slowB) / float64(nSlow) / el.Seconds()
		w.Slow.PayloadBytesPerClientPerS = float64(p.payloadBytes(true)-p.window.slowP) / float64(nSlow) / el.Seconds()
	}
	every := max(p.cfg.Interval, time.Duration(p.cfg.UpdateInterval)*time.Second)
	w.Fast.FramesExpected = subsFast * int64(el/every)
	if !p.cfg.countsGaps() {
		w.Fast.Gaps, w.Slow.Gaps = 0, 0
		w.GapsNotCounted = true
	}
	return w
}

// open counts the clients of one kind whose connection is still up.
func (p *Pool) open(slow bool) int {
	n := 0
	for _, c := range p.clients {
		if (c.class == p.slow) != slow {
			continue
		}
		select {
		case <-c.closed:
		default:
			n++
		}
	}
	return n
}

// Open counts the clients whose connection is still up.
func (p *Pool) Open() int { return p.open(false) + p.open(true) }

// Lifetime is every count since the first dial, fast and slow clients.
func (p *Pool) Lifetime() (fast, slow Class) {
	nSlow := 0
	for _, c := range p.clients {
		if c.class == p.slow {
			nSlow++
		}
	}
	fast, slow = p.fast.since(counters{}, len(p.clients)-nSlow), p.slow.since(counters{}, nSlow)
	fast.Open, slow.Open = p.open(false), p.open(true)
	return fast, slow
}

// Flagged counts the clients of one kind the server called slow
// (a SLOW_CONSUMER warning or a 4008 close) since they connected.
func (p *Pool) Flagged(slow bool) int {
	n := 0
	for _, c := range p.clients {
		if (c.class == p.slow) == slow && c.flagged.Load() {
			n++
		}
	}
	return n
}

// Close closes every client without counting it as a server close, and
// waits (up to a few seconds) until the read loops have ended.
func (p *Pool) Close() {
	// In parallel: closing a socket waits until its reader has returned, and
	// readers with a backlog (a target that fell behind, deflate) may wait
	// long for a core; one by one, 10,000 such closes take minutes.
	for _, c := range p.clients {
		c.closing.Store(true)
		go c.conn.NetConn().Close()
	}
	deadline := time.After(10 * time.Second)
	for _, c := range p.clients {
		select {
		case <-c.closed:
		case <-deadline:
			return
		}
	}
}

// Window is what the clients saw during one measurement window.
type Window struct {
	Seconds float64 `json:"seconds"`
	Fast    Class   `json:"fast"`
	Slow    Class   `json:"slow"`
	// GapsNotCounted is set when update_interval is longer than the
	// producer's interval: skipped seqs are then the rate cap, not losses.
	GapsNotCounted bool `json:"gaps_not_counted,omitempty"`
}

// Class is one kind of client (fast or slow readers) over a window.
type Class struct {
	Clients        int   `json:"clients"`
	Open           int   `json:"open_at_end"`
	Frames         int64 `json:"frames"` // snapshots and deltas
	FramesExpected int64 `json:"frames_expected,omitempty"`
	// Deltas of the frames were delta frames; ChainBreaks of those did not
	// follow the last frame the client read of their symbol (base_seq or
	// epoch differ), so a real client could not have applied them.
	Deltas      int64 `json:"delta_frames"`
	ChainBreaks int64 `json:"delta_chain_breaks"`
	// BytesPerClientPerS is read off the socket: WebSocket framing
	// included, compressed when deflate is on. PayloadBytesPerClientPerS
	// is the messages as the application gets them (inflated).
	BytesPerClientPerS        float64          `json:"bytes_per_client_per_s"`
	PayloadBytesPerClientPerS float64          `json:"payload_bytes_per_client_per_s"`
	Latency                   Percentiles      `json:"latency_ms"`
	Gaps                      int64            `json:"seq_gaps"`
	OutOfOrder                int64            `json:"seq_out_of_order"`
	Other                     int64            `json:"other_frames"`
	Closes                    map[string]int64 `json:"closes_by_code,omitempty"`
	Warnings                  map[string]int64 `json:"warnings_by_code,omitempty"`
	Errors                    map[string]int64 `json:"errors_by_code,omitempty"`
}

// class holds the live counters of one kind of client.
type class struct {
	frames, gaps, outOfOrder, other atomic.Int64
	deltas, chainBreaks             atomic.Int64
	mu                              sync.Mutex
	closes, warnings, errors        map[string]int64
	latency                         samples // kept while the pool records
}

func newClass() *class {
	return &class{closes: map[string]int64{}, warnings: map[string]int64{}, errors: map[string]int64{}}
}

func (c *class) count(m *map[string]int64, code string) {
	if code == "" {
		code = "unknown"
	}
	c.mu.Lock()
	(*m)[code]++
	c.mu.Unlock()
}

type counters struct {
	frames, gaps, outOfOrder, other int64
	deltas, chainBreaks             int64
	closes, warnings, errors        map[string]int64
}

func (c *class) snapshot() counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counters{c.frames.Load(), c.gaps.Load(), c.outOfOrder.Load(), c.other.Load(),
		c.deltas.Load(), c.chainBreaks.Load(),
		maps(c.closes), maps(c.warnings), maps(c.errors)}
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func diff(now, then map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range now {
		if d := v - then[k]; d != 0 {
			out[k] = d
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// since is the window's share of the counters, for n clients.
func (c *class) since(then counters, n int) Class {
	now := c.snapshot()
	return Class{Clients: n, Frames: now.frames - then.frames, Gaps: now.gaps - then.gaps,
		OutOfOrder: now.outOfOrder - then.outOfOrder, Other: now.other - then.other,
		Deltas: now.deltas - then.deltas, ChainBreaks: now.chainBreaks - then.chainBreaks,
		Closes: diff(now.closes, then.closes), Warnings: diff(now.warnings, then.warnings), Errors: diff(now.errors, then.errors)}
}
