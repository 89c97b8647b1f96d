// liqstream.js — the browser client of liqstream's live liquidation heatmap.
//
// A dependency-free ES module: import { LiqstreamClient } from "/liqstream.js".
// It keeps a WebSocket to /ws/heatmap open for as long as the page lives:
// reconnects with backoff, resubscribes, falls back to HTTP polling when the
// socket cannot be had, and tells the page how data is flowing through one
// status. docs/CLIENT.md is the reference; docs/API.md the protocol.

/** The values of the "status" event and of client.status. */
export const Status = Object.freeze({
  CONNECTED: "connected", // socket open, snapshots stream
  SLOW: "slow", // socket open, but the server reported SLOW_CONSUMER recently
  DISCONNECTED: "disconnected", // socket lost, reconnecting; no data flows yet
  POLLING: "polling", // snapshots come from /api/v1/snapshot/{symbol}
  FAILED: "failed", // socket given up and polling does not reach the server
});

/** Tunables; every one can be overridden through the constructor. */
export const DEFAULTS = Object.freeze({
  updateInterval: 5, // seconds between snapshots of a symbol; also the poll period
  reconnectBase: 2000, // first retry delay, doubled per attempt ...
  reconnectMax: 32000, // ... up to this
  maxAttempts: 5, // reconnect attempts per outage: 2, 4, 8, 16, 32 s
  jitter: 0.2, // each delay is scaled by a random factor in [1-jitter, 1+jitter)
  pollAfterFailures: 3, // failed connection attempts in a row before polling
  pingInterval: 30000, // the server closes peers silent for 60 s
  silenceTimeout: 45000, // nothing received for this long at a ping: the socket is dead
  slowHold: 15000, // "slow" reverts to "connected" this long after the last warning
  drainJitter: 5000, // after close code 1012, reconnect after a random delay in [0, drainJitter] ms
  wsRetryInterval: 60000, // polling after the attempts ran out: try the socket again this often
  encoding: "full", // "delta": after a full snapshot the server sends only what changed (docs/API.md)
});

const OPEN = 1; // WebSocket.OPEN, spelled out so that a fake socket need not define it
const SNAPSHOT_PATH = "/api/v1/snapshot/";
// The server refuses a subscribe or unsubscribe naming more symbols than this
// (protocol.MaxSymbolsPerMessage), while a connection may hold many more.
const MAX_SYMBOLS_PER_MESSAGE = 10;

/**
 * The delay before reconnect attempt number `attempt` (1-based): reconnectBase
 * doubled per attempt, capped at reconnectMax, times a jitter factor so that
 * thousands of browsers dropped by one gateway do not come back in lockstep.
 */
export function backoffDelay(attempt, random = Math.random, opts = DEFAULTS) {
  const base = Math.min(opts.reconnectBase * 2 ** (attempt - 1), opts.reconnectMax);
  return Math.round(base * (1 + opts.jitter * (2 * random() - 1)));
}

/**
 * LiqstreamClient streams snapshots of the symbols it is subscribed to.
 *
 * Events (all CustomEvent, payload in `event.detail`):
 *   "snapshot" — a snapshot frame (docs/API.md), each frame once, whichever way it came;
 *                with encoding "delta" the deltas are applied here, so every event is a
 *                whole snapshot all the same
 *   "status"   — one of Status, on every change
 *   "warning"  — the server's warning frame (e.g. SLOW_CONSUMER)
 *   "error"    — the server's error frame; for INVALID_SYMBOL also `symbols`, the refused
 *                symbols, which the client has dropped from its subscriptions, unless
 *                `retrying` is true (the server did not know any symbol yet)
 *   "pong"     — the server's answer to a ping
 */
export class LiqstreamClient extends EventTarget {
  #o;
  #WebSocket;
  #fetch;
  #setTimeout;
  #clearTimeout;
  #random;
  #now;

