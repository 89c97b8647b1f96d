package ingest

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLineReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		size    int
		want    []string
		wantErr string
	}{
		{"lines across chunk boundaries", "a,1\nbb,22\nccc,333\n", 8, []string{"a,1", "bb,22", "ccc,333"}, ""},
		{"no final newline", "a,1\nbb,22", 8, []string{"a,1", "bb,22"}, ""},
		{"CRLF and BOM", "\ufeffa\r\nb\r\n", 8, []string{"a", "b"}, ""},
		{"blank lines are lines", "a\n\nb\n", 1 << 10, []string{"a", "", "b"}, ""},
		{"line longer than the buffer", "a\nbbbbbbbbbbbb\n", 8, []string{"a"}, "a line longer than 8 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per Read, as a zip entry may deliver them.
			lr := newLineReaderSize(iotest.OneByteReader(strings.NewReader(tc.in)), tc.size)
			var got []string
			for {
				l, ok := lr.next()
				if !ok {
					break
				}
				got = append(got, l)
				if lr.line != len(got) {
					t.Fatalf("line number %d after %d lines", lr.line, len(got))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("lines %q, want %q", got, tc.want)
			}
			if (lr.err == nil) != (tc.wantErr == "") || (lr.err != nil && !strings.Contains(lr.err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", lr.err, tc.wantErr)
			}
		})
	}
	lr := newLineReaderSize(iotest.TimeoutReader(strings.NewReader("a\nb\n")), 2)
	for {
		if _, ok := lr.next(); !ok {
			break
		}
	}
	if !errors.Is(lr.err, iotest.ErrTimeout) {
		t.Fatalf("read error %v, want it kept", lr.err)
	}
}

func TestEpochMicros(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"1704067200000", 1704067200000000, ""},         // ms
		{"1704067200000000", 1704067200000000, ""},      // µs
		{" 1704067200000", 1704067200000000, ""},        // padded
		{"1704067200", 0, "neither epoch milliseconds"}, // seconds
		{"17040672000000000000", 0, "is not a number"},  // overflows int64
		{"1.7e12", 0, "is not a number"},
		{"", 0, "is not a number"},
	}
	for _, tc := range tests {
		got, err := epochMicros("open_time", tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got %d, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestPipe(t *testing.T) {
	endless := func(emit func(int) bool) error {
		for i := 0; ; i++ {
			if !emit(i) {
				return nil
			}
		}
	}
	// A consumer that stops early must not leave the producer running: the
	// range below only returns once the producer has.
	n := 0
	for v, err := range pipe(endless) {
		if err != nil || v != n {
			t.Fatalf("got %d %v at %d", v, err, n)
		}
		if n++; n == 3*pipeBatch+5 {
			break
		}
	}
	boom := errors.New("line 9: boom")
	var got []int
	var gotErr error
	for v, err := range pipe(func(emit func(int) bool) error {
		emit(1)
		emit(2)
		return boom
	}) {
		if err != nil {
			gotErr = err
			continue
		}
		got = append(got, v)
	}
	if !slices.Equal(got, []int{1, 2}) || gotErr != boom {
		t.Fatalf("got %v %v; want the rows, then the producer's error", got, gotErr)
	}
	var empty []int
	for v := range pipe(func(func(int) bool) error { return io.EOF }) {
		empty = append(empty, v)
	}
	if len(empty) != 1 {
		t.Fatalf("an error without rows yields once, got %v", empty)
	}
}
