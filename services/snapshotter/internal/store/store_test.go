package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "test.duckdb")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Writes that fail on purpose retry without waiting: the waits are
	// asserted by the retry tests, not served by every test.
	s.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return s, path
}

var t0 = time.Date(2025, 12, 29, 10, 0, 0, 0, time.UTC)

func kl(sym string, i int, o, h, l, c float64) Kline {
	return Kline{Symbol: sym, Interval: "5m", OpenTime: t0.Add(time.Duration(i) * 5 * time.Minute), Open: o, High: h, Low: l, Close: c, Volume: 1}
}

func TestUpsertAndCandlesJoinAverageOI(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105), kl("BTCUSDT", 1, 105, 106, 100, 101), kl("BTCUSDT", 2, 101, 102, 99, 100), kl("ETHUSDT", 0, 1, 2, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	// Two observations inside candle 0 average to 150; candle 1 has none; one
	// observation belongs to ETH and must not leak into BTC.
	ois := []OpenInterest{
		{Symbol: "BTCUSDT", TS: t0, OpenInterest: 1, OpenInterestValue: 100},
		{Symbol: "BTCUSDT", TS: t0.Add(2 * time.Minute), OpenInterest: 1, OpenInterestValue: 200},
		{Symbol: "BTCUSDT", TS: t0.Add(10 * time.Minute), OpenInterest: 1, OpenInterestValue: 300},
		{Symbol: "ETHUSDT", TS: t0.Add(5 * time.Minute), OpenInterest: 1, OpenInterestValue: 999},
	}
	if err := s.UpsertOpenInterest(ctx, ois); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Candles(ctx, "BTCUSDT", "5m", t0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("got %d candles, want 3", len(cs))
	}
	want := []struct {
		oi    float64
		hasOI bool
		close float64
	}{{150, true, 105}, {0, false, 101}, {300, true, 100}}
	for i, w := range want {
		c := cs[i]
		if c.HasOI != w.hasOI || c.OIValue != w.oi || c.Close != w.close || !c.OpenTime.Equal(t0.Add(time.Duration(i)*5*time.Minute)) {
			t.Errorf("candle %d = %+v, want oi=%v has=%v close=%v", i, c, w.oi, w.hasOI, w.close)
		}
	}
	// from filters by open time.
	cs, err = s.Candles(ctx, "BTCUSDT", "5m", t0.Add(5*time.Minute), time.Time{})
	if err != nil || len(cs) != 2 {
		t.Fatalf("from filter: %d candles, err %v; want 2", len(cs), err)
	}
}

func TestUpsertReplacesAndBumpsVersion(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	v0 := s.Version("BTCUSDT")
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105)}); err != nil {
		t.Fatal(err)
	}
	v1 := s.Version("BTCUSDT")
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 120, 80, 95)}); err != nil {
		t.Fatal(err)
	}
	if v2 := s.Version("BTCUSDT"); !(v0 < v1 && v1 < v2) {
		t.Fatalf("versions %d %d %d must increase with each write", v0, v1, v2)
	}
	if s.Version("ETHUSDT") != 0 {
		t.Fatal("a write to BTCUSDT moved ETHUSDT's version")
	}
	k, ok, err := s.LastKline(ctx, "BTCUSDT", "5m")
	if err != nil || !ok || k.High != 120 || k.Low != 80 || k.Close != 95 {
		t.Fatalf("LastKline = %+v %v %v; want the replaced candle", k, ok, err)
	}
	c, err := s.Count(ctx)
	if err != nil || c.Klines != 1 {
		t.Fatalf("count %+v %v, want 1 kline after replace", c, err)
	}
}

