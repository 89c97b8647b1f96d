package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStreamFlush is one flush of the live stream's writer: the newest
// update of each symbol's open candle, as it runs 4 times a second.
func BenchmarkStreamFlush(b *testing.B) {
	for _, n := range []int{2, 100} {
		b.Run(fmt.Sprintf("%d_symbols", n), func(b *testing.B) {
			s, _ := openTemp(b)
			ks := make([]Kline, n)
			t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			for i := range ks {
				ks[i] = Kline{Symbol: fmt.Sprintf("S%03dUSDT", i), Interval: "5m", OpenTime: t0, Open: 100, High: 101, Low: 99, Close: 100, Volume: 1}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range ks {
					ks[j].Close = 100 + float64(i%100)/100
				}
				if err := s.UpsertAll(context.Background(), ks, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
