// Requests as every scenario sends them: JSON bodies, a correlation id, and
// tags so that thresholds and the summary can tell entry requests (`op:entry`,
// the contract's entry points) from status polls (`op:status`) and from
// setup/teardown bookkeeping (`op:setup`). `name` groups URLs that carry ids.

import http from 'k6/http';
import { baseUrl } from './config.js';
import { FLOWS } from './flows.js';

let sent = 0;

/**
 * `<VU>-<iteration>` in a VU's iterations; `setup` in setup() and teardown(),
 * where k6 defines neither __VU (0) nor __ITER (a ReferenceError).
 */
function iteration() {
  return typeof __ITER === 'undefined' ? 'setup' : `${__VU}-${__ITER}`;
}

/** Tags shared by a scenario's requests, checks and custom metrics. */
export function flowTags(flow, extra) {
  return Object.assign({ flow }, extra || {});
}

function params(flow, op, name, timeout, responseCallback) {
  sent += 1;
  /** @type {import('k6/http').RefinedParams<'text'>} */
  const p = {
    headers: {
      'Content-Type': 'application/json',
      // Echoed by the services on every log line of the request (and its events).
      'x-request-id': `k6-${flow}-${iteration()}-${sent}`,
    },
    tags: flowTags(flow, { op, name }),
    timeout: timeout || FLOWS[flow].requestTimeout,
  };
  if (responseCallback) {
    p.responseCallback = responseCallback;
  }
  return p;
}

/**
 * The scenario's entry request to its own service. `expected` replaces which
 * statuses count as `http_req_failed: false` (k6's default: 200-399).
 *
 * @param {string} flow
 * @param {string} method
 * @param {string} path
 * @param {object} body
 * @param {{ name?: string, expected?: ReturnType<typeof import('k6/http').expectedStatuses> }} [how]
 */
export function entry(flow, method, path, body, { name, expected } = {}) {
  const url = baseUrl(FLOWS[flow].service) + path;
  return http.request(
    method,
    url,
    JSON.stringify(body),
    params(flow, 'entry', name || `${method} ${path}`, undefined, expected),
  );
}

/** GET `path` from `service`, tagged `op` (default `status`); the parsed body or null. */
export function getJson(flow, service, path, name, op = 'status') {
  const res = http.get(baseUrl(service) + path, params(flow, op, name, '10s'));
  return res.status === 200 ? json(res) : null;
}

/** PUT a JSON body (setup/teardown bookkeeping); the parsed body or null. */
export function putJson(flow, service, path, body, name) {
  const res = http.put(baseUrl(service) + path, JSON.stringify(body), params(flow, 'setup', name, '10s'));
  return res.status === 200 ? json(res) : null;
}

/** The response's JSON body, or null when it has none or it does not parse. */
export function json(res) {
  if (!res || typeof res.body !== 'string' || res.body.length === 0) {
    return null;
  }
  try {
    return JSON.parse(res.body);
  } catch (_) {
    return null;
  }
}

/** Whether `v` is a non-empty string. */
export function isText(v) {
  return typeof v === 'string' && v.length > 0;
}

/** Whether `v` is a whole number (ids). */
export function isId(v) {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}
