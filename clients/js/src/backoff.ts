// Full-jitter exponential backoff (AWS architecture blog, "Exponential
// Backoff And Jitter"): the delay is uniform in [0, cap) where cap doubles
// from min to max. Spreading over the whole interval, not around its middle,
// is what keeps a thousand clients cut at once from coming back at once.

/** The cap for attempt n (0-based): min·2ⁿ, at most max. */
export function backoffCap(attempt: number, minMs: number, maxMs: number): number {
  // 2^31 overflows nothing in floating point, but cap the exponent so a
  // long outage does not compute Infinity.
  return Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
}

/** A full-jitter delay for attempt n (0-based), given random() in [0, 1). */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  return Math.floor(random() * backoffCap(attempt, minMs, maxMs));
}
