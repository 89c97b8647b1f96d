// Fakes for the unit tests of /liqstream.js (client_test.js, review10_test.js):
// a fake clock, socket and fetch, so that minutes of backoff run in
// milliseconds and every delay is exact. suite.html runs the cases.
import { LiqstreamClient } from "/liqstream.js";

// Lets promise chains (fetch, json) settle: every microtask runs before the
// next task. A MessageChannel task, unlike a nested setTimeout(0), is not
// clamped to 4 ms, which would make the 60 s of fake time take seconds.
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
export async function flush() {
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => {
      waiting.push(r);
      channel.port2.postMessage(0);
    });
  }
}

export class FakeClock {
  t = 1_000_000;
  #timers = new Map();
  #next = 1;
  now = () => this.t;
  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + Math.max(0, ms || 0), fn });
    return id;
  };
  clearTimeout = (id) => {
    this.#timers.delete(id);
  };
  // Runs every timer due within ms, in time order, letting promises settle
  // between them, as the real event loop would.
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await flush();
      let best = null;
      for (const [id, tm] of this.#timers) {
        if (tm.at <= end && (!best || tm.at < best.tm.at)) best = { id, tm };
      }
      if (!best) break;
      this.#timers.delete(best.id);
      this.t = best.tm.at;
      best.tm.fn();
    }
    this.t = end;
    await flush();
  }
}

// A WebSocket stand-in the test drives by hand: open(), fail(), drop(code),
// message(obj). Everything the client sends lands in sent, decoded.
export function fakeSocketClass() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(data));
    }
    close(code) {
      this.readyState = 3;
      this.closedWith = code ?? 1005;
    }
    open() {
      this.readyState = 1;
      this.onopen && this.onopen({});
    }
    fail() {
      this.readyState = 3;
      this.onerror && this.onerror({});
      this.onclose && this.onclose({ code: 1006 });
    }
    drop(code = 1006) {
      this.readyState = 3;
      this.onclose && this.onclose({ code });
    }
    message(obj) {
      this.onmessage && this.onmessage({ data: JSON.stringify(obj) });
    }
  }
  return { FakeSocket, sockets };
}

export function response(status, body) {
  return { status, ok: status >= 200 && status < 300, json: async () => body };
}

// A fetch whose answers the test sets per path; calls records every path.
export function fakeFetch() {
  const f = {
    calls: [],
    down: false, // the network is down: every request rejects
    probe: 400, // what GET /ws/heatmap answers; a gorilla-style upgrade handler says 400
    seq: 1,
    snapshot: (sym) => response(200, frame(sym, f.seq)),
  };
  f.fn = async (url) => {
    const path = new URL(url).pathname;
    f.calls.push(path);
    if (f.down) throw new TypeError("Failed to fetch");
    if (path === "/ws/heatmap") return response(f.probe, { error: "x" });
    const m = /^\/api\/v1\/snapshot\/(.+)$/.exec(path);
    if (m) return f.snapshot(decodeURIComponent(m[1]));
    return response(404, { error: "not found" });
  };
  f.polls = () => f.calls.filter((p) => p.startsWith("/api/v1/snapshot/"));
  return f;
}

export function frame(symbol, seq) {
  return {
    type: "snapshot",
    symbol,
    seq,
    timestamp: `2025-12-29T10:00:${String(seq % 60).padStart(2, "0")}.000000000Z`,
    data: { levels: [{ price: 98000, long_density: 1, short_density: 0 }], current_price: 98450 },
  };
}

// A client wired to fakes, recording its events.
export function setup(opts = {}) {
  const clock = new FakeClock();
  const { FakeSocket, sockets } = fakeSocketClass();
  const net = fakeFetch();
  const rec = { status: [], snapshots: [], errors: [], warnings: [] };
  const client = new LiqstreamClient({
    url: "ws://gw.test/ws/heatmap",
    WebSocket: FakeSocket,
    fetch: net.fn,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5, // jitter factor exactly 1
    ...opts,
  });
  client.addEventListener("status", (e) => rec.status.push(e.detail));
  client.addEventListener("snapshot", (e) => rec.snapshots.push({ seq: e.detail.seq, symbol: e.detail.symbol, via: client.transport }));
  client.addEventListener("error", (e) => rec.errors.push(e.detail));
  client.addEventListener("warning", (e) => rec.warnings.push(e.detail));
  const last = () => sockets[sockets.length - 1];
  const delay = () => client.nextRetryAt - clock.t;
  return { clock, sockets, net, rec, client, last, delay };
}

export function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

export function ok(cond, what) {
  if (!cond) throw new Error(what);
}
