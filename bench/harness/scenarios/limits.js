// Scenario limits, what the per-client limits cost: comet-N and comet-N-limits
// (the same server with --rate-limit and --rate-burst high enough never to
// refuse, and --max-connections-per-ip likewise, --trust-proxy off) side by
// side. Every request of the load generator comes from one address, so every
// one takes a token from the same entry of the shared table, whichever
// thread serves it. Cases:
//   put        put to one channel (throughput's put-one)
//   get-chain  a put and a get in turn on one channel, each get from the time
//              of the newest get answer, as a long-poll subscriber chains
// Measured like the throughput cases: requests/s, latency, and the target's
// CPU per request, which is what the report compares. A refusal fails the
// run: every measured answer must be 2xx, and the target's /metrics must
// count no 429 and no connection refused.

import { promSum } from '../adapters.js';
import { CURSOR_MARK } from '../load/wrk-load.js';
import { boundBy, messageWith } from './context.js';
import { generateLoad } from './throughput.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {import('../types.js').Response} Response
 */

export const CASES = ['put', 'get-chain'];

/** The targets every case is measured on: without and with the per-client limits. */
export const TARGETS = ['comet-1', 'comet-1-limits'];

/**
 * 429s and connections refused, as the target's /metrics counts them.
 * @param {Context} ctx
 */
async function refusals(ctx) {
  const res = await ctx.call({ path: '/metrics' });
  if (res.status !== 200) throw new Error(`limits: /metrics answered ${res.status}`);
  const limited = res.body
    .split('\n')
    .filter((line) => line.startsWith('comet_errors_total{code="COMET_ERR_RATE_LIMITED"}'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  const refused = promSum(res.body, 'comet_ip_connections_refused_total');
  return limited + (Number.isNaN(refused) ? 0 : refused);
}

/**
 * @param {Context} ctx
 * @param {string} kind
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, kind) {
  if (!CASES.includes(kind)) throw new Error(`unknown limits case ${kind}: ${CASES.join(', ')}`);
  const { adapter, settings: s } = ctx;
  const msg = messageWith('m', s.messageBytes);
  const put = adapter.put(kind === 'put' ? 'li-put' : 'li-chain', msg);
  const first = await ctx.call(put);
  if (!adapter.readPut(first).ok) throw new Error(`limits ${kind}: ${ctx.target.id} answered ${first.status} ${first.body.slice(0, 200)} to a put`);
  /** @type {import('../load/autocannon-load.js').Chain | undefined} */
  let chain;
  if (kind === 'get-chain') {
    if (s.generator !== 'wrk') throw new Error('limits get-chain reads every answer for its cursor: it needs --generator wrk');
    // the put just made is after this cursor (times are microseconds): the get answers at once with it
    const cursor = String(JSON.parse(first.body).time - 1);
    chain = { put, get: adapter.get('li-chain', CURSOR_MARK), cursor, answered: '^{"time":(%d+),"messages"' };
  }
  const r = await generateLoad(ctx, [put], chain);
  if (r.requests === 0) throw new Error(`limits ${kind}: no request was answered`);
  if (r.non2xx > 0) throw new Error(`limits ${kind}: ${r.non2xx} of ${r.requests} answers were not 2xx (refused by a limit?)`);
  const refused = await refusals(ctx);
  if (refused > 0) throw new Error(`limits ${kind}: ${ctx.target.id} refused ${refused} requests or connections: the limits must never refuse here`);
  return { ...r, bound: boundBy(ctx, r.serverCores, r.loadCores) };
}
