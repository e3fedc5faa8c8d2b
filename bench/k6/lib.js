// Shared helpers for the turnstile k6 scripts: configuration from the
// environment, login (POST /auth) and tickets (GET /ws_ticket).
import http from 'k6/http';
import { check, fail } from 'k6';

export const HTTP = __ENV.HTTP || 'http://127.0.0.1:8080';
export const WS = __ENV.WS || 'ws://127.0.0.1:8081/ws';
export const USER = __ENV.USER_NAME || 'maggie';
export const PWD = __ENV.PASSWORD || 'secret';
export const PUBLISH_KEY = __ENV.PUBLISH_KEY || '';

/**
 * num reads a number from the environment.
 * @param {string} name
 * @param {number} def used when the variable is unset or empty
 * @returns {number}
 */
export function num(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : Number(v);
}

/**
 * login trades the user and password for a JWT; scripts call it in setup()
 * so that every VU shares one token.
 * @returns {string}
 */
export function login() {
  const res = http.post(`${HTTP}/auth`, JSON.stringify({ user: USER, pwd: PWD }), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'auth' },
  });
  if (!check(res, { 'auth 200': (r) => r.status === 200 })) {
    fail(`POST /auth: ${res.status} ${res.body}`);
  }
  return String(res.json('token'));
}

/**
 * ticketURL trades the token for a one-time ticket and returns the URL to
 * connect to (the configured WS base, so a proxy in front cannot confuse
 * it), or null when /ws_ticket refused.
 * @param {string} token
 * @returns {string | null}
 */
export function ticketURL(token) {
  const res = http.get(`${HTTP}/ws_ticket`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: 'ws_ticket' },
  });
  if (!check(res, { 'ticket 200': (r) => r.status === 200 })) {
    return null;
  }
  return `${WS}?ticket=${res.json('ticket')}`;
}

/**
 * parse reads a text frame as JSON; anything else is null.
 * @param {unknown} data a MessageEvent's data
 * @returns {any}
 */
export function parse(data) {
  if (typeof data !== 'string') {
    return null;
  }
  try {
    return JSON.parse(data);
  } catch (e) {
    return null;
  }
}

/**
 * isWelcome tells the welcome frame the server sends first.
 * @param {unknown} data
 * @returns {boolean}
 */
export function isWelcome(data) {
  const msg = parse(data);
  return msg !== null && msg.type === 'welcome';
}
