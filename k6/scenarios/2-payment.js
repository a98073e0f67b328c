// Scenario 2: a slow external payment (2 s). Sync: 200 after the call with
// `transaction_id`, `status: "completed"`. Async: 202 with `payment_id`,
// `status: "pending"`, `status_url`; the followed sample is polled
// (GET /payments/{id}) until it is `completed` (or `declined`), timed
// `created_at` → `completed_at`.
//
//   k6 run -e ARCH=async -e EXECUTOR=open k6/scenarios/2-payment.js

import { check } from 'k6';
import { ASYNC } from '../lib/config.js';
import { followStatus, shouldFollow } from '../lib/completion.js';
import { entry, flowTags, isText, json } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'payment';
const TAGS = flowTags(FLOW);

export const options = buildOptions([FLOW]);

export function setup() {
  requireServices(FLOW);
  return {};
}

export function payment() {
  const res = entry(FLOW, 'POST', '/process_payment', { amount: 100.0, currency: 'USD' }, { name: 'POST /process_payment' });
  const body = json(res) || {};
  if (!ASYNC) {
    check(res, {
      'payment: 200': (r) => r.status === 200,
      'payment: completed with transaction_id': () => body.status === 'completed' && isText(body.transaction_id),
    }, TAGS);
    return;
  }
  const accepted = check(res, {
    'payment: 202': (r) => r.status === 202,
    'payment: pending with payment_id, status_url': () =>
      body.status === 'pending' && isText(body.payment_id) && isText(body.status_url),
  }, TAGS);
  if (!accepted || !shouldFollow(FLOW)) {
    return;
  }
  const done = followStatus(FLOW, 'payment', body.status_url, 'GET /payments/{id}', {
    finished: (p) => p.status !== 'pending',
    doneAt: 'completed_at',
  });
  if (done) {
    check(done, {
      'payment: completed later with transaction_id (async)': (p) => p.status === 'completed' && isText(p.transaction_id),
    }, TAGS);
  }
}

export default function () {
  payment();
}
