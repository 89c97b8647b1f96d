package rebalance

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/liqstream/liqstream/pkg/testenv"
)

func TestRedisRegistryRoundTrip(t *testing.T) {
	srv := testenv.StartRedis(t)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	reg := NewRedisRegistry(c)
	ctx := context.Background()
	for id, e := range map[string]Entry{"gw-1": {1000, 4}, "gw-2": {12, 9}} {
		if err := reg.Report(ctx, id, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := reg.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["gw-1"] != (Entry{1000, 4}) || got["gw-2"] != (Entry{12, 9}) {
		t.Fatalf("fleet %v", got)
	}
	if err := reg.Forget(ctx, "gw-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.Fleet(ctx); len(got) != 1 {
		t.Fatalf("after Forget: %v", got)
	}
	c.HSet(ctx, Key, "intruder", "lots")
	if _, err := reg.Fleet(ctx); err == nil || !strings.Contains(err.Error(), `"intruder"`) {
		t.Fatalf("malformed entry: %v, want an error naming it", err)
	}
}
