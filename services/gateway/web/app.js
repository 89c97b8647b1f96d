import { LiqstreamClient } from "./liqstream.js";

const $ = (id) => document.getElementById(id);
const picker = $("symbol");
const canvas = $("levels");
const client = new LiqstreamClient();
let current = null;
let last = null;

client.addEventListener("status", (e) => {
  $("status").textContent = e.detail;
  $("status").dataset.status = e.detail;
});
client.addEventListener("error", (e) => showError(`${e.detail.code}: ${e.detail.message}`));
client.addEventListener("snapshot", (e) => {
  if (e.detail.symbol !== current) return;
  last = e.detail;
  showError("");
  draw();
});
window.addEventListener("resize", () => draw());

picker.addEventListener("change", () => select(picker.value));

async function init() {
  const res = await fetch("api/v1/symbols");
  const { symbols } = await res.json();
  for (const s of symbols) picker.append(new Option(s, s));
  const wanted = new URLSearchParams(location.search).get("symbol");
  client.connect();
  select(wanted || symbols[0]);
}

function select(sym) {
  if (current && current !== sym) client.unsubscribe([current]);
  current = sym;
  picker.value = sym;
  last = null;
  draw();
  client.subscribe([sym]);
}

function showError(text) {
  $("error").hidden = !text;
  $("error").textContent = text;
}

// Draws horizontal bars by price: longs (liquidated below price) to the left,
// shorts (above price) to the right, and the current price as a line.
function draw() {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  if (!last) return;
  const d = last.data;
  $("price").textContent = d.current_price.toLocaleString(undefined, { maximumFractionDigits: 2 });
  $("meta").textContent = `seq ${last.seq} · ${last.timestamp} · levels ${d.levels.length} · created ${d.positions_created} · consumed ${d.positions_consumed}`;
  const levels = d.levels;
  if (!levels.length) return;
  const lo = Math.min(levels[0].price, d.current_price), hi = Math.max(levels[levels.length - 1].price + (d.bin_size || 0), d.current_price);
  const max = Math.max(...levels.map((l) => Math.max(l.long_density, l.short_density)));
  const y = (p) => h - ((p - lo) / (hi - lo || 1)) * h;
  const barH = Math.max(1, (h / ((hi - lo) / (d.bin_size || 1))) - 1);
  const mid = w / 2;
  for (const l of levels) {
    const top = y(l.price + (d.bin_size || 0));
    if (l.long_density > 0) { g.fillStyle = "#2ecc71"; const bw = (l.long_density / max) * (mid - 8); g.fillRect(mid - bw, top, bw, barH); }
    if (l.short_density > 0) { g.fillStyle = "#e74c3c"; const bw = (l.short_density / max) * (mid - 8); g.fillRect(mid, top, bw, barH); }
  }
  g.strokeStyle = "#f1c40f"; g.setLineDash([6, 4]);
  g.beginPath(); g.moveTo(0, y(d.current_price)); g.lineTo(w, y(d.current_price)); g.stroke();
}

init().catch((err) => showError(`cannot load symbols: ${err}`));
