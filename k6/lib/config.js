// Settings every script shares, all from the environment (`k6 run -e NAME=value`
// or the container's environment). Defaults target a stack on localhost.

/** `sync` (ports 8001-8010) or `async` (ports 8101-8110). */
export const ARCH = (__ENV.ARCH || 'sync').toLowerCase();
if (ARCH !== 'sync' && ARCH !== 'async') {
  throw new Error(`ARCH="${__ENV.ARCH}": expected sync or async`);
}
export const ASYNC = ARCH === 'async';

const HOST = __ENV.HOST || 'localhost';

/** The contract's ports: the sync one; async adds 100. */
const PORTS = {
  user: 8001,
  payment: 8002,
  product: 8003,
  report: 8004,
  order: 8005,
  analytics: 8006,
  email: 8007,
  search: 8008,
  cache: 8009,
  inventory: 8010,
};

/**
 * Base URL of a service: `<NAME>_URL` (what the Docker Compose k6 service
 * sets, e.g. `USER_URL=http://user:8001`), else `http://$HOST:<port of ARCH>`.
 */
export function baseUrl(service) {
  const port = PORTS[service];
  if (port === undefined) {
    throw new Error(`unknown service ${service}`);
  }
  const fromEnv = __ENV[`${service.toUpperCase()}_URL`];
  const url = fromEnv || `http://${HOST}:${ASYNC ? port + 100 : port}`;
  return url.replace(/\/+$/, '');
}

/** A number from the environment, or `fallback`. */
export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${name}="${raw}": expected a non-negative number`);
  }
  return value;
}

/** A yes/no switch from the environment. */
export function envFlag(name, fallback) {
  const raw = (__ENV[name] || '').toLowerCase();
  if (raw === '') {
    return fallback;
  }
  return raw === '1' || raw === 'true' || raw === 'yes';
}

/** `light` (default), `medium`, `heavy`, `stress` or `spike`. */
export const PROFILE = (__ENV.PROFILE || 'light').toLowerCase();

/** `closed` (default: VUs that wait for their answer) or `open` (a fixed arrival rate). */
export const EXECUTOR = (__ENV.EXECUTOR || 'closed').toLowerCase();
if (EXECUTOR !== 'closed' && EXECUTOR !== 'open') {
  throw new Error(`EXECUTOR="${__ENV.EXECUTOR}": expected closed or open`);
}

/** Multiplies every stage duration of the profile (0.2 for a quick try). */
export const DURATION_SCALE = envNumber('DURATION_SCALE', 1);
/** Multiplies every VU count and arrival rate of the profile. */
export const LOAD_SCALE = envNumber('LOAD_SCALE', 1);
/** Upper bound on VUs an open-loop scenario may start. */
export const MAX_VUS = envNumber('MAX_VUS', 1000);

/** Longest wait, in teardown, for the async consumers to drain (clicks, order stock). */
export const DRAIN_TIMEOUT_S = envNumber('DRAIN_TIMEOUT_S', 120);

/** A token unique enough to tell this run's data from other runs'. */
export function runToken() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
