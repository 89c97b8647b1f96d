package bus

import (
	"sync"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/protocol"
)

// Review item 4: the Redis and HTTP paths both feed the failover; a frame
// that passed the newer-than check must reach the hub before any later one,
// or a newer frame can overtake an older one between check and delivery.
func TestReview4FailoverDeliversInCheckOrder(t *testing.T) {
	o := NewOrdered()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	older := Frame{Symbol: "BTCUSDT", Bytes: protocol.SnapshotFrame("BTCUSDT", 1, t0, []byte(`{}`))}
	newer := Frame{Symbol: "BTCUSDT", Bytes: protocol.SnapshotFrame("BTCUSDT", 2, t0.Add(time.Second), []byte(`{}`))}

	var mu sync.Mutex
	var got []string
	record := func(f Frame) {
		mu.Lock()
		got = append(got, string(f.Bytes))
		mu.Unlock()
	}
	inDeliver, newerDone := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the Redis path, slow between its check and its delivery
		defer wg.Done()
		o.Pass(older, func(f Frame) {
			close(inDeliver)
			// Give the other path every chance to overtake: with the check and
			// the delivery under one lock it cannot, so this wait times out.
			select {
			case <-newerDone:
			case <-time.After(200 * time.Millisecond):
			}
			record(f)
		})
	}()
	go func() { // the HTTP path
		defer wg.Done()
		<-inDeliver
		o.Pass(newer, record)
		close(newerDone)
	}()
	wg.Wait()
	if len(got) != 2 || got[0] != string(older.Bytes) || got[1] != string(newer.Bytes) {
		t.Fatalf("delivered %d frames in the order %q; want the older then the newer", len(got), got)
	}
}
