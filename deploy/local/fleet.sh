#!/usr/bin/env bash
# The split architecture on one machine: redis-server, one snapshotter, three
# gateways and nginx (ip_hash) at http://localhost:8080. Everything lives in
# ./data/fleet; Ctrl-C (or SIGTERM) stops all of it. Needs bash ≥ 5.1,
# redis-server and nginx (.ci/run installs both on Debian).
#
# It is a small supervisor: when a part exits (Redis, the snapshotter, a
# gateway, nginx, Prometheus) it says so, keeps the others running and starts
# that part again after a backoff (1 s, doubling to 30 s; back to 1 s once the
# part has stayed up 60 s). So `redis-cli -p 6390 shutdown nosave` shows the
# gateways' fallback to the snapshotter and their return to Redis. While
# data/fleet/hold/NAME exists, part NAME (redis, snapshotter, gateway-1…,
# nginx, prometheus) is not restarted; remove the file and it is. Each running
# part's pid is in data/fleet/pids/NAME.pid.
#
# With LIQSTREAM_FLEET_PROMETHEUS=1 (or `make fleet PROMETHEUS=1`) it also
# starts Prometheus (Debian's prometheus package) at
# http://127.0.0.1:9090 (LIQSTREAM_FLEET_PROMETHEUS_ADDR), scraping the
# snapshotter and the gateways with deploy/prometheus/prometheus.yml and
# evaluating deploy/prometheus/liqstream-rules.yaml; its data goes to
# ./data/fleet/prometheus. See docs/OPERATIONS.md, "Alerts".
#
# Overrides: LIQSTREAM_FLEET_REDIS_PORT (6390), LIQSTREAM_FLEET_SNAPSHOTTER_PORT
# (8081), LIQSTREAM_FLEET_EDGE (127.0.0.1:8080), LIQSTREAM_FLEET_GATEWAYS
# (space-separated host:port list, "127.0.0.1:8091 127.0.0.1:8092
# 127.0.0.1:8093"), LIQSTREAM_FLEET_DIR (data/fleet) and LIQSTREAM_BIN_DIR
# (bin, where `make build` puts snapshotter and gateway); relative paths are
# taken from the directory the script was started in. Other LIQSTREAM_*
# variables reach the services as their own config (docs/CONFIGURATION.md).
set -euo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/../.."

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
	echo "fleet: needs bash 5.1 or newer (wait -n -p); this is $BASH_VERSION" >&2
	exit 1
fi
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

# from_caller makes a path given relative to where the script was started absolute.
from_caller() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$CALLER_DIR/$1" ;; esac; }
DIR=./data/fleet
[ -z "${LIQSTREAM_FLEET_DIR:-}" ] || DIR=$(from_caller "$LIQSTREAM_FLEET_DIR")
BIN=bin
[ -z "${LIQSTREAM_BIN_DIR:-}" ] || BIN=$(from_caller "$LIQSTREAM_BIN_DIR")
for b in snapshotter gateway; do
	[ -x "$BIN/$b" ] || { echo "fleet: $BIN/$b not found: run make build (or set LIQSTREAM_BIN_DIR)" >&2; exit 1; }
done

