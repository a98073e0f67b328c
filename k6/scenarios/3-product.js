// Scenario 3: a product update fans out to search, cache and analytics.
// Sync: 200 once the three calls were made one after another; the answer's
// `fanout` lists them, each `ok`. Async: 200 with `"fanout": "queued"`; the
// followed sample reads the three effects back until each has caught up with
// this update:
//
//   search     GET /search?q=k6load              the product's document, `indexed_at` after the update
//   cache      GET /invalidations?product_id=N   newest invalidation after the update
//   analytics  GET /product_updates?product_id=N the log row with this update's name
//
// timed from the product's `updated_at` to the latest of the three. The
// answer has no `status_url` (there is no single place to look). Concurrent
// updates of the same product (3 products, many VUs) can let a later update's
// index or invalidation stand in for this one's; the analytics row is exact.
//
//   k6 run -e ARCH=async -e PROFILE=medium k6/scenarios/3-product.js

import { check } from 'k6';
import { ASYNC } from '../lib/config.js';
import { follow, parseTime, shouldFollow } from '../lib/completion.js';
import { entry, flowTags, getJson, json } from '../lib/http.js';
import { options as buildOptions } from '../lib/profiles.js';
import { requireServices } from '../lib/stack.js';

const FLOW = 'product';
const TAGS = flowTags(FLOW);
/** Products to update (1, 2, 3 exist on a fresh start). */
const IDS = (__ENV.PRODUCT_IDS || '1,2,3').split(',').map(Number);
const STOCK = 75;
/** First word of every name this script gives, so search can find them all. */
const WORD = 'k6load';

export const options = buildOptions([FLOW]);

export function setup() {
  requireServices(FLOW);
  return {};
}

export function product() {
  const id = IDS[Math.floor(Math.random() * IDS.length)];
  const name = `${WORD} product ${__VU}-${__ITER}`;
  const res = entry(FLOW, 'PUT', `/products/${id}`, { name, stock: STOCK }, { name: 'PUT /products/{id}' });
  const body = json(res) || {};
  const updated = () => body.id === id && body.name === name && body.stock === STOCK;
  if (!ASYNC) {
    check(res, {
      'product: 200': (r) => r.status === 200,
      'product: id and the new fields': updated,
      'product: search, cache, analytics called in turn, all ok': () =>
        Array.isArray(body.fanout) &&
        body.fanout.map((c) => c.service).join() === 'search,cache,analytics' &&
        body.fanout.every((c) => c.ok === true),
    }, TAGS);
    return;
  }
  const accepted = check(res, {
    'product: 200': (r) => r.status === 200,
    'product: id and the new fields': updated,
    'product: fan-out queued': () => body.fanout === 'queued',
  }, TAGS);
  if (!accepted || !shouldFollow(FLOW)) {
    return;
  }
  const since = parseTime(body.updated_at);
  /** When each effect caught up; missing until it did. */
  const seen = {};
  follow(FLOW, () => {
    if (seen.search === undefined) {
      const found = getJson(FLOW, 'search', `/search?q=${WORD}`, 'GET /search');
      const doc = found && Array.isArray(found.results) ? found.results.find((d) => d.product_id === id) : null;
      if (doc && parseTime(doc.indexed_at) >= since) {
        seen.search = parseTime(doc.indexed_at);
      }
    }
    if (seen.cache === undefined) {
      const rows = getJson(FLOW, 'cache', `/invalidations?product_id=${id}`, 'GET /invalidations');
      if (Array.isArray(rows) && rows.length > 0 && parseTime(rows[0].invalidated_at) >= since) {
        seen.cache = parseTime(rows[0].invalidated_at);
      }
    }
    if (seen.analytics === undefined) {
      const rows = getJson(FLOW, 'analytics', `/product_updates?product_id=${id}`, 'GET /product_updates');
      const row = Array.isArray(rows) ? rows.find((r) => r.name === name) : null;
      if (row) {
        seen.analytics = parseTime(row.logged_at);
      }
    }
    if (seen.search === undefined || seen.cache === undefined || seen.analytics === undefined) {
      return null;
    }
    return { ms: Math.max(seen.search, seen.cache, seen.analytics) - since, body: seen };
  });
}

export default function () {
  product();
}
