import type { Position, SubscriptionHandlers } from "./types.js";

/** @internal What a Subscription needs of its client. */
export interface SubscriptionOwner {
  position(channel: string): Position | undefined;
  unsubscribeSub(sub: Subscription): void;
}

/** One channel's subscription, from {@link Turnstile.subscribe}. */
export class Subscription {
  /** @internal id of the subscribe command awaiting its reply. */
  pendingId = 0;
  /** @internal Made by Turnstile.subscribe. */
  constructor(
    readonly channel: string,
    /** @internal */ readonly handlers: SubscriptionHandlers,
    private readonly owner: SubscriptionOwner,
  ) {}

  /** The last position seen in this channel (persist it to recover across page loads). */
  get position(): Position | undefined {
    return this.owner.position(this.channel);
  }

  /** Stops receiving this channel. Safe to call twice. */
  unsubscribe(): void {
    this.owner.unsubscribeSub(this);
  }
}
