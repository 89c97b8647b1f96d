// @ts-check
// Shared by the liqstream k6 scenarios: one client session on /ws/heatmap
// that subscribes, checks every frame the way the spec's clients do, and
// records delivery latency, seq gaps and which gateway served it.
import ws from "k6/ws";
import { check } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

/** Producer `timestamp` → receive, in ms (k6's clock has ms resolution). */
export const latency = new Trend("snapshot_latency", true);
export const snapshotOK = new Rate("snapshot_ok");
export const seqGaps = new Counter("seq_gaps");
export const served = new Counter("sessions_by_gateway");
export const serverErrors = new Counter("server_error_frames");

/** Settings from the environment, so one script fits any target. */
export const env = {
  target: __ENV.TARGET || "ws://127.0.0.1:8080/ws/heatmap",
  symbols: (__ENV.SYMBOLS || "BTCUSDT").split(",").map((s) => s.trim()).filter(Boolean),
  updateInterval: Number(__ENV.UPDATE_INTERVAL || 5),
  holdSeconds: Number(__ENV.HOLD_SECONDS || 60),
  origin: __ENV.ORIGIN || "",
  // Only a client whose update_interval is no longer than the producer's
  // cadence should see every seq; with a longer one, skipped seqs are the point.
  countGaps: __ENV.COUNT_GAPS === "1",
  vus: Number(__ENV.VUS || 1000),
};

/**
 * Runs one session: connect, subscribe, read for holdSeconds, close.
 * @param {typeof env} e
 */
export function session(e) {
  /** @type {Record<string, number>} */
  const last = {};
  const params = e.origin ? { headers: { Origin: e.origin } } : null;
  const res = ws.connect(e.target, params, (socket) => {
    socket.on("open", () => {
      // A subscribe carries at most 10 symbols.
      for (let i = 0; i < e.symbols.length; i += 10) {
        socket.send(JSON.stringify({ action: "subscribe", symbols: e.symbols.slice(i, i + 10), update_interval: e.updateInterval }));
      }
    });
    socket.on("message", (raw) => {
      const msg = JSON.parse(raw);
      if (msg.type === "error") {
        serverErrors.add(1, { code: String(msg.code) });
      }
      // The spec's clients check every message: a snapshot with levels.
      const ok = check(msg, {
        "is snapshot": (m) => m.type === "snapshot",
        "has levels": (m) => Array.isArray(m.data && m.data.levels) && m.data.levels.length > 0,
        "liquidations well-formed": (m) => liquidationsOK(m.data && m.data.liquidations),
      });
      snapshotOK.add(ok);
      if (msg.type !== "snapshot") return;
      latency.add(Date.now() - Date.parse(msg.timestamp));
      const prev = last[msg.symbol];
      if (e.countGaps && prev !== undefined && msg.seq > prev + 1) {
        seqGaps.add(msg.seq - prev - 1);
      }
      last[msg.symbol] = msg.seq;
    });
    socket.setTimeout(() => socket.close(), e.holdSeconds * 1000);
  });
  check(res, { "status is 101": (r) => r && r.status === 101 });
  if (res && res.status === 101) {
    served.add(1, { gateway: res.headers["X-Liqstream-Gateway"] || "unknown" });
  }
}

/**
 * The open candle's realised liquidations a snapshot may carry (absent when
 * there are none): each a long or short with a time, price, quantity and notional.
 * @param {unknown} l
 */
export function liquidationsOK(l) {
  if (l === undefined) return true;
  return (
    Array.isArray(l) &&
    l.every(
      (x) =>
        (x.side === "long" || x.side === "short") &&
        x.price > 0 &&
        x.quantity > 0 &&
        x.notional > 0 &&
        !Number.isNaN(Date.parse(x.time)),
    )
  );
}
