// Scenario 1: registration. Sync: 201 once the welcome email was sent
// (`email_status: "sent"`). Async: 202 with `email_status: "pending"` and a
// `status_url`; the followed sample is polled (GET /users/{id}) until
// `email_status` turns `sent`, timed `created_at` → `email_sent_at`.
//
//   k6 run -e ARCH=async -e PROFILE=medium k6/scenarios/1-register.js

import { check } from 'k6';
import { ASYNC, runToken } from '../lib/config.js';
import { followStatus, shouldFollow } from '../lib/completion.js';
import { entry, flowTags, isId, isText, json } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'register';
const TAGS = flowTags(FLOW);

export const options = buildOptions([FLOW]);

export function setup() {
  requireServices(FLOW);
  return {};
}

export function register() {
  // Unique per request: the same address twice is 409.
  const email = `k6.${__VU}.${__ITER}.${runToken()}@example.com`;
  const res = entry(FLOW, 'POST', '/register', { email }, { name: 'POST /register' });
  const body = json(res) || {};
  const user = () => isId(body.id) && body.email === email;
  if (!ASYNC) {
    check(res, {
      'register: 201': (r) => r.status === 201,
      'register: id and email': user,
      'register: email sent before the answer': () => body.email_status === 'sent',
    }, TAGS);
    return;
  }
  const accepted = check(res, {
    'register: 202': (r) => r.status === 202,
    'register: id and email': user,
    'register: email pending, status_url': () => body.email_status === 'pending' && isText(body.status_url),
  }, TAGS);
  if (!accepted || !shouldFollow(FLOW)) {
    return;
  }
  const done = followStatus(FLOW, 'user', body.status_url, 'GET /users/{id}', {
    finished: (u) => u.email_status !== 'pending',
    doneAt: 'email_sent_at',
  });
  if (done) {
    check(done, { 'register: email sent later (async)': (u) => u.email_status === 'sent' && isText(u.email_sent_at) }, TAGS);
  }
}

export default function () {
  register();
}
