// All six scenarios in one run (what the Docker Compose k6 service runs by
// default). ALL_MODE picks how:
//
// - `sequential` (default): one after another, 1 to 6, each starting when the
//   previous one's profile is over plus ALL_GAP_S (10 s), so each has the
//   stack to itself and its numbers compare with its own script's (and with
//   `lab-load run all`). Iterations still finishing (a follow-up poll, a slow
//   report) may overlap the next scenario's first seconds.
// - `parallel`: all six at once from the start, a mixed workload in which
//   they compete for the cores, the database and the broker.
//
// ONLY=1,3,6 (numbers or names) runs a subset. Profiles, thresholds and
// checks are each scenario's own, told apart by the tag `flow:<name>`.
// `k6 run -i 1 all.js` runs the default function: each scenario once.

import { envNumber } from './lib/config.js';
import { FLOWS } from './lib/flows.js';
import { options as buildOptions, profileSeconds } from './lib/profiles.js';
import { register, setup as registerSetup } from './scenarios/1-register.js';
import { payment, setup as paymentSetup } from './scenarios/2-payment.js';
import { product, setup as productSetup } from './scenarios/3-product.js';
import { report, setup as reportSetup } from './scenarios/4-report.js';
import { order, setup as orderSetup, teardown as orderTeardown } from './scenarios/5-order.js';
import { clicks, setup as clicksSetup, teardown as clicksTeardown } from './scenarios/6-clicks.js';

export { register, payment, product, report, order, clicks };

const RUN = { register, payment, product, report, order, clicks };
const SETUP = {
  register: registerSetup,
  payment: paymentSetup,
  product: productSetup,
  report: reportSetup,
  order: orderSetup,
  clicks: clicksSetup,
};
const TEARDOWN = { order: orderTeardown, clicks: clicksTeardown };

function selected() {
  const all = Object.keys(FLOWS);
  if (!__ENV.ONLY) {
    return all;
  }
  return __ENV.ONLY.split(',').map((item) => {
    const want = item.trim();
    const flow = all.find((name) => name === want || String(FLOWS[name].number) === want);
    if (!flow) {
      throw new Error(`ONLY: unknown scenario "${want}"; use 1-6 or ${all.join(', ')}`);
    }
    return flow;
  });
}

const CHOSEN = selected();
const MODE = (__ENV.ALL_MODE || 'sequential').toLowerCase();
if (MODE !== 'sequential' && MODE !== 'parallel') {
  throw new Error(`ALL_MODE="${__ENV.ALL_MODE}": expected sequential or parallel`);
}

function starts() {
  if (MODE === 'parallel') {
    return CHOSEN.map(() => 0);
  }
  const gap = envNumber('ALL_GAP_S', 10);
  let next = 0;
  return CHOSEN.map((flow) => {
    const start = next;
    next += profileSeconds(flow) + gap;
    return start;
  });
}

export const options = buildOptions(CHOSEN, starts());

export function setup() {
  return Object.assign({}, ...CHOSEN.map((flow) => SETUP[flow]()));
}

export function teardown(data) {
  for (const flow of CHOSEN) {
    if (TEARDOWN[flow]) {
      TEARDOWN[flow](data);
    }
  }
}

export default function (data) {
  for (const flow of CHOSEN) {
    RUN[flow](data);
  }
}
