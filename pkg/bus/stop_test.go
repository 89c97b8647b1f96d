package bus

import (
	"context"
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/testenv"
)

// Found by the load runs: a gateway drained its clients on SIGTERM and then
// did not exit, because the Redis subscription's read ignores the context
// (go-redis reads with deadlines, and one of its reads has none) and Run
// never returned. Every stop then ran into the SIGKILL after the grace period.
func TestReview12RedisSourceStopsWhenCancelled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish bool
	}{{"quiet channel", false}, {"frames flowing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.StartRedis(t)
			client, err := NewRedisClient(r.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			src := NewRedisSource(client, quiet())
			src.Health = time.Hour // a read that waits for its deadline would outlive the test
			ctx, cancel := context.WithCancel(context.Background())
			ups := make(chan bool, 16)
			done := make(chan struct{})
			go func() {
				src.Run(ctx, []string{"BTCUSDT"}, func(Frame) {}, func(v bool) { ups <- v })
				close(done)
			}()
			awaitUp(t, ups, true)
			if tc.publish {
				p := startPublisher(t, r.URL, []string{"BTCUSDT"})
				p.Publish(frameAt("BTCUSDT", 1))
			}
			cancel()
			select {
			case <-done:
			case <-time.After(wait):
				t.Fatalf("RedisSource.Run still running %s after its context was cancelled", wait)
			}
		})
	}
}
