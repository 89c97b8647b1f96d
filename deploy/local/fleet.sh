#!/usr/bin/env bash
# The split architecture on one machine: redis-server, one snapshotter, three
# gateways and nginx (ip_hash) at http://localhost:8080. Everything lives in
# ./data/fleet; Ctrl-C (or SIGTERM) stops all of it. Needs redis-server and
# nginx (.ci/run installs both on Debian).
set -euo pipefail
cd "$(dirname "$0")/../.."

for bin in redis-server nginx; do
	command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || { echo "fleet: $bin is not installed (apt-get install $bin)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

DIR=./data/fleet
REDIS_PORT=${LIQSTREAM_FLEET_REDIS_PORT:-6390}
SNAP_ADDR=127.0.0.1:${LIQSTREAM_FLEET_SNAPSHOTTER_PORT:-8081}
EDGE=${LIQSTREAM_FLEET_EDGE:-127.0.0.1:8080}
GATEWAYS=(127.0.0.1:8091 127.0.0.1:8092 127.0.0.1:8093)
mkdir -p "$DIR/redis" "$DIR/nginx"
chmod 777 "$DIR/nginx"

pids=()
stop() {
	trap - INT TERM EXIT
	# Gateways first, so clients are drained (1012) before the data path goes.
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR/redis" >"$DIR/redis.log" 2>&1 &
pids+=($!)
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0

bin/snapshotter --listen "$SNAP_ADDR" --db "$DIR/liqstream.duckdb" --redis_url "$REDIS_URL" &
pids+=($!)

upstreams=""
for i in "${!GATEWAYS[@]}"; do
	addr=${GATEWAYS[$i]}
	bin/gateway --listen "$addr" --instance_id "gateway-$((i + 1))" \
		--snapshotter_url "http://$SNAP_ADDR" --redis_url "$REDIS_URL" \
		--ws.trusted_proxies 127.0.0.0/8 &
	pids+=($!)
	upstreams+="        server $addr max_fails=1 fail_timeout=2s;"$'\n'
done

tmpl=$(cat deploy/nginx/nginx.conf.tmpl)
prefix=$(cd "$DIR/nginx" && pwd)
conf=${tmpl//\{\{LISTEN\}\}/$EDGE}
conf=${conf//\{\{PREFIX\}\}/$prefix}
conf=${conf//\{\{UPSTREAMS\}\}/$upstreams}
printf '%s\n' "$conf" >"$prefix/nginx.conf"
"$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
pids+=($!)

echo "liqstream fleet: http://${EDGE} (nginx → ${GATEWAYS[*]}; redis :$REDIS_PORT) — Ctrl-C stops" >&2
wait -n "${pids[@]}"
