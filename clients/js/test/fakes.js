// Test doubles: a clock whose time moves only when told, and a WebSocket
// whose server side the test scripts frame by frame.

export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.t = start;
    this.seq = 0;
    this.timers = new Map();
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn, id });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  /** Due time of the earliest timer, or undefined. */
  next() {
    let best;
    for (const t of this.timers.values()) if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    return best;
  }
  /** Moves time forward by ms, running every timer that falls due, in order, and the promises they start. */
  async advance(ms) {
    const end = this.t + ms;
    await flush();
    for (;;) {
      const t = this.next();
      if (!t || t.at > end) break;
      this.timers.delete(t.id);
      this.t = t.at;
      t.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush() {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

export class FakeSocket {
  static all = [];
  static autoPong = false;
  static reset() {
    FakeSocket.all = [];
    FakeSocket.autoPong = false;
  }
  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = undefined;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.all.push(this);
  }
  get ticket() {
    return new URL(this.url).searchParams.get("ticket");
  }
  get since() {
    return new URL(this.url).searchParams.get("since");
  }
  send(data) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    const f = JSON.parse(data);
    this.sent.push(f);
    if (FakeSocket.autoPong && f.type === "ping") this.push({ type: "pong", id: f.id });
  }
  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // ---- the server's side ----
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  welcome(extra = {}) {
    this.open();
    this.push({ type: "welcome", user: "maggie", conn: "c" + FakeSocket.all.length, channel: "#maggie", offset: 0, epoch: "p1", ...extra });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** What a browser reports for a refused upgrade or a failed TCP connect. */
  fail() {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }
  sentOf(type) {
    return this.sent.filter((f) => f.type === type);
  }
}
