// Public types of the client. The wire format is DESIGN.md sections 1.3, 1.4
// and 1.7 (PROTOCOL.md in the repository).

/** The connection's state. */
export type State = "connecting" | "connected" | "disconnected";

/**
 * Why the client is disconnected:
 * - `unauthorized`: the ticket callback failed with 401/403 (or threw
 *   {@link UnauthorizedError}). The client stops retrying; call `connect()`
 *   again once the app has a new token.
 * - `network`: the socket could not be opened or died without a close frame
 *   (browser code 1006), the heartbeat went unanswered, or the attempt timed
 *   out. The client retries with backoff.
 * - `server`: the server closed with a code (`code`, `message` = its reason)
 *   or the ticket endpoint answered an error status (`status`). The client
 *   retries with backoff.
 * - `client`: the app called `disconnect()`.
 */
export type Reason = "unauthorized" | "network" | "server" | "client";

/** Payload of the `state` event. */
export interface StateEvent {
  state: State;
  /** Set when `state` is `disconnected`. */
  reason?: Reason;
  /** WebSocket close code (reason `server`, or 1006 for `network`). */
  code?: number;
  /** HTTP status of the ticket endpoint, when that is what failed. */
  status?: number;
  /** The server's close reason or a description of the failure. */
  message?: string;
  /** `connecting`: attempt number since the last successful connection, 1 first. */
  attempt?: number;
  /** `disconnected`: milliseconds until the next attempt (absent: no retry). */
  retryInMs?: number;
}

/** A position in a channel: the last offset seen and the channel's epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** A pushed message. Broadcasts have neither channel nor offset. */
export interface Message {
  channel?: string;
  offset?: number;
  data: unknown;
}

/** The server's welcome frame. */
export interface Welcome {
  user: string;
  conn: string;
  /** The personal channel, `#<user>`. */
  channel?: string;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  missed?: number;
  /** Session end in unix seconds, when the server says it. */
  expires?: number;
}

/** What the ticket callback may return besides a bare ticket string: the /ws_ticket answer. */
export interface TicketAnswer {
  ticket: string;
  /** WebSocket URL with the ticket in its query (as /ws_ticket answers). */
  url?: string;
  /** Unix seconds: the ticket's expiry (never after the session's end). */
  expires?: number;
  /** Unix seconds: the session's end (the JWT's exp), if known. */
  sessionExpires?: number;
}

/** An `error` frame from the server (a refused command), or a client-side failure. */
export interface ServerError {
  /** `bad_request`, `forbidden`, `too_many_channels`, … or `refresh_failed` (client side). */
  code: string;
  reason: string;
  /** The command's type, when the error answers one of ours. */
  command?: string;
  channel?: string;
}

/** `recovered` / `recoveryFailed` event payloads. */
export interface RecoveryEvent {
  channel: string;
  /** recovered only: how many missed messages follow. */
  missed?: number;
}

/** The reply to a subscribe. */
export interface Subscribed {
  channel: string;
  offset: number;
  epoch: string;
  recovered?: boolean;
  missed?: number;
}

/** Events of {@link Turnstile}, by name. */
export interface Events {
  state: StateEvent;
  welcome: Welcome;
  message: Message;
  recovered: RecoveryEvent;
  recoveryFailed: RecoveryEvent;
  refreshed: { expires: number };
  error: ServerError;
}

/** Per-channel callbacks given to `subscribe`. */
export interface SubscriptionHandlers {
  onMessage?: (m: Message) => void;
  /** Every (re)subscription confirmed by the server. */
  onSubscribed?: (s: Subscribed) => void;
  /** Missed messages were recovered and follow (exactly once, in order). */
  onRecovered?: (e: RecoveryEvent) => void;
  /** The missed messages could not be recovered: reload this channel's state from your backend. */
  onRecoveryFailed?: (e: RecoveryEvent) => void;
  /** The server refused the subscription (e.g. `forbidden`); it is dropped. */
  onError?: (e: ServerError) => void;
}

/** Timers and clock, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The part of the WebSocket API the client uses (browsers' and the ws package's). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