  #symbols = new Set();
  #lastKey = new Map(); // symbol -> "timestamp|seq" of the last frame emitted
  #state = new Map(); // symbol -> the last snapshot emitted, the base of the next delta
  #resyncing = new Set(); // symbols asked again after a delta whose base we lack
  #want = false; // connect() called and close() not since
  #ws = null;
  #isOpen = false; // the current socket has opened and not closed
  #gen = 0; // bumps whenever the current socket is let go; stale callbacks compare it
  #openedAt = 0;
  #gotMessage = false;
  #lastRecv = 0;
  #retryTimer = null;
  #drained = false; // the next retry is a drain's (close code 1012): drainJitter, not the backoff
  #pingTimer = null;
  #slowTimer = null;
  #resubTimer = null; // subscribe again: the server knew no symbols yet
  #resubAttempt = 0;
  #unavailable = false; // the WebSocket endpoint answered 503
  #givenUp = false;
  #polling = false;
  #pollGen = 0;
  #pollTimer = null;
  #pollHealth = null; // did the last poll reach the server: null (unknown), true, false

  /**
   * @param {string|object} [options] the WebSocket URL, or an object:
   *   url        WebSocket URL (default ws(s)://<this host>/ws/heatmap)
   *   httpBase   base of the HTTP API for polling (default: derived from url)
   *   updateInterval and the other DEFAULTS keys
   *   WebSocket, fetch, setTimeout, clearTimeout, random, now — injectable for tests
   */
  constructor(options = {}) {
    super();
    if (typeof options === "string") options = { url: options };
    this.#o = { ...DEFAULTS, ...options };
    /** The WebSocket URL. */
    this.url = options.url || defaultURL();
    /** Where /api/v1/snapshot/{symbol} and the 503 probe are fetched from. */
    this.httpBase = options.httpBase ?? httpBaseOf(this.url);
    /** Seconds between snapshots of a symbol, sent with every subscribe. */
    this.updateInterval = clampInterval(this.#o.updateInterval);
    /** "full" or "delta", sent with every subscribe. */
    this.encoding = this.#o.encoding === "delta" ? "delta" : "full";
    /** Deltas applied, and resyncs asked for (a delta whose base was missing). */
    this.deltas = 0;
    this.resyncs = 0;
    this.#WebSocket = options.WebSocket || globalThis.WebSocket;
    this.#fetch = options.fetch || ((...a) => globalThis.fetch(...a));
    this.#setTimeout = options.setTimeout || ((f, ms) => globalThis.setTimeout(f, ms));
    this.#clearTimeout = options.clearTimeout || ((id) => globalThis.clearTimeout(id));
    this.#random = options.random || Math.random;
    this.#now = options.now || Date.now;
    /** The current Status. */
    this.status = Status.DISCONNECTED;
    /** How the latest snapshot arrived: "ws", "poll" or null before the first. */
    this.transport = null;
    /** Reconnect attempts made in the current outage (0 while connected). */
    this.attempt = 0;
    /** Connection attempts in a row that never opened. */
    this.failures = 0;
    /** When the next reconnect attempt is due (ms, the `now` clock), or null. */
    this.nextRetryAt = null;
  }

  /** The subscribed symbols, upper case. */
  get subscriptions() {
    return [...this.#symbols];
  }

  /** Opens the socket (and keeps it open) until close(). Returns this. */
  connect() {
    if (this.#want) return this;
    this.#want = true;
    this.#resetOutage();
    this.#open();
    return this;
  }

  /**
   * Starts over after the client gave up ("failed") or when the page knows the
   * network is back (the browser's "online" event): a fresh budget of
   * attempts, the first one now.
   */
  reconnect() {
    if (!this.#want) return this.connect();
    if (this.#ws) return this;
    this.#cancelRetry();
    this.#resetOutage();
    this.#open();
    return this;
  }

  /** Stops everything; subscriptions are kept for a later connect(). */
  close() {
    this.#want = false;
    this.#cancelRetry();
    this.#stopPolling();
    this.#stopPing();
    this.#clearSlow();
    this.#cancelResubscribe();
    const ws = this.#ws;
    this.#ws = null;
    this.#isOpen = false;
    this.#gen++;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this.#setStatus(Status.DISCONNECTED);
  }

  /**
   * Adds symbols (a string or an array; case-insensitive). `updateInterval`
   * (seconds, 1–60) applies to every subscribed symbol from now on.
   */
  subscribe(symbols, updateInterval) {
    const list = normalize(symbols);
    if (updateInterval != null) this.updateInterval = clampInterval(updateInterval);
    for (const s of list) this.#symbols.add(s);
    this.#sendSubscribe(list);
    if (this.#polling) for (const s of list) this.#pollOne(s, this.#pollGen);
    return this;
  }

  /** Removes symbols; their snapshots stop, also any already in flight. */
  unsubscribe(symbols) {
    const list = normalize(symbols).filter((s) => this.#symbols.has(s));
    for (const s of list) {
      this.#symbols.delete(s);
      this.#forget(s);
    }
    this.#sendSymbols("unsubscribe", list);
    return this;
  }

  // ---- socket ----

  #open() {
    this.#retryTimer = null;
    this.nextRetryAt = null;
    if (!this.#want || this.#ws) return;
    let ws;
    try {
      ws = new this.#WebSocket(this.url);
    } catch {
      // A URL the constructor refuses fails like a refused connection.
      this.#onClose(false, 1006);
      return;
    }
    this.#ws = ws;
    const gen = ++this.#gen;
    let opened = false;
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      opened = true;
      this.#onOpen();
    };
    ws.onmessage = (ev) => {
      if (gen === this.#gen) this.#onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen !== this.#gen) return;
      this.#ws = null;
      this.#gen++;
      this.#onClose(opened, ev && ev.code);
    };
    ws.onerror = () => {}; // a close event follows and carries what matters
  }

  #onOpen() {
    this.#isOpen = true;
    this.failures = 0;
    this.#unavailable = false;
    this.#givenUp = false;
    this.#openedAt = this.#lastRecv = this.#now();
    this.#gotMessage = false;
    this.#stopPolling();
    this.#setStatus(Status.CONNECTED);
    this.#sendSubscribe([...this.#symbols]);
    this.#schedulePing();
  }

  #onClose(opened, code) {
    this.#isOpen = false;
    this.#stopPing();
    this.#clearSlow();
    this.#cancelResubscribe();
    if (!this.#want) return;
    if (opened) {
      // Only a connection that proved itself resets the budget: a server
      // that accepts and closes at once must not be hammered every 2 s.
      if (this.#gotMessage || this.#now() - this.#openedAt >= this.#o.reconnectBase * 2) this.attempt = 0;
      // 1012 is a gateway draining for a restart: the balancer already has
      // another one, so come back soon, without the backoff (docs/API.md,
      // close codes); but not all at once, or the drained gateway's clients
      // land on the others in the same instant.
      this.#drained = code === 1012;
      this.#setStatus(Status.DISCONNECTED);
    } else {
      this.failures++;
      this.#probe();
      if (this.failures >= this.#o.pollAfterFailures) this.#startPolling();
    }
    this.#scheduleRetry();
  }

  #scheduleRetry() {
    if (this.#retryTimer != null || !this.#want) return;
    let delay;
    if (this.#drained) {
      this.#drained = false;
      delay = Math.round(this.#random() * this.#o.drainJitter);
    } else {
      if (this.attempt >= this.#o.maxAttempts) {
        this.#giveUp();
        return;
      }
      this.attempt++;
      delay = backoffDelay(this.attempt, this.#random, this.#o);
    }
    this.nextRetryAt = this.#now() + delay;
    this.#retryTimer = this.#setTimeout(() => this.#open(), delay);
  }

  #cancelRetry() {
    if (this.#retryTimer != null) this.#clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.nextRetryAt = null;
  }

  #resetOutage() {
    this.attempt = 0;
    this.failures = 0;
    this.#givenUp = false;
    this.#drained = false;
  }

  #giveUp() {
    this.#givenUp = true;
    this.nextRetryAt = null;
    // Polling is normally running by now (3 failures come before 5
    // attempts); with other settings it is the last resort.
    this.#startPolling();
    this.#setStatus(this.#pollHealth === true ? Status.POLLING : Status.FAILED);
    this.#armSocketRetry();
  }

  // Polling works but the socket was given up: a server that refused sockets
  // (disabled, draining, full, a proxy that dropped upgrades) may take them
  // again, so try one now and then. When it opens, polling stops.
  #armSocketRetry() {
    if (this.#retryTimer != null || this.#ws || !this.#want || this.status !== Status.POLLING) return;
    const delay = this.#o.wsRetryInterval;
    this.nextRetryAt = this.#now() + delay;
    this.#retryTimer = this.#setTimeout(() => this.#open(), delay);
  }

  // A browser WebSocket hides the HTTP status of a refused upgrade, so ask
  // over plain HTTP: 503 means the server refuses sockets (ws_enabled=false,
  // draining, full) but still answers polls.
  #probe() {
    Promise.resolve()
      .then(() => this.#fetch(this.httpBase + "/ws/heatmap", { cache: "no-store" }))
      .then(
        (res) => {
          if (res && res.status === 503 && this.#want && !this.#isOpen) {
            this.#unavailable = true;
            this.#startPolling();
          }
        },
        () => {},
      );
  }

  #onMessage(data) {
    this.#lastRecv = this.#now();
    this.#gotMessage = true;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    switch (msg && msg.type) {
      case "snapshot":
        this.#resubAttempt = 0;
        this.#resyncing.delete(msg.symbol);
        this.#deliver(msg, "ws");
        break;
      case "delta":
        this.#onDelta(msg);
        break;
      case "warning":
        if (msg.code === "SLOW_CONSUMER") this.#markSlow();
        this.#emit("warning", msg);
        break;
      case "error":
        this.#onServerError(msg);
        break;
      case "pong":
        this.#emit("pong", msg);
        break;
    }
  }

  // A subscribe is all or nothing on the server, so a symbol it refuses must
  // leave the set: resubscribing it on every reconnect would refuse the rest
  // too. The error frame does not say which message it answers, so the
  // remaining symbols are subscribed again (their latest frames are
  // deduplicated). The same error saying "no longer served" tells that the
  // server stopped serving a symbol and unsubscribed it, and only it: the
  // others stay subscribed as they are.
  //
  // An empty valid list says nothing about the symbols: the server does not
  // know any yet (a gateway that just started). Dropping them would leave the
  // page empty for good, so they are kept and subscribed again after a backoff.
  #onServerError(msg) {
    if (msg.code === "INVALID_SYMBOL") {
      const named = Array.isArray(msg.symbols) ? normalize(msg.symbols) : refusedIn(msg.message);
      msg.symbols = named;
      if (/valid symbols:\s*$/.test(msg.message || "")) {
        msg.retrying = true;
        this.#scheduleResubscribe();
      } else {
        const held = named.filter((s) => this.#symbols.has(s));
        if (held.length) {
          for (const s of held) {
            this.#symbols.delete(s);
            this.#forget(s);
          }
          if (!/no longer served/.test(msg.message || "")) this.#sendSubscribe([...this.#symbols]);
        }
      }
    }
    this.#emit("error", msg);
  }

  #scheduleResubscribe() {
    if (this.#resubTimer != null) return;
    const delay = backoffDelay(++this.#resubAttempt, this.#random, this.#o);
    const gen = this.#gen;
    this.#resubTimer = this.#setTimeout(() => {
      this.#resubTimer = null;
      // A new socket subscribed everything when it opened.
      if (gen === this.#gen) this.#sendSubscribe([...this.#symbols]);
    }, delay);
  }

  #cancelResubscribe() {
    if (this.#resubTimer != null) this.#clearTimeout(this.#resubTimer);
    this.#resubTimer = null;
    this.#resubAttempt = 0;
  }

  #schedulePing() {
    this.#stopPing();
    this.#pingTimer = this.#setTimeout(() => {
      this.#pingTimer = null;
      if (!this.#ws) return;
      // A laptop waking from sleep keeps a socket that looks open but is
      // dead; the browser may take minutes to notice, so notice here.
      if (this.#now() - this.#lastRecv > this.#o.silenceTimeout) {
        this.#dropDeadSocket();
        return;
      }
      this.#send({ action: "ping" });
      this.#schedulePing();
    }, this.#o.pingInterval);
  }

  #stopPing() {
    if (this.#pingTimer != null) this.#clearTimeout(this.#pingTimer);
    this.#pingTimer = null;
  }

  #dropDeadSocket() {
    const ws = this.#ws;
    this.#ws = null;
    this.#gen++;
    try {
      ws.close();
    } catch {
      // nothing to close
    }
    this.#onClose(true, 1006);
  }

  #markSlow() {
    if (this.status !== Status.CONNECTED && this.status !== Status.SLOW) return;
    this.#setStatus(Status.SLOW);
    this.#clearSlow();
    this.#slowTimer = this.#setTimeout(() => {
      this.#slowTimer = null;
      if (this.status === Status.SLOW && this.#ws) this.#setStatus(Status.CONNECTED);
    }, this.#o.slowHold);
  }

  #clearSlow() {
    if (this.#slowTimer != null) this.#clearTimeout(this.#slowTimer);
    this.#slowTimer = null;
  }

  #sendSubscribe(list) {
    const extra = { update_interval: this.updateInterval };
    if (this.encoding === "delta") extra.encoding = "delta";
    this.#sendSymbols("subscribe", list, extra);
  }

  // A delta applies to the snapshot of its epoch and base_seq. The server
  // only sends one when that is the frame it sent last; if this client lacks
  // it anyway (a frame it dropped, a subscription it just changed), it asks
  // for the newest snapshot whole by subscribing again, once per gap.
  #onDelta(msg) {
    if (!this.#symbols.has(msg.symbol)) return;
    const base = this.#state.get(msg.symbol);
    if (!base || (base.epoch || 0) !== (msg.epoch || 0) || base.seq !== msg.base_seq) {
      if (!this.#resyncing.has(msg.symbol)) {
        this.#resyncing.add(msg.symbol);
        this.resyncs++;
        this.#sendSubscribe([msg.symbol]);
      }
      return;
    }
    this.deltas++;
    const frame = { type: "snapshot", symbol: msg.symbol, timestamp: msg.timestamp, seq: msg.seq, data: applyDelta(base.data, msg.data) };
    if (msg.epoch != null) frame.epoch = msg.epoch;
    this.#deliver(frame, "ws");
  }

  #forget(symbol) {
    this.#lastKey.delete(symbol);
    this.#state.delete(symbol);
    this.#resyncing.delete(symbol);
  }

  // One message per MAX_SYMBOLS_PER_MESSAGE symbols: the server refuses
  // longer lists, and each message is all or nothing on its own.
  #sendSymbols(action, list, extra = {}) {
    for (let i = 0; i < list.length; i += MAX_SYMBOLS_PER_MESSAGE) {
      this.#send({ action, symbols: list.slice(i, i + MAX_SYMBOLS_PER_MESSAGE), ...extra });
    }
  }

