// Unit tests of the realised-liquidation helpers of /liqstream.js (the
// page's marks) and of data.liquidations through applyDelta, run in Chromium
// by TestClientUnitLiquidations (liquidations_browser_test.go) through
// suite.html, as client_test.js is.
import { LiquidationMarks, liquidationKey, markRadius, applyDelta } from "/liqstream.js";
import { setup, frame, eq, ok } from "./fakes.js";

// One liquidation at 2026-11-30 12:mm:ss UTC.
function liq(mmss, side, price, quantity, notional = price * quantity) {
  return { time: `2026-11-30T12:${mmss}.000000000Z`, side, price, quantity, notional };
}

const A = liq("01:00", "long", 95500, 2);
const B = liq("02:30", "short", 96200, 0.5);
const C = liq("03:10", "long", 94800, 20);

export const cases = {
  // Deltas carry liquidations whole: applyDelta takes the delta's list as it is.
  async "applyDelta carries a delta's liquidations whole"() {
    const data = { levels: [{ price: 100, long_density: 1, short_density: 0 }], current_price: 150, liquidations: [A] };
    const out = applyDelta(data, { levels: [], removed: [], current_price: 151, liquidations: [A, B] });
    eq(out.liquidations, [A, B], "liquidations after the delta");
    eq(data.liquidations, [A], "the base is left as it was");
    eq(out.levels, data.levels, "levels");
  },

  // The field is absent when the candle has none: a delta without it means
  // the new snapshot has none (a new candle), not "unchanged".
  async "applyDelta without liquidations clears them"() {
    const data = { levels: [], current_price: 150, liquidations: [A, B] };
    const out = applyDelta(data, { levels: [], removed: [], current_price: 151 });
    ok(!("liquidations" in out), `liquidations kept: ${JSON.stringify(out.liquidations)}`);
  },

  // The same through the client on delta encoding: the snapshots it emits
  // hold what the server's whole snapshots would.
  async "delta frames carry and clear liquidations through the client"() {
    const { client, last } = setup({ encoding: "delta" });
    const got = [];
    client.addEventListener("snapshot", (e) => got.push(e.detail.data.liquidations));
    client.subscribe("BTCUSDT");
    client.connect();
    last().open();
    const first = { ...frame("BTCUSDT", 1), epoch: 1 };
    first.data = { ...first.data, liquidations: [A] };
    last().message(first);
    const delta = (seq, extra) => ({ type: "delta", symbol: "BTCUSDT", timestamp: `2026-11-30T12:00:0${seq}.000000000Z`, seq, epoch: 1, base_seq: seq - 1,
      data: { levels: [], removed: [], current_price: 98450, ...extra } });
    last().message(delta(2, { liquidations: [A, B] }));
    last().message(delta(3, {}));
    eq(got, [[A], [A, B], undefined], "liquidations per snapshot");
    eq(client.deltas, 2, "deltas applied");
  },

  // Every frame of a candle repeats its liquidations: one mark each.
  async "the same liquidation in successive frames is one mark"() {
    const marks = new LiquidationMarks();
    eq(marks.add([A], "2026-11-30T12:00:00.000000000Z"), 1, "first frame adds");
    eq(marks.add([A, B], "2026-11-30T12:00:00.000000000Z"), 1, "second frame adds only B");
    eq(marks.add([A, B], "2026-11-30T12:00:00.000000000Z"), 0, "third frame adds nothing");
    eq(marks.size, 2, "marks");
    eq(marks.marks.map((m) => m.key), [liquidationKey(A), liquidationKey(B)], "keys, oldest first");
    // Same time and price, another quantity: another liquidation.
    eq(marks.add([{ ...A, quantity: 3, notional: 286500 }], "2026-11-30T12:00:00.000000000Z"), 1, "a different quantity is new");
    eq(liquidationKey(A), "2026-11-30T12:01:00.000000000Z|long|95500|2", "key");
    const m = marks.marks[0];
    eq([m.time, m.candle, m.side, m.price, m.notional], [Date.parse(A.time), Date.parse("2026-11-30T12:00:00Z"), "long", 95500, 191000], "mark");
    eq(marks.maxNotional(), 286500, "largest notional");
  },

  // Area ∝ notional: radius ∝ sqrt(notional), between the bounds.
  async "markRadius grows with notional, area proportional, within bounds"() {
    const ref = 1e6;
    const ns = [0, 1, 10, 1e3, 5e3, 1e4, 3e4, 1e5, 2.5e5, 5e5, 1e6, 2e6, 1e9];
    const rs = ns.map((n) => markRadius(n, ref, 3, 16));
    for (let i = 1; i < rs.length; i++) ok(rs[i] >= rs[i - 1], `radius falls from ${ns[i - 1]} (${rs[i - 1]}) to ${ns[i]} (${rs[i]})`);
    ok(rs.every((r) => r >= 3 && r <= 16), `out of [3, 16]: ${rs}`);
    eq(markRadius(1e6, ref, 3, 16), 16, "the reference gets the maximum");
    eq(markRadius(1e9, ref, 3, 16), 16, "beyond the reference: the maximum");
    eq(markRadius(1, ref, 3, 16), 3, "tiny: the minimum");
    // Four times the notional, twice the radius (four times the area).
    const r1 = markRadius(1e5, ref, 3, 16), r4 = markRadius(4e5, ref, 3, 16);
    ok(Math.abs(r4 / r1 - 2) < 1e-9, `radius ratio for 4x notional ${r4 / r1}`);
    ok(r1 > 3 && r4 < 16, "both unclamped");
    for (const bad of [NaN, -5, undefined]) eq(markRadius(bad, ref, 3, 16), 3, `notional ${bad}`);
    eq(markRadius(5e5, 0, 3, 16), 3, "no reference");
    eq(markRadius(2.5e5, 1e6), 8, "defaults 3 and 16");
  },

  // The history spans the last hour of the data's clock (not the browser's:
  // these are 2026 times whatever the machine's date).
  async "LiquidationMarks keeps the last hour of the data's clock"() {
    const marks = new LiquidationMarks({ maxAge: 3600e3, maxCount: 1000 });
    const at = (h, m) => ({ time: `2026-11-30T${h}:${m}:00.000000000Z`, side: "long", price: 95000, quantity: 1, notional: 95000 });
    marks.add([at("10", "00"), at("10", "30")], "2026-11-30T10:30:00.000000000Z");
    marks.add([at("11", "00")], "2026-11-30T11:00:00.000000000Z");
    eq(marks.size, 3, "within the hour");
    marks.add([at("11", "20")], "2026-11-30T11:20:00.000000000Z");
    eq(marks.marks.map((m) => new Date(m.time).toISOString().slice(11, 16)), ["10:30", "11:00", "11:20"], "10:00 is over an hour before 11:20");
    // A frame without liquidations still moves the clock (a new candle).
    marks.add(undefined, "2026-11-30T12:10:00.000000000Z");
    eq(marks.marks.map((m) => new Date(m.time).toISOString().slice(11, 16)), ["11:20"], "after the 12:10 candle");
    marks.clear();
    eq([marks.size, marks.maxNotional()], [0, 0], "cleared");
    eq(marks.add([at("09", "00")], "2026-11-30T09:00:00.000000000Z"), 1, "after clear, an older time is held again");
  },

  // A burst beyond maxCount keeps the newest; an evicted one coming again
  // (it is still in the open candle's frames) does not grow the set.
  async "LiquidationMarks keeps at most maxCount, the oldest go first"() {
    const marks = new LiquidationMarks({ maxAge: 3600e3, maxCount: 5 });
    const burst = [];
    for (let i = 0; i < 8; i++) burst.push(liq(`0${i}:00`, i % 2 ? "short" : "long", 95000 + i * 10, 1));
    eq(marks.add(burst.slice(0, 3), "2026-11-30T12:00:00.000000000Z"), 3, "first three");
    marks.add(burst, "2026-11-30T12:00:00.000000000Z");
    eq(marks.size, 5, "bounded");
    eq(marks.marks.map((m) => m.price), [95030, 95040, 95050, 95060, 95070], "the newest five");
    marks.add(burst, "2026-11-30T12:00:00.000000000Z");
    eq(marks.marks.map((m) => m.price), [95030, 95040, 95050, 95060, 95070], "the same frame again changes nothing");
    eq(marks.size, 5, "still bounded");
  },

  // Frames may bring a candle's list in any order, and bad entries are skipped.
  async "LiquidationMarks orders by time and skips malformed entries"() {
    const marks = new LiquidationMarks();
    marks.add([C, A], "2026-11-30T12:00:00.000000000Z");
    marks.add([B, { ...B, time: "yesterday" }, { ...B, side: "both" }, { ...B, price: -1 }, { ...B, notional: NaN }, null], "2026-11-30T12:00:00.000000000Z");
    eq(marks.marks.map((m) => m.key), [A, B, C].map(liquidationKey), "sorted, malformed skipped");
    // Without a candle time the mark belongs to its own time's column.
    const m2 = new LiquidationMarks();
    m2.add([A], undefined);
    eq(m2.marks[0].candle, Date.parse(A.time), "candle falls back to the time");
  },
};