REDIS_PORT=${LIQSTREAM_FLEET_REDIS_PORT:-6390}
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
SNAP_ADDR=127.0.0.1:${LIQSTREAM_FLEET_SNAPSHOTTER_PORT:-8081}
EDGE=${LIQSTREAM_FLEET_EDGE:-127.0.0.1:8080}
read -ra GATEWAYS <<<"${LIQSTREAM_FLEET_GATEWAYS:-127.0.0.1:8091 127.0.0.1:8092 127.0.0.1:8093}"
[ "${#GATEWAYS[@]}" -gt 0 ] || { echo "fleet: LIQSTREAM_FLEET_GATEWAYS names no gateway" >&2; exit 1; }
mkdir -p "$DIR/redis" "$DIR/nginx" "$DIR/pids" "$DIR/hold"
chmod 777 "$DIR/nginx"
rm -f "$DIR"/pids/*.pid
: >"$DIR/redis.log"

# --- the parts: each start_* runs one process in the background, so that $!
# is that process itself (not a subshell) when the function returns.

start_redis() {
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR/redis" >>"$DIR/redis.log" 2>&1 &
}

start_snapshotter() {
	"$BIN/snapshotter" --listen "$SNAP_ADDR" --db "$DIR/liqstream.duckdb" --redis_url "$REDIS_URL" &
}

start_gateway() { # index into GATEWAYS
	"$BIN/gateway" --listen "${GATEWAYS[$1]}" --instance_id "gateway-$(($1 + 1))" \
		--snapshotter_url "http://$SNAP_ADDR" --redis_url "$REDIS_URL" \
		--ws.trusted_proxies 127.0.0.0/8 &
}

upstreams=""
for addr in "${GATEWAYS[@]}"; do
	# max_fails=0: see the template's upstream block (a restarted gateway
	# must get new clients again at once).
	upstreams+="        server $addr max_fails=0;"$'\n'
done
tmpl=$(cat deploy/nginx/nginx.conf.tmpl)
prefix=$(cd "$DIR/nginx" && pwd)
conf=${tmpl//\{\{LISTEN\}\}/$EDGE}
conf=${conf//\{\{PREFIX\}\}/$prefix}
conf=${conf//\{\{UPSTREAMS\}\}/$upstreams}
printf '%s\n' "$conf" >"$prefix/nginx.conf"

start_nginx() {
	"$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
}

if [ "$WITH_PROMETHEUS" = 1 ]; then
	# The shipped config, with this fleet's addresses and the rules by
	# absolute path (the copy lives elsewhere).
	mkdir -p "$DIR/prometheus/data"
	rules=$(pwd)/deploy/prometheus/liqstream-rules.yaml
	targets=$(printf '"%s", ' "${GATEWAYS[@]}")
	sed -e "s|127.0.0.1:8081|$SNAP_ADDR|" -e "s|^  - liqstream-rules.yaml\$|  - $rules|" \
		-e "s|\"127.0.0.1:8091\", \"127.0.0.1:8092\", \"127.0.0.1:8093\"|${targets%, }|" \
		deploy/prometheus/prometheus.yml >"$DIR/prometheus/prometheus.yml"
	: >"$DIR/prometheus.log"
fi

start_prometheus() {
	"$PROMETHEUS_BIN" --config.file="$DIR/prometheus/prometheus.yml" --storage.tsdb.path="$DIR/prometheus/data" \
		--storage.tsdb.retention.time=2d --web.listen-address="$PROM_ADDR" >>"$DIR/prometheus.log" 2>&1 &
}

# --- the supervisor's state, by part name.
PARTS=(redis snapshotter)           # start order
declare -A START=([redis]=start_redis [snapshotter]=start_snapshotter)
GATEWAY_PARTS=()
for i in "${!GATEWAYS[@]}"; do
	GATEWAY_PARTS+=("gateway-$((i + 1))")
	START[gateway-$((i + 1))]="start_gateway $i"
done
PARTS+=("${GATEWAY_PARTS[@]}" nginx)
START[nginx]=start_nginx
if [ "$WITH_PROMETHEUS" = 1 ]; then
	PARTS+=(prometheus)
	START[prometheus]=start_prometheus
fi
declare -A PID=()     # name → pid while running
declare -A NAME=()    # pid → name
declare -A STARTED=() # name → when it was last started (ms)
declare -A DELAY=()   # name → the next backoff (s)
declare -A DUE=()     # name → when to start it again (ms), while it is down
declare -A HELD=()    # name → set while a hold file keeps it down
TIMER=""              # a `sleep` child that ends when the next restart is due
TIMER_DUE=""

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

spawn() { # name
	local name=$1 cmd
	read -ra cmd <<<"${START[$name]}"
	"${cmd[@]}"
	PID[$name]=$!
	NAME[$!]=$name
	STARTED[$name]=$(now_ms)
	echo "$!" >"$DIR/pids/$name.pid"
}

stop() {
	trap - INT TERM EXIT
	[ -z "$TIMER" ] || kill "$TIMER" 2>/dev/null || true
	# Gateways first: they close their clients with 1012 and drain while
	# nginx, Redis and the snapshotter are still there.
	local name pids=()
	for name in "${GATEWAY_PARTS[@]}"; do
		[ -z "${PID[$name]:-}" ] || pids+=("${PID[$name]}")
	done
	if [ "${#pids[@]}" -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	# Then the rest: every child still running, including one started just
	# as the signal came (only the job table knows it yet).
	mapfile -t pids < <(jobs -p)
	if [ "${#pids[@]}" -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	rm -f "$DIR"/pids/*.pid
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# exited records that the part with pid exited with status and schedules its restart.
exited() { # pid status
	local name=${NAME[$1]:-}
	[ -n "$name" ] || return 0
	unset "NAME[$1]" "PID[$name]"
	rm -f "$DIR/pids/$name.pid"
	local now delay
	now=$(now_ms)
	delay=${DELAY[$name]:-1}
	if ((now - STARTED[$name] >= 60000)); then delay=1; fi
	echo "fleet: $name exited (status $2); restarting in ${delay}s" >&2
	DUE[$name]=$((now + delay * 1000))
	DELAY[$name]=$((delay * 2 > 30 ? 30 : delay * 2))
}

# restart_due starts every part whose backoff is over, unless held.
restart_due() {
	local name now
	now=$(now_ms)
	for name in "${!DUE[@]}"; do
		if ((DUE[$name] > now)); then continue; fi
		if [ -e "$DIR/hold/$name" ]; then
			if [ -z "${HELD[$name]:-}" ]; then
				echo "fleet: $name held down while $DIR/hold/$name exists" >&2
				HELD[$name]=1
			fi
			DUE[$name]=$((now + 1000)) # look again in a second
			continue
		fi
		unset "DUE[$name]" "HELD[$name]"
		echo "fleet: restarting $name" >&2
		spawn "$name"
	done
}

# arm_timer keeps one `sleep` child running until the soonest restart is due.
arm_timer() {
	local name soonest=""
	for name in "${!DUE[@]}"; do
		if [ -z "$soonest" ] || ((DUE[$name] < soonest)); then soonest=${DUE[$name]}; fi
	done
	if [ -n "$TIMER" ] && [ "$TIMER_DUE" = "$soonest" ]; then return 0; fi
	if [ -n "$TIMER" ]; then
		kill "$TIMER" 2>/dev/null || true
		wait "$TIMER" 2>/dev/null || true
		TIMER=""
	fi
	[ -n "$soonest" ] || return 0
	local ms
	ms=$((soonest - $(now_ms)))
	if ((ms < 0)); then ms=0; fi
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))" &
	TIMER=$!
	TIMER_DUE=$soonest
}

for name in "${PARTS[@]}"; do spawn "$name"; done
prom_msg=""
[ "$WITH_PROMETHEUS" = 1 ] && prom_msg="; prometheus http://$PROM_ADDR (log $DIR/prometheus.log)"
echo "liqstream fleet: http://${EDGE} (nginx → ${GATEWAYS[*]}; redis :$REDIS_PORT$prom_msg) — dead parts are restarted; Ctrl-C stops" >&2

while :; do
	arm_timer
	pid="" status=0
	# A trapped signal also ends the wait; its trap stops the fleet and exits.
	wait -n -p pid 2>/dev/null || status=$?
	if [ -z "$pid" ]; then
		# No child at all (cannot happen while a part is down: the timer runs).
		if [ "$status" = 127 ]; then sleep 1; fi
		continue
	fi
	if [ "$pid" = "$TIMER" ]; then
		TIMER=""
		restart_due
		continue
	fi
	exited "$pid" "$status"
done
