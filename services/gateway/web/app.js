// The page: a time-evolving liquidation heatmap (history from
// /liquidations/heatmap-timeseries, extended live by the stream) and the
// liquidation map of the latest snapshot beside it.
import { LiqstreamClient, Status, LiquidationMarks, markRadius } from "./liqstream.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const INTERVAL_MS = { "5m": 5 * 60e3, "15m": 15 * 60e3, "30m": 30 * 60e3, "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "6h": 6 * HOUR, "8h": 8 * HOUR, "12h": 12 * HOUR, "1d": DAY };
const WINDOW_MS = { "48h": 2 * DAY, "3d": 3 * DAY, "7d": 7 * DAY, "14d": 14 * DAY, "30d": 30 * DAY, "60d": 60 * DAY, "90d": 90 * DAY, "180d": 180 * DAY, "1y": 365 * DAY };
const RANGES = [["48h", "15m"], ["3d", "30m"], ["7d", "1h"], ["30d", "4h"]];

// Liquidation density colours, low to high on a log scale: faint indigo for
// the thin spread, through violet and teal, to yellow for the walls.
const PALETTE = [
  [0.0, [34, 28, 84, 0.55]],
  [0.2, [62, 38, 130, 0.85]],
  [0.42, [41, 98, 170, 1]],
  [0.62, [24, 168, 160, 1]],
  [0.82, [130, 214, 92, 1]],
  [1.0, [253, 236, 110, 1]],
];
const DECADES = 2.6; // colour range below the top density; thinner cells stay faint
const GAMMA = 1.7; // > 1 keeps the middle of the range dark, so only real walls glow
const UP = "#2fd39a";
const DOWN = "#ff5a78";
const BG = "#0e131b";
const GRID = "rgba(140, 160, 190, 0.08)";
const AXIS_TEXT = "#8a96a8";
const NOW_LINE = "#f5f7fa";

// Realised liquidations (frames' data.liquidations) are marked on the heatmap
// at their candle's column, coloured by the side liquidated as the map's bars
// are: long positions green, short ones red.
const MARK_AGE = HOUR; // kept: the last hour of the data's clock, ...
const MARK_MAX = 1000; // ... at most this many (the oldest go first)
const MARK_R_MIN = 3; // CSS px: the smallest still shows and can be hovered
const MARK_R_MAX = 16;
// The notional drawn at MARK_R_MAX when nothing larger is held: without a
// floor one $2K liquidation alone would look like a cascade.
const MARK_REF = 100e3;
const MARK_FILL = { long: "rgba(38, 194, 129, 0.72)", short: "rgba(240, 80, 110, 0.72)" };
const MARK_LINE = { long: "#5ff0b4", short: "#ff8fa6" };

// The model-accuracy panel (data/model-accuracy) is refreshed this often; the
// scores are per day, so more often would only load the snapshotter.
const ACCURACY_EVERY = 5 * 60e3;
const BASELINES = ["uniform", "distance"];

const state = {
  symbols: [],
  symbol: null,
  window: WINDOW_MS[params.get("time_window")] ? params.get("time_window") : "48h",
  interval: INTERVAL_MS[params.get("interval")] ? params.get("interval") : "15m",
  updateInterval: Math.min(60, Math.max(1, Number(params.get("update_interval")) || 5)),
  // Deltas by default: a few hundred bytes per update instead of the whole
  // map; ?encoding=full asks for whole snapshots.
  encoding: params.get("encoding") === "full" ? "full" : "delta",
  cols: [], // {t, bin, levels, candle, live}
  bin: 0,
  latest: null, // latest snapshot frame of the symbol
  latestAt: 0,
  loadToken: 0,
  refreshTimer: null,
  zoom: null, // {lo, hi} once the user zooms the price axis
  view: null, // the price range last drawn
  layout: null, // geometry of the last draw, for hover
  hover: null, // {panel: "heat"|"map", x, y} in CSS px
  error: null,
  gaps: [], // the snapshotter's data warnings of the symbol: {kind, since, message}
  // Realised liquidations seen while the page is open, once each.
  marks: new LiquidationMarks({ maxAge: MARK_AGE, maxCount: MARK_MAX }),
  // ?liquidations=0 hides the marks; kept in the address bar like the rest.
  showMarks: params.get("liquidations") !== "0",
  historyModel: null, // the model the history was computed with (meta.model)
  acc: { token: 0, timer: null, body: null, symbol: null },
};

// What the browser tests read: plain data, kept current.
const probe = {
  status: Status.DISCONNECTED,
  statuses: [],
  badge: "disconnected",
  connects: 0,
  symbol: null,
  seq: null,
  frames: 0,
  wsFrames: 0,
  pollFrames: 0,
  history: "idle",
  historyColumns: 0,
  columns: 0,
  drawCount: 0,
  drawnSeq: null,
  plot: null, // heatmap plot rectangle in canvas pixels
  error: "",
  notice: "",
  dataGap: "", // the data warnings shown, one per line
  view: null, // the price range drawn, {lo, hi}
  timeRange: null, // the heatmap's time axis, {t0, t1, iv} in ms: column k spans t0 + k·iv
  // Liquidation marks: shown (the toggle), kept (history size), count (drawn
  // now) and per drawn mark {x, y, r (canvas pixels, like plot), side, price,
  // notional, time, column (the column's start, ISO)}, in drawing order.
  marks: { loaded: 0, shown: true, kept: 0, count: 0, list: [] },
  // The model-accuracy panel: state is idle, loading, ok, empty, busy,
  // unavailable or error (states: the last ones, in order); fetches counts
  // requests for the symbol; model is the heatmap's model as the panel names
  // it; retryIn the last retry delay chosen (ms).
  accuracy: { state: "idle", symbol: null, fetches: 0, model: null, retryIn: null, states: [] },
};
window.__liqstream = probe;

const client = new LiqstreamClient({ updateInterval: state.updateInterval, encoding: state.encoding });
Object.defineProperty(probe, "client", { value: client, enumerable: false });
// The snapshot the page shows, as tests compare it across encodings.
Object.defineProperty(probe, "latest", { get: () => state.latest, enumerable: false });

const heat = $("heatmap");
const heatOver = $("heatmap-overlay");
const map = $("liqmap");
const mapOver = $("liqmap-overlay");
const narrow = matchMedia("(max-width: 760px)");
const font = (px, weight = 400) => `${weight} ${px}px ${getComputedStyle(document.body).fontFamily}`;

// ---------- stream ----------

const BADGE = {
  connected: ["live", "Streaming over WebSocket"],
  slow: ["slow", "The server is dropping updates for this connection"],
  polling: ["polling", "WebSocket unavailable: polling the snapshot API"],
  disconnected: ["disconnected", "Connection lost: reconnecting"],
  failed: ["failed", "Cannot reach the server. Click to retry"],
};

client.addEventListener("status", (e) => {
  const s = e.detail;
  const was = probe.status;
  probe.status = s;
  probe.statuses.push(s);
  if (probe.statuses.length > 100) probe.statuses.shift();
  // slow -> connected is the same socket recovering, not a new connection.
  if (s === Status.CONNECTED && was !== Status.SLOW) {
    probe.connects++;
    // Back after an outage: columns closed meanwhile come from the history.
    if (probe.connects > 1 && state.symbol && probe.history !== "loading") loadHistory({ refresh: true });
  }
  const [text, title] = BADGE[s] || [s, s];
  $("status-text").textContent = text;
  $("status").dataset.status = s;
  $("status").title = title;
  probe.badge = text;
  if (s !== Status.SLOW) showNotice("");
  updateMeta();
});
$("status").addEventListener("click", () => {
  if (client.status === Status.FAILED) client.reconnect();
});
window.addEventListener("online", () => client.reconnect());