  #send(obj) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  // ---- polling ----

  #startPolling() {
    if (this.#polling || !this.#want) return;
    this.#polling = true;
    this.#pollHealth = null;
    this.#setStatus(Status.POLLING);
    this.#pollTick();
  }

  #stopPolling() {
    if (!this.#polling) return;
    this.#polling = false;
    this.#pollGen++;
    if (this.#pollTimer != null) this.#clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    this.#pollHealth = null;
  }

  #pollTick() {
    this.#pollTimer = null;
    const gen = this.#pollGen;
    const syms = [...this.#symbols];
    Promise.all(syms.map((s) => this.#pollOne(s, gen))).then((reached) => {
      if (gen !== this.#pollGen) return;
      if (syms.length) this.#pollResult(reached.some(Boolean));
      // Scheduled after the answers, so a slow server never has polls pile up.
      if (gen === this.#pollGen) this.#pollTimer = this.#setTimeout(() => this.#pollTick(), this.updateInterval * 1000);
    });
  }

  // Resolves to whether the server answered at all.
  async #pollOne(sym, gen) {
    try {
      const res = await this.#fetch(this.httpBase + SNAPSHOT_PATH + encodeURIComponent(sym), { cache: "no-store" });
      if (gen !== this.#pollGen) return true;
      if (res.status === 404) {
        const body = await res.json().catch(() => ({}));
        // A server that knows no symbol yet: ask again next round.
        if (/valid symbols:\s*$/.test((body && body.error) || "")) return true;
        if (gen === this.#pollGen && this.#symbols.has(sym)) {
          this.#symbols.delete(sym);
          this.#lastKey.delete(sym);
          this.#emit("error", {
            type: "error",
            code: "INVALID_SYMBOL",
            message: (body && body.error) || `unknown symbol ${sym}`,
            symbols: [sym],
          });
        }
        return true;
      }
      if (!res.ok) return res.status === 503; // 503: no snapshot yet, but the server is up
      const frame = await res.json();
      if (gen === this.#pollGen) this.#deliver(frame, "poll");
      return true;
    } catch {
      return false;
    }
  }

  #pollResult(ok) {
    this.#pollHealth = ok;
    if (!this.#givenUp) return;
    if (!ok) {
      // Nothing reaches the server: "failed" retries nothing until polls
      // answer again (or the page calls reconnect()).
      if (!this.#ws) this.#cancelRetry();
      this.#setStatus(Status.FAILED);
      return;
    }
    const wasFailed = this.status === Status.FAILED;
    this.#setStatus(Status.POLLING);
    // The server is reachable again after an outage that exhausted the
    // attempts: try the socket with a fresh budget, unless it refused sockets
    // (then polling is how this server is meant to be used).
    if (wasFailed && !this.#unavailable && this.#retryTimer == null && !this.#ws) {
      this.#resetOutage();
      this.#scheduleRetry();
      return;
    }
    this.#armSocketRetry();
  }

  // ---- events ----

  #deliver(frame, via) {
    if (!frame || frame.type !== "snapshot" || !this.#symbols.has(frame.symbol)) return;
    const key = `${frame.timestamp}|${frame.seq}`;
    if (this.#lastKey.get(frame.symbol) === key) return; // same frame by the other path
    this.#lastKey.set(frame.symbol, key);
    this.#state.set(frame.symbol, frame);
    this.transport = via;
    this.#emit("snapshot", frame);
  }

  #setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.#emit("status", s);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * applyDelta returns the snapshot data `data` turned into the next one by a
 * delta's data: its levels replace or add levels of the same price, its
 * `removed` prices go, every other field is the delta's. Levels stay sorted
 * by price. `data` is not modified.
 */
export function applyDelta(data, delta) {
  const byPrice = new Map();
  for (const l of data.levels || []) byPrice.set(l.price, l);
  for (const p of delta.removed || []) byPrice.delete(p);
  for (const l of delta.levels || []) byPrice.set(l.price, l);
  const out = { ...delta };
  delete out.removed;
  out.levels = [...byPrice.values()].sort((a, b) => a.price - b.price);
  return out;
}

// ---- realised liquidations ----

/**
 * liquidationKey names one realised liquidation across frames. A frame
 * carries its open candle's liquidations whole (`data.liquidations`), so the
 * same one comes again in every frame until the candle closes; these are the
 * fields the snapshotter's store tells liquidations apart by.
 */
export function liquidationKey(l) {
  return `${l.time}|${l.side}|${l.price}|${l.quantity}`;
}

/**
 * markRadius is the radius of a liquidation's mark: its area is proportional
 * to `notional`, the largest (`ref`) gets `max`, and none is smaller than
 * `min` so a small one stays visible and hoverable.
 */
export function markRadius(notional, ref, min = 3, max = 16) {
  if (!(notional > 0) || !(ref > 0)) return min;
  return Math.min(max, Math.max(min, max * Math.sqrt(notional / ref)));
}

/**
 * LiquidationMarks keeps the realised liquidations a page has seen, once
 * each: frames bring only the open candle's, and a chart wants the recent
 * ones too. The history is bounded by age (`maxAge` ms before the newest
 * time seen: the data's clock, so a slow or skewed browser clock drops
 * nothing early) and by count (`maxCount`, the oldest go first), so a page
 * left open for days holds a bounded set.
 */
export class LiquidationMarks {
  #byKey = new Map();
  #list = []; // oldest first
  #newest = -Infinity;

  constructor({ maxAge = 3600e3, maxCount = 1000 } = {}) {
    this.maxAge = maxAge;
    this.maxCount = maxCount;
  }

  /**
   * add records a frame's liquidations, `candleTime` being its candle's
   * open_time (the column a mark belongs to). Entries already held, and
   * malformed ones, are skipped. Returns how many were new.
   */
  add(liquidations, candleTime) {
    const candle = Date.parse(candleTime);
    let added = 0;
    let sorted = true;
    for (const l of liquidations || []) {
      const time = Date.parse(l && l.time);
      if (!Number.isFinite(time) || (l.side !== "long" && l.side !== "short") || !(l.price > 0) || !(l.notional >= 0)) continue;
      const key = liquidationKey(l);
      if (this.#byKey.has(key)) continue;
      const m = { key, time, side: l.side, price: l.price, quantity: l.quantity, notional: l.notional, candle: Number.isFinite(candle) ? candle : time };
      const prev = this.#list[this.#list.length - 1];
      if (prev && prev.time > time) sorted = false;
      this.#list.push(m);
      this.#byKey.set(key, m);
      this.#newest = Math.max(this.#newest, time);
      added++;
    }
    if (Number.isFinite(candle)) this.#newest = Math.max(this.#newest, candle);
    if (!sorted) this.#list.sort((a, b) => a.time - b.time);
    this.#prune();
    return added;
  }

  #prune() {
    const cutoff = this.#newest - this.maxAge;
    let drop = 0;
    while (drop < this.#list.length && (this.#list[drop].time < cutoff || this.#list.length - drop > this.maxCount)) {
      this.#byKey.delete(this.#list[drop].key);
      drop++;
    }
    if (drop) this.#list.splice(0, drop);
  }

  /** The marks held, oldest first: {key, time, side, price, quantity, notional, candle} (times in ms). */
  get marks() {
    return this.#list;
  }

  get size() {
    return this.#list.length;
  }

  /** The largest notional held, 0 when none: the reference of markRadius. */
  maxNotional() {
    let m = 0;
    for (const x of this.#list) m = Math.max(m, x.notional);
    return m;
  }

  clear() {
    this.#byKey.clear();
    this.#list = [];
    this.#newest = -Infinity;
  }
}

function normalize(symbols) {
  const list = typeof symbols === "string" ? [symbols] : [...(symbols || [])];
  return [...new Set(list.map((s) => String(s).trim().toUpperCase()).filter(Boolean))];
}

// The symbols an INVALID_SYMBOL message names, for servers that send no
// "symbols" field: "unknown symbol(s) A, B; valid symbols: …" or
// "symbol A is no longer served; valid symbols: …".
function refusedIn(message) {
  const m = /unknown symbol\(s\) ([^;]+)/.exec(message || "") || /symbol (\S+) is no longer served/.exec(message || "");
  return m ? normalize(m[1].split(",")) : [];
}

function clampInterval(v) {
  const n = Math.round(Number(v));
  if (!Number.isFinite(n)) return DEFAULTS.updateInterval;
  return Math.min(60, Math.max(1, n));
}

function defaultURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws/heatmap`;
}

// ws://host/prefix/ws/heatmap -> http://host/prefix, so a gateway mounted
// under a path prefix is polled under the same prefix.
function httpBaseOf(url) {
  const u = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  const proto = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  const path = u.pathname.replace(/\/ws\/heatmap\/?$/, "").replace(/\/$/, "");
  return `${proto}//${u.host}${path}`;
}
