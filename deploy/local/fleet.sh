#!/usr/bin/env bash
# The split architecture on one machine: redis-server, one snapshotter, three
# gateways and nginx (ip_hash) at http://localhost:8080. Everything lives in
# ./data/fleet; Ctrl-C (or SIGTERM) stops all of it. Needs redis-server and
# nginx (.ci/run installs both on Debian).
#
# With LIQSTREAM_FLEET_PROMETHEUS=1 (or `make fleet PROMETHEUS=1`) it also
# starts Prometheus (Debian's prometheus package) at
# http://127.0.0.1:9090 (LIQSTREAM_FLEET_PROMETHEUS_ADDR), scraping the
# snapshotter and the gateways with deploy/prometheus/prometheus.yml and
# evaluating deploy/prometheus/liqstream-rules.yaml; its data goes to
# ./data/fleet/prometheus. See docs/OPERATIONS.md, "Alerts".
set -euo pipefail
cd "$(dirname "$0")/../.."

for bin in redis-server nginx; do
	command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || { echo "fleet: $bin is not installed (apt-get install $bin)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WITH_PROMETHEUS=${LIQSTREAM_FLEET_PROMETHEUS:-${PROMETHEUS:-0}}
case $WITH_PROMETHEUS in 1 | true | yes) WITH_PROMETHEUS=1 ;; *) WITH_PROMETHEUS=0 ;; esac
if [ "$WITH_PROMETHEUS" = 1 ]; then
	PROMETHEUS_BIN=$(command -v prometheus || { [ -x /usr/bin/prometheus ] && echo /usr/bin/prometheus; } || true)
	[ -n "$PROMETHEUS_BIN" ] || { echo "fleet: Prometheus was asked for (LIQSTREAM_FLEET_PROMETHEUS=1 / PROMETHEUS=1) but the prometheus binary is not installed (apt-get install prometheus)" >&2; exit 1; }
fi
PROM_ADDR=${LIQSTREAM_FLEET_PROMETHEUS_ADDR:-127.0.0.1:9090}

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

prom_msg=""
if [ "$WITH_PROMETHEUS" = 1 ]; then
	# The shipped config, with this fleet's snapshotter address and the rules
	# by absolute path (the copy lives elsewhere).
	mkdir -p "$DIR/prometheus/data"
	rules=$(pwd)/deploy/prometheus/liqstream-rules.yaml
	sed -e "s|127.0.0.1:8081|$SNAP_ADDR|" -e "s|^  - liqstream-rules.yaml\$|  - $rules|" \
		deploy/prometheus/prometheus.yml >"$DIR/prometheus/prometheus.yml"
	"$PROMETHEUS_BIN" --config.file="$DIR/prometheus/prometheus.yml" --storage.tsdb.path="$DIR/prometheus/data" \
		--storage.tsdb.retention.time=2d --web.listen-address="$PROM_ADDR" >"$DIR/prometheus.log" 2>&1 &
	pids+=($!)
	prom_msg="; prometheus http://$PROM_ADDR (log $DIR/prometheus.log)"
fi

echo "liqstream fleet: http://${EDGE} (nginx → ${GATEWAYS[*]}; redis :$REDIS_PORT$prom_msg) — Ctrl-C stops" >&2
wait -n "${pids[@]}"
