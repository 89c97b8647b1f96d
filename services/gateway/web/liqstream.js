// liqstream.js — a minimal client for liqstream's /ws/heatmap stream.
// Events: "snapshot" (the frame), "status" ("connected" | "disconnected"),
// "warning" and "error" (the server's frames).
export class LiqstreamClient extends EventTarget {
  constructor(url = defaultURL()) {
    super();
    this.url = url;
    this.symbols = new Set();
    this.updateInterval = 5;
    this.ws = null;
    this.closed = false;
    this.retry = 0;
  }

  connect() {
    this.closed = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.emit("status", "connected");
      if (this.symbols.size) this.send({ action: "subscribe", symbols: [...this.symbols], update_interval: this.updateInterval });
      this.pinger = setInterval(() => this.send({ action: "ping" }), 30000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (["snapshot", "warning", "error", "pong"].includes(msg.type)) this.emit(msg.type, msg);
    };
    ws.onclose = () => {
      clearInterval(this.pinger);
      this.emit("status", "disconnected");
      if (this.closed) return;
      const delay = Math.min(2000 * 2 ** this.retry++, 32000);
      setTimeout(() => this.connect(), delay);
    };
  }

  subscribe(symbols, updateInterval = this.updateInterval) {
    symbols.forEach((s) => this.symbols.add(s));
    this.updateInterval = updateInterval;
    this.send({ action: "subscribe", symbols, update_interval: updateInterval });
  }

  unsubscribe(symbols) {
    symbols.forEach((s) => this.symbols.delete(s));
    this.send({ action: "unsubscribe", symbols });
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000, "client closed");
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function defaultURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws/heatmap`;
}
