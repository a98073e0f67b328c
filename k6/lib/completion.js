// Async mode: an answer (202) is not the end of the work. For a sample of the
// accepted operations the VU that sent it polls the status endpoint its
// answer named (`status_url`) until the work is finished or a timeout passes,
// and records
//
// - `async_completion` (Trend, ms): accepted → finished, from the services'
//   own timestamps (e.g. `created_at` → `email_sent_at`), so the polling step
//   does not blur it; the client's observed wait only when they are missing;
// - `async_completed` (Rate): the share of followed operations that finished
//   within `COMPLETION_TIMEOUT_S`.
//
// Polling happens in the same VU, which is busy meanwhile. Hence the default
// sample, `COMPLETION_SAMPLE`:
//
// - closed loop: 1. Each VU is a client that waits for the outcome of what it
//   asked for, as a sync client does by waiting for its answer, so both modes
//   do the same work per iteration and their rates compare. Set it to 0 for
//   fire-and-forget clients: then VUs only collect acknowledgements, as fast
//   as they come, and the consumers' backlog grows without any feedback.
// - open loop: 0.1. The arrival rate stays what the profile says whatever the
//   polling costs (k6 starts other VUs from the pool, sized for it), and one
//   operation in ten is enough for the completion percentiles. Reports, a few
//   a minute, are all followed.

import { sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { ASYNC, EXECUTOR, envNumber } from './config.js';
import { FLOWS } from './flows.js';
import { flowTags, getJson } from './http.js';

export const asyncCompletion = new Trend('async_completion', true);
export const asyncCompleted = new Rate('async_completed');

/** The share of `flow`'s accepted operations followed to their end (async mode). */
export function completionSample(flow) {
  const spec = FLOWS[flow];
  if (!ASYNC || !spec.completionTimeoutS) {
    return 0;
  }
  const fallback = EXECUTOR === 'closed' || spec.followAll ? 1 : 0.1;
  const sample = envNumber('COMPLETION_SAMPLE', fallback);
  if (sample > 1) {
    throw new Error(`COMPLETION_SAMPLE=${sample}: expected a share between 0 and 1`);
  }
  return sample;
}

/**
 * Whether this accepted operation of `flow` is one of the sample to follow:
 * evenly spread over each VU's iterations, starting with its first (0.1:
 * iterations 0, 10, 20, ...), so that even a short run follows some.
 */
export function shouldFollow(flow) {
  const sample = completionSample(flow);
  return Math.ceil((__ITER + 1) * sample) > Math.ceil(__ITER * sample);
}

/**
 * Polls with `probe` until it reports the work finished or the flow's
 * timeout passes. `probe()` returns null while the work is pending, else
 * `{ ms, body }`: the server-side accepted → finished time (NaN if unknown)
 * and the final state. Returns that final state, or null on timeout.
 */
export function follow(flow, probe) {
  const spec = FLOWS[flow];
  const interval = envNumber('POLL_INTERVAL_MS', spec.pollMs) / 1000;
  const timeoutMs = envNumber('COMPLETION_TIMEOUT_S', spec.completionTimeoutS) * 1000;
  const tags = flowTags(flow);
  const started = Date.now();
  let outcome = null;
  while (outcome === null && Date.now() - started < timeoutMs) {
    sleep(interval);
    outcome = probe();
  }
  asyncCompleted.add(outcome !== null, tags);
  if (outcome === null) {
    return null;
  }
  const ms = outcome.ms >= 0 ? outcome.ms : Date.now() - started;
  asyncCompletion.add(ms, tags);
  return outcome.body;
}

/**
 * Follows one accepted operation through the `status_url` its answer named,
 * on `service` (`name` tags the GETs), until `finished(state)`: timed from
 * the state's `created_at` to its `doneAt` field. Returns the final state, or
 * null on timeout.
 */
export function followStatus(flow, service, url, name, { finished, doneAt }) {
  return follow(flow, () => {
    const state = getJson(flow, service, url, name);
    if (!state || !finished(state)) {
      return null;
    }
    return { ms: msBetween(state.created_at, state[doneAt]), body: state };
  });
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Milliseconds since the epoch of an RFC 3339 timestamp, keeping the
 * microseconds the services give (Date.parse keeps at most milliseconds, and
 * not every engine parses nine fraction digits). NaN when it is not one.
 */
export function parseTime(text) {
  const m = typeof text === 'string' ? RFC3339.exec(text) : null;
  if (!m) {
    return NaN;
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  if (frac) {
    ms += Number(`0.${frac}`) * 1000;
  }
  if (zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60000;
  }
  return ms;
}

/** Milliseconds from timestamp `from` to timestamp `to`; NaN if either is missing. */
export function msBetween(from, to) {
  return parseTime(to) - parseTime(from);
}
