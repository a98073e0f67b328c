// Scenario 6: high-rate click ingestion. Both modes: 200 `{"status":
// "tracked"}`. The contract also promises that every click answered 200 is
// stored, so the run counts its 200 answers and, in teardown, reads the
// stored count back (GET /clicks/stats) once the async consumer has drained
// (the count stopped changing for 3 s).
//
// k6 shows teardown no metric value, so the comparison is made by the
// metrics themselves: each 200 adds 1 to `clicks_lost` and `clicks_answered`;
// teardown adds the stored count to `clicks_stored` and subtracts it from
// `clicks_lost`, whose threshold `count<=0` then says "nothing answered 200
// was lost" (below 0: more stored than answered, e.g. requests the client
// gave up on that the service still took). All three are in the summary.
// So that other traffic cannot blur the count, this run's clicks carry their
// own `page` (`k6-<token>`); the stored total before and after is logged too.
//
//   k6 run -e ARCH=async -e EXECUTOR=open -e PROFILE=heavy k6/scenarios/6-clicks.js

import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { runToken } from '../lib/config.js';
import { waitUntilSettled } from '../lib/drain.js';
import { entry, flowTags, getJson, json } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'clicks';
const TAGS = flowTags(FLOW);

const answered = new Counter('clicks_answered');
const stored = new Counter('clicks_stored');
const lost = new Counter('clicks_lost');

export const options = buildOptions([FLOW]);

function stats() {
  return getJson(FLOW, 'analytics', '/clicks/stats', 'GET /clicks/stats', 'setup');
}

export function setup() {
  requireServices(FLOW);
  const before = stats();
  return { clicks: { page: `k6-${runToken()}`, totalBefore: before ? before.total : null } };
}

export function clicks(data) {
  const page = data && data.clicks ? data.clicks.page : 'k6';
  const user_id = 1 + Math.floor(Math.random() * 1000000);
  const res = entry(FLOW, 'POST', '/track_click', { user_id, page }, { name: 'POST /track_click' });
  const ok = check(res, {
    'clicks: 200': (r) => r.status === 200,
    'clicks: tracked': () => (json(res) || {}).status === 'tracked',
  }, TAGS);
  if (res.status === 200) {
    answered.add(1, TAGS);
    lost.add(1, TAGS);
  }
  return ok;
}

export function teardown(data) {
  const run = data && data.clicks;
  if (!run) {
    return;
  }
  const { value, drained } = waitUntilSettled(stats);
  if (!value) {
    console.error('clicks: GET /clicks/stats failed after the run: nothing to compare');
    return;
  }
  const count = (value.pages && value.pages[run.page]) || 0;
  stored.add(count, TAGS);
  lost.add(-count, TAGS);
  console.log(
    `clicks: ${count} stored for page ${run.page}${drained ? '' : ' (still changing at the drain timeout)'}; ` +
      `stored total ${run.totalBefore} before, ${value.total} after; ` +
      'compare with clicks_answered in the summary (clicks_lost must be <= 0)',
  );
}

export default function (data) {
  clicks(data);
}
