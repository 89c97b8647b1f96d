#!/usr/bin/env bash
# Starts the embedded default: one snapshotter (DuckDB file ./data/liqstream.duckdb,
# demo data on first start, live simulator) and one gateway at http://localhost:8080.
# Ctrl-C (or SIGTERM) stops both; if either exits on its own, the other is stopped too.
set -euo pipefail
cd "$(dirname "$0")/../.."

SNAP_ADDR="${LIQSTREAM_SNAPSHOTTER_ADDR:-127.0.0.1:8081}"
GW_ADDR="${LIQSTREAM_GATEWAY_ADDR:-:8080}"

bin/snapshotter --listen "$SNAP_ADDR" "$@" &
snap=$!
bin/gateway --listen "$GW_ADDR" --snapshotter_url "http://$SNAP_ADDR" &
gw=$!

stop() {
	trap - INT TERM EXIT
	kill -TERM "$gw" "$snap" 2>/dev/null || true
	wait "$gw" 2>/dev/null || true
	wait "$snap" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

echo "liqstream: open http://localhost:${GW_ADDR##*:}  (Ctrl-C stops)" >&2
# Whichever exits first (a crash, a port in use) ends the run.
wait -n "$snap" "$gw"
