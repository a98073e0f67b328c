// Setup's first step: make sure the services a scenario talks to answer, so
// that a stack that is not up fails in a second with a clear message instead
// of as a run full of connection errors.

import exec from 'k6/execution';
import http from 'k6/http';
import { ARCH, EXECUTOR, PROFILE, baseUrl } from './config.js';
import { completionSample } from './completion.js';
import { FLOWS } from './flows.js';

/** Services `flow` calls besides its own (status reads, effects, stock). */
const READS = {
  register: [],
  payment: [],
  product: ARCH === 'async' ? ['search', 'cache', 'analytics'] : [],
  report: [],
  order: ['inventory'],
  clicks: [],
};

/** Aborts the test unless every service `flow` needs answers `GET /health` with 200. */
export function requireServices(flow) {
  const services = [FLOWS[flow].service].concat(READS[flow]);
  for (const service of services) {
    const url = `${baseUrl(service)}/health`;
    const res = http.get(url, { tags: { flow, op: 'setup', name: 'GET /health' }, timeout: '5s' });
    if (res.status !== 200) {
      exec.test.abort(`${flow}: ${service} does not answer at ${url} (status ${res.status}${res.error ? `: ${res.error}` : ''}); is the ${ARCH} stack up?`);
    }
  }
  console.log(
    `scenario ${FLOWS[flow].number} (${flow}): ARCH=${ARCH} PROFILE=${PROFILE} EXECUTOR=${EXECUTOR} ` +
      `entry ${baseUrl(FLOWS[flow].service)}` +
      (completionSample(flow) > 0 ? `, following ${completionSample(flow) * 100}% of accepted operations to their end` : ''),
  );
}