func TestInvalidRowsRejectWholeBatch(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		k    Kline
		want string
	}{
		{"high below low", kl("BTCUSDT", 2, 100, 90, 110, 100), "prices out of order"},
		{"close above high", kl("BTCUSDT", 2, 100, 110, 90, 120), "prices out of order"},
		{"zero low", kl("BTCUSDT", 2, 0, 0, 0, 0), "prices out of order"},
		{"no symbol", kl("", 2, 100, 110, 90, 100), "symbol and interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 1, 100, 110, 90, 105), tc.k})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			c, err := s.Count(ctx)
			if err != nil || c.Klines != 1 {
				t.Fatalf("count %+v %v: the good row of a rejected batch was stored", c, err)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keep.duckdb")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105), kl("BTCUSDT", 1, 105, 106, 100, 101)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Count(ctx)
	if err != nil || c.Klines != 2 {
		t.Fatalf("after reopen: %+v %v, want 2 klines", c, err)
	}
}

func TestIntervalDuration(t *testing.T) {
	for name, want := range map[string]time.Duration{"5m": 5 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour} {
		if got, err := IntervalDuration(name); err != nil || got != want {
			t.Errorf("%s: got %v %v, want %v", name, got, err, want)
		}
	}
	if _, err := IntervalDuration("7m"); err == nil || !strings.Contains(err.Error(), `"7m"`) {
		t.Errorf("7m: got %v, want an error naming it", err)
	}
}

func TestDuplicateKeysInOneBatchLastWins(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105), kl("BTCUSDT", 0, 100, 130, 90, 125)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertOpenInterest(ctx, []OpenInterest{{Symbol: "BTCUSDT", TS: t0, OpenInterestValue: 1}, {Symbol: "BTCUSDT", TS: t0, OpenInterestValue: 2}}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Candles(ctx, "BTCUSDT", "5m", t0, time.Time{})
	if err != nil || len(cs) != 1 || cs[0].Close != 125 || cs[0].OIValue != 2 {
		t.Fatalf("got %+v %v; want one candle, close 125, OI 2", cs, err)
	}
}

func TestCandlesAggregate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	// Six 5m candles = two 15m candles; OI observed in the first three only.
	ks := []Kline{
		kl("BTCUSDT", 0, 100, 105, 99, 101), kl("BTCUSDT", 1, 101, 110, 100, 108), kl("BTCUSDT", 2, 108, 109, 95, 96),
		kl("BTCUSDT", 3, 96, 97, 90, 91), kl("BTCUSDT", 4, 91, 94, 91, 93), kl("BTCUSDT", 5, 93, 99, 92, 98),
	}
	if err := s.UpsertKlines(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertOpenInterest(ctx, []OpenInterest{
		{Symbol: "BTCUSDT", TS: t0, OpenInterestValue: 10},
		{Symbol: "BTCUSDT", TS: t0.Add(5 * time.Minute), OpenInterestValue: 20},
		{Symbol: "BTCUSDT", TS: t0.Add(10 * time.Minute), OpenInterestValue: 60},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Candles(ctx, "BTCUSDT", "15m", t0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		o, h, l, c, v, oi float64
		has               bool
	}
	want := []row{{100, 110, 95, 96, 3, 30, true}, {96, 99, 90, 98, 3, 0, false}}
	if len(got) != len(want) {
		t.Fatalf("got %d 15m candles, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if (row{g.Open, g.High, g.Low, g.Close, g.Volume, g.OIValue, g.HasOI}) != w || !g.OpenTime.Equal(t0.Add(time.Duration(i)*15*time.Minute)) {
			t.Errorf("15m candle %d = %+v, want %+v", i, g, w)
		}
	}
	// An interval no stored one divides into gives nothing rather than a wrong series.
	if got, err := s.Candles(ctx, "BTCUSDT", "3m", t0, time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("3m from 5m: %d candles, err %v; want none", len(got), err)
	}
	// [from, to) bounds by open time.
	if got, err := s.Candles(ctx, "BTCUSDT", "5m", t0.Add(5*time.Minute), t0.Add(15*time.Minute)); err != nil || len(got) != 2 {
		t.Fatalf("bounded query: %d candles, err %v; want 2", len(got), err)
	}
}

func TestChangedSince(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	v0 := s.Version("BTCUSDT")
	if err := s.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 3, 100, 110, 90, 105), kl("BTCUSDT", 5, 100, 110, 90, 105)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertOpenInterest(ctx, []OpenInterest{{Symbol: "BTCUSDT", TS: t0.Add(7 * time.Minute), OpenInterestValue: 1}}); err != nil {
		t.Fatal(err)
	}
	sp, cur, complete := s.ChangedSince("BTCUSDT", v0)
	if !complete || cur != v0+2 || !sp.Min.Equal(t0.Add(7*time.Minute)) || !sp.Max.Equal(t0.Add(25*time.Minute)) {
		t.Fatalf("span %v..%v cur %d complete %v", sp.Min, sp.Max, cur, complete)
	}
	tests := []struct {
		from, to time.Duration
		want     bool
	}{{0, 7 * time.Minute, false}, {0, 8 * time.Minute, true}, {20 * time.Minute, time.Hour, true}, {26 * time.Minute, time.Hour, false}}
	for _, tc := range tests {
		if got := sp.Overlaps(t0.Add(tc.from), t0.Add(tc.to)); got != tc.want {
			t.Errorf("overlaps [%v,%v) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if sp, _, complete := s.ChangedSince("BTCUSDT", cur); !complete || !sp.Min.IsZero() {
		t.Fatalf("nothing changed since the current version, got %+v", sp)
	}
	for i := 0; i < changeLogSize+1; i++ {
		s.changes.record(map[string]Span{"BTCUSDT": {t0, t0}})
	}
	if _, _, complete := s.ChangedSince("BTCUSDT", v0); complete {
		t.Fatal("a version older than the kept log claimed a complete answer")
	}
}
