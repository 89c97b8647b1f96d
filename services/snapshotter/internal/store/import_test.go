package store

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
)

// rowsOf yields ks and then, when err is set, err.
func rowsOf[T any](ks []T, err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, k := range ks {
			if !yield(k, nil) {
				return
			}
		}
		if err != nil {
			var zero T
			yield(zero, err)
		}
	}
}

// klineSum is a content fingerprint of the klines table.
func klineSum(t *testing.T, s *Store) (int64, string) {
	t.Helper()
	var n int64
	var h string
	err := s.db.QueryRow(`SELECT count(*), coalesce(sum(hash(symbol, interval, open_time, open, high, low, close, volume))::VARCHAR, '') FROM klines`).Scan(&n, &h)
	if err != nil {
		t.Fatal(err)
	}
	return n, h
}

func TestImportKlines(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		rows []Kline
		// want is the close of each stored candle, by symbol and index.
		want map[string][]float64
		span map[string][2]int
	}{
		{
			name: "sorted one series",
			rows: []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("BTCUSDT", 1, 100, 110, 90, 102), kl("BTCUSDT", 2, 100, 110, 90, 103)},
			want: map[string][]float64{"BTCUSDT": {101, 102, 103}},
			span: map[string][2]int{"BTCUSDT": {0, 2}},
		},
		{
			name: "two symbols",
			rows: []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("ETHUSDT", 3, 10, 11, 9, 10.5), kl("ETHUSDT", 4, 10, 11, 9, 10.6)},
			want: map[string][]float64{"BTCUSDT": {101}, "ETHUSDT": {10.5, 10.6}},
			span: map[string][2]int{"BTCUSDT": {0, 0}, "ETHUSDT": {3, 4}},
		},
		{
			name: "repeated key last wins",
			rows: []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("BTCUSDT", 1, 100, 110, 90, 102), kl("BTCUSDT", 0, 100, 110, 90, 109)},
			want: map[string][]float64{"BTCUSDT": {109, 102}},
			span: map[string][2]int{"BTCUSDT": {0, 1}},
		},
		{
			name: "series revisited last wins",
			rows: []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("ETHUSDT", 0, 10, 11, 9, 10), kl("BTCUSDT", 0, 100, 110, 90, 108)},
			want: map[string][]float64{"BTCUSDT": {108}, "ETHUSDT": {10}},
			span: map[string][2]int{"BTCUSDT": {0, 0}, "ETHUSDT": {0, 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			n, err := s.ImportKlines(ctx, rowsOf(tc.rows, nil))
			if err != nil || n != len(tc.rows) {
				t.Fatalf("ImportKlines = %d, %v; want %d rows", n, err, len(tc.rows))
			}
			for sym, closes := range tc.want {
				cs, err := s.Candles(ctx, sym, "5m", t0, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				var got []float64
				for _, c := range cs {
					got = append(got, c.Close)
				}
				if !slices.Equal(got, closes) {
					t.Errorf("%s closes = %v, want %v", sym, got, closes)
				}
				sp, v, complete := s.ChangedSince(sym, 0)
				w := tc.span[sym]
				if v != 1 || !complete || !sp.Min.Equal(t0.Add(time.Duration(w[0])*5*time.Minute)) || !sp.Max.Equal(t0.Add(time.Duration(w[1])*5*time.Minute)) {
					t.Errorf("%s change log: span %v..%v version %d; want candles %v, version 1", sym, sp.Min, sp.Max, v, w)
				}
			}
		})
	}
}

func TestImportKlinesIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	rows := []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("BTCUSDT", 1, 100, 110, 90, 102)}
	if _, err := s.ImportKlines(ctx, rowsOf(rows, nil)); err != nil {
		t.Fatal(err)
	}
	n1, h1 := klineSum(t, s)
	if _, err := s.ImportKlines(ctx, rowsOf(rows, nil)); err != nil {
		t.Fatal(err)
	}
	if n2, h2 := klineSum(t, s); n1 != 2 || n2 != n1 || h2 != h1 {
		t.Fatalf("second import changed the table: %d %s -> %d %s", n1, h1, n2, h2)
	}
}

func TestImportRejectsWholeBatch(t *testing.T) {
	ctx := context.Background()
	errSource := errors.New("line 3: high 1 below low 2")
	tests := []struct {
		name string
		rows iter.Seq2[Kline, error]
		want func(error) bool
	}{
		{"source error is returned as is", rowsOf([]Kline{kl("BTCUSDT", 0, 1, 2, 1, 2), kl("BTCUSDT", 1, 1, 2, 1, 2)}, errSource),
			func(err error) bool { return err == errSource }},
		{"invalid candle", rowsOf([]Kline{kl("BTCUSDT", 0, 1, 2, 1, 2), kl("BTCUSDT", 1, 1, 1, 2, 1)}, nil),
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "prices out of order") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			// Rows the rejected import would replace must keep their content.
			if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 5, 6, 4, 5)}); err != nil {
				t.Fatal(err)
			}
			n0, h0 := klineSum(t, s)
			v0 := s.Version("BTCUSDT")
			n, err := s.ImportKlines(ctx, tc.rows)
			if n != 0 || !tc.want(err) {
				t.Fatalf("ImportKlines = %d, %v", n, err)
			}
			if n1, h1 := klineSum(t, s); n1 != n0 || h1 != h0 {
				t.Fatalf("a rejected import changed the table: %d %s -> %d %s", n0, h0, n1, h1)
			}
			if v := s.Version("BTCUSDT"); v != v0 {
				t.Fatalf("a rejected import moved the version %d -> %d", v0, v)
			}
		})
	}
}

