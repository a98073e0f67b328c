// Load profiles (`PROFILE`) in two shapes (`EXECUTOR`), and the thresholds
// each profile must meet. Levels come from lib/flows.js: `light`, `medium`,
// `heavy` and `peak` per scenario, in VUs (closed loop) or arrivals per time
// unit (open loop).
//
// | profile | stages (× DURATION_SCALE)                                        |
// |---------|------------------------------------------------------------------|
// | light   | light level, constant, 30 s                                      |
// | medium  | ramp to medium 15 s, hold 60 s, ramp down 15 s                   |
// | heavy   | ramp to heavy 30 s, hold 120 s, ramp down 30 s                   |
// | stress  | medium, heavy, peak, 1.5 × peak, 2 × peak: 30 s ramp + 30 s hold |
// |         | each, until the abort thresholds say it broke                    |
// | spike   | light 25 s, jump to peak in 5 s, hold 30 s, back to light in     |
// |         | 5 s, 45 s to recover, 5 s down                                   |
//
// Closed loop: `constant-vus` / `ramping-vus`, each VU sends its next request
// when the last one (and, in async mode, its followed completion) is done.
// Open loop: `constant-arrival-rate` / `ramping-arrival-rate`: requests start
// on schedule whatever the stack does; a stack that falls behind shows up as
// latency, then as `dropped_iterations` once the VU pool is used up.

import { ARCH, DRAIN_TIMEOUT_S, DURATION_SCALE, EXECUTOR, LOAD_SCALE, MAX_VUS, PROFILE } from './config.js';
import { completionSample } from './completion.js';
import { FLOWS } from './flows.js';

/** [seconds, level, multiple of the level]; level `zero` ends at 0. */
const SHAPES = {
  light: [[30, 'light', 1]],
  medium: [
    [15, 'medium', 1],
    [60, 'medium', 1],
    [15, 'zero', 0],
  ],
  heavy: [
    [30, 'heavy', 1],
    [120, 'heavy', 1],
    [30, 'zero', 0],
  ],
  stress: [
    [30, 'medium', 1],
    [30, 'medium', 1],
    [30, 'heavy', 1],
    [30, 'heavy', 1],
    [30, 'peak', 1],
    [30, 'peak', 1],
    [30, 'peak', 1.5],
    [30, 'peak', 1.5],
    [30, 'peak', 2],
    [30, 'peak', 2],
    [15, 'zero', 0],
  ],
  spike: [
    [5, 'light', 1],
    [20, 'light', 1],
    [5, 'peak', 1],
    [30, 'peak', 1],
    [5, 'light', 1],
    [45, 'light', 1],
    [5, 'zero', 0],
  ],
};

/**
 * What each profile must meet: entry p95 as a multiple of the flow's light
 * figure (lib/flows.js), the highest share of failed requests, the lowest
 * share of passed checks and of followed async operations that completed.
 * `abort`: stop the run once crossed (after 30 s): that is where it broke.
 */
const BARS = {
  light: { latency: 1, failed: 0.01, checks: 0.99, completed: 0.99, abort: false },
  medium: { latency: 1.5, failed: 0.01, checks: 0.99, completed: 0.99, abort: false },
  heavy: { latency: 2, failed: 0.02, checks: 0.98, completed: 0.95, abort: false },
  spike: { latency: 4, failed: 0.05, checks: 0.95, completed: 0.9, abort: false },
  stress: { latency: 5, failed: 0.1, checks: 0.9, completed: 0.5, abort: true },
};

if (!SHAPES[PROFILE]) {
  throw new Error(`PROFILE="${PROFILE}": expected one of ${Object.keys(SHAPES).join(', ')}`);
}

function seconds(flow, s) {
  return Math.max(1, Math.round(s * DURATION_SCALE * (FLOWS[flow].durationFactor || 1)));
}

function level(flow, name, times) {
  if (name === 'zero') {
    return 0;
  }
  const table = EXECUTOR === 'closed' ? FLOWS[flow].vus : FLOWS[flow].rate;
  return Math.max(1, Math.round(table[name] * times * LOAD_SCALE));
}

/** How long the flow's profile runs, in seconds (without graceful stop). */
export function profileSeconds(flow) {
  return SHAPES[PROFILE].reduce((sum, [s]) => sum + seconds(flow, s), 0);
}

/** Time a VU may need to finish an iteration once the profile is over. */
function graceSeconds(flow) {
  const spec = FLOWS[flow];
  const answer = 6 * spec.answerS[ARCH];
  const following = completionSample(flow) > 0 ? spec.completionTimeoutS + 10 : 0;
  return Math.ceil(Math.max(30, answer, following));
}

function unitSeconds(timeUnit) {
  return timeUnit === '1m' ? 60 : 1;
}

/**
 * The k6 scenario (executor and its settings) of `flow` for PROFILE and EXECUTOR.
 *
 * @param {string} flow
 * @param {number} [startSeconds]
 * @returns {import('k6/options').Scenario}
 */
