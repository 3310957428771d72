// Scenario 1, request throughput: autocannon (one process per load core), or
// wrk (one thread per load core) with --generator wrk, with a fixed connection
// count and duration against one kind of request:
//   put-one       put to one channel
//   put-many      put rotating over settings.channels channels
//   sync          sync of a channel that holds a message
//   get-buffered  get with a time the server answers at once from its buffer
// Reports requests/s, latency p50/p99, the target's CPU per request (and
// of its parts: Redis for the cluster-mode targets), and its GC pause time per
// 1,000 requests where it counts it (../gc.js). A multi-node target's
// connections are spread evenly over its nodes.

import { runAutocannon } from '../load/autocannon-load.js';
import { runWrk } from '../load/wrk-load.js';
import { boundBy, messageWith } from './context.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {import('../types.js').Request} Request
 * @typedef {import('../types.js').Response} Response
 */

export const CASES = ['put-one', 'put-many', 'sync', 'get-buffered'];

/**
 * @param {Context} ctx
 * @param {string} kind
 * @returns {Promise<Request[]>}
 */
async function requestsFor(ctx, kind) {
  const { adapter, settings } = ctx;
  const msg = messageWith('m', settings.messageBytes);
  switch (kind) {
    case 'put-one':
      return [adapter.put('tp-one', msg)];
    case 'put-many':
      return Array.from({ length: settings.channels }, (_, i) => adapter.put(`tp-${i}`, msg));
    case 'sync':
      await ctx.call(adapter.put('ts', msg));
      return [adapter.sync('ts')];
    case 'get-buffered':
      return [await adapter.buffered('tg', ctx.call)];
    default:
      throw new Error(`unknown throughput case ${kind}: ${CASES.join(', ')}`);
  }
}

/**
 * @param {Context} ctx
 * @param {string} kind
 * @param {Response} res
 */
function answeredAsExpected(ctx, kind, res) {
  if (kind.startsWith('put')) return ctx.adapter.readPut(res).ok;
  if (kind === 'get-buffered') {
    const answer = ctx.adapter.readGet(res);
    return answer.ok && answer.messages.length > 0;
  }
  return res.status >= 200 && res.status < 300;
}

/**
 * Refuses to measure a request the target does not answer as the case expects.
 * @param {Context} ctx
 * @param {string} kind
 * @param {Request} req
 */
async function probe(ctx, kind, req) {
  const res = await ctx.call(req);
  if (!answeredAsExpected(ctx, kind, res)) {
    throw new Error(`${kind}: the target answered ${res.status} ${res.body.slice(0, 200)} to ${req.method ?? 'GET'} ${req.path}`);
  }
}

/**
 * The settings' load generator, sending `requests` (or `chain`) to the target.
 * @param {Context} ctx
 * @param {Request[]} requests
 * @param {import('../load/autocannon-load.js').Chain} [chain]
 */
export function generateLoad(ctx, requests, chain) {
  const s = ctx.settings;
  const generate = s.generator === 'wrk' ? runWrk : runAutocannon;
  return generate({
    urls: ctx.target.urls ?? [ctx.target.url],
    requests,
    chain,
    connections: s.connections,
    procs: ctx.loadCapacity,
    loadCpus: ctx.loadCpus,
    warmupS: s.warmupS,
    durationS: s.durationS,
    targetPids: ctx.target.pids,
    targetParts: ctx.target.parts,
    gcSeconds: () => ctx.gcSeconds(),
  });
}

/**
 * @param {Context} ctx
 * @param {string} kind
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, kind) {
  const requests = await requestsFor(ctx, kind);
  await probe(ctx, kind, requests[0]);
  const r = await generateLoad(ctx, requests);
  if (r.requests === 0) throw new Error(`${kind}: no request was answered`);
  // answers of another kind than the probe's are not throughput of this case
  if (r.non2xx > 0) throw new Error(`${kind}: ${r.non2xx} of ${r.requests} answers were not 2xx`);
  return { ...r, bound: boundBy(ctx, r.serverCores, r.loadCores) };
}
