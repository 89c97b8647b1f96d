// @ts-check
// The fleet through its edge (nginx with ip_hash, or your ingress): the same
// sessions as ws_load_test.js, plus how they spread over the gateways
// (sessions_by_gateway{gateway}, from the X-Liqstream-Gateway upgrade
// header). Run it from several source addresses, or every session lands on
// one gateway by design of ip_hash.
//
//   k6 run -e TARGET=wss://heatmap.example.com/ws/heatmap -e ORIGIN=https://heatmap.example.com \
//          -e VUS=10000 loadtest/k6/fleet_test.js
import { env, session } from "./lib.js";

export const options = {
  scenarios: {
    fleet: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: __ENV.RAMP || "2m", target: env.vus },
        { duration: __ENV.STEADY || "5m", target: env.vus },
        { duration: "1m", target: 0 },
      ],
      gracefulRampDown: "30s",
    },
  },
  thresholds: {
    snapshot_latency: ["p(95)<500", "p(99)<1000"],
    "checks{check:status is 101}": ["rate>0.99"],
    snapshot_ok: ["rate>0.999"],
    server_error_frames: ["count==0"],
  },
};

export default function () {
  session(env);
}