export function scenario(flow, startSeconds = 0) {
  const shape = SHAPES[PROFILE];
  const spec = FLOWS[flow];
  const grace = `${graceSeconds(flow)}s`;
  const startTime = `${startSeconds}s`;
  const tags = { flow };
  const stages = shape.map(([s, name, times]) => ({ duration: `${seconds(flow, s)}s`, target: level(flow, name, times) }));
  const constant = shape.length === 1;
  if (EXECUTOR === 'closed') {
    if (constant) {
      const { target: vus, duration } = stages[0];
      return { executor: 'constant-vus', exec: flow, startTime, tags, vus, duration, gracefulStop: grace };
    }
    return {
      executor: 'ramping-vus',
      exec: flow,
      startTime,
      tags,
      startVUs: 0,
      stages,
      gracefulRampDown: grace,
      gracefulStop: grace,
    };
  }
  // Open loop: enough VUs for the highest rate, each busy for the answer
  // (and, for the followed sample, the completion), with room for a slower stack.
  const peakPerSecond = Math.max(...stages.map((st) => st.target)) / unitSeconds(spec.timeUnit);
  const busy = spec.answerS[ARCH] + completionSample(flow) * (spec.completionS + 0.5);
  const maxVUs = Math.min(MAX_VUS, Math.ceil(peakPerSecond * busy * 5) + 10);
  const preAllocatedVUs = Math.min(maxVUs, Math.ceil(peakPerSecond * busy * 1.5) + 2);
  const timeUnit = spec.timeUnit;
  if (constant) {
    const { target: rate, duration } = stages[0];
    return {
      executor: 'constant-arrival-rate',
      exec: flow,
      startTime,
      tags,
      rate,
      timeUnit,
      duration,
      preAllocatedVUs,
      maxVUs,
      gracefulStop: grace,
    };
  }
  return {
    executor: 'ramping-arrival-rate',
    exec: flow,
    startTime,
    tags,
    startRate: 0,
    timeUnit,
    stages,
    preAllocatedVUs,
    maxVUs,
    gracefulStop: grace,
  };
}

/**
 * @param {string} expression
 * @param {boolean} abort
 * @returns {import('k6/options').Threshold}
 */
function bar(expression, abort) {
  return abort ? { threshold: expression, abortOnFail: true, delayAbortEval: '30s' } : expression;
}

/**
 * The thresholds `flow` must meet under PROFILE, keyed by tagged sub-metric.
 *
 * @param {string} flow
 */
export function thresholds(flow) {
  const spec = FLOWS[flow];
  const b = BARS[PROFILE];
  /** @type {{ [name: string]: import('k6/options').Threshold[] }} */
  const t = {};
  t[`http_req_duration{flow:${flow},op:entry}`] = [bar(`p(95)<${Math.round(spec.p95Ms[ARCH] * b.latency)}`, b.abort)];
  // k6 passes a p(95) or rate threshold over no samples at all: this one
  // fails a run whose entry requests never happened.
  t[`http_reqs{flow:${flow},op:entry}`] = ['count>0'];
  t[`http_req_failed{flow:${flow}}`] = [bar(`rate<${b.failed}`, b.abort)];
  t[`checks{flow:${flow}}`] = [`rate>${b.checks}`];
  if (completionSample(flow) > 0) {
    t[`async_completion{flow:${flow}}`] = [`p(95)<${Math.round(spec.completionP95Ms * b.latency)}`];
    t[`async_completed{flow:${flow}}`] = [`rate>${b.completed}`];
  }
  if (EXECUTOR === 'open' && (PROFILE === 'light' || PROFILE === 'medium')) {
    // The pool is sized for these rates: a dropped iteration means the stack fell behind.
    t[`dropped_iterations{scenario:${flow}}`] = ['count<1'];
  }
  if (flow === 'clicks') {
    // Every click answered 200 is stored (lib/clicks.js): answered − stored ≤ 0.
    t.clicks_lost = ['count<=0'];
  }
  return t;
}

/**
 * Whole k6 options for `flows` run one after another (`startSeconds` gives
 * each one's start) or together (all 0).
 *
 * @param {string[]} flows
 * @param {number[]} [startSeconds]
 * @returns {import('k6/options').Options}
 */
export function options(flows, startSeconds = flows.map(() => 0)) {
  /** @type {{ [name: string]: import('k6/options').Scenario }} */
  const scenarios = {};
  /** @type {{ [name: string]: import('k6/options').Threshold[] }} */
  const all = {};
  flows.forEach((flow, i) => {
    scenarios[flow] = scenario(flow, startSeconds[i]);
    Object.assign(all, thresholds(flow));
  });
  return {
    scenarios,
    thresholds: all,
    // Setup checks the stack; teardown may wait for async consumers to drain.
    setupTimeout: '60s',
    teardownTimeout: `${DRAIN_TIMEOUT_S + 60}s`,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
    // Every sample says which run it came from (for outputs such as Prometheus).
    tags: { arch: ARCH, profile: PROFILE, executor: EXECUTOR },
  };
}
