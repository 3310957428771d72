// Scenario auth, what access control costs: comet-N and comet-N-auth (the
// same server with --auth all and a secret of its own) side by side, the
// latter sent its token in `Authorization: Bearer` on every request, as
// browsers and the project's client send it. Cases:
//   put        put to one channel, one token for every request (throughput's put-one)
//   get-chain  a put and a get in turn on one channel, each get from the time
//              of the newest get answer, as a long-poll subscriber chains (its
//              answer carries the messages put since), with the same token
// Measured like the throughput cases (wrk only for get-chain: the chain reads
// every answer): requests/s, latency, and the target's CPU per request, which
// is what the report compares. A token the target refuses fails the run: the
// probe and every measured answer must be 2xx, and the target's /metrics must
// count no refusal and no more signature checks than it has threads (each
// thread verifies the token once and then finds it in its cache).

import { promSum } from '../adapters.js';
import { CURSOR_MARK } from '../load/wrk-load.js';
import { boundBy, messageWith } from './context.js';
import { generateLoad } from './throughput.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {import('../types.js').Request} Request
 * @typedef {import('../types.js').Response} Response
 */

export const CASES = ['put', 'get-chain'];

/** The targets every case is measured on: without and with access control. */
export const TARGETS = ['comet-1', 'comet-1-auth'];

const REFUSALS = ['COMET_ERR_UNAUTHORIZED', 'COMET_ERR_FORBIDDEN'];

/**
 * The token requests carry: --auth-token if given, else the one the target's secret signed; none for a target without auth.
 * @param {Context} ctx
 */
function tokenOf(ctx) {
  if (ctx.target.token === undefined) return undefined;
  return ctx.settings.authToken || ctx.target.token;
}

/**
 * @param {Context} ctx
 * @param {Request} req
 * @param {(res: Response) => boolean} ok
 * @param {string} kind
 */
async function probe(ctx, req, ok, kind) {
  const res = await ctx.call(req);
  if (!ok(res)) throw new Error(`auth ${kind}: ${ctx.target.id} answered ${res.status} ${res.body.slice(0, 200)} to ${req.method ?? 'GET'} ${req.path}`);
  return res;
}

/**
 * Refusals and signature checks as the target's /metrics counts them.
 * @param {Context} ctx
 */
async function tokenCounts(ctx) {
  const res = await ctx.call({ path: '/metrics' });
  if (res.status !== 200) throw new Error(`auth: /metrics answered ${res.status}`);
  const count = (/** @type {string} */ name) => {
    const n = promSum(res.body, name);
    return Number.isNaN(n) ? 0 : n;
  };
  const refused = res.body
    .split('\n')
    .filter((line) => REFUSALS.some((code) => line.startsWith(`comet_errors_total{code="${code}"}`)))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  return { refused, verified: count('comet_tokens_verified_total'), remembered: count('comet_tokens_remembered_total') };
}

/**
 * @param {Context} ctx
 * @param {string} kind
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, kind) {
  if (!CASES.includes(kind)) throw new Error(`unknown auth case ${kind}: ${CASES.join(', ')}`);
  const { adapter, settings: s } = ctx;
  const token = tokenOf(ctx);
  /** @param {Request} req @returns {Request} */
  const signed = (req) => (token === undefined ? req : { ...req, headers: { ...req.headers, Authorization: `Bearer ${token}` } });
  const msg = messageWith('m', s.messageBytes);
  const put = signed(adapter.put(kind === 'put' ? 'au-put' : 'au-chain', msg));
  const putOk = (/** @type {Response} */ res) => adapter.readPut(res).ok;
  const first = await probe(ctx, put, putOk, kind);
  /** @type {import('../load/autocannon-load.js').Chain | undefined} */
  let chain;
  if (kind === 'get-chain') {
    if (s.generator !== 'wrk') throw new Error('auth get-chain reads every answer for its cursor: it needs --generator wrk');
    // the put just made is after this cursor (times are microseconds): the get answers at once with it
    const cursor = String(JSON.parse(first.body).time - 1);
    await probe(ctx, signed(adapter.get('au-chain', cursor)), (res) => adapter.readGet(res).messages.length > 0, kind);
    chain = { put, get: signed(adapter.get('au-chain', CURSOR_MARK)), cursor, answered: '^{"time":(%d+),"messages"' };
  }
  const r = await generateLoad(ctx, [put], chain);
  if (r.requests === 0) throw new Error(`auth ${kind}: no request was answered`);
  // a 401 or 403 is a refused token, not a request served: no figure from such a run
  if (r.non2xx > 0) throw new Error(`auth ${kind}: ${r.non2xx} of ${r.requests} answers were not 2xx (refused tokens?)`);
  const counts = await tokenCounts(ctx);
  if (counts.refused > 0) throw new Error(`auth ${kind}: ${ctx.target.id} refused ${counts.refused} requests (${REFUSALS.join(', ')} in /metrics)`);
  const threads = ctx.target.threads ?? 1;
  if (token !== undefined && counts.verified > threads) {
    throw new Error(`auth ${kind}: ${counts.verified} signature checks of one token on ${threads} thread(s): the token cache did not hold it`);
  }
  const tokens = token === undefined ? {} : { tokensVerified: counts.verified, tokensRemembered: counts.remembered };
  return { ...r, ...tokens, bound: boundBy(ctx, r.serverCores, r.loadCores) };
}
