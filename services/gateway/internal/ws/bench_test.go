package ws

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/gateway/internal/hub"
	"github.com/liqstream/liqstream/services/gateway/internal/metrics"
)

// BenchmarkBroadcast20KBTo10kConns publishes one 20 KB frame to 10,000
// subscribed connections (in-process, over net.Pipe, so the numbers measure
// the gateway rather than the kernel) and reports the time for Publish to
// return (the enqueue) and the time until the last client has read the last
// byte.
func BenchmarkBroadcast20KBTo10kConns(b *testing.B) {
	const conns, size = 10000, 20 << 10
	h := hub.New([]string{"BTCUSDT"})
	cfg := DefaultConfig()
	cfg.Compression = false // measure fan-out, not deflate
	cfg.MaxConns, cfg.MaxConnsPerIP = conns+1, conns+1
	s, err := New(cfg, h, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	var got sync.WaitGroup
	var clients []net.Conn
	for i := 0; i < conns; i++ {
		srvEnd, cliEnd := net.Pipe()
		clients = append(clients, cliEnd)
		req, _ := http.NewRequest(http.MethodGet, "http://bench/ws/heatmap", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		br := bufio.NewReader(srvEnd)
		ready := make(chan *bufio.Reader)
		go func() {
			r := bufio.NewReaderSize(cliEnd, 64<<10)
			if _, err := http.ReadResponse(r, nil); err != nil {
				b.Error(err)
			}
			ready <- r
		}()
		conn, err := s.upgrader.UpgradeFromConn(srvEnd, br, req)
		if err != nil {
			b.Fatal(err)
		}
		r := <-ready
		ss := newSession(s, conn, "bench")
		ss.interval = 0
		conn.Session().Store(sessionKey, ss)
		ss.track([]string{"BTCUSDT"}, false)
		if _, err := h.Subscribe(ss, []string{"BTCUSDT"}, 10); err != nil {
			b.Fatal(err)
		}
		go conn.ReadLoop()
		go func() {
			hdr := make([]byte, 4)
			payload := make([]byte, size)
			for {
				if _, err := io.ReadFull(r, hdr); err != nil {
					return
				}
				n := int(binary.BigEndian.Uint16(hdr[2:]))
				if _, err := io.ReadFull(r, payload[:n]); err != nil {
					return
				}
				got.Done()
			}
		}()
	}
	frame := []byte(`{"type":"snapshot","symbol":"BTCUSDT","pad":"` + strings.Repeat("x", size-48) + `"}`)
	var enqueue, delivered time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Add(conns)
		start := time.Now()
		h.Publish("BTCUSDT", frame)
		enqueue += time.Since(start)
		got.Wait()
		delivered += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(enqueue.Microseconds())/float64(b.N)/1000, "ms-enqueue/op")
	b.ReportMetric(float64(delivered.Microseconds())/float64(b.N)/1000, "ms-last-byte/op")
	b.ReportMetric(float64(len(frame)), "frame-bytes")
	for _, c := range clients {
		c.Close()
	}
}

// BenchmarkPublishEnqueue10k isolates the hub's fan-out and the sessions'
// enqueue: 10,000 subscribed sessions whose previous write is still in
// flight, so Publish only queues and conflates, never touching a socket.
func BenchmarkPublishEnqueue10k(b *testing.B) {
	const conns = 10000
	h := hub.New([]string{"BTCUSDT"})
	cfg := DefaultConfig()
	cfg.WarnInterval = time.Hour
	s, err := New(cfg, h, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < conns; i++ {
		ss := newSession(s, nil, "bench")
		ss.interval = 0
		ss.busy = true // a write that never finishes: Send only queues
		ss.lastWarn = time.Now()
		ss.track([]string{"BTCUSDT"}, false)
		if _, err := h.Subscribe(ss, []string{"BTCUSDT"}, 10); err != nil {
			b.Fatal(err)
		}
	}
	frame := []byte(strings.Repeat("x", 20<<10))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Publish("BTCUSDT", frame)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/conns, "ns/conn")
}
