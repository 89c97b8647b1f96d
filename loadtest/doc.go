// Package loadtest holds liqstream's load tools: wsload (the WebSocket load
// generator), floor (the bare gws broadcaster every result is compared
// with), feeder (frames at a set cadence, through Redis and the snapshotter's
// HTTP API), procstat (/proc sampling), scenario (the standard runs behind
// make loadtest) and the k6 scripts operators run against their ingress.
// docs/LOADTEST.md describes them.
package loadtest
