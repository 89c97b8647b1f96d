// @ts-check
// The spec's scenario: ramp to VUS clients (1,000 by default) on one
// gateway, each subscribing to SYMBOLS, every message checked.
//
//   k6 run -e TARGET=ws://127.0.0.1:8080/ws/heatmap -e VUS=1000 loadtest/k6/ws_load_test.js
import { env, session } from "./lib.js";

export const options = {
  stages: [
    { duration: __ENV.RAMP || "1m", target: env.vus },
    { duration: __ENV.STEADY || "3m", target: env.vus },
    { duration: "30s", target: 0 },
  ],
  thresholds: {
    // The spec's targets: p95 update latency < 500 ms, > 99 % connection success.
    snapshot_latency: ["p(95)<500"],
    "checks{check:status is 101}": ["rate>0.99"],
    snapshot_ok: ["rate>0.999"],
  },
};

export default function () {
  session(env);
}
