import type { SocketLike } from "./types.js";

export const CONNECTING = 0;
export const OPEN = 1;

/** Appends a query parameter (already encoded) to a URL. */
export function addParam(url: string, param: string): string {
  return url + (url.includes("?") ? "&" : "?") + param;
}

/** Closes a socket we no longer listen to, without a console error for one still connecting. */
export function closeQuietly(ws: SocketLike): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => {};
  if (ws.readyState === CONNECTING) {
    // Closing a connecting socket makes browsers log an error; close it once open instead.
    ws.onopen = () => ws.close(1000);
    return;
  }
  ws.onopen = null;
  try {
    ws.close(1000);
  } catch {
    // already closed
  }
}
