// Unit tests of /liqstream.js, run in Chromium by TestClientUnit
// (browser_test.go) through suite.html: Node may be missing on a CI machine,
// a browser is not. Each case builds a client on the fakes of fakes.js, so
// 62 s of backoff run in milliseconds and every delay is exact.
import { LiqstreamClient, Status, backoffDelay, DEFAULTS } from "/liqstream.js";
import { flush, response, frame, setup, eq, ok } from "./fakes.js";

const BASES = [2000, 4000, 8000, 16000, 32000];

export const cases = {
  // Never-opening sockets with the network down: retries at 2, 4, 8, 16 and
  // 32 s, polling after the third failure, then "failed" and no 6th attempt.
  async "backoff doubles 2s to 32s, 5 attempts, then failed"() {
    const { clock, sockets, net, rec, client, last, delay } = setup();
    net.down = true;
    client.subscribe("BTCUSDT");
    client.connect();
    const delays = [];
    for (let i = 0; i < 5; i++) {
      last().fail();
      delays.push(delay());
      await clock.advance(delay());
      eq(sockets.length, i + 2, `sockets after retry ${i + 1}`);
    }
    eq(delays, BASES, "retry delays");
    last().fail();
    await flush();
    eq(client.status, Status.FAILED, "status after the 5th attempt");
    eq(client.nextRetryAt, null, "next retry");
    await clock.advance(10 * 60 * 1000);
    eq(sockets.length, 6, "sockets 10 min after giving up");
    eq(rec.status, ["polling", "failed"], "status events");
  },

  async "jitter keeps every delay within ±20% and varies it"() {
    for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
      BASES.forEach((b, i) => {
        const d = backoffDelay(i + 1, () => r);
        ok(d >= b * 0.8 && d <= b * 1.2, `attempt ${i + 1} with random ${r}: ${d} ms outside [${b * 0.8}, ${b * 1.2}]`);
      });
    }
    eq(backoffDelay(1, () => 0), 1600, "lowest first delay");
    eq(backoffDelay(6, () => 0.5), 32000, "delays are capped at 32 s");
    eq(DEFAULTS.maxAttempts, 5, "default attempts");
    // Through the client, with Math.random's own jitter: within bounds, and
    // not all equal to the base (the jitter is applied).
    const { clock, net, client, last, delay } = setup({ random: Math.random });
    net.down = true;
    client.connect();
    const seen = [];
    for (let i = 0; i < 5; i++) {
      last().fail();
      const d = delay();
      seen.push(d);
      ok(d >= BASES[i] * 0.8 && d <= BASES[i] * 1.2, `attempt ${i + 1}: ${d} ms outside ±20% of ${BASES[i]}`);
      await clock.advance(d);
    }
    ok(seen.some((d, i) => d !== BASES[i]), `no jitter applied: ${seen}`);
  },

  async "a dropped connection gets 5 attempts, then failed"() {
    const { clock, sockets, net, rec, client, last, delay } = setup();
    client.connect();
    last().open();
    await clock.advance(60000); // long enough to count as a working connection
    net.down = true;
    last().drop(1006);
    eq(client.status, Status.DISCONNECTED, "status right after the drop");
    const delays = [];
    for (let i = 0; i < 5; i++) {
      delays.push(delay());
      await clock.advance(delay());
      last().fail();
    }
    await flush();
    eq(delays, BASES, "retry delays");
    eq(sockets.length, 6, "sockets: the first and 5 attempts");
    eq(client.status, Status.FAILED, "status");
    eq(rec.status, ["connected", "disconnected", "polling", "failed"], "status events");
  },

  async "polling starts after 3 failed attempts, not before"() {
    const { clock, net, rec, client, last, delay } = setup();
    client.subscribe(["BTCUSDT"]);
    client.connect();
    for (let i = 1; i <= 2; i++) {
      last().fail();
      await flush();
      eq(client.status, Status.DISCONNECTED, `status after ${i} failures`);
      eq(net.polls().length, 0, `polls after ${i} failures`);
      await clock.advance(delay());
    }
    last().fail();
    await flush();
    eq(client.status, Status.POLLING, "status after 3 failures");
    eq(net.polls(), ["/api/v1/snapshot/BTCUSDT"], "polls");
    eq(rec.snapshots, [{ seq: 1, symbol: "BTCUSDT", via: "poll" }], "snapshots");
    // Then one poll per update interval (5 s by default).
    net.seq = 2;
    await clock.advance(4999);
    eq(net.polls().length, 1, "polls before the interval ends");
    await clock.advance(1);
    eq(net.polls().length, 2, "polls after one interval");
    eq(rec.snapshots.map((s) => s.seq), [1, 2], "snapshot seqs");
  },

  async "a 503 from /ws/heatmap starts polling at once; the socket is still retried"() {
    const { clock, sockets, net, client, last, delay } = setup();
    net.probe = 503;
    client.subscribe("ETHUSDT", 1);
    client.connect();
    last().fail();
    await flush();
    eq(client.failures, 1, "failures");
    eq(client.status, Status.POLLING, "status after one 503");
    eq(net.polls(), ["/api/v1/snapshot/ETHUSDT"], "polls");
    await clock.advance(1000);
    eq(net.polls().length, 2, "polls after update_interval 1 s");
    await clock.advance(delay());
    eq(sockets.length, 2, "sockets: retried in the background");
  },

  async "with the socket refused for good, polling goes on and the status stays polling"() {
    const { clock, sockets, net, rec, client, last, delay } = setup();
    net.probe = 503;
    client.subscribe("BTCUSDT");
    client.connect();
    for (let i = 0; i < 6; i++) {
      last().fail();
      await flush();
      if (i < 5) await clock.advance(delay());
    }
    eq(sockets.length, 6, "sockets");
    eq(client.status, Status.POLLING, "status after the attempts ran out");
    const before = net.polls().length;
    net.seq = 7;
    await clock.advance(59999);
    ok(net.polls().length >= before + 11, `polls went on: ${before} then ${net.polls().length}`);
    // Only one socket a minute (wsRetryInterval) to a server that refuses them.
    eq(sockets.length, 6, "sockets within the minute");
    await clock.advance(1);
    eq(sockets.length, 7, "sockets after the minute");
    last().fail();
    await flush();
    eq(rec.status, ["polling"], "status events");
  },

  async "after failed, a server that answers again gets the socket back"() {
    const { clock, sockets, net, client, last, delay } = setup();
    net.down = true;
    client.subscribe("BTCUSDT");
    client.connect();
    for (let i = 0; i < 6; i++) {
      last().fail();
      if (i < 5) await clock.advance(delay());
    }
    await flush();
    eq(client.status, Status.FAILED, "status");
    net.down = false;
    await clock.advance(5000);
    eq(client.status, Status.POLLING, "status once a poll succeeds");
    await clock.advance(2400);
    eq(sockets.length, 7, "a new attempt");
    last().open();
    eq(client.status, Status.CONNECTED, "status");
  },

  async "the socket coming back stops polling and resubscribes; frames are not repeated"() {
    const { clock, net, rec, client, last, delay } = setup();
    net.probe = 503;
    client.subscribe(["BTCUSDT", "ETHUSDT"], 2);
    client.connect();
    last().fail();
    await flush();
    eq(client.status, Status.POLLING, "status");
    await clock.advance(delay());
    last().open();
    eq(client.status, Status.CONNECTED, "status");
    eq(last().sent, [{ action: "subscribe", symbols: ["BTCUSDT", "ETHUSDT"], update_interval: 2 }], "sent on open");
    // The server's first frames are the ones just polled: delivered once.
    last().message(frame("BTCUSDT", 1));
    last().message(frame("BTCUSDT", 2));
    eq(rec.snapshots, [
      { seq: 1, symbol: "BTCUSDT", via: "poll" },
      { seq: 1, symbol: "ETHUSDT", via: "poll" },
      { seq: 2, symbol: "BTCUSDT", via: "ws" },
    ], "snapshots");
    const polls = net.polls().length;
    await clock.advance(20000);
    eq(net.polls().length, polls, "polls after the socket opened");
  },

  async "reconnect resubscribes everything held, with the interval"() {
    const { clock, client, last, delay } = setup();
    client.connect();
    last().open();
    client.subscribe(["btcusdt", "ETHUSDT"], 3);
    client.unsubscribe("ETHUSDT");
    client.subscribe("SOLUSDT");
    eq(last().sent, [
      { action: "subscribe", symbols: ["BTCUSDT", "ETHUSDT"], update_interval: 3 },
      { action: "unsubscribe", symbols: ["ETHUSDT"] },
      { action: "subscribe", symbols: ["SOLUSDT"], update_interval: 3 },
    ], "sent");
    last().message({ type: "pong" });
    last().drop(1006);
    eq(client.status, Status.DISCONNECTED, "status");
    eq(delay(), 2000, "first retry");
    await clock.advance(2000);
    last().open();
    eq(last().sent, [{ action: "subscribe", symbols: ["BTCUSDT", "SOLUSDT"], update_interval: 3 }], "sent after reconnect");
    eq(client.attempt, 1, "attempt");
    last().message(frame("BTCUSDT", 1));
    last().drop(1006);
    eq(delay(), 2000, "a connection that delivered resets the backoff");
  },

  async "close code 1012 (gateway restart) reconnects within drainJitter, without the backoff"() {
    const { clock, sockets, client, last, delay } = setup({ random: () => 0.1 });
    client.connect();
    last().open();
    last().message({ type: "pong" });
    last().drop(1012);
    eq(delay(), 500, "delay after 1012: random × 5000 ms");
    await clock.advance(500);
    eq(sockets.length, 2, "sockets");
    last().fail();
    eq(delay(), 1680, "then the usual backoff (2 s, jitter factor 0.84)");
  },

  async "a connection that closes at once does not reset the backoff"() {
    const { clock, client, last, delay } = setup();
    client.connect();
    last().fail();
    await clock.advance(delay());
    last().open();
    last().drop(1006);
    eq(delay(), 4000, "second attempt's delay");
  },

  async "pings every 30 s"() {
    const { clock, client, last } = setup();
    client.connect();
    last().open();
    await clock.advance(29999);
    eq(last().sent, [], "sent before 30 s");
    await clock.advance(1);
    eq(last().sent, [{ action: "ping" }], "sent at 30 s");
    last().message({ type: "pong", timestamp: "2025-12-29T10:00:00Z" });
    await clock.advance(30000);
    eq(last().sent.length, 2, "pings at 60 s");
  },

  async "a socket silent past 45 s is dropped and replaced"() {
    const { clock, sockets, client, last, delay } = setup();
    client.connect();
    last().open();
    await clock.advance(30000); // first ping, nothing comes back
    await clock.advance(30000);
    eq(client.status, Status.DISCONNECTED, "status");
    ok(sockets[0].closedWith != null, "the dead socket was closed");
    eq(delay(), 2000, "retry");
  },

  async "SLOW_CONSUMER warnings make the status slow for a while"() {
    const { clock, rec, client, last } = setup();
    client.connect();
    last().open();
    const w = { type: "warning", code: "SLOW_CONSUMER", message: "Connection slow - may miss updates: 3 dropped", dropped_messages: 3 };
    last().message(w);
    eq(client.status, Status.SLOW, "status");
    eq(rec.warnings, [w], "warning events");
    await clock.advance(10000);
    last().message(w);
    await clock.advance(10000);
    eq(client.status, Status.SLOW, "status 10 s after the second warning");
    await clock.advance(5000);
    eq(client.status, Status.CONNECTED, "status 15 s after it");
  },

  async "an unknown symbol is dropped from the subscriptions with the server's text"() {
    const { client, rec, last } = setup();
    client.connect();
    last().open();
    client.subscribe(["BTCUSDT", "NOPE"]);
    const err = { type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) NOPE; valid symbols: BTCUSDT, ETHUSDT" };
    last().message(err);
    eq(rec.errors.length, 1, "error events");
    eq(rec.errors[0].message, err.message, "error text");
    eq(rec.errors[0].symbols, ["NOPE"], "refused symbols");
    eq(client.subscriptions, ["BTCUSDT"], "subscriptions");
    eq(last().sent.at(-1), { action: "subscribe", symbols: ["BTCUSDT"], update_interval: 5 }, "the rest subscribed again");
  },

  async "an unknown symbol while polling reports the server's 404 text"() {
    const { net, rec, client, last } = setup();
    net.probe = 503;
    net.snapshot = (sym) =>
      sym === "NOPE" ? response(404, { error: 'unknown symbol "NOPE"; valid symbols: BTCUSDT, ETHUSDT' }) : response(200, frame(sym, 1));
    client.subscribe(["NOPE", "BTCUSDT"]);
    client.connect();
    last().fail();
    await flush();
    eq(rec.errors.map((e) => [e.code, e.message]), [["INVALID_SYMBOL", 'unknown symbol "NOPE"; valid symbols: BTCUSDT, ETHUSDT']], "errors");
    eq(client.subscriptions, ["BTCUSDT"], "subscriptions");
    eq(rec.snapshots.length, 1, "snapshots");
  },

  async "close() stops sockets, polls and timers"() {
    const { clock, sockets, net, client, last } = setup();
    net.probe = 503;
    client.subscribe("BTCUSDT");
    client.connect();
    last().fail();
    await flush();
    client.close();
    eq(client.status, Status.DISCONNECTED, "status");
    const polls = net.polls().length;
    await clock.advance(120000);
    eq(sockets.length, 1, "sockets");
    eq(net.polls().length, polls, "polls");
  },

  async "derives the HTTP base from the socket URL"() {
    eq(new LiqstreamClient({ url: "wss://x.test/ws/heatmap" }).httpBase, "https://x.test", "wss");
    eq(new LiqstreamClient("ws://x.test:8080/liq/ws/heatmap").httpBase, "http://x.test:8080/liq", "prefix");
    eq(new LiqstreamClient().url, `ws://${location.host}/ws/heatmap`, "default url");
  },

  // Delta encoding: the subscribe asks for it, a delta based on the last
  // snapshot is applied, and the page sees whole snapshots either way.
  async "delta encoding applies deltas to the last snapshot"() {
    const { client, last, rec } = setup({ encoding: "delta" });
    const data = [];
    client.addEventListener("snapshot", (e) => data.push(e.detail.data));
    client.subscribe("BTCUSDT");
    client.connect();
    last().open();
    eq(last().sent, [{ action: "subscribe", symbols: ["BTCUSDT"], update_interval: 5, encoding: "delta" }], "sent");
    const first = { ...frame("BTCUSDT", 1), epoch: 4 };
    first.data = { levels: [{ price: 100, long_density: 1, short_density: 0 }, { price: 200, long_density: 2, short_density: 0 }], current_price: 150 };
    last().message(first);
    last().message({ type: "delta", symbol: "BTCUSDT", timestamp: "2025-12-29T10:00:02.000000000Z", seq: 2, epoch: 4, base_seq: 1,
      data: { levels: [{ price: 50, long_density: 0, short_density: 5 }, { price: 200, long_density: 3, short_density: 0 }], removed: [100], current_price: 160 } });
    eq(rec.snapshots.map((s) => s.seq), [1, 2], "snapshot seqs");
    eq(data[1], { levels: [{ price: 50, long_density: 0, short_density: 5 }, { price: 200, long_density: 3, short_density: 0 }], current_price: 160 }, "rebuilt data");
    eq(data[0].levels.length, 2, "the first snapshot is left as it was");
    eq([client.deltas, client.resyncs], [1, 0], "deltas, resyncs");
  },

  // A delta whose base this client does not hold (another epoch, a skipped
  // seq) is not applied: the client subscribes again, once per gap, and the
  // full snapshot that answers starts a new chain.
  async "a delta without its base asks for a resync once"() {
    const { client, last, rec } = setup({ encoding: "delta" });
    client.subscribe("BTCUSDT");
    client.connect();
    last().open();
    last().message({ ...frame("BTCUSDT", 1), epoch: 1 });
    const delta = (seq, base, epoch = 1) => ({ type: "delta", symbol: "BTCUSDT", timestamp: `2025-12-29T10:00:0${seq}.000000000Z`, seq, epoch, base_seq: base,
      data: { levels: [], removed: [], current_price: seq } });
    last().message(delta(3, 2));
    last().message(delta(4, 3));
    last().message(delta(2, 1, 2)); // right seq, wrong epoch
    eq(rec.snapshots.map((s) => s.seq), [1], "snapshots: no delta applied");
    eq(last().sent.slice(1), [{ action: "subscribe", symbols: ["BTCUSDT"], update_interval: 5, encoding: "delta" }], "one resync");
    last().message({ ...frame("BTCUSDT", 4), epoch: 1 });
    last().message(delta(5, 4));
    eq(rec.snapshots.map((s) => s.seq), [1, 4, 5], "after the resync");
    eq([client.deltas, client.resyncs], [1, 1], "deltas, resyncs");
    last().message(delta(7, 6));
    eq(client.resyncs, 2, "a later gap resyncs again");
  },
};
