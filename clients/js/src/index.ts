// turnstile browser/Node client: see README.md.
export { Turnstile } from "./client.js";
export { Subscription } from "./subscription.js";
export type { Options } from "./client.js";
export { ticketFromJWT, jwtExpiry, UnauthorizedError, TicketError } from "./ticket.js";
export type { TicketFromJWTOptions } from "./ticket.js";
export { backoffCap, backoffDelay } from "./backoff.js";
export type {
  State, Reason, StateEvent, Position, Message, Welcome, TicketAnswer, ServerError, RecoveryEvent,
  Subscribed, Events, SubscriptionHandlers, Clock, SocketLike,
} from "./types.js";
