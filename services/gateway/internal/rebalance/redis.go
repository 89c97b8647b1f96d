package rebalance

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Key is the Redis hash holding the fleet's counts: field = gateway id,
// value = "conns beat".
const Key = "liqstream:gateways"

// RedisRegistry keeps the counts in one Redis hash: HSET, HGETALL and HDEL
// on Key are all a gateway needs (a Redis ACL can allow just those).
type RedisRegistry struct{ c *redis.Client }

// NewRedisRegistry returns a registry on c.
func NewRedisRegistry(c *redis.Client) *RedisRegistry { return &RedisRegistry{c: c} }

// Report implements Registry.
func (r *RedisRegistry) Report(ctx context.Context, id string, e Entry) error {
	return r.c.HSet(ctx, Key, id, fmt.Sprintf("%d %d", e.Conns, e.Beat)).Err()
}

// Fleet implements Registry. A malformed value is an error naming the field:
// something else writes to Key.
func (r *RedisRegistry) Fleet(ctx context.Context) (map[string]Entry, error) {
	raw, err := r.c.HGetAll(ctx, Key).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Entry, len(raw))
	for id, v := range raw {
		conns, beat, ok := strings.Cut(v, " ")
		c, err1 := strconv.ParseInt(conns, 10, 64)
		b, err2 := strconv.ParseUint(beat, 10, 64)
		if !ok || err1 != nil || err2 != nil || c < 0 {
			return nil, fmt.Errorf("%s field %q: want \"<connections> <beat>\", got %q", Key, id, v)
		}
		out[id] = Entry{Conns: c, Beat: b}
	}
	return out, nil
}

// Forget implements Registry.
func (r *RedisRegistry) Forget(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return r.c.HDel(ctx, Key, ids...).Err()
}