client.addEventListener("warning", (e) => {
  const w = e.detail;
  if (w.code === "SLOW_CONSUMER") {
    const n = w.dropped_messages ? ` (${w.dropped_messages} dropped)` : "";
    showNotice(`Connection slow - may miss updates${n}`);
  } else {
    showNotice(w.message || w.code);
  }
});

client.addEventListener("error", (e) => {
  // retrying: the server knew no symbol yet; the client keeps the symbol and
  // asks again, and the next snapshot clears the message.
  if (e.detail.retrying) showError("", "waiting for the server's symbol list…", true);
  else showError(e.detail.code, e.detail.message);
});

client.addEventListener("snapshot", (e) => {
  const f = e.detail;
  if (f.symbol !== state.symbol) return;
  probe.frames++;
  if (client.transport === "poll") probe.pollFrames++;
  else probe.wsFrames++;
  probe.seq = f.seq;
  state.latest = f;
  state.latestAt = Date.now();
  const d = f.data || {};
  state.marks.add(d.liquidations, d.candle && d.candle.open_time);
  probe.marks.kept = state.marks.size;
  if (state.acc.body && d.model !== probe.accuracy.model) renderAccuracy();
  if (state.error && state.error.transient) showError();
  applyLive(f);
  updateHeader();
  updateMeta();
  requestDraw();
});

// ---------- data ----------

async function init() {
  for (const [w, i] of RANGES) $("range").append(new Option(`${w} · ${i} candles`, `${w}|${i}`));
  if (!RANGES.some(([w, i]) => w === state.window && i === state.interval)) {
    $("range").append(new Option(`${state.window} · ${state.interval} candles`, `${state.window}|${state.interval}`));
  }
  $("range").value = `${state.window}|${state.interval}`;
  $("range").addEventListener("change", () => {
    [state.window, state.interval] = $("range").value.split("|");
    state.zoom = null;
    syncURL();
    loadHistory();
  });
  $("symbol").addEventListener("change", () => select($("symbol").value));
  $("liq-toggle").checked = state.showMarks;
  probe.marks.shown = state.showMarks;
  $("liq-toggle").addEventListener("change", () => {
    state.showMarks = $("liq-toggle").checked;
    probe.marks.shown = state.showMarks;
    syncURL();
    requestDraw();
  });

  client.connect();
  await loadSymbols();
}

// A gateway that just started may not know its symbols yet (an empty list),
// so keep asking, backing off, rather than leave an empty page.
async function loadSymbols(delay = 2000) {
  let symbols = [];
  try {
    const res = await fetch("api/v1/symbols");
    symbols = (await res.json()).symbols || [];
  } catch {
    // retried below
  }
  if (!symbols.length) {
    showError("", "waiting for the server's symbol list…", true);
    setTimeout(() => loadSymbols(Math.min(delay * 2, 30000)), delay);
    return;
  }
  state.symbols = symbols;
  for (const s of symbols) if (![...$("symbol").options].some((o) => o.value === s)) $("symbol").append(new Option(s, s));
  select((params.get("symbol") || symbols[0]).toUpperCase());
}

function select(sym) {
  if (!sym) return;
  if (state.symbol && state.symbol !== sym) client.unsubscribe(state.symbol);
  // An unknown symbol (a typo in ?symbol=) is still subscribed: the server's
  // error names the valid ones, which beats guessing here.
  if (![...$("symbol").options].some((o) => o.value === sym)) $("symbol").append(new Option(sym, sym));
  $("symbol").value = sym;
  state.symbol = sym;
  state.latest = null;
  state.zoom = null;
  state.marks.clear();
  probe.marks.kept = 0;
  probe.marks.loaded = 0;
  Object.assign(probe, { symbol: sym, seq: null, frames: 0, wsFrames: 0, pollFrames: 0, drawnSeq: null });
  showError();
  showGaps([]);
  syncURL();
  updateHeader();
  loadHistory();
  loadAccuracy(sym);
  loadRecentLiquidations(sym);
  client.subscribe(sym, state.updateInterval);
}

// Frames carry only the open candle's liquidations; the hour the marks keep
// comes from data/liquidations, so a reload or a symbol change shows what
// happened before the page opened. A failed request leaves the marks to the
// frames.
async function loadRecentLiquidations(sym) {
  let rows = [];
  try {
    const from = Date.now() - state.marks.maxAge;
    const res = await fetch(`data/liquidations?${new URLSearchParams({ symbol: sym, from: String(Math.floor(from)) })}`);
    if (res.ok) rows = (await res.json()).data || [];
  } catch {
    // nothing to add
  }
  if (sym !== state.symbol) return;
  const added = state.marks.add(rows);
  // Rows the request brought, whether or not a frame brought them first.
  probe.marks.loaded = rows.length;
  probe.marks.kept = state.marks.size;
  if (added) requestDraw();
}

// The snapshotter knows when a symbol's data cannot make a heatmap (candles
// without open interest) and says so at data/gaps, relayed by the gateway;
// the page shows its sentence rather than an empty map. A failed request
// (an older snapshotter) shows nothing: the map is as it would have been.
async function loadGaps(sym) {
  let gaps = [];
  try {
    const res = await fetch(`data/gaps?${new URLSearchParams({ symbol: sym })}`);
    if (res.ok) gaps = (await res.json()).gaps || [];
  } catch {
    // nothing to show
  }
  if (sym !== state.symbol) return;
  showGaps(gaps);
  requestDraw();
}

function showGaps(gaps) {
  state.gaps = gaps;
  const text = gaps.map((g) => g.message).join("\n");
  $("data-gap").hidden = !text;
  $("data-gap").textContent = text;
  probe.dataGap = text;
}

// ---------- model accuracy ----------

