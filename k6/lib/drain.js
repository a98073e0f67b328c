// Teardown's wait for the async consumers to catch up. k6 cannot see the
// broker's queues, so "drained" means: what we read has stopped changing for
// a while (and, where there is one, the expected end state was reached).

import { sleep } from 'k6';
import { ASYNC, DRAIN_TIMEOUT_S } from './config.js';

/**
 * Calls `read()` every 500 ms until its value satisfies `done` and has not
 * changed for `quietMs` (default: 3 s in async mode, 0 in sync mode, where
 * the work is over when its answer came), or DRAIN_TIMEOUT_S passes. Returns
 * `{ value, drained }`.
 *
 * @param {() => any} read
 * @param {(value: any) => boolean} [done]
 * @param {number} [quietMs]
 */
export function waitUntilSettled(read, done = () => true, quietMs = ASYNC ? 3000 : 0) {
  const deadline = Date.now() + DRAIN_TIMEOUT_S * 1000;
  let value = read();
  let same = JSON.stringify(value);
  let since = Date.now();
  for (;;) {
    if (value !== null && done(value) && Date.now() - since >= quietMs) {
      return { value, drained: true };
    }
    if (Date.now() >= deadline) {
      return { value, drained: false };
    }
    sleep(0.5);
    value = read();
    const now = JSON.stringify(value);
    if (now !== same) {
      same = now;
      since = Date.now();
    }
  }
}
