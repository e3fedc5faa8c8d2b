import { backoffDelay } from "./backoff.js";
import { call, Emitter } from "./emitter.js";
import { addParam, closeQuietly, OPEN } from "./socket.js";
import { Subscription } from "./subscription.js";
import { isUnauthorized } from "./ticket.js";
import type {
  Clock, Events, Message, Position, Reason, ServerError, SocketLike, StateEvent, Subscribed,
  SubscriptionHandlers, TicketAnswer, Welcome,
} from "./types.js";

/** Options of {@link Turnstile}. */
export interface Options {
  /**
   * Returns a fresh ticket: the /ws_ticket answer (preferred: it carries the
   * URL and the expiry) or a bare ticket string (then `url` is required).
   * Called once per connection attempt and once per session refresh. Throw
   * {@link UnauthorizedError} (or an error with `status` 401/403) when the
   * app's token is refused.
   */
  getTicket: () => Promise<string | TicketAnswer> | string | TicketAnswer;
  /** WebSocket URL (`wss://push.example.com/ws`); overrides the answer's url. */
  url?: string;
  /** Backoff cap of the first retry; the cap doubles per failure. Default 500. */
  minBackoffMs?: number;
  /** Largest backoff cap. Default 20 000. */
  maxBackoffMs?: number;
  /** After a 1001 "shutting down", reconnect at a random moment within this. Default 5 000. */
  shutdownSpreadMs?: number;
  /** Send a ping this long after the last one. Default 4 000. */
  pingIntervalMs?: number;
  /** No frame at all this long after a ping → the link is dead (`network`). Default 4 000. */
  pongTimeoutMs?: number;
  /** Ticket + upgrade + welcome must complete within this. Default 10 000. */
  connectTimeoutMs?: number;
  /** Refresh the session this long before it ends (at most half the time left). Default 30 000. */
  refreshLeadMs?: number;
  /**
   * Where the ticket travels: `query` (`?ticket=…`, default) or `protocol`
   * (`Sec-WebSocket-Protocol: turnstile.v1, turnstile.ticket.<ticket>`, kept
   * out of URLs and proxy logs; needs a server that speaks DESIGN 1.7).
   */
  ticketIn?: "query" | "protocol";
  /** The WebSocket constructor: the global one by default; in Node 20 pass `WebSocket` from `ws`. */
  WebSocket?: new (url: string, protocols?: string[]) => unknown;
  /** For tests: timers and clock. */
  clock?: Clock;
  /** For tests: random() in [0, 1). */
  random?: () => number;
}

// A connection must last this long before the backoff starts over, so a
// server that accepts and at once closes (policy, overload) is not hammered.
const STABLE_MS = 10000;
// Refreshes of one session are at least this far apart.
const MIN_REFRESH_GAP_MS = 5000;

interface Pending {
  type: "subscribe" | "unsubscribe" | "refresh" | "ping";
  channel?: string;
}

interface Failure {
  reason: Reason;
  code?: number;
  status?: number;
  message?: string;
}

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * The turnstile client. Single-threaded like the JavaScript it runs in:
 * every method may be called at any time from the app's thread.
 */
export class Turnstile extends Emitter<Events> {
  private readonly o: Required<Omit<Options, "url" | "WebSocket" | "clock" | "random">> & Pick<Options, "url">;
  private readonly WS: new (url: string, protocols?: string[]) => SocketLike;
  private readonly clock: Clock;
  private readonly random: () => number;

  private st: StateEvent = { state: "disconnected", reason: "client" };
  private active = false; // connect() called, not yet disconnect()/unauthorized
  private gen = 0; // current attempt; callbacks of older ones are ignored
  private failures = 0; // consecutive failed attempts
  private ws: SocketLike | null = null;
  private opened = false;
  private welcomed = false;
  private connectedAt = 0;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private subs = new Map<string, Subscription>();
  private positions = new Map<string, Position>();
  private personal: string | undefined;
  private sessionEnd = 0; // ms; 0 = unknown
  private lastRefresh = -Infinity;
  private timers: { [k in "retry" | "connect" | "ping" | "pong" | "refresh"]?: unknown } = {};

