// A minimal typed event emitter: zero dependencies, same in browsers and Node.

type Listener<T> = (ev: T) => void;

export class Emitter<E> {
  private listeners: { [K in keyof E]?: Set<Listener<E[K]>> } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(name: K, fn: Listener<E[K]>): () => void {
    (this.listeners[name] ??= new Set()).add(fn);
    return () => this.off(name, fn);
  }

  off<K extends keyof E>(name: K, fn: Listener<E[K]>): void {
    this.listeners[name]?.delete(fn);
  }

  protected emit<K extends keyof E>(name: K, ev: E[K]): void {
    const set = this.listeners[name];
    if (!set) return;
    for (const fn of [...set]) call(fn, ev);
  }
}

/**
 * Runs an app callback. A throwing callback must not break the client's
 * state machine, so its error is rethrown on a fresh task, where the
 * platform reports it as uncaught.
 */
export function call<T>(fn: ((ev: T) => void) | undefined, ev: T): void {
  if (!fn) return;
  try {
    fn(ev);
  } catch (err) {
    setTimeout(() => {
      throw err;
    }, 0);
  }
}
