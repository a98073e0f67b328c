// Scenario 5: the order saga with compensation; the payment is declined by
// design. Sync: 400 `{"detail": {message, order_id, product_id, reason:
// "payment declined", compensation_executed: true}}`, which is the designed
// answer: it counts as expected, not in `http_req_failed` (responseCallback).
// Async: 202 with `id`, `status: "pending"`, `status_url`; the followed sample
// is polled (GET /orders/{id}) until `failed` with `failure_reason:
// "payment declined"` and a `stock_released` step, timed `created_at` →
// `updated_at`.
//
// Stock: each order reserves a unit until its payment is declined, and async
// orders queue for the payment worker (5/s) holding theirs, so product 1's
// 100 units would run out and orders fail for lack of stock instead. Setup
// therefore sets the stock of ORDER_PRODUCT_ID (default 1) to ORDER_STOCK
// (default 100000; `keep` leaves it alone). Teardown waits for every
// reservation to end, checks the stock is exactly what it was (the contract:
// a declined saga leaves stock as it was, under any concurrency), and puts the
// original figure back. ORDER_APPROVE=1 takes the happy path instead: sync
// 201, final status `confirmed`, stock consumed (not compared).
//
//   k6 run -e ARCH=sync -e EXECUTOR=open k6/scenarios/5-order.js

import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { ASYNC, envFlag, envNumber } from '../lib/config.js';
import { followStatus, shouldFollow } from '../lib/completion.js';
import { waitUntilSettled } from '../lib/drain.js';
import { entry, flowTags, getJson, isId, isText, json, putJson } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'order';
const TAGS = flowTags(FLOW);
const PRODUCT = envNumber('ORDER_PRODUCT_ID', 1);
const APPROVE = envFlag('ORDER_APPROVE', false);
const STOCK = (__ENV.ORDER_STOCK || '100000').toLowerCase();
// The declined saga's 400 is its designed answer; anything else 4xx/5xx is a failure.
const DECLINED_IS_EXPECTED = http.expectedStatuses({ min: 200, max: 399 }, 400);

export const options = buildOptions([FLOW]);

function readStock(op) {
  return getJson(FLOW, 'inventory', `/stock/${PRODUCT}`, 'GET /stock/{product_id}', op);
}

/** Setup: the stack answers, and the product has stock for the whole run. */
export function setup() {
  requireServices(FLOW);
  const before = readStock('setup');
  let set = null;
  if (STOCK !== 'keep') {
    set = Number(STOCK);
    if (!Number.isInteger(set) || set < 0) {
      exec.test.abort(`ORDER_STOCK="${STOCK}": expected a whole number or keep`);
    }
    if (!putJson(FLOW, 'inventory', `/stock/${PRODUCT}`, { available: set }, 'PUT /stock/{product_id}')) {
      exec.test.abort(`order: could not set the stock of product ${PRODUCT}`);
    }
  } else if (!before) {
    exec.test.abort(`order: product ${PRODUCT} has no stock row (GET /stock/${PRODUCT}); set ORDER_STOCK`);
  }
  if (before && before.reserved > 0) {
    console.warn(`order: product ${PRODUCT} has ${before.reserved} units reserved before the run`);
  }
  const start = set === null ? before.available : set;
  return { order: { before: before ? before.available : null, set, start } };
}

export function order() {
  const req = { product_id: PRODUCT, quantity: 1 };
  if (APPROVE) {
    req.approve_payment = true;
  }
  const res = entry(FLOW, 'POST', '/create_order', req, {
    name: 'POST /create_order',
    expected: ASYNC || APPROVE ? undefined : DECLINED_IS_EXPECTED,
  });
  const body = json(res) || {};
  if (!ASYNC) {
    if (APPROVE) {
      check(res, {
        'order: 201': (r) => r.status === 201,
        'order: confirmed': () => isId(body.id) && body.status === 'confirmed',
      }, TAGS);
      return;
    }
    const d = body.detail || {};
    check(res, {
      'order: 400 (declined by design)': (r) => r.status === 400,
      'order: detail with message, order_id, product_id, reason': () =>
        isText(d.message) && isId(d.order_id) && d.product_id === PRODUCT && d.reason === 'payment declined',
      'order: compensation_executed': () => d.compensation_executed === true,
    }, TAGS);
    return;
  }
  const accepted = check(res, {
    'order: 202': (r) => r.status === 202,
    'order: pending with id, status_url': () => isId(body.id) && body.status === 'pending' && isText(body.status_url),
  }, TAGS);
  if (!accepted || !shouldFollow(FLOW)) {
    return;
  }
  const done = followStatus(FLOW, 'order', body.status_url, 'GET /orders/{id}', {
    finished: (o) => o.status !== 'pending',
    doneAt: 'updated_at',
  });
  if (!done) {
    return;
  }
  if (APPROVE) {
    check(done, { 'order: confirmed later (async)': (o) => o.status === 'confirmed' }, TAGS);
    return;
  }
  check(done, {
    'order: failed later, payment declined (async)': (o) => o.status === 'failed' && o.failure_reason === 'payment declined',
    'order: stock released (async)': (o) =>
      Array.isArray(o.steps) && o.steps.some((s) => s.step === 'stock_released' && s.outcome === 'ok'),
  }, TAGS);
}

/** Teardown: every reservation ended, the stock is as it was, and it is put back. */
export function teardown(data) {
  const prepared = data && data.order;
  if (!prepared) {
    return;
  }
  const { value: stock, drained } = waitUntilSettled(() => readStock('setup'), (s) => s.reserved === 0);
  if (!stock) {
    console.error(`order: could not read the stock of product ${PRODUCT} after the run`);
    return;
  }
  console.log(
    `order: stock of product ${PRODUCT} at the start ${prepared.start}, after the run ${stock.available} available, ` +
      `${stock.reserved} reserved${drained ? '' : ` (still changing after ${__ENV.DRAIN_TIMEOUT_S || 120} s)`}`,
  );
  if (!APPROVE) {
    check(stock, {
      'order: stock exactly as before the run': (s) => s.reserved === 0 && s.available === prepared.start,
    }, TAGS);
  }
  if (prepared.set !== null && prepared.before !== null) {
    if (stock.reserved === 0) {
      putJson(FLOW, 'inventory', `/stock/${PRODUCT}`, { available: prepared.before }, 'PUT /stock/{product_id}');
    } else {
      console.warn(`order: stock of product ${PRODUCT} left at ${stock.available} (units still reserved)`);
    }
  }
}

export default function () {
  order();
}
