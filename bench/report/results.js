// Questions the report asks of the harness's results (../harness/types.d.ts):
// which entries a scenario has, which entry measured the same thing on
// another target, a figure's median. Shared by the verdicts, the tables and
// the charts.

import { median } from '../lib/common.js';

/**
 * @typedef {import('../harness/types.js').Results} Results
 * @typedef {import('../harness/types.js').Entry} Entry
 * @typedef {import('../harness/types.js').Run} Run
 * @typedef {import('../harness/types.js').TargetInfo} TargetInfo
 */

/** @param {unknown} v @returns {v is number} */
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/** @param {number | string | null | undefined} n a count, or what stands in for an unknown one @param {string} word */
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * @template T
 * @param {T[]} xs
 */
export const unique = (xs) => [...new Set(xs)];

/** Throughput cases in the order that reads best, from the cheapest request to the dearest; then the streams scenarios' transports, long-poll (their baseline) last. */
const CASE_ORDER = ['put-one', 'put-many', 'sync', 'get-buffered', 'fanout', 'put', 'get-chain', 'sse', 'ws', 'longpoll'];

/**
 * @param {Results} results
 * @param {string} id
 * @returns {TargetInfo | { id: string, label: string, kind: string, threads: null }}
 */
export function targetOf(results, id) {
  return results.targets.find((t) => t.id === id) ?? { id, label: id, kind: 'unknown', threads: null };
}

/** @param {Results} results @param {Entry} e */
export const kindOf = (results, e) => targetOf(results, e.target).kind;

/**
 * Thread or worker count: scaling entries carry their own, the others their target's.
 * @param {Results} results
 * @param {Entry} e
 */
export const threadsOf = (results, e) => e.threads ?? targetOf(results, e.target).threads;

/**
 * @param {Results} results
 * @param {string} scenario
 * @param {Partial<Entry>} [where] fields the entries must have, e.g. { case: 'put-many' }
 */
export function entriesOf(results, scenario, where = {}) {
  return results.entries.filter((e) => e.scenario === scenario && Object.entries(where).every(([k, v]) => e[/** @type {keyof Entry} */ (k)] === v));
}

/**
 * A field of an entry's runs, leaving out runs that lack it.
 * @param {Entry | undefined} e
 * @param {string} field
 * @returns {number[]}
 */
export function values(e, field) {
  return (e?.runs ?? []).map((r) => r[field]).filter(isNum);
}

/** @param {Entry | undefined} e @param {string} field */
export const med = (e, field) => median(values(e, field));

/**
 * Entries ordered by case, thread count, waiter count, then the results' target order.
 * @param {Results} results
 * @param {Entry[]} es
 */
export function sorted(results, es) {
  /** @param {string | undefined} c */
  const caseRank = (c) => (c !== undefined && CASE_ORDER.includes(c) ? CASE_ORDER.indexOf(c) : CASE_ORDER.length);
  /** @param {string} id */
  const targetRank = (id) => results.targets.findIndex((t) => t.id === id);
  /** @param {Entry} e */
  const key = (e) => [caseRank(e.case), String(e.case ?? ''), e.threads ?? 0, e.waiters ?? 0, targetRank(e.target), e.target];
  return [...es].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    const i = ka.findIndex((x, j) => x !== kb[j]);
    return i < 0 ? 0 : ka[i] < kb[i] ? -1 : 1;
  });
}

/**
 * The entry measuring the same thing as e on the target that pick accepts:
 * same scenario, case, waiter count and (scaling) thread count.
 * @param {Results} results
 * @param {Entry} e
 * @param {(t: ReturnType<typeof targetOf>, o: Entry) => boolean} pick
 * @param {number | undefined} [threads]
 */
export function counterpart(results, e, pick, threads = e.threads) {
  return results.entries.find(
    (o) => o.scenario === e.scenario && o.case === e.case && o.waiters === e.waiters && o.threads === threads && pick(targetOf(results, o.target), o),
  );
}

/** @param {Results} results @param {Entry} e */
export const ceilingOf = (results, e) => counterpart(results, e, (t) => t.kind === 'ceiling');

/**
 * The in-memory comet-server measured beside a cluster-mode entry: the same threads per node if there is one.
 * @param {Results} results
 * @param {Entry} e
 */
export function inMemoryOf(results, e) {
  const threads = threadsOf(results, e);
  return counterpart(results, e, (t) => t.kind === 'comet' && t.threads === threads) ?? counterpart(results, e, (t) => t.kind === 'comet');
}

/**
 * The same server without access control measured beside an auth entry (comet-1 for comet-1-auth).
 * @param {Results} results
 * @param {Entry} e
 */
export const unauthenticatedOf = (results, e) => counterpart(results, e, (t) => t.id === e.target.replace(/-auth$/, ''));

/**
 * The same server without the per-client limits measured beside a limits entry (comet-1 for comet-1-limits).
 * @param {Results} results
 * @param {Entry} e
 */
export const unlimitedOf = (results, e) => counterpart(results, e, (t) => t.id === e.target.replace(/-limits$/, ''));

/**
 * The same target's long-poll row beside a streams row (the same scenario and count; the
 * streams scenarios' case is the transport), or undefined for the long-poll row itself.
 * @param {Results} results
 * @param {Entry} e
 */
export const longPollOf = (results, e) =>
  e.case === 'longpoll'
    ? undefined
    : results.entries.find((o) => o.scenario === e.scenario && o.case === 'longpoll' && o.waiters === e.waiters && o.target === e.target);

/** How the report names a streams row's transport (its case). */
export const TRANSPORT_NAMES = /** @type {Record<string, string>} */ ({ sse: 'SSE', ws: 'WebSocket', longpoll: 'long-poll' });

/** @param {Results} results @param {Entry} e */
export const nchanOf = (results, e) => counterpart(results, e, (t, o) => t.kind === 'nchan' && threadsOf(results, o) === threadsOf(results, e));

/**
 * How many runs report each bound ('n/a' for runs without one).
 * @param {Run[]} runs
 */
export function countBounds(runs) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const r of runs) counts.set(r.bound ?? 'n/a', (counts.get(r.bound ?? 'n/a') ?? 0) + 1);
  return counts;
}

/**
 * The bound most runs report (ties broken by name, so that the answer is stable).
 * @param {Entry} e
 */
export function boundOf(e) {
  const counts = countBounds(e.runs);
  return [...counts.keys()].sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || (a < b ? -1 : 1))[0];
}
