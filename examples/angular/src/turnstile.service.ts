import { Injectable, InjectionToken, OnDestroy, Provider, inject } from "@angular/core";
import { BehaviorSubject, Observable, Subject, finalize, share } from "rxjs";
import {
  Turnstile, ticketFromJWT,
  type Message, type Options, type RecoveryEvent, type ServerError, type StateEvent,
} from "@turnstile-push/client";

/** How the app connects: its API base and its own JWT (the service never stores it). */
export interface TurnstileConfig {
  /** Base URL of the turnstile HTTP API, e.g. "https://push.example.com". */
  apiBase: string;
  /** The current JWT, asked for on every connection attempt and refresh. */
  getJWT: () => string | null | Promise<string | null>;
  /** Backoff, heartbeat, … (see the client's Options). */
  options?: Omit<Options, "getTicket">;
}

export const TURNSTILE_CONFIG = new InjectionToken<TurnstileConfig>("TURNSTILE_CONFIG");

/** For the app's providers: `provideTurnstile({ apiBase, getJWT: () => auth.token() })`. */
export function provideTurnstile(config: TurnstileConfig): Provider {
  return { provide: TURNSTILE_CONFIG, useValue: config };
}

/**
 * The turnstile client as RxJS streams. One socket for the whole app;
 * each channel is subscribed on the server while at least one observer
 * listens to `channel(name)`, and its position is kept across reconnects.
 */
@Injectable({ providedIn: "root" })
export class TurnstileService implements OnDestroy {
  private readonly config = inject(TURNSTILE_CONFIG);
  private readonly client = new Turnstile({
    ...this.config.options,
    getTicket: ticketFromJWT(this.config.apiBase, this.config.getJWT),
  });
  private readonly channels = new Map<string, Observable<Message>>();
  private readonly stateSubject = new BehaviorSubject<StateEvent>(this.client.state);
  private readonly lost = new Subject<RecoveryEvent>();
  private readonly errors = new Subject<ServerError>();
  private readonly offs: (() => void)[] = [];

  /** connecting / connected / disconnected, with the reason (unauthorized: get a new token, then connect()). */
  readonly state$: Observable<StateEvent> = this.stateSubject.asObservable();
  /** Channels whose missed messages could not be recovered: reload their state from your backend. */
  readonly recoveryFailed$: Observable<RecoveryEvent> = this.lost.asObservable();
  /** Refused commands and failed refreshes. */
  readonly errors$: Observable<ServerError> = this.errors.asObservable();
  /** Every message: channels, the personal channel and broadcasts. */
  readonly messages$: Observable<Message> = new Observable<Message>((sub) =>
    this.client.on("message", (m) => sub.next(m))).pipe(share());

  constructor() {
    this.offs.push(
      this.client.on("state", (s) => this.stateSubject.next(s)),
      this.client.on("recoveryFailed", (e) => this.lost.next(e)),
      this.client.on("error", (e) => this.errors.next(e)),
    );
  }

  connect(): void {
    this.client.connect();
  }

  disconnect(): void {
    this.client.disconnect();
  }

  /** The messages of one channel; the server subscription lives while someone observes. */
  channel(name: string): Observable<Message> {
    let obs = this.channels.get(name);
    if (!obs) {
      obs = new Observable<Message>((sub) => {
        const s = this.client.subscribe(name, {
          onMessage: (m) => sub.next(m),
          onError: (e) => sub.error(new Error(e.code + ": " + e.reason)),
        });
        return () => s.unsubscribe();
      }).pipe(
        finalize(() => this.channels.delete(name)),
        share(),
      );
      this.channels.set(name, obs);
    }
    return obs;
  }

  ngOnDestroy(): void {
    this.offs.forEach((off) => off());
    this.client.disconnect();
    this.stateSubject.complete();
    this.lost.complete();
    this.errors.complete();
  }
}
