// reject: a storm of upgrade requests carrying well-formed but unknown
// tickets, at RATE per second for DURATION. Every one must be answered
// 401 before any upgrade. Sent with k6/http (a plain GET with the upgrade
// headers) because only the status and its latency matter here.
//
//   k6 run -e RATE=2000 -e DURATION=30s bench/k6/reject.js
import http from 'k6/http';
import { check } from 'k6';
import { WS, num } from './lib.js';

const RATE = num('RATE', 2000);
const DURATION = __ENV.DURATION || '30s';
const UPGRADE_URL = WS.replace(/^ws:/, 'http:').replace(/^wss:/, 'https:');
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    reject: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 200,
      maxVUs: 2000,
    },
  },
  thresholds: {
    'http_req_duration{name:upgrade}': ['p(50)<5', 'p(99)<50'],
    checks: ['rate>0.999'],
    dropped_iterations: ['count<1'],
  },
};

// randomTicket is 22 characters of base64url: well formed, never issued.
function randomTicket() {
  let t = '';
  for (let i = 0; i < 22; i++) {
    t += ALPHABET[Math.floor(Math.random() * 64)];
  }
  return t;
}

export default function () {
  const res = http.get(`${UPGRADE_URL}?ticket=${randomTicket()}`, {
    headers: {
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '13',
    },
    tags: { name: 'upgrade' },
  });
  check(res, { 'status 401': (r) => r.status === 401 });
}