// How well the models placed the liquidations that really happened: the
// snapshotter scores each day's realised liquidations against the heatmaps
// of the time (data/model-accuracy, relayed by the gateway). Fetched when the
// symbol changes and every ACCURACY_EVERY; whatever the answer, the panel
// says so and nothing else on the page depends on it.
async function loadAccuracy(sym) {
  const acc = state.acc;
  clearTimeout(acc.timer);
  const token = ++acc.token;
  if (acc.symbol !== sym) {
    acc.symbol = sym;
    acc.body = null;
    probe.accuracy = { state: "idle", symbol: sym, fetches: 0, model: null, retryIn: null, states: [] };
    renderAccuracy();
  }
  if (!state.symbols.includes(sym)) {
    setAccuracyState("unavailable", "");
    return;
  }
  if (!acc.body) setAccuracyState("loading", "loading…");
  probe.accuracy.fetches++;
  let next = ACCURACY_EVERY;
  try {
    const res = await fetch(`data/model-accuracy?${new URLSearchParams({ symbol: sym })}`);
    const body = await res.json().catch(() => null);
    if (token !== acc.token) return;
    const why = (body && body.error) || `HTTP ${res.status}`;
    if (res.ok && body && typeof body === "object") {
      acc.body = body;
      const shown = renderAccuracy();
      setAccuracyState(shown, shown === "empty" ? "no realised liquidations recorded yet" : "");
    } else if (res.status === 503 || res.status === 429) {
      // Busy (the snapshotter's history workers) or over the API rate: both
      // say when to come back. Jittered, as the history's retry.
      const after = Number(res.headers.get("Retry-After")) || 0;
      next = after > 0 ? after * 1000 * (1 + Math.random() / 2) : 30000 + Math.random() * 15000;
      probe.accuracy.retryIn = Math.round(next);
      setAccuracyState(acc.body ? "ok" : "busy", `${why}; retrying in ${Math.ceil(next / 1000)} s`);
    } else if (res.status === 404 || res.status === 501) {
      // An older gateway or snapshotter without the endpoint: asked again
      // at the next refresh, in case it is upgraded meanwhile.
      setAccuracyState("unavailable", `not available from this server${body && body.error ? `: ${body.error}` : ""}`);
    } else {
      setAccuracyState(acc.body ? "ok" : "error", `unavailable: ${why}`);
    }
  } catch (err) {
    if (token !== acc.token) return;
    next = 30000 + Math.random() * 15000;
    probe.accuracy.retryIn = Math.round(next);
    setAccuracyState(acc.body ? "ok" : "error", `unavailable (${err.message}); retrying in ${Math.ceil(next / 1000)} s`);
  }
  acc.timer = setTimeout(() => loadAccuracy(sym), next);
}

// setAccuracyState shows a note under the numbers (or instead of them when
// there are none yet); the numbers of an earlier answer stay.
function setAccuracyState(s, note) {
  const a = probe.accuracy;
  if (a.state !== s) {
    a.states.push(s);
    if (a.states.length > 20) a.states.shift();
  }
  a.state = s;
  $("acc-note").textContent = note;
  $("acc-note").hidden = !note;
}

// The heatmap's model: the latest frame's, else the history's.
function shownModel() {
  return (state.latest && state.latest.data && state.latest.data.model) || state.historyModel || null;
}

// renderAccuracy draws the last answer and says whether it held any scores
// ("ok") or not ("empty").
function renderAccuracy() {
  const body = state.acc.body;
  const scoresEl = $("acc-scores");
  scoresEl.replaceChildren();
  $("acc-range").textContent = "";
  $("acc-count").textContent = "";
  $("acc-days").hidden = true;
  $("acc-model").textContent = "";
  const model = shownModel();
  probe.accuracy.model = model;
  if (!body) return "idle";
  const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "–");
  const top = Number(body.top_share) > 0 ? body.top_share : 0.1;
  if (body.from || body.to) $("acc-range").textContent = `${body.from || "…"} – ${body.to || "…"}`;
  const total = body.total || {};
  const days = (body.days || []).filter((d) => d && d.scores);
  const scores = total.scores;
  if (!(total.liquidations > 0) || !scores) {
    if (model) $("acc-model").textContent = `heatmap: ${model}`;
    return "empty";
  }
  $("acc-count").textContent = `${total.liquidations.toLocaleString("en-US")} liquidations · ${fmtUSD(total.notional)}`;
  const topPct = `${+(top * 100).toFixed(1)}%`;
  $("acc-what").textContent = `share of liquidated notional in each model's top ${topPct} buckets`;
  $("acc-what").title = `Share of the realised liquidation notional that fell in each model's top ${topPct} of price buckets (by estimated density on the liquidated side). Baselines: uniform = a random ${topPct} of the buckets; distance = the ${topPct} nearest the price.`;
  const models = (body.models && body.models.length ? body.models : Object.keys(scores).filter((k) => !BASELINES.includes(k)));
  const item = (name, v, cls) => {
    const el = document.createElement("span");
    el.className = `acc-item ${cls}`;
    el.dataset.name = name;
    const n = document.createElement("b");
    n.textContent = name;
    const bar = document.createElement("i");
    bar.className = "acc-bar";
    bar.style.setProperty("--w", `${Math.round(Math.min(1, Math.max(0, v || 0)) * 100)}%`);
    const val = document.createElement("span");
    val.className = "acc-val";
    val.textContent = pct(v);
    el.append(n, bar, val);
    return el;
  };
  for (const m of models) {
    const el = item(m, scores[m], "model");
    if (m === model) {
      el.classList.add("current");
      const tag = document.createElement("em");
      tag.textContent = "on heatmap";
      el.append(tag);
    }
    scoresEl.append(el);
  }
  const sep = document.createElement("span");
  sep.className = "acc-sep";
  sep.textContent = "baselines";
  scoresEl.append(sep);
  for (const b of BASELINES) if (b in scores) scoresEl.append(item(b, scores[b], "baseline"));
  if (model && !models.includes(model)) $("acc-model").textContent = `heatmap: ${model} (not scored)`;

  // Per day, days without scores (no liquidations) left out.
  const table = $("acc-table");
  table.replaceChildren();
  if (days.length) {
    const cols = [...models, ...BASELINES];
    const head = table.insertRow();
    for (const h of ["day", "liq.", "notional", ...cols]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    for (const d of days) {
      const r = table.insertRow();
      for (const v of [d.date, String(d.liquidations), fmtUSD(d.notional), ...cols.map((c) => pct(d.scores[c]))]) r.insertCell().textContent = v;
    }
    $("acc-days").hidden = false;
  }
  return "ok";
}

function syncURL() {
  const q = new URLSearchParams(location.search);
  q.set("symbol", state.symbol || "");
  if (state.window !== "48h" || state.interval !== "15m") {
    q.set("time_window", state.window);
    q.set("interval", state.interval);
  } else {
    q.delete("time_window");
    q.delete("interval");
  }
  if (state.showMarks) q.delete("liquidations");
  else q.set("liquidations", "0");
  history.replaceState(null, "", `?${q}`);
}

async function loadHistory({ refresh = false } = {}) {
  const sym = state.symbol;
  const token = ++state.loadToken;
  clearTimeout(state.refreshTimer);
  if (!refresh) {
    state.cols = [];
    setHistory("loading");
  }
  if (!state.symbols.includes(sym)) {
    setHistory("unknown symbol");
    requestDraw();
    return;
  }
  $("heat-sub").textContent = `${sym} · ${state.window} · ${state.interval}`;
  loadGaps(sym);
  try {
    const q = new URLSearchParams({ symbol: sym, time_window: state.window, interval: state.interval });
    const res = await fetch(`liquidations/heatmap-timeseries?${q}`);
    const body = await res.json().catch(() => ({}));
    if (token !== state.loadToken) return;
    if (!res.ok) {
      const err = new Error(body.error || `HTTP ${res.status}`);
      // 503 (the snapshotter's history workers are busy) and 429 (this
      // address is over the API rate) say when to come back.
      err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
      throw err;
    }
    const bin = (body.meta && body.meta.price_bin_size) || state.bin || 0;
    const cols = (body.data || []).map((e) => ({ t: Date.parse(e.timestamp), bin, levels: e.levels || [], candle: e.candle, live: false }));
    // Keep the live column: the history ends at the last closed candle.
    const live = state.cols.filter((c) => c.live && (!cols.length || c.t > cols[cols.length - 1].t));
    state.cols = cols.concat(live);
    state.bin = bin;
    state.historyModel = (body.meta && body.meta.model) || null;
    probe.historyColumns = cols.length;
    setHistory("ok");
    if (state.acc.body) renderAccuracy();
  } catch (err) {
    if (token !== state.loadToken) return;
    setHistory("error");
    showError("", `history unavailable: ${err.message}`, true);
    // Jittered, so pages refused together do not all come back together.
    const wait = err.retryAfter > 0 ? err.retryAfter * 1000 * (1 + Math.random() / 2) : 10000 + Math.random() * 5000;
    state.refreshTimer = setTimeout(() => loadHistory({ refresh: true }), wait);
  }
  if (state.latest && state.latest.symbol === sym) applyLive(state.latest);
  updateHeader();
  requestDraw();
}

