// Scenario 4: a CPU-bound report (~10 s of SHA-256 on one idle core). Sync:
// 200 after the work with `report_hash`, `iterations`,
// `computation_time_seconds`. Async: 202 with `job_id` and `status_url`; the
// job is polled (GET /jobs/{job_id}) through `queued` → `running` →
// `completed` with its `report_hash`, timed `created_at` → `completed_at`.
// Reports are few, so async mode follows every one by default in both loops
// unless COMPLETION_SAMPLE says otherwise.
//
//   k6 run -e ARCH=sync -e PROFILE=medium k6/scenarios/4-report.js

import { check } from 'k6';
import { ASYNC } from '../lib/config.js';
import { followStatus, shouldFollow } from '../lib/completion.js';
import { entry, flowTags, isText, json } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'report';
const TAGS = flowTags(FLOW);
const HASH = /^[0-9a-f]{64}$/;

export const options = buildOptions([FLOW]);

export function setup() {
  requireServices(FLOW);
  return {};
}

export function report() {
  const res = entry(FLOW, 'POST', '/generate_report', { report_type: 'monthly' }, { name: 'POST /generate_report' });
  const body = json(res) || {};
  if (!ASYNC) {
    check(res, {
      'report: 200': (r) => r.status === 200,
      'report: report_hash, iterations, computation_time_seconds': () =>
        HASH.test(body.report_hash) && body.iterations > 0 && typeof body.computation_time_seconds === 'number',
    }, TAGS);
    return;
  }
  const accepted = check(res, {
    'report: 202': (r) => r.status === 202,
    'report: job_id, status_url': () => isText(body.job_id) && isText(body.status_url),
  }, TAGS);
  if (!accepted || !shouldFollow(FLOW)) {
    return;
  }
  const done = followStatus(FLOW, 'report', body.status_url, 'GET /jobs/{job_id}', {
    finished: (job) => job.status !== 'queued' && job.status !== 'running',
    doneAt: 'completed_at',
  });
  if (done) {
    check(done, { 'report: completed later with report_hash (async)': (j) => j.status === 'completed' && HASH.test(j.report_hash) }, TAGS);
  }
}

export default function () {
  report();
}
