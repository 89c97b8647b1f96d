package wsload

import (
	"net"
	"testing"
)

func TestPeek(t *testing.T) {
	frame := []byte(`{"type":"snapshot","symbol":"ETHUSDT","seq":1234,"timestamp":"2026-11-30T10:00:00.000000000Z","data":{"seq":9}}`)
	if got := peekString(frame, keySymbol); got != "ETHUSDT" {
		t.Errorf("symbol = %q, want ETHUSDT", got)
	}
	if got, ok := peekUint(frame, keySeq); !ok || got != 1234 {
		t.Errorf("seq = %d, %v; want 1234 (the envelope's, not the payload's)", got, ok)
	}
	for _, b := range []string{`{"seq":x}`, `{"type":"snapshot"}`, `{"seq":`} {
		if v, ok := peekUint([]byte(b), keySeq); ok {
			t.Errorf("peekUint(%s) = %d, true; want no number", b, v)
		}
	}
	if got := peekString([]byte(`{"code":"unterminated`), keyCode); got != "" {
		t.Errorf("unterminated string peeked as %q", got)
	}
}

func TestPercentilesNearestRank(t *testing.T) {
	var us []int64
	for i := 1; i <= 1000; i++ {
		us = append(us, int64(i)*1000) // 1..1000 ms, shuffled below
	}
	for i := range us {
		j := (i * 7919) % len(us)
		us[i], us[j] = us[j], us[i]
	}
	p := percentiles(us)
	if p.Count != 1000 || p.P50 != 500 || p.P90 != 900 || p.P99 != 990 || p.P999 != 999 || p.Max != 1000 {
		t.Errorf("percentiles = %+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("no samples should give zeros")
	}
}

func TestSlowReaderReadsATenthOfItsRatePerRead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go b.Write(make([]byte, 4096))
	c := &countingConn{Conn: a, rate: 2000}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || n != 200 {
		t.Fatalf("Read = %d, %v; want 200 bytes (2000 B/s ÷ 10)", n, err)
	}
	if c.read.Load() != 200 {
		t.Errorf("counted %d bytes, want 200", c.read.Load())
	}
	fast := &countingConn{Conn: a}
	n, _ = fast.Read(buf)
	if n != 4096-200 || fast.read.Load() != int64(n) {
		t.Errorf("unthrottled Read = %d (counted %d), want the rest, 3896", n, fast.read.Load())
	}
}
