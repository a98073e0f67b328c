// The six scenarios as k6 sees them: load levels and what a good answer
// time is. The k6 scenario of each is named after its key, and every request,
// check and custom metric carries the tag `flow:<key>`, so thresholds can be
// set per scenario whether it runs alone or in `all.js`.
//
// Levels (closed loop: VUs; open loop: arrivals per `timeUnit`) are sized for
// the README's 2-core machine with the default delays. Capacities there:
// sync services block one of `SYNC_WORKERS` (40) threads per request, so
// registration tops out near 80/s, payments and orders near 20/s, the
// fan-out near 200/s, clicks near 4,000/s, reports at about 12 a minute (two
// cores, ~10 s each). Async consumers: email 20/s and payment 5/s
// (`CONSUMER_PREFETCH` 10 over 0.5 s and 2 s), search 100/s, reports as sync.
// `heavy` passes those async capacities for 1, 2 and 5 on purpose: the
// backlog and the completion times it causes are the finding.

export const FLOWS = {
  register: {
    number: 1,
    service: 'user',
    // Seconds one request takes on an idle stack: sizes open-loop VU pools.
    answerS: { sync: 0.5, async: 0.01 },
    // Async: seconds from acceptance to the work done, on an idle stack.
    completionS: 0.5,
    vus: { light: 5, medium: 10, heavy: 20, peak: 60 },
    rate: { light: 5, medium: 15, heavy: 30, peak: 80 },
    timeUnit: '1s',
    // p95 of the entry request at `light` (scaled per profile), in ms.
    p95Ms: { sync: 1000, async: 250 },
    completionP95Ms: 1500,
    completionTimeoutS: 30,
    pollMs: 100,
    requestTimeout: '60s',
  },
  payment: {
    number: 2,
    service: 'payment',
    answerS: { sync: 2, async: 0.01 },
    completionS: 2,
    vus: { light: 5, medium: 10, heavy: 20, peak: 60 },
    rate: { light: 2, medium: 4, heavy: 10, peak: 30 },
    timeUnit: '1s',
    p95Ms: { sync: 3000, async: 250 },
    completionP95Ms: 4000,
    completionTimeoutS: 60,
    pollMs: 200,
    requestTimeout: '60s',
  },
  product: {
    number: 3,
    service: 'product',
    answerS: { sync: 0.2, async: 0.01 },
    completionS: 0.15,
    vus: { light: 5, medium: 10, heavy: 20, peak: 60 },
    rate: { light: 5, medium: 20, heavy: 50, peak: 150 },
    timeUnit: '1s',
    p95Ms: { sync: 500, async: 250 },
    completionP95Ms: 1000,
    completionTimeoutS: 30,
    pollMs: 100,
    requestTimeout: '60s',
  },
  report: {
    number: 4,
    service: 'report',
    answerS: { sync: 10, async: 0.01 },
    completionS: 10,
    vus: { light: 1, medium: 2, heavy: 4, peak: 8 },
    rate: { light: 3, medium: 6, heavy: 12, peak: 30 },
    timeUnit: '1m',
    p95Ms: { sync: 15000, async: 500 },
    completionP95Ms: 20000,
    completionTimeoutS: 300,
    pollMs: 500,
    // Four reports on two cores take ~19 s each; a queue of them longer.
    requestTimeout: '300s',
    // A 10 s operation needs longer stages to say anything.
    durationFactor: 2,
    // A few a minute: async mode follows every one, open loop too.
    followAll: true,
  },
  order: {
    number: 5,
    service: 'order',
    answerS: { sync: 2, async: 0.02 },
    completionS: 2.1,
    vus: { light: 5, medium: 10, heavy: 20, peak: 60 },
    rate: { light: 2, medium: 3, heavy: 8, peak: 30 },
    timeUnit: '1s',
    p95Ms: { sync: 3000, async: 250 },
    completionP95Ms: 5000,
    completionTimeoutS: 60,
    pollMs: 200,
    requestTimeout: '60s',
  },
  clicks: {
    number: 6,
    service: 'analytics',
    answerS: { sync: 0.02, async: 0.01 },
    completionS: 0,
    vus: { light: 10, medium: 50, heavy: 100, peak: 200 },
    rate: { light: 200, medium: 1000, heavy: 3000, peak: 8000 },
    timeUnit: '1s',
    p95Ms: { sync: 200, async: 200 },
    requestTimeout: '30s',
  },
};
