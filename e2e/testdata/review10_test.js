// Regression cases of review issue 10 for /liqstream.js, run in Chromium by
// the TestReview<N>… tests (review10_test.go) through suite.html; each Go test
// runs the cases whose name starts with "review<N> ".
import { DEFAULTS, Status } from "/liqstream.js";
import { flush, response, frame, setup, eq, ok } from "./fakes.js";

// n distinct symbols, S01USDT… (the gateway accepts any [A-Z0-9]{2,20}).
const many = (n, from = 1) => Array.from({ length: n }, (_, i) => `S${String(from + i).padStart(2, "0")}USDT`);

const subscribes = (sent) => sent.filter((m) => m.action === "subscribe");

export const cases = {
  // Item 6: a gateway that does not know its symbols yet refuses everything
  // with an empty valid list. That says nothing about the symbols, so
  // dropping them would leave the page empty for good.
  async "review6 an empty valid list keeps the symbols and subscribes again after a backoff"() {
    const { clock, rec, client, last } = setup();
    client.connect();
    last().open();
    client.subscribe(["BTCUSDT", "ETHUSDT"]);
    eq(last().sent.length, 1, "sent");
    // An old server: no symbols field, only the text.
    last().message({ type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) BTCUSDT, ETHUSDT; valid symbols: " });
    eq(client.subscriptions, ["BTCUSDT", "ETHUSDT"], "subscriptions after an empty valid list");
    eq(rec.errors.length, 1, "error events");
    eq(rec.errors[0].retrying, true, "the error says the client retries");
    await clock.advance(1999);
    eq(last().sent.length, 1, "sent before the backoff ran out");
    await clock.advance(1);
    eq(last().sent.at(-1), { action: "subscribe", symbols: ["BTCUSDT", "ETHUSDT"], update_interval: 5 }, "subscribed again after 2 s");
    // A new server: the field names the symbols, the list is still empty.
    last().message({ type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) BTCUSDT, ETHUSDT; valid symbols: ", symbols: ["BTCUSDT", "ETHUSDT"] });
    eq(client.subscriptions, ["BTCUSDT", "ETHUSDT"], "subscriptions after the second refusal");
    await clock.advance(3999);
    eq(last().sent.length, 2, "sent before the doubled backoff ran out");
    await clock.advance(1);
    eq(last().sent.length, 3, "subscribed again after 4 s more");
    // The server is ready now: frames flow and no more retries are sent
    // (the next would have been due 8 s on; the first ping at 30 s).
    last().message(frame("BTCUSDT", 1));
    eq(rec.snapshots.length, 1, "snapshots once the server knows its symbols");
    await clock.advance(20000);
    eq(subscribes(last().sent).length, 3, "subscribes once it worked");
  },

  async "review6 the retry after an empty valid list does not outlive the socket"() {
    const { clock, sockets, client, last } = setup();
    client.subscribe("BTCUSDT");
    client.connect();
    last().open();
    last().message({ type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) BTCUSDT; valid symbols: ", symbols: ["BTCUSDT"] });
    last().drop(1006);
    await clock.advance(2000);
    eq(sockets.length, 2, "sockets");
    last().open(); // the new socket subscribes everything held on open
    eq(subscribes(last().sent).length, 1, "subscribes on the new socket");
    await clock.advance(60000);
    eq(subscribes(last().sent).length, 1, "no stale retry on the new socket");
    eq(client.subscriptions, ["BTCUSDT"], "subscriptions");
  },

  async "review6 the symbols field names exactly the symbols dropped"() {
    const { rec, client, last } = setup();
    client.connect();
    last().open();
    client.subscribe(["BTCUSDT", "ETHUSDT", "XRPUSDT"]);
    last().message(frame("XRPUSDT", 1));
    // The snapshotter stopped serving XRPUSDT; the gateway unsubscribed it.
    const gone = { type: "error", code: "INVALID_SYMBOL", message: "symbol XRPUSDT is no longer served; valid symbols: BTCUSDT, ETHUSDT", symbols: ["XRPUSDT"] };
    last().message(gone);
    eq(client.subscriptions, ["BTCUSDT", "ETHUSDT"], "subscriptions");
    eq(last().sent.length, 1, "sent: the others are still subscribed on the server");
    eq(rec.errors.map((e) => [e.code, e.message, e.symbols]), [["INVALID_SYMBOL", gone.message, ["XRPUSDT"]]], "error events");
    last().message(frame("XRPUSDT", 2));
    eq(rec.snapshots.map((s) => s.symbol), ["XRPUSDT"], "no frames of the dropped symbol after the error");
    // The field wins over the text: only the symbols it names are dropped.
    client.subscribe("NOPE");
    last().message({ type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) NOPE, ETHUSDT; valid symbols: BTCUSDT", symbols: ["NOPE"] });
    eq(client.subscriptions, ["BTCUSDT", "ETHUSDT"], "subscriptions after a refusal naming NOPE");
  },

  async "review6 a 404 with an empty valid list while polling keeps the symbol"() {
    const { clock, net, rec, client, last } = setup();
    net.probe = 503;
    let ready = false;
    net.snapshot = (sym) => (ready ? response(200, frame(sym, 1)) : response(404, { error: `unknown symbol "${sym}"; valid symbols: ` }));
    client.subscribe("BTCUSDT", 1);
    client.connect();
    last().fail();
    await flush();
    eq(client.status, Status.POLLING, "status");
    eq(client.subscriptions, ["BTCUSDT"], "subscriptions after the 404");
    eq(rec.errors.length, 0, "error events for a server that is not ready");
    ready = true;
    await clock.advance(1000);
    eq(rec.snapshots, [{ seq: 1, symbol: "BTCUSDT", via: "poll" }], "snapshots once the server is ready");
  },

  // Item 8: a draining gateway closes all its sockets with 1012 at once; an
  // immediate reconnect would send all of them at the others in one instant.
  async "review8 close code 1012 reconnects after a uniformly random delay in [0, drainJitter]"() {
    eq(DEFAULTS.drainJitter, 5000, "default drainJitter");
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const { clock, sockets, client, last, delay } = setup({ random: () => r });
      client.connect();
      last().open();
      last().message({ type: "pong" });
      last().drop(1012);
      const want = Math.round(r * 5000);
      eq(delay(), want, `delay after 1012 with random ${r}`);
      if (want > 0) {
        await clock.advance(want - 1);
        eq(sockets.length, 1, `sockets 1 ms before the delay (random ${r})`);
      }
      await clock.advance(want > 0 ? 1 : 0);
      eq(sockets.length, 2, `sockets after the delay (random ${r})`);
      last().fail();
      ok(delay() >= 1600 && delay() <= 2400, `then the usual backoff, got ${delay()}`);
    }
  },

  async "review8 the clients of a drained gateway spread over the window"() {
    // A seeded generator (mulberry32) stands in for Math.random, so the
    // bounds below hold every run, not almost every run.
    let seed = 42;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const delays = [];
    for (let i = 0; i < 200; i++) {
      const { client, last, delay } = setup({ random });
      client.connect();
      last().open();
      last().drop(1012);
      delays.push(delay());
    }
    ok(delays.every((d) => d >= 0 && d <= 5000), `delays outside [0, 5000]: ${delays.filter((d) => d < 0 || d > 5000)}`);
    // 200 clients, 5 s: the first and the last are near the ends, and
    // hardly two come back in the same millisecond.
    ok(Math.min(...delays) < 250 && Math.max(...delays) > 4750, `delays not spread: min ${Math.min(...delays)}, max ${Math.max(...delays)}`);
    ok(new Set(delays).size > 150, `only ${new Set(delays).size} distinct delays of 200`);
  },

  async "review8 drainJitter is an option"() {
    {
      const { client, last, delay } = setup({ drainJitter: 1000, random: () => 0.999999 });
      client.connect();
      last().open();
      last().drop(1012);
      eq(delay(), 1000, "delay with drainJitter 1000");
    }
    {
      const { clock, sockets, client, last, delay } = setup({ drainJitter: 0, random: () => 0.7 });
      client.connect();
      last().open();
      last().drop(1012);
      eq(delay(), 0, "delay with drainJitter 0");
      await clock.advance(0);
      eq(sockets.length, 2, "sockets");
    }
  },

  // Item 9: the server refuses a subscribe of more than 10 symbols
  // (protocol.MaxSymbolsPerMessage) while a connection may hold 100.
  async "review9 the resubscribe after a reconnect splits into messages of at most 10 symbols"() {
    const { clock, client, last } = setup();
    const syms = many(25);
    client.subscribe(syms, 2);
    client.connect();
    for (let round = 0; round < 2; round++) {
      last().open();
      const sent = last().sent;
      eq(sent.map((m) => [m.action, m.symbols.length, m.update_interval]), [
        ["subscribe", 10, 2],
        ["subscribe", 10, 2],
        ["subscribe", 5, 2],
      ], `messages on open (round ${round})`);
      eq(sent.flatMap((m) => m.symbols), syms, `symbols on open (round ${round})`);
      last().message({ type: "pong" });
      last().drop(1006);
      await clock.advance(2000);
    }
  },

  async "review9 subscribe and unsubscribe of more than 10 symbols are split"() {
    const { client, last } = setup();
    client.connect();
    last().open();
    const syms = many(23);
    client.subscribe(syms, 3);
    client.unsubscribe(syms.slice(0, 21));
    const sent = last().sent;
    eq(sent.map((m) => [m.action, m.symbols.length]), [
      ["subscribe", 10],
      ["subscribe", 10],
      ["subscribe", 3],
      ["unsubscribe", 10],
      ["unsubscribe", 10],
      ["unsubscribe", 1],
    ], "messages");
    ok(sent.every((m) => m.symbols.length >= 1 && m.symbols.length <= 10), "1 to 10 symbols per message");
    eq(sent.filter((m) => m.action === "subscribe").flatMap((m) => m.symbols), syms, "subscribed symbols");
    eq(sent.filter((m) => m.action === "unsubscribe").flatMap((m) => m.symbols), syms.slice(0, 21), "unsubscribed symbols");
    eq(client.subscriptions, syms.slice(21), "subscriptions");
  },

  async "review9 the subscribe after a refused symbol is split too"() {
    const { client, last } = setup();
    client.connect();
    last().open();
    client.subscribe([...many(14), "NOPE"]);
    last().message({ type: "error", code: "INVALID_SYMBOL", message: "unknown symbol(s) NOPE; valid symbols: S01USDT", symbols: ["NOPE"] });
    const after = last().sent.slice(2);
    eq(after.map((m) => [m.action, m.symbols.length]), [["subscribe", 10], ["subscribe", 4]], "messages after the refusal");
    eq(after.flatMap((m) => m.symbols), many(14), "symbols subscribed again");
  },

  // Item 11: a client that gave up the socket while polling works kept
  // polling forever, even after the server took sockets again.
  async "review11 while polling after giving up, the socket is retried every wsRetryInterval"() {
    eq(DEFAULTS.wsRetryInterval, 60000, "default wsRetryInterval");
    const { clock, sockets, net, client, last, delay } = setup();
    net.probe = 503; // WebSocket disabled on the server, polls answered
    client.subscribe("BTCUSDT");
    client.connect();
    for (let i = 0; i < 6; i++) {
      last().fail();
      await flush();
      if (i < 5) await clock.advance(delay());
    }
    eq(sockets.length, 6, "sockets when the attempts ran out");
    eq(client.status, Status.POLLING, "status");
    eq(delay(), 60000, "next socket attempt");
    await clock.advance(59999);
    eq(sockets.length, 6, "sockets 1 ms before the slow retry");
    await clock.advance(1);
    eq(sockets.length, 7, "sockets at the slow retry");
    last().fail();
    await flush();
    eq(client.status, Status.POLLING, "status after a failed slow retry");
    eq(delay(), 60000, "the slow retry goes on");
    await clock.advance(60000);
    eq(sockets.length, 8, "sockets at the second slow retry");
    last().open();
    eq(client.status, Status.CONNECTED, "status once the socket opened");
    eq(last().sent, [{ action: "subscribe", symbols: ["BTCUSDT"], update_interval: 5 }], "subscribed on the socket");
    const polls = net.polls().length;
    await clock.advance(30000);
    eq(net.polls().length, polls, "polls after the socket opened");
  },

  async "review11 wsRetryInterval is an option, and a refused upgrade without 503 is retried too"() {
    const { clock, sockets, client, last, delay } = setup({ wsRetryInterval: 10000 });
    // Polls answered, sockets refused without a 503 (e.g. a proxy that does
    // not pass upgrades): the probe says 400.
    client.subscribe("BTCUSDT");
    client.connect();
    for (let i = 0; i < 6; i++) {
      last().fail();
      await flush();
      if (i < 5) await clock.advance(delay());
    }
    eq(client.status, Status.POLLING, "status");
    eq(delay(), 10000, "next socket attempt");
    await clock.advance(10000);
    eq(sockets.length, 7, "sockets after wsRetryInterval");
    last().open();
    eq(client.status, Status.CONNECTED, "status");
  },
};
