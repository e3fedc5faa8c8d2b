import type { TicketAnswer } from "./types.js";

/**
 * The ticket callback's way to say "the token was refused": the client stops
 * retrying (reason `unauthorized`) until `connect()` is called again. Any
 * error with `status` 401 or 403 counts the same.
 */
export class UnauthorizedError extends Error {
  readonly status: number;
  constructor(message = "unauthorized", status = 401) {
    super(message);
    this.name = "UnauthorizedError";
    this.status = status;
  }
}

/** The ticket endpoint answered an error other than 401/403; the client retries. */
export class TicketError extends Error {
  readonly status: number;
  /** From the answer's Retry-After, if any: the client waits at least this long. */
  readonly retryAfterMs?: number;
  constructor(message: string, status: number, retryAfterMs?: number) {
    super(message);
    this.name = "TicketError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Options of {@link ticketFromJWT}. */
export interface TicketFromJWTOptions {
  /** fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Abort the request after this long (default 10 000 ms). */
  timeoutMs?: number;
}

/**
 * A ticket callback for the common case: POST `<baseUrl>/ws_ticket` with
 * `Authorization: Bearer <jwt>`, the JWT asked of `getJWT` on every call (so
 * a renewed token is used at once). 401/403 throw {@link UnauthorizedError};
 * other failures throw {@link TicketError}. The JWT's `exp` is passed on as
 * the session's end, so the client refreshes in time.
 */
export function ticketFromJWT(
  baseUrl: string,
  getJWT: () => string | null | undefined | Promise<string | null | undefined>,
  opts: TicketFromJWTOptions = {},
): () => Promise<TicketAnswer> {
  const endpoint = baseUrl.replace(/\/+$/, "") + "/ws_ticket";
  return async () => {
    const jwt = await getJWT();
    if (!jwt) throw new UnauthorizedError("no token");
    const doFetch = opts.fetch ?? fetch;
    const res = await doFetch(endpoint, {
      method: "POST",
      headers: { Authorization: "Bearer " + jwt },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10000),
      cache: "no-store",
    });
    if (res.status === 401 || res.status === 403) {
      throw new UnauthorizedError("ticket endpoint: " + res.status + " " + (await errorText(res)), res.status);
    }
    if (!res.ok) {
      const ra = Number(res.headers.get("Retry-After"));
      throw new TicketError("ticket endpoint: " + res.status + " " + (await errorText(res)), res.status,
        ra > 0 ? ra * 1000 : undefined);
    }
    const body = (await res.json()) as TicketAnswer;
    if (typeof body.ticket !== "string") throw new TicketError("ticket endpoint: no ticket in the answer", res.status);
    const exp = jwtExpiry(jwt);
    return exp ? { ...body, sessionExpires: exp } : body;
  };
}

async function errorText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: string };
    return body.error ?? "";
  } catch {
    return "";
  }
}

/** The `exp` claim (unix seconds) of a JWT, read without verifying it; undefined if absent. */
export function jwtExpiry(jwt: string): number | undefined {
  try {
    const part = jwt.split(".")[1];
    if (!part) return undefined;
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4))) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/** Whether an error thrown by the ticket callback means "stop: the token is refused". */
export function isUnauthorized(err: unknown): boolean {
  if (err instanceof UnauthorizedError) return true;
  const status = (err as { status?: unknown } | null)?.status;
  return status === 401 || status === 403;
}