func TestImportStopsOnCancel(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	endless := func(yield func(Kline, error) bool) {
		for i := 0; ; i++ {
			if i == 100 {
				cancel()
			}
			if !yield(kl("BTCUSDT", i, 1, 2, 1, 2), nil) {
				return
			}
		}
	}
	if _, err := s.ImportKlines(ctx, endless); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if c, err := s.Count(context.Background()); err != nil || c.Klines != 0 {
		t.Fatalf("count %+v %v after a cancelled import, want 0", c, err)
	}
}

func TestImportOpenInterest(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ois := []OpenInterest{
		{Symbol: "BTCUSDT", TS: t0, OpenInterest: 1, OpenInterestValue: 100},
		{Symbol: "BTCUSDT", TS: t0.Add(5 * time.Minute), OpenInterest: 2, OpenInterestValue: 200},
		{Symbol: "BTCUSDT", TS: t0, OpenInterest: 3, OpenInterestValue: 300},
	}
	if n, err := s.ImportOpenInterest(ctx, rowsOf(ois, nil)); err != nil || n != 3 {
		t.Fatalf("ImportOpenInterest = %d, %v", n, err)
	}
	o, ok, err := s.LastOpenInterest(ctx, "BTCUSDT")
	if err != nil || !ok || o.OpenInterestValue != 200 {
		t.Fatalf("last = %+v %v %v", o, ok, err)
	}
	if c, _ := s.Count(ctx); c.OpenInterest != 2 {
		t.Fatalf("%d rows, want 2 (the repeated ts replaced)", c.OpenInterest)
	}
	var first float64
	if err := s.db.QueryRow(`SELECT open_interest_value FROM open_interest WHERE ts = ?`, t0).Scan(&first); err != nil || first != 300 {
		t.Fatalf("repeated ts: value %v %v, want the last row's 300", first, err)
	}
	if sp, v, _ := s.ChangedSince("BTCUSDT", 0); v != 1 || !sp.Min.Equal(t0) || !sp.Max.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("change log %v..%v v%d", sp.Min, sp.Max, v)
	}
	bad := []OpenInterest{{Symbol: "BTCUSDT", TS: t0, OpenInterestValue: -1}}
	if _, err := s.ImportOpenInterest(ctx, rowsOf(bad, nil)); err == nil || !strings.Contains(err.Error(), "non-negative") {
		t.Fatalf("negative value: got %v", err)
	}
}

func TestImportNothing(t *testing.T) {
	s, _ := openTemp(t)
	if n, err := s.ImportKlines(context.Background(), rowsOf[Kline](nil, nil)); n != 0 || err != nil {
		t.Fatalf("got %d %v", n, err)
	}
	if v := s.Version("BTCUSDT"); v != 0 {
		t.Fatalf("an empty import moved the version to %d", v)
	}
}

func TestImportOverStoredRowsReplacesThem(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101), kl("BTCUSDT", 1, 100, 110, 90, 102)}); err != nil {
		t.Fatal(err)
	}
	// Overlaps candle 1 only: the merge must replace it, keep 0 and add 2.
	if _, err := s.ImportKlines(ctx, rowsOf([]Kline{kl("BTCUSDT", 1, 100, 110, 90, 107), kl("BTCUSDT", 2, 100, 110, 90, 108)}, nil)); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Candles(ctx, "BTCUSDT", "5m", t0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, c := range cs {
		got = append(got, c.Close)
	}
	if !slices.Equal(got, []float64{101, 107, 108}) {
		t.Fatalf("closes %v, want [101 107 108]", got)
	}
}

// TestPlainInsertConflictIsDetected pins the error the fast path falls back
// on: a key taken between the overlap check and the plain INSERT.
func TestPlainInsertConflictIsDetected(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.UpsertKlines(context.Background(), []Kline{kl("BTCUSDT", 0, 100, 110, 90, 101)}); err != nil {
		t.Fatal(err)
	}
	_, err := s.db.Exec(`INSERT INTO klines VALUES ('BTCUSDT', '5m', ?, 1, 1, 1, 1, 1)`, t0)
	if !isConstraint(err) {
		t.Fatalf("duplicate key: got %v (%T), want a constraint error", err, err)
	}
	if isConstraint(errors.New("other")) {
		t.Fatal("any error taken for a constraint error")
	}
}