function setHistory(s) {
  probe.history = s;
}

// A snapshot extends the heatmap: its candle's interval bucket is a new
// column when it is past the last one, else it replaces the live column.
function applyLive(f) {
  const d = f.data || {};
  const c = d.candle;
  if (!c || !c.open_time || probe.history === "loading") return;
  const iv = INTERVAL_MS[state.interval];
  const t = Math.floor(Date.parse(c.open_time) / iv) * iv;
  const cols = state.cols;
  const last = cols[cols.length - 1];
  const bin = d.bin_size || state.bin;
  if (!state.bin) state.bin = bin;
  if (!last || t > last.t) {
    cols.push({ t, bin, levels: d.levels || [], candle: { open: c.open, high: c.high, low: c.low, close: c.close }, live: true });
    // A live column just closed: fetch its settled form from the history
    // (spread over a few seconds so every open page does not ask at once).
    if (last && last.live) {
      clearTimeout(state.refreshTimer);
      state.refreshTimer = setTimeout(() => loadHistory({ refresh: true }), 2000 + Math.random() * 6000);
    }
    const oldest = t - WINDOW_MS[state.window];
    while (cols.length && cols[0].t <= oldest) cols.shift();
  } else if (t === last.t) {
    // The stream carries the 5m candle; a longer column merges them.
    const k = last.candle || { open: c.open, high: c.high, low: c.low, close: c.close };
    last.candle = { open: k.open, high: Math.max(k.high, c.high), low: Math.min(k.low, c.low), close: c.close };
    last.levels = d.levels || [];
    last.bin = bin;
    last.live = true;
  }
  probe.columns = cols.length;
}

function currentPrice() {
  if (state.latest) return state.latest.data.current_price;
  const last = state.cols[state.cols.length - 1];
  return last && last.candle ? last.candle.close : null;
}

// The liquidation map shows the latest snapshot, or the newest history
// column until the first snapshot arrives.
function mapLevels() {
  if (state.latest) return { levels: state.latest.data.levels || [], bin: state.latest.data.bin_size || state.bin };
  const last = state.cols[state.cols.length - 1];
  return last ? { levels: last.levels, bin: last.bin || state.bin } : { levels: [], bin: state.bin };
}

// ---------- header, notices ----------

