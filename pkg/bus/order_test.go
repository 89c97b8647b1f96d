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

// A snapshotter that restarts on a machine whose clock is behind the previous
// one's must not have its frames dropped as "older": frames carry the
// producer's epoch (a counter its store raises at every start) and their
// seq, and order by those, not by wall clocks. A straggler of the old epoch
// that arrives later (Redis and HTTP overlap) is still dropped.
func TestOrderedFollowsARestartWhoseClockIsBehind(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	frames := []struct {
		name       string
		epoch, seq uint64
		ts         time.Time
		wantPassed bool
	}{
		{"first run", 1, 7, t0, true},
		{"same run, next", 1, 8, t0.Add(time.Second), true},
		{"restart, clock 2 s behind", 2, 1, t0.Add(-time.Second), true},
		{"restart, next", 2, 2, t0, true},
		{"old run's straggler, newer clock", 1, 9, t0.Add(5 * time.Second), false},
		{"duplicate", 2, 2, t0, false},
	}
	o := NewOrdered()
	for _, f := range frames {
		fr := Frame{Symbol: "BTCUSDT", Bytes: protocol.SnapshotFrameEpoch("BTCUSDT", f.epoch, f.seq, f.ts, []byte(`{}`))}
		passed := false
		o.Pass(fr, func(Frame) { passed = true })
		if passed != f.wantPassed {
			t.Fatalf("%s (epoch %d seq %d): passed %v, want %v", f.name, f.epoch, f.seq, passed, f.wantPassed)
		}
	}
}