  constructor(opts: Options) {
    super();
    if (typeof opts?.getTicket !== "function") throw new TypeError("turnstile: options.getTicket is required");
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => unknown }).WebSocket;
    if (!WS) {
      throw new TypeError("turnstile: no global WebSocket here (Node < 22): pass { WebSocket } from the ws package");
    }
    this.WS = WS as new (url: string, protocols?: string[]) => SocketLike;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.o = {
      getTicket: opts.getTicket,
      url: opts.url,
      minBackoffMs: opts.minBackoffMs ?? 500,
      maxBackoffMs: opts.maxBackoffMs ?? 20000,
      shutdownSpreadMs: opts.shutdownSpreadMs ?? 5000,
      pingIntervalMs: opts.pingIntervalMs ?? 4000,
      pongTimeoutMs: opts.pongTimeoutMs ?? 4000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10000,
      refreshLeadMs: opts.refreshLeadMs ?? 30000,
      ticketIn: opts.ticketIn ?? "query",
    };
  }

  /** The current state and, when disconnected, why. */
  get state(): StateEvent {
    return { ...this.st };
  }

  /** The last position seen in a channel (the personal one included). */
  position(channel: string): Position | undefined {
    const p = this.positions.get(channel);
    return p && { ...p };
  }

  /** The personal channel (`#<user>`), known after the first welcome. */
  get personalChannel(): string | undefined {
    return this.personal;
  }

  /** Starts connecting (and reconnecting). A no-op while already active: one socket at a time. */
  connect(): void {
    if (this.active) return;
    this.active = true;
    this.failures = 0;
    this.attempt();
  }

  /** Closes the socket and stops reconnecting. Subscriptions and positions are kept for the next connect(). */
  disconnect(): void {
    this.stop({ reason: "client" });
  }

  /**
   * Subscribes to a channel. Messages come to `handlers.onMessage` (and the
   * client's `message` event); the position is kept and sent on every
   * resubscribe, so missed messages are recovered or `onRecoveryFailed` is
   * called. `since` starts from a stored position. The personal channel
   * (`#<user>`) is always subscribed by the server: subscribing to a name
   * starting with `#` only attaches the handlers.
   */
  subscribe(channel: string, handlers: SubscriptionHandlers = {}, opts: { since?: Position } = {}): Subscription {
    if (this.subs.has(channel)) throw new Error("turnstile: already subscribed to " + channel);
    const sub = new Subscription(channel, handlers, this);
    this.subs.set(channel, sub);
    if (opts.since) this.positions.set(channel, { offset: opts.since.offset, epoch: opts.since.epoch });
    if (this.welcomed) this.sendSubscribe(sub);
    return sub;
  }

  /** The subscription of a channel, if any. */
  subscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /** @internal */
  unsubscribeSub(sub: Subscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    if (sub.channel.startsWith("#")) return;
    this.positions.delete(sub.channel);
    if (this.welcomed) this.command({ type: "unsubscribe", channel: sub.channel }, { type: "unsubscribe", channel: sub.channel });
  }

  // ---- connection attempts ----

  private attempt(): void {
    const g = ++this.gen;
    this.setState({ state: "connecting", attempt: this.failures + 1 });
    this.timers.connect = this.clock.setTimeout(() => {
      if (g === this.gen) this.fail({ reason: "network", message: "connect timeout" });
    }, this.o.connectTimeoutMs);
    let answer: TicketAnswer;
    Promise.resolve()
      .then(() => this.o.getTicket())
      .then(
        (a) => {
          if (g !== this.gen) return;
          answer = typeof a === "string" ? { ticket: a } : a;
          if (typeof answer?.ticket !== "string" || !answer.ticket) {
            this.fail({ reason: "network", message: "getTicket returned no ticket" });
            return;
          }
          this.open(g, answer);
        },
        (err: unknown) => {
          if (g !== this.gen) return;
          const status = (err as { status?: number } | null)?.status;
          const message = err instanceof Error ? err.message : String(err);
          if (isUnauthorized(err)) {
            this.stop({ reason: "unauthorized", status, message });
            return;
          }
          const retryAfter = (err as { retryAfterMs?: number } | null)?.retryAfterMs;
          this.fail(typeof status === "number" ? { reason: "server", status, message } : { reason: "network", message },
            retryAfter);
        },
      );
  }

  private open(g: number, answer: TicketAnswer): void {
    const inProtocol = this.o.ticketIn === "protocol";
    let url = this.o.url ?? answer.url;
    if (!url) {
      this.fail({ reason: "network", message: "getTicket returned no url and options.url is not set" });
      return;
    }
    if (inProtocol) {
      const u = new URL(url);
      u.searchParams.delete("ticket"); // two tickets are refused as ambiguous
      url = u.toString();
    } else if (this.o.url) {
      url = addParam(url, "ticket=" + encodeURIComponent(answer.ticket));
    }
    const p = this.personal ? this.positions.get(this.personal) : undefined;
    if (p) url = addParam(url, "since=" + p.offset + ":" + encodeURIComponent(p.epoch));
    this.sessionEnd = (answer.sessionExpires ?? answer.expires ?? 0) * 1000;
    let ws: SocketLike;
    try {
      ws = inProtocol ? new this.WS(url, ["turnstile.v1", "turnstile.ticket." + answer.ticket]) : new this.WS(url);
    } catch (err) {
      this.fail({ reason: "network", message: err instanceof Error ? err.message : String(err) });
      return;
    }
    this.ws = ws;
    this.opened = false;
    ws.onopen = () => {
      if (g === this.gen) this.opened = true;
    };
    ws.onmessage = (ev) => {
      if (g === this.gen) this.frame(typeof ev.data === "string" ? ev.data : String(ev.data));
    };
    ws.onerror = () => {}; // a close event always follows and says more
    ws.onclose = (ev) => {
      if (g === this.gen) this.closed(ev.code, ev.reason);
    };
  }

  private closed(code: number, reason: string): void {
    const opened = this.opened;
    this.dropSocket();
    if (!opened) {
      // A browser shows 1006 for a refused upgrade and for a network failure
      // alike; with a ticket that was fresh, both mean "try again later".
      this.fail({ reason: "network", code, message: "connection failed before open" });
      return;
    }
    if (code === 1006 || code === 1005) {
      this.fail({ reason: "network", code, message: reason || "connection lost" });
      return;
    }
    const f: Failure = { reason: "server", code, message: reason };
    if (code === 1001 && /shutting down/i.test(reason)) {
      // Every client of that server is told at once: spread the return.
      this.failures = 0;
      this.fail(f, undefined, Math.floor(this.random() * this.o.shutdownSpreadMs));
    } else if (code === 1008 && /session expired/i.test(reason)) {
      this.failures = 0;
      this.fail(f, undefined, backoffDelay(0, this.o.minBackoffMs, this.o.maxBackoffMs, this.random));
    } else {
      this.fail(f);
    }
  }

  /** A failed attempt or a lost connection: disconnected now, another attempt after the backoff. */
  private fail(f: Failure, atLeastMs = 0, delayMs?: number): void {
    if (!this.active) return;
    if (this.connectedAt && this.clock.now() - this.connectedAt >= STABLE_MS) this.failures = 0;
    this.connectedAt = 0;
    this.teardown();
    let delay = delayMs ?? backoffDelay(this.failures, this.o.minBackoffMs, this.o.maxBackoffMs, this.random);
    delay = Math.max(delay, atLeastMs);
    this.failures++;
    this.setState({ state: "disconnected", ...f, retryInMs: delay });
    const g = this.gen;
    this.timers.retry = this.clock.setTimeout(() => {
      if (g === this.gen && this.active) this.attempt();
    }, delay);
  }

  /** No more attempts until connect(). */
  private stop(f: Failure): void {
    const was = this.active;
    this.active = false;
    this.teardown();
    if (was || this.st.state !== "disconnected") this.setState({ state: "disconnected", ...f });
  }

  /** Ends the current attempt: timers, socket, pending commands. */
  private teardown(): void {
    this.gen++;
    for (const k of Object.keys(this.timers) as (keyof typeof this.timers)[]) {
      if (this.timers[k] !== undefined) this.clock.clearTimeout(this.timers[k]);
      delete this.timers[k];
    }
    const ws = this.ws;
    this.dropSocket();
    if (ws) closeQuietly(ws);
  }

  private dropSocket(): void {
    this.ws = null;
    this.welcomed = false;
    this.opened = false;
    this.pending.clear();
  }

  private setState(s: StateEvent): void {
    this.st = s;
    this.emit("state", { ...s });
  }

  // ---- frames ----

  private frame(text: string): void {
    this.alive();
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (!f || typeof f !== "object") return;
    switch (f.type) {
      case "welcome":
        return this.onWelcome(f as unknown as Welcome);
      case "message":
        return this.onMessage(f as unknown as Message);
      case "subscribed":
        return this.onSubscribed(f);
      case "unsubscribed":
      case "pong":
        this.pending.delete(f.id as number);
        return;
      case "refreshed":
        return this.onRefreshed(f);
      case "error":
        return this.onError(f);
    }
  }

  private onWelcome(w: Welcome): void {
    if (this.welcomed) return;
    this.welcomed = true;
    this.connectedAt = this.clock.now();
    this.clock.clearTimeout(this.timers.connect);
    delete this.timers.connect;
    if (typeof w.expires === "number") this.sessionEnd = w.expires * 1000;
    if (w.channel) {
      this.personal = w.channel;
      this.applyPosition(w.channel, w.offset, w.epoch, w.recovered, w.missed);
    }
    this.setState({ state: "connected" });
    this.emit("welcome", { ...w });
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
    this.schedulePing();
    this.scheduleRefresh();
  }

  /** Position bookkeeping of a welcome or subscribed frame, and its recovery events. */
  private applyPosition(channel: string, offset: unknown, epoch: unknown, recovered: unknown, missed: unknown): void {
    const sub = this.subs.get(channel);
    if (recovered === true) {
      // The missed messages follow and advance the position one by one;
      // moving it to the top now would drop them as duplicates.
      const e = { channel, missed: typeof missed === "number" ? missed : 0 };
      this.emit("recovered", e);
      call(sub?.handlers.onRecovered, e);
      return;
    }
    if (typeof offset === "number") this.positions.set(channel, { offset, epoch: typeof epoch === "string" ? epoch : "" });
    if (recovered === false) {
      const e = { channel };
      this.emit("recoveryFailed", e);
      call(sub?.handlers.onRecoveryFailed, e);
    }
  }

  private onMessage(m: Message): void {
    const msg: Message = { data: m.data };
    if (typeof m.channel === "string") msg.channel = m.channel;
    if (typeof m.offset === "number") msg.offset = m.offset;
    // A channel unsubscribed a moment ago may still have messages in flight.
    if (msg.channel !== undefined && msg.channel !== this.personal && !this.subs.has(msg.channel)) return;
    if (msg.channel !== undefined && msg.offset !== undefined) {
      const p = this.positions.get(msg.channel);
      // At most once per offset: a resubscribe racing a live message must not deliver twice.
      if (p && msg.offset <= p.offset) return;
      this.positions.set(msg.channel, { offset: msg.offset, epoch: p?.epoch ?? "" });
    }
    this.emit("message", msg);
    if (msg.channel !== undefined) call(this.subs.get(msg.channel)?.handlers.onMessage, msg);
  }

  private onSubscribed(f: Record<string, unknown>): void {
    this.pending.delete(f.id as number);
    const channel = f.channel as string;
    const sub = this.subs.get(channel);
    if (!sub || sub.pendingId !== f.id) return; // unsubscribed meanwhile, or an older reply
    sub.pendingId = 0;
    this.applyPosition(channel, f.offset, f.epoch, f.recovered, f.missed);
    const s: Subscribed = { channel, offset: f.offset as number, epoch: f.epoch as string };
    if (typeof f.recovered === "boolean") s.recovered = f.recovered;
    if (typeof f.missed === "number") s.missed = f.missed;
    call(sub.handlers.onSubscribed, s);
  }

  private onRefreshed(f: Record<string, unknown>): void {
    this.pending.delete(f.id as number);
    if (typeof f.expires !== "number") return;
    this.sessionEnd = f.expires * 1000;
    this.emit("refreshed", { expires: f.expires });
    this.scheduleRefresh();
  }

  private onError(f: Record<string, unknown>): void {
    const p = typeof f.id === "number" ? this.pending.get(f.id) : undefined;
    if (p) this.pending.delete(f.id as number);
    const err: ServerError = { code: String(f.code ?? "error"), reason: String(f.reason ?? "") };
    if (p) err.command = p.type;
    if (p?.channel) err.channel = p.channel;
    if (p?.type === "subscribe" && p.channel) {
      const sub = this.subs.get(p.channel);
      if (sub && sub.pendingId === f.id) {
        // Refused (forbidden, too many channels): retrying on every reconnect would be refused again.
        this.subs.delete(p.channel);
        this.positions.delete(p.channel);
        call(sub.handlers.onError, err);
      }
    }
    this.emit("error", err);
  }

  // ---- commands ----

  private command(body: Record<string, unknown>, p: Pending): number {
    const id = this.nextId++;
    const ws = this.ws;
    if (!ws || !this.welcomed || ws.readyState !== OPEN) return 0;
    this.pending.set(id, p);
    ws.send(JSON.stringify({ ...body, id }));
    return id;
  }

  private sendSubscribe(sub: Subscription): void {
    if (sub.channel.startsWith("#")) return; // the personal channel: the server subscribed it already
    const body: Record<string, unknown> = { type: "subscribe", channel: sub.channel };
    const p = this.positions.get(sub.channel);
    if (p) body.since = { offset: p.offset, epoch: p.epoch };
    sub.pendingId = this.command(body, { type: "subscribe", channel: sub.channel });
  }

  // ---- heartbeat ----

  private schedulePing(): void {
    this.timers.ping = this.clock.setTimeout(() => {
      if (this.timers.pong === undefined) {
        const g = this.gen;
        this.timers.pong = this.clock.setTimeout(() => {
          if (g === this.gen) this.fail({ reason: "network", message: "heartbeat timeout" });
        }, this.o.pongTimeoutMs);
      }
      this.command({ type: "ping" }, { type: "ping" });
      this.schedulePing();
    }, this.o.pingIntervalMs);
  }

  /** Any frame proves the link alive. */
  private alive(): void {
    if (this.timers.pong === undefined) return;
    this.clock.clearTimeout(this.timers.pong);
    delete this.timers.pong;
  }

  // ---- session refresh ----

  private scheduleRefresh(): void {
    if (this.timers.refresh !== undefined) this.clock.clearTimeout(this.timers.refresh);
    delete this.timers.refresh;
    if (!this.sessionEnd) return;
    const now = this.clock.now();
    const left = this.sessionEnd - now;
    let delay = Math.max(0, left - Math.min(this.o.refreshLeadMs, left / 2));
    // A refresh whose ticket came from the same, unrenewed token does not move
    // the end; halving the time left would then refresh ever faster.
    delay = Math.max(delay, this.lastRefresh + MIN_REFRESH_GAP_MS - now);
    if (delay >= left) return; // the session ends first: 1008 "session expired", then a reconnect
    this.timers.refresh = this.clock.setTimeout(() => {
      delete this.timers.refresh;
      this.refresh();
    }, delay);
  }

  private refresh(): void {
    const g = this.gen;
    this.lastRefresh = this.clock.now();
    Promise.resolve()
      .then(() => this.o.getTicket())
      .then(
        (a) => {
          if (g !== this.gen) return;
          const ticket = typeof a === "string" ? a : a.ticket;
          this.command({ type: "refresh", ticket }, { type: "refresh" });
        },
        (err: unknown) => {
          if (g !== this.gen) return;
          // The session still runs until its end; then the server closes with
          // 1008 and the reconnect asks for a ticket again (and stops on 401).
          this.emit("error", { code: "refresh_failed", reason: err instanceof Error ? err.message : String(err), command: "refresh" });
          const left = this.sessionEnd - this.clock.now();
          if (!isUnauthorized(err) && left > 2000) {
            this.timers.refresh = this.clock.setTimeout(() => {
              delete this.timers.refresh;
              this.refresh();
            }, Math.min(5000, left / 2));
          }
        },
      );
  }
}