function updateHeader() {
  const p = currentPrice();
  $("price").textContent = p ? fmtPrice(p) : "–";
  const first = state.cols.find((c) => c.candle);
  const ch = $("change");
  if (p && first) {
    const pct = (p / first.candle.open - 1) * 100;
    ch.textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}% ${state.window}`;
    ch.className = `change ${pct >= 0 ? "up" : "down"}`;
  } else {
    ch.textContent = "";
  }
  const d = state.latest && state.latest.data;
  $("long-total").textContent = d ? fmtUSD(d.total_long_volume) : "–";
  $("short-total").textContent = d ? fmtUSD(d.total_short_volume) : "–";
  document.title = p ? `${fmtPrice(p)} ${state.symbol} · liqstream` : "liqstream — live liquidation heatmap";
}

function updateMeta() {
  const parts = [];
  const f = state.latest;
  let stale = false;
  if (f) {
    const d = f.data;
    const lat = state.latestAt - Date.parse(f.timestamp);
    parts.push(`seq ${f.seq}`, `snapshot ${fmtClock(Date.parse(f.timestamp))} UTC`);
    if (Number.isFinite(lat) && lat >= 0 && lat < 3600e3) parts.push(`latency ${lat < 1000 ? `${lat} ms` : `${(lat / 1000).toFixed(1)} s`}`);
    parts.push(`${(d.levels || []).length} levels`, `${d.positions_created} opened · ${d.positions_consumed} liquidated`);
    parts.push(client.transport === "poll" ? `via polling every ${client.updateInterval} s` : "via WebSocket");
    // Snapshots come only when something changed, but a live market changes
    // every interval: a long silence means the picture is out of date.
    const age = Math.round((Date.now() - state.latestAt) / 1000);
    stale = age > Math.max(30, 3 * client.updateInterval);
    if (stale) parts.unshift(`no update for ${fmtAge(age)}`);
  } else if (state.symbol) {
    parts.push(state.error ? `no data for ${state.symbol}` : `waiting for ${state.symbol}…`);
  }
  if (client.nextRetryAt && (client.status === Status.DISCONNECTED || client.status === Status.POLLING)) {
    const s = Math.max(0, Math.ceil((client.nextRetryAt - Date.now()) / 1000));
    // Past the attempts, polling tries the socket on a slow timer.
    parts.push(client.attempt >= 5 && client.status === Status.POLLING ? `next WebSocket try in ${s} s` : `reconnect attempt ${client.attempt} of 5 in ${s} s`);
  }
  $("meta").textContent = parts.join("  ·  ");
  $("meta").classList.toggle("stale", stale);
}
setInterval(updateMeta, 1000);

function showNotice(text) {
  $("notice").hidden = !text;
  $("notice").textContent = text;
  probe.notice = text;
}

// Errors stay until the symbol changes; transient ones (a failed history
// load) also go when data arrives.
function showError(code = "", message = "", transient = false) {
  const el = $("error");
  state.error = message ? { code, message, transient } : null;
  el.hidden = !message;
  el.replaceChildren();
  if (message) {
    if (code) {
      const c = document.createElement("code");
      c.textContent = code;
      el.append(c);
    }
    el.append(message);
  }
  probe.error = message;
}

// ---------- drawing ----------

let drawPending = false;
// rAF for smoothness; the timer so that a background tab still draws (rAF
// stops there) and the picture is current when the trader looks back.
function requestDraw() {
  if (drawPending) return;
  drawPending = true;
  const run = () => {
    if (!drawPending) return;
    drawPending = false;
    draw();
  };
  requestAnimationFrame(run);
  setTimeout(run, 250);
}
new ResizeObserver(() => requestDraw()).observe($("heat-chart"));
new ResizeObserver(() => requestDraw()).observe($("map-chart"));

function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { g, w, h, dpr };
}

function priceView() {
  if (state.zoom) return state.zoom;
  let lo = Infinity, hi = -Infinity;
  for (const c of state.cols) {
    if (!c.candle) continue;
    lo = Math.min(lo, c.candle.low);
    hi = Math.max(hi, c.candle.high);
  }
  const p = currentPrice();
  if (p) {
    lo = Math.min(lo, p);
    hi = Math.max(hi, p);
  }
  if (!Number.isFinite(lo)) {
    const { levels } = mapLevels();
    if (!levels.length) return null;
    lo = levels[0].price;
    hi = levels[levels.length - 1].price;
  }
  // Room above and below the candles for the nearer leverage tiers.
  const pad = Math.max((hi - lo) * 0.35, hi * 0.02);
  return { lo: lo - pad, hi: hi + pad };
}

function draw() {
  const view = priceView();
  state.view = view;
  probe.view = view && { lo: view.lo, hi: view.hi };
  const H = drawHeat(view);
  drawMap(view, H);
  drawOverlay();
  probe.drawCount++;
  probe.drawnSeq = state.latest ? state.latest.seq : null;
}

function drawHeat(view) {
  const { g, w, h, dpr } = fit(heat);
  const plotH = Math.max(10, h - 10 - 24);
  const pTicks = view ? niceTicks(view.lo, view.hi, Math.max(3, Math.floor(plotH / 46))) : [];
  const axisW = axisWidth(g, pTicks, currentPrice());
  const plot = { x: 0, y: 10, w: Math.max(10, w - axisW), h: plotH };
  state.layout = { ...(state.layout || {}), heat: plot };
  probe.plot = { x: Math.round(plot.x * dpr), y: Math.round(plot.y * dpr), w: Math.floor(plot.w * dpr), h: Math.floor(plot.h * dpr) };
  g.fillStyle = BG;
  g.fillRect(0, 0, w, h);
  const cols = state.cols;
  if (!view || !cols.length) {
    placeholder(g, plot, state.symbol ? (probe.history === "loading" ? `Loading ${state.symbol}…` : `No data for ${state.symbol}`) : "");
    setMarksDrawn([], dpr);
    return plot;
  }
  const iv = INTERVAL_MS[state.interval];
  const t0 = cols[0].t, t1 = cols[cols.length - 1].t + iv;
  const xOf = (t) => plot.x + ((t - t0) / (t1 - t0)) * plot.w;
  const yOf = (p) => plot.y + (1 - (p - view.lo) / (view.hi - view.lo)) * plot.h;
  state.layout.heat = { ...plot, t0, t1, iv, xOf, yOf };
  probe.timeRange = { t0, t1, iv };

  const tTicks = timeTicks(t0, t1, plot.w, narrow.matches ? 60 : 84);
  g.strokeStyle = GRID;
  g.lineWidth = 1;
  g.beginPath();
  for (const p of pTicks) {
    const y = Math.round(yOf(p)) + 0.5;
    g.moveTo(plot.x, y);
    g.lineTo(plot.x + plot.w, y);
  }
  for (const t of tTicks) {
    const x = Math.round(xOf(t)) + 0.5;
    g.moveTo(x, plot.y);
    g.lineTo(x, plot.y + plot.h);
  }
  g.stroke();

  g.save();
  g.beginPath();
  g.rect(plot.x, plot.y, plot.w, plot.h);
  g.clip();
  const scale = drawCells(g, view, plot, t0, t1, iv);
  drawCandles(g, cols, xOf, yOf, (plot.w / (t1 - t0)) * iv);
  const lastCol = cols[cols.length - 1];
  if (lastCol.live) {
    // The live column follows the stream; everything left of it is settled history.
    const x = Math.round(xOf(lastCol.t)) - 0.5;
    g.strokeStyle = "rgba(230, 236, 245, 0.35)";
    g.setLineDash([2, 3]);
    g.beginPath();
    g.moveTo(x, plot.y);
    g.lineTo(x, plot.y + plot.h);
    g.stroke();
    g.setLineDash([]);
    g.font = font(10, 600);
    g.fillStyle = "rgba(230, 236, 245, 0.7)";
    g.textAlign = "right";
    g.textBaseline = "top";
    g.fillText("LIVE", x - 4, plot.y + 4);
  }
  const p = currentPrice();
  if (p) {
    drawPriceLine(g, plot, Math.round(yOf(p)) + 0.5);
  }
  g.restore();
  // Over the cells and candles but under the axis labels: a mark at the live
  // edge may reach into the axis rather than be cut in half.
  drawMarks(g, view, plot, { t0, t1, iv, xOf, yOf, colW: (plot.w / (t1 - t0)) * iv, dpr });
  setLegend(scale);

  // Price axis on the right, as on trading charts; time axis below.
  g.font = font(11);
  g.textBaseline = "middle";
  g.textAlign = "left";
  g.fillStyle = AXIS_TEXT;
  const step = pTicks.length > 1 ? pTicks[1] - pTicks[0] : 1;
  for (const tp of pTicks) {
    const y = yOf(tp);
    if (y < plot.y + 6 || y > plot.y + plot.h - 6) continue;
    g.fillText(fmtTick(tp, step), plot.x + plot.w + 7, y);
  }
  if (p) priceTag(g, fmtPrice(p), plot.x + plot.w, yOf(p), axisW, lastDirection());
  g.textAlign = "center";
  g.textBaseline = "top";
  for (const t of tTicks) {
    const x = xOf(t);
    if (x < plot.x + 20 || x > plot.x + plot.w - 20) continue;
    const midnight = t % DAY === 0;
    g.fillStyle = midnight ? "#c3ccd9" : AXIS_TEXT;
    g.font = font(11, midnight ? 600 : 400);
    g.fillText(midnight ? fmtDay(t) : fmtClock(t, false), x, plot.y + plot.h + 6);
  }
  g.textAlign = "right";
  g.fillStyle = "#5d6878";
  g.font = font(10);
  g.fillText("UTC", w - 6, plot.y + plot.h + 7);
  return plot;
}

// Each realised liquidation held is a circle at its candle's column (the
// live column for the open candle, where the trader looks) and its price,
// area by notional. The largest are drawn first so a small one on top of a
// big one stays visible and hoverable.
function drawMarks(g, view, plot, { t0, t1, iv, xOf, yOf, colW, dpr }) {
  const drawn = [];
  if (state.showMarks && state.marks.size) {
    const ref = Math.max(MARK_REF, state.marks.maxNotional());
    const list = [...state.marks.marks].sort((a, b) => b.notional - a.notional || a.time - b.time);
    g.save();
    g.beginPath();
    g.rect(plot.x, plot.y, plot.w + MARK_R_MAX, plot.h);
    g.clip();
    for (const m of list) {
      const col = Math.floor(m.candle / iv) * iv;
      if (col < t0 || col >= t1 || m.price < view.lo || m.price > view.hi) continue;
      const x = xOf(col) + colW / 2, y = yOf(m.price), r = markRadius(m.notional, ref, MARK_R_MIN, MARK_R_MAX);
      g.beginPath();
      g.arc(x, y, r, 0, 2 * Math.PI);
      g.fillStyle = MARK_FILL[m.side];
      g.fill();
      // A dark halo, then the side's bright rim: readable over the yellow
      // walls and over the candle the mark sits on.
      g.lineWidth = 3;
      g.strokeStyle = "rgba(6, 8, 12, 0.7)";
      g.stroke();
      g.lineWidth = 1.25;
      g.strokeStyle = MARK_LINE[m.side];
      g.stroke();
      drawn.push({ x, y, r, col, m });
    }
    g.restore();
  }
  setMarksDrawn(drawn, dpr);
}

function setMarksDrawn(drawn, dpr) {
  if (state.layout && state.layout.heat) state.layout.heat.marks = drawn;
  const px = (v) => Math.round(v * dpr * 100) / 100;
  probe.marks = {
    loaded: probe.marks.loaded || 0,
    shown: state.showMarks,
    kept: state.marks.size,
    count: drawn.length,
    list: drawn.map(({ x, y, r, col, m }) => ({ x: px(x), y: px(y), r: px(r), side: m.side, price: m.price, notional: m.notional, time: new Date(m.time).toISOString(), column: new Date(col).toISOString() })),
  };
}

// The cells go through an image one pixel per (time column, price bucket),
// scaled up without smoothing: exact cells, and one drawImage instead of
// tens of thousands of fillRects per frame.
function drawCells(g, view, plot, t0, t1, iv) {
  const bin = state.bin || state.cols[state.cols.length - 1].bin || 1;
  const rowLo = Math.floor(view.lo / bin), rowHi = Math.ceil(view.hi / bin);
  const rows = Math.max(1, rowHi - rowLo), slots = Math.max(1, Math.round((t1 - t0) / iv));
  const grid = new Float64Array(rows * slots);
  const values = [];
  for (const c of state.cols) {
    const x = Math.round((c.t - t0) / iv);
    if (x < 0 || x >= slots) continue;
    const b = c.bin || bin;
    for (const l of c.levels) {
      const v = l.long_density + l.short_density;
      if (!(v > 0)) continue;
      // A bucket wider than the grid's (a different bin) spreads over its rows.
      const r0 = Math.floor(l.price / bin) - rowLo, n = Math.max(1, Math.round(b / bin));
      for (let k = 0; k < n; k++) {
        const r = r0 + k;
        if (r < 0 || r >= rows) continue;
        grid[(rows - 1 - r) * slots + x] += v / n;
      }
    }
  }
  for (const v of grid) if (v > 0) values.push(v);
  if (!values.length) return null;
  values.sort((a, b) => a - b);
  // The 99.5th percentile, not the max: one freak bucket must not wash out the rest.
  const top = values[Math.min(values.length - 1, Math.floor(values.length * 0.995))];
  const lgTop = Math.log10(top), lgBot = lgTop - DECADES;
  const img = new ImageData(slots, rows);
  const px = img.data;
  for (let i = 0; i < grid.length; i++) {
    const v = grid[i];
    if (!(v > 0)) continue;
    const c = LUT[Math.round(clamp01((Math.log10(v) - lgBot) / DECADES) ** GAMMA * 255)];
    px[i * 4] = c[0];
    px[i * 4 + 1] = c[1];
    px[i * 4 + 2] = c[2];
    px[i * 4 + 3] = c[3];
  }
  const off = cellsCanvas(slots, rows);
  off.getContext("2d").putImageData(img, 0, 0);
  g.imageSmoothingEnabled = false;
  const yTop = plot.y + (1 - (rowHi * bin - view.lo) / (view.hi - view.lo)) * plot.h;
  const yBot = plot.y + (1 - (rowLo * bin - view.lo) / (view.hi - view.lo)) * plot.h;
  g.drawImage(off, plot.x, yTop, plot.w, yBot - yTop);
  return { lo: 10 ** lgBot, hi: top };
}

let offscreen = null;
function cellsCanvas(w, h) {
  if (!offscreen) offscreen = document.createElement("canvas");
  if (offscreen.width !== w || offscreen.height !== h) {
    offscreen.width = w;
    offscreen.height = h;
  }
  return offscreen;
}

function drawCandles(g, cols, xOf, yOf, colW) {
  const body = Math.max(1, Math.min(14, Math.floor(colW * 0.6)));
  for (const c of cols) {
    const k = c.candle;
    if (!k) continue;
    const cx = Math.round(xOf(c.t) + colW / 2);
    const up = k.close >= k.open;
    const yO = yOf(k.open), yC = yOf(k.close);
    const top = Math.min(yO, yC), hgt = Math.max(1, Math.abs(yC - yO));
    // A dark outline keeps the candles readable over the brightest cells.
    g.fillStyle = "rgba(6, 8, 12, 0.85)";
    g.fillRect(cx - 1, yOf(k.high) - 1, 2 + (body > 2 ? 1 : 0), yOf(k.low) - yOf(k.high) + 2);
    g.fillRect(cx - Math.floor(body / 2) - 1, top - 1, body + 2, hgt + 2);
    g.fillStyle = up ? UP : DOWN;
    g.fillRect(cx, yOf(k.high), 1, Math.max(1, yOf(k.low) - yOf(k.high)));
    g.fillRect(cx - Math.floor(body / 2), top, body, hgt);
  }
}

// Wide enough for the longest tick label and the price tag, so neither is cut.
function axisWidth(g, ticks, price) {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  g.font = font(11);
  let w = 0;
  for (const t of ticks) w = Math.max(w, g.measureText(fmtTick(t, step)).width);
  g.font = font(11, 700);
  if (price) w = Math.max(w, g.measureText(fmtPrice(price)).width);
  return Math.max(48, Math.ceil(w) + 14);
}

function priceTag(g, text, x, y, w, up) {
  g.font = font(11, 700);
  g.fillStyle = up ? UP : DOWN;
  g.fillRect(x + 1, y - 9, w - 2, 18);
  g.fillStyle = "#071016";
  g.textAlign = "left";
  g.textBaseline = "middle";
  g.fillText(text, x + 6, y + 0.5);
}

function lastDirection() {
  const last = state.cols[state.cols.length - 1];
  return !last || !last.candle || last.candle.close >= last.candle.open;
}

function drawMap(view, heatPlot) {
  const { g, w, h } = fit(map);
  g.fillStyle = BG;
  g.fillRect(0, 0, w, h);
  // Side by side the map shares the heatmap's price axis (same rows); stacked
  // under it on a phone it needs its own.
  const mapH = Math.max(10, h - heatPlot.y - 24);
  const axisTicks = narrow.matches && view ? niceTicks(view.lo, view.hi, Math.max(3, Math.floor(mapH / 46))) : [];
  const axisW = narrow.matches ? axisWidth(g, axisTicks, currentPrice()) : 0;
  const plot = { x: 8, y: heatPlot.y, w: Math.max(10, w - axisW - 16), h: mapH };
  state.layout = { ...(state.layout || {}), map: plot };
  const { levels, bin } = mapLevels();
  const p = currentPrice();
  if (!view || !levels.length || !p) {
    // An empty map because the data has a gap says so.
    placeholder(g, plot, state.gaps.length && state.symbol ? `No open-interest data for ${state.symbol}` : "");
    return;
  }
  const yOf = (pr) => plot.y + (1 - (pr - view.lo) / (view.hi - view.lo)) * plot.h;
  const inView = levels.filter((l) => l.price + bin >= view.lo && l.price <= view.hi);
  const barMax = Math.max(1, ...inView.map((l) => Math.max(l.long_density, l.short_density)));
  const cum = cumulative(levels, p, bin);
  const cumMax = Math.max(1, ...cum.long.filter((c) => c.price + bin >= view.lo).map((c) => c.sum), ...cum.short.filter((c) => c.price <= view.hi).map((c) => c.sum));
  Object.assign(state.layout.map, { yOf, bin, cum, levels });

  const xTicks = niceTicks(0, cumMax, Math.max(2, Math.floor(plot.w / 70)));
  g.strokeStyle = GRID;
  g.beginPath();
  for (const v of xTicks) {
    const x = Math.round(plot.x + (v / cumMax) * plot.w) + 0.5;
    g.moveTo(x, plot.y);
    g.lineTo(x, plot.y + plot.h);
  }
  for (const tp of niceTicks(view.lo, view.hi, Math.max(3, Math.floor(plot.h / 46)))) {
    const y = Math.round(yOf(tp)) + 0.5;
    g.moveTo(plot.x, y);
    g.lineTo(plot.x + plot.w, y);
  }
  g.stroke();

  g.save();
  g.beginPath();
  g.rect(plot.x, plot.y, plot.w, plot.h);
  g.clip();
  const rowH = Math.abs(yOf(0) - yOf(bin));
  const gap = rowH > 3 ? 1 : 0;
  for (const l of inView) {
    const y = yOf(l.price + bin);
    for (const [v, colour] of [[l.long_density, "rgba(38, 194, 129, 0.8)"], [l.short_density, "rgba(240, 80, 110, 0.8)"]]) {
      if (!(v > 0)) continue;
      g.fillStyle = colour;
      g.fillRect(plot.x, y, Math.max(1, (v / barMax) * plot.w), Math.max(1, rowH - gap));
    }
  }
  for (const [side, colour] of [["long", "#5ff0b4"], ["short", "#ff8fa6"]]) {
    const pts = cum[side];
    if (!pts.length) continue;
    const xOf = (v) => plot.x + (v / cumMax) * plot.w;
    g.beginPath();
    g.moveTo(plot.x, yOf(p));
    for (const c of pts) {
      g.lineTo(xOf(c.before), yOf(c.edge));
      g.lineTo(xOf(c.sum), yOf(c.edge));
      g.lineTo(xOf(c.sum), yOf(c.far));
    }
    const end = pts[pts.length - 1];
    const beyond = side === "long" ? view.lo : view.hi;
    g.lineTo(xOf(end.sum), yOf(beyond));
    g.strokeStyle = colour;
    g.lineWidth = 1.5;
    g.stroke();
    g.lineTo(plot.x, yOf(beyond));
    g.closePath();
    g.fillStyle = side === "long" ? "rgba(95, 240, 180, 0.07)" : "rgba(255, 143, 166, 0.07)";
    g.fill();
  }
  drawPriceLine(g, plot, Math.round(yOf(p)) + 0.5);
  g.restore();

  g.font = font(10);
  g.fillStyle = AXIS_TEXT;
  g.textBaseline = "top";
  xTicks.forEach((v, i) => {
    const x = plot.x + (v / cumMax) * plot.w;
    g.textAlign = i === 0 ? "left" : x > plot.x + plot.w - 24 ? "right" : "center";
    g.fillText(v === 0 ? "0" : fmtUSD(v), x, plot.y + plot.h + 6);
  });
  if (axisW) {
    g.font = font(11);
    g.textAlign = "left";
    g.textBaseline = "middle";
    const step = axisTicks.length > 1 ? axisTicks[1] - axisTicks[0] : 1;
    for (const tp of axisTicks) {
      const ty = yOf(tp);
      if (ty < plot.y + 6 || ty > plot.y + plot.h - 6) continue;
      g.fillText(fmtTick(tp, step), plot.x + plot.w + 15, ty);
    }
    priceTag(g, fmtPrice(p), plot.x + plot.w + 8, yOf(p), axisW + 8, lastDirection());
  }
}

// Long liquidations accumulate from the current price downward, shorts
// upward: how much gets liquidated if price travels that far.
function cumulative(levels, p, bin) {
  const long = [], short = [];
  let sum = 0;
  for (let i = levels.length - 1; i >= 0; i--) {
    const l = levels[i];
    if (l.price > p || !(l.long_density > 0)) continue;
    const before = sum;
    sum += l.long_density;
    long.push({ price: l.price, before, sum, edge: Math.min(p, l.price + bin), far: l.price });
  }
  sum = 0;
  for (const l of levels) {
    if (l.price + bin < p || !(l.short_density > 0)) continue;
    const before = sum;
    sum += l.short_density;
    short.push({ price: l.price, before, sum, edge: Math.max(p, l.price), far: l.price + bin });
  }
  return { long, short };
}

function placeholder(g, plot, text) {
  if (!text) return;
  g.fillStyle = AXIS_TEXT;
  g.font = font(13);
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText(text, plot.x + plot.w / 2, plot.y + plot.h / 2);
}

function setLegend(scale) {
  $("legend-lo").textContent = scale ? fmtUSD(scale.lo) : "–";
  $("legend-hi").textContent = scale ? fmtUSD(scale.hi) : "–";
}

// ---------- hover, zoom ----------

function drawOverlay() {
  const a = fit(heatOver), b = fit(mapOver);
  a.g.clearRect(0, 0, a.w, a.h);
  b.g.clearRect(0, 0, b.w, b.h);
  $("tip").hidden = true;
  $("tip-map").hidden = true;
  const hv = state.hover, L = state.layout, view = state.view;
  if (!hv || !L || !L.heat || !L.heat.yOf || !view) return;
  const hp = L.heat, mp = L.map;
  // A liquidation mark under the pointer wins over the cell beneath it.
  const mark = hv.panel === "heat" ? markAt(hp.marks, hv.x, hv.y) : null;
  if (mark) {
    const { x, y, r, m } = mark;
    a.g.beginPath();
    a.g.arc(x, y, r + 2.5, 0, 2 * Math.PI);
    a.g.strokeStyle = "rgba(245, 247, 250, 0.9)";
    a.g.lineWidth = 1.5;
    a.g.stroke();
    tip($("tip"), hv, hp, `${m.side === "long" ? "Long" : "Short"} liquidation`, [
      ["Time", `${fmtDay(m.time)} ${fmtClock(m.time)} UTC`],
      ["Price", fmtPrice(m.price)],
      ["Notional", fmtUSD(m.notional)],
      ["Quantity", Number.isFinite(m.quantity) ? m.quantity.toLocaleString("en-US", { maximumSignificantDigits: 6 }) : "–"],
      ["Side", `${m.side} position liquidated`],
    ]);
    return;
  }
  const plot = hv.panel === "heat" ? hp : mp;
  if (!plot || hv.x < plot.x || hv.x > plot.x + plot.w || hv.y < plot.y || hv.y > plot.y + plot.h) return;
  const price = view.lo + (1 - (hv.y - plot.y) / plot.h) * (view.hi - view.lo);
  const bin = state.bin || 1;
  const bucket = Math.floor(price / bin) * bin;
  const line = (g, p, y) => {
    g.strokeStyle = "rgba(230, 236, 245, 0.45)";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(p.x, Math.round(y) + 0.5);
    g.lineTo(p.x + p.w, Math.round(y) + 0.5);
    g.stroke();
  };
  line(a.g, hp, hp.yOf(price));
  if (mp && mp.yOf) line(b.g, mp, mp.yOf(price));

  const rows = [];
  let title = `${fmtPrice(bucket)} – ${fmtPrice(bucket + bin)}`;
  if (hv.panel === "heat") {
    const slot = Math.floor((hv.x - hp.x) / hp.w * ((hp.t1 - hp.t0) / hp.iv));
    const t = hp.t0 + slot * hp.iv;
    const col = state.cols.find((c) => c.t === t);
    const x = Math.round(hp.xOf(t) + (hp.w / ((hp.t1 - hp.t0) / hp.iv)) / 2) + 0.5;
    a.g.strokeStyle = "rgba(230, 236, 245, 0.3)";
    a.g.beginPath();
    a.g.moveTo(x, hp.y);
    a.g.lineTo(x, hp.y + hp.h);
    a.g.stroke();
    const lv = col ? levelAt(col.levels, bucket) : null;
    const live = col && col.live && col === state.cols[state.cols.length - 1];
    title = `${fmtDay(t)} ${fmtClock(t, false)} UTC${live ? " · live" : ""}`;
    rows.push(["Price", `${fmtPrice(bucket)} – ${fmtPrice(bucket + bin)}`]);
    rows.push(["Long liq.", fmtUSD(lv ? lv.long_density : 0)], ["Short liq.", fmtUSD(lv ? lv.short_density : 0)]);
    if (col && col.candle) {
      const k = col.candle;
      rows.push(["O / C", `${fmtPrice(k.open)} / ${fmtPrice(k.close)}`], ["H / L", `${fmtPrice(k.high)} / ${fmtPrice(k.low)}`]);
    }
    tip($("tip"), hv, hp, title, rows);
  } else if (mp && mp.levels) {
    const lv = levelAt(mp.levels, bucket);
    rows.push(["Long liq.", fmtUSD(lv ? lv.long_density : 0)], ["Short liq.", fmtUSD(lv ? lv.short_density : 0)]);
    const p = currentPrice();
    if (p && bucket + bin <= p) {
      const c = mp.cum.long.filter((x) => x.price >= bucket).pop();
      rows.push(["Cum. long to here", fmtUSD(c ? c.sum : 0)]);
    } else if (p && bucket >= p) {
      const c = mp.cum.short.filter((x) => x.price <= bucket).pop();
      rows.push(["Cum. short to here", fmtUSD(c ? c.sum : 0)]);
    }
    tip($("tip-map"), hv, mp, title, rows);
  }
}

// markAt is the drawn mark under (x, y), the topmost (drawn last) first.
function markAt(marks, x, y) {
  if (!marks) return null;
  for (let i = marks.length - 1; i >= 0; i--) {
    const k = marks[i];
    if ((x - k.x) ** 2 + (y - k.y) ** 2 <= (k.r + 1) ** 2) return k;
  }
  return null;
}

function levelAt(levels, bucket) {
  let lo = 0, hi = levels.length - 1;
  while (lo <= hi) {
    const m = (lo + hi) >> 1;
    const p = levels[m].price;
    if (Math.abs(p - bucket) < 1e-9) return levels[m];
    if (p < bucket) lo = m + 1;
    else hi = m - 1;
  }
  return null;
}

function tip(el, hv, plot, title, rows) {
  el.replaceChildren();
  const t = document.createElement("div");
  t.className = "t";
  t.textContent = title;
  el.append(t);
  for (const [k, v] of rows) {
    const r = document.createElement("div");
    r.className = "r";
    const a = document.createElement("span"), b = document.createElement("span");
    a.textContent = k;
    b.textContent = v;
    r.append(a, b);
    el.append(r);
  }
  el.hidden = false;
  const box = el.parentElement.getBoundingClientRect();
  const tw = el.offsetWidth, th = el.offsetHeight;
  let x = hv.x + 14, y = hv.y + 14;
  if (x + tw > box.width - 4) x = hv.x - tw - 14;
  if (y + th > box.height - 4) y = hv.y - th - 14;
  el.style.left = `${Math.max(4, x)}px`;
  el.style.top = `${Math.max(4, y)}px`;
}

for (const [canvas, panel] of [[heat, "heat"], [map, "map"]]) {
  const move = (e) => {
    const r = canvas.getBoundingClientRect();
    state.hover = { panel, x: e.clientX - r.left, y: e.clientY - r.top };
    drawOverlay();
  };
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerdown", move);
  canvas.addEventListener("pointerleave", () => {
    state.hover = null;
    drawOverlay();
  });
  // Wheel zooms the price axis around the cursor; double-click resets.
  canvas.addEventListener("wheel", (e) => {
    const L = state.layout && state.layout[panel];
    if (!L || !state.view) return;
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    const v = state.view;
    const at = v.lo + (1 - (e.clientY - r.top - L.y) / L.h) * (v.hi - v.lo);
    const f = Math.exp(Math.sign(e.deltaY) * 0.12);
    const span = Math.max((state.bin || 1) * 8, (v.hi - v.lo) * f);
    const k = (at - v.lo) / (v.hi - v.lo);
    state.zoom = { lo: at - k * span, hi: at + (1 - k) * span };
    requestDraw();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => {
    state.zoom = null;
    requestDraw();
  });
}
narrow.addEventListener("change", () => requestDraw());

// ---------- formatting ----------

const LUT = buildLUT();
function buildLUT() {
  const out = [];
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let j = 1;
    while (j < PALETTE.length - 1 && PALETTE[j][0] < t) j++;
    const [t0, c0] = PALETTE[j - 1], [t1, c1] = PALETTE[j];
    const f = clamp01((t - t0) / (t1 - t0));
    out.push([0, 1, 2, 3].map((k) => (k < 3 ? Math.round(c0[k] + (c1[k] - c0[k]) * f) : Math.round((c0[3] + (c1[3] - c0[3]) * f) * 255))));
  }
  return out;
}
$("legend-bar").style.background = `linear-gradient(90deg, ${PALETTE.map(([t, c]) => `rgba(${c[0]},${c[1]},${c[2]},${c[3]}) ${t * 100}%`).join(", ")})`;

function clamp01(v) {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function niceTicks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [];
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function timeTicks(t0, t1, width, minGap) {
  const steps = [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];
  const step = steps.find((s) => (width / (t1 - t0)) * s >= minGap) || steps[steps.length - 1];
  const out = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
  return out;
}

function fmtPrice(p) {
  const d = p >= 10000 ? 1 : p >= 100 ? 2 : p >= 1 ? 4 : 6;
  return p.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function fmtTick(p, step) {
  const d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return p.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function fmtUSD(v) {
  const a = Math.abs(v || 0);
  const s = (x, u) => `$${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}${u}`;
  if (a >= 1e9) return s(a / 1e9, "B");
  if (a >= 1e6) return s(a / 1e6, "M");
  if (a >= 1e3) return s(a / 1e3, "K");
  return `$${a.toFixed(0)}`;
}

function fmtAge(s) {
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function fmtClock(t, seconds = true) {
  return new Date(t).toISOString().slice(11, seconds ? 19 : 16);
}

function fmtDay(t) {
  return new Date(t).toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
}

init().catch((err) => showError("", `page failed to start: ${err.message}`));

// drawPriceLine is the dashed current-price line both charts share.
function drawPriceLine(g, plot, y) {
  g.strokeStyle = NOW_LINE;
  g.globalAlpha = 0.75;
  g.lineWidth = 1;
  g.setLineDash([4, 4]);
  g.beginPath();
  g.moveTo(plot.x, y);
  g.lineTo(plot.x + plot.w, y);
  g.stroke();
  g.setLineDash([]);
  g.globalAlpha = 1;
}
