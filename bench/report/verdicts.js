// The report's verdicts: each performance target, the comparisons it is
// judged on (a ratio of medians between two targets measured side by side, or
// a median against a limit) and their thresholds, and whether it was met.

import { fmtFixed, fmtInt } from '../lib/common.js';
import {
  TRANSPORT_NAMES,
  boundOf,
  entriesOf,
  kindOf,
  longPollOf,
  med,
  nchanOf,
  plural,
  sorted,
  threadsOf,
  unauthenticatedOf,
  unlimitedOf,
  values,
} from './results.js';

/**
 * @typedef {import('../harness/types.js').Results} Results
 * @typedef {import('../harness/types.js').Entry} Entry
 * @typedef {{ name: string, entry: Entry | undefined }} Named an entry and how a verdict calls it
 * @typedef {{ text: string, ok?: boolean | null, why?: string }} Part
 * @typedef {{ fmt: (n: number) => string, unit: string }} Figure
 * @typedef {{ target: string, figures: string, verdict: 'met' | 'not met' | 'not measured', why?: string }} Assessment
 */

const f1 = fmtFixed(1);
const f2 = fmtFixed(2);

// An assessment is a list of parts, each { text } (shown only) or
// { text, ok: true | false | null, why } (judged; null when it could not be).

/**
 * Why a comparison cannot be made with entry e (named name), or null when it can.
 * @param {string} name
 * @param {Entry | undefined} e
 * @param {string} field
 */
function missing(name, e, field) {
  if (!e) return `${name} not measured`;
  if (e.runs.length === 0) return `${name}: all runs failed`;
  if (values(e, field).length === 0) return `${name}: no ${field} figure`;
  return null;
}

/** @type {Record<'≤' | '<' | '≥' | '>', (r: number, x: number) => boolean>} */
const RATIO_OK = { '≤': (r, x) => r <= x, '<': (r, x) => r < x, '≥': (r, x) => r >= x, '>': (r, x) => r > x };

/**
 * Judges median(a.field) / median(b.field) against goal, e.g. ['≤', 1.25];
 * with goal null the ratio is shown, not judged.
 * @param {Named} a
 * @param {Named} b
 * @param {string} field
 * @param {[keyof typeof RATIO_OK, number] | null} goal
 * @param {Figure} figure
 * @returns {Part}
 */
function ratioPart(a, b, field, goal, { fmt, unit }) {
  const why = missing(a.name, a.entry, field) ?? missing(b.name, b.entry, field);
  if (why) return goal ? { text: why, ok: null, why } : { text: why };
  const x = med(a.entry, field);
  const y = med(b.entry, field);
  const r = x / y;
  const text = `${a.name} ${fmt(x)} ${unit} vs ${b.name} ${fmt(y)}: ${r.toFixed(2)}x`;
  if (!goal) return { text };
  const [op, limit] = goal;
  return { text: `${text} (goal ${op} ${limit}x)`, ok: RATIO_OK[op](r, limit) };
}

/**
 * Judges median(a.field) against a limit.
 * @param {Named} a
 * @param {string} field
 * @param {number} limit
 * @param {Figure} figure
 * @returns {Part}
 */
function limitPart(a, field, limit, { fmt, unit }) {
  const why = missing(a.name, a.entry, field);
  if (why) return { text: why, ok: null, why };
  const x = med(a.entry, field);
  return { text: `${a.name} ${fmt(x)} ${unit} (goal ≤ ${fmt(limit)})`, ok: x <= limit };
}

/** @param {string} why @returns {Part} */
const unknown = (why) => ({ text: why, ok: null, why });

/**
 * Shown, not judged.
 * @param {Part} part
 * @returns {Part}
 */
const shown = ({ text }) => ({ text });

/**
 * @param {string} target
 * @param {Part[]} parts
 * @returns {Assessment}
 */
function verdictOf(target, parts) {
  const judged = parts.filter((p) => 'ok' in p);
  const figures = parts.map((p) => p.text).join('; ');
  if (judged.some((p) => p.ok === false)) return { target, figures, verdict: 'not met' };
  const open = judged.filter((p) => p.ok === null);
  if (open.length) return { target, figures, verdict: 'not measured', why: open.map((p) => p.why).join('; ') };
  return { target, figures, verdict: 'met' };
}

/** @param {Entry | undefined} e @param {string} fallback @returns {Named} */
const named = (e, fallback) => ({ name: e ? e.target : fallback, entry: e });

const CPU_REQ = { fmt: f2, unit: 'µs/request' };
const CPU_DELIVERY = { fmt: f2, unit: 'µs/delivery' };
const P99 = { fmt: f1, unit: 'ms p99' };
const RPS = { fmt: fmtInt, unit: 'requests/s' };
const BYTES = { fmt: fmtInt, unit: 'B' };

/** @param {Results} results */
function assessPut(results) {
  /** @param {string} kind @param {number} threads @param {string} c */
  const at = (kind, threads, c) => entriesOf(results, 'throughput', { case: c }).find((e) => kindOf(results, e) === kind && threadsOf(results, e) === threads);
  /** @type {Part[]} */
  const parts = [];
  for (const c of ['put-many', 'put-one']) {
    const comet = named(at('comet', 1, c), 'comet-1');
    const ceiling = named(at('ceiling', 1, c), 'ceiling');
    const nchan = named(at('nchan', 1, c), 'Nchan (1 worker)');
    const pair = [ratioPart(comet, ceiling, 'serverCpuUs', ['≤', 1.25], CPU_REQ), ratioPart(comet, nchan, 'serverCpuUs', ['<', 1], CPU_REQ)];
    // put-many is the target; put-one is shown for comparison
    parts.push(...(c === 'put-many' ? pair : pair.map(shown)).map((p) => ({ ...p, text: `${c}: ${p.text}` })));
  }
  return verdictOf('Put: comet-server (1 thread) server CPU per request ≤ 1.25x the raw uWebSockets.js ceiling and below Nchan (1 worker)', parts);
}

/**
 * comet-N against nchan-N for each comet entry; the 1-thread pair is required,
 * the others count where Nchan ran with as many workers.
 * @param {Results} results
 * @param {Entry[]} comets
 * @param {(comet: Named, nchan: Named) => Part[]} judge
 * @returns {Part[]}
 */
function versusNchan(results, comets, judge) {
  const parts = comets.flatMap((e) => {
    const n = threadsOf(results, e);
    const nchan = nchanOf(results, e);
    if (!nchan && n !== 1) return [];
    return judge({ name: e.target, entry: e }, { name: nchan ? nchan.target : `Nchan (${plural(n, 'worker')})`, entry: nchan });
  });
  return parts.length ? parts : [unknown(comets.length ? 'Nchan not measured at the thread counts comet-server ran with' : 'comet-server not measured')];
}

/** @param {Results} results */
function assessFanout(results) {
  const comets = entriesOf(results, 'fanout', { waiters: 10000 }).filter((e) => kindOf(results, e) === 'comet');
  const parts = versusNchan(results, sorted(results, comets), (c, n) => [
    ratioPart(c, n, 'serverCpuUs', ['≤', 1], CPU_DELIVERY),
    ratioPart(c, n, 'p99Ms', ['≤', 1], P99),
  ]);
  return verdictOf('Fan-out to 10,000 waiters: comet-server server CPU per delivery and p99 latency no worse than Nchan at equal workers', parts);
}

/** @param {Results} results */
function assessMemory(results) {
  const comets = entriesOf(results, 'idle', { waiters: 18000 }).filter((e) => kindOf(results, e) === 'comet');
  const parts = sorted(results, comets).map((e) => limitPart({ name: e.target, entry: e }, 'bytesPerWaiter', 2048, BYTES));
  if (parts.length === 0) parts.push(unknown('no idle run of comet-server at 18,000 waiters'));
  return verdictOf('Resident memory per idle waiting get ≤ 2 KB (2,048 B) at 18,000 waiters, every comet-server thread count', parts);
}

/**
 * comet-server's streams rows of a scenario: SSE and WebSocket, in the report's order.
 * @param {Results} results
 * @param {string} scenario
 * @param {Partial<Entry>} [where]
 */
const cometStreams = (results, scenario, where = {}) =>
  sorted(
    results,
    entriesOf(results, scenario, where).filter((e) => kindOf(results, e) === 'comet' && e.case !== 'longpoll'),
  );

/** "SSE, comet-1": a streams row as a verdict names it. @param {Entry} e */
const streamName = (e) => `${TRANSPORT_NAMES[String(e.case)] ?? e.case}, ${e.target}`;

/** @param {Results} results */
function assessStreamMemory(results) {
  const streams = cometStreams(results, 'stream-idle', { waiters: 10000 });
  /** @type {Part[]} */
  const parts = streams.flatMap((e) => {
    const nchan = nchanOf(results, e);
    const own = limitPart({ name: streamName(e), entry: e }, 'bytesPerWaiter', 1024, BYTES);
    // Nchan's figure is shown for scale (its streams cost about 10 KB each), not judged
    return nchan?.runs.length ? [own, shown(limitPart({ name: `Nchan ${streamName(nchan)}`, entry: nchan }, 'bytesPerWaiter', 1024, BYTES))] : [own];
  });
  if (parts.length === 0) parts.push(unknown('no streams run of comet-server at 10,000 open streams'));
  return verdictOf(
    'Streams: resident memory per idle open stream ≤ 1 KB (1,024 B) at 10,000 streams, SSE and WebSocket, every comet-server thread count',
    parts,
  );
}

/** @param {Results} results */
function assessStreamFanout(results) {
  const streams = cometStreams(results, 'stream-fanout');
  const parts = versusNchan(results, streams, (c, n) => {
    const e = /** @type {Entry} */ (c.entry);
    const name = `${streamName(e)}, ${fmtInt(/** @type {number} */ (e.waiters))}`;
    const longPoll = { name: `long-poll, ${e.target}`, entry: longPollOf(results, e) };
    const answers = ratioPart({ name, entry: e }, longPoll, 'serverCpuUs', null, CPU_DELIVERY);
    return [
      // a long-poll takes the next message only once asked again: its delivery costs the answer and the get after it
      ratioPart({ name, entry: e }, { ...longPoll, name: `${longPoll.name} re-armed` }, 'cycleCpuUs', ['≤', 1], CPU_DELIVERY),
      { text: `answers alone: ${answers.text}` },
      ratioPart({ name, entry: e }, n, 'serverCpuUs', ['≤', 1], CPU_DELIVERY),
    ];
  });
  return verdictOf(
    "Streaming fan-out: comet-server server CPU per delivery over SSE and WebSocket ≤ its long-poll path's (the answer and the get asked again after it) and ≤ Nchan's on the same transport at equal workers",
    parts,
  );
}

/** @param {Results} results */
function assessThroughput(results) {
  const comets = entriesOf(results, 'throughput', { case: 'put-many' }).filter((e) => kindOf(results, e) === 'comet');
  const parts = versusNchan(results, sorted(results, comets), (c, n) => {
    // requests/s measures the servers only where both of them were the limit; otherwise it
    // measures the load generator (or latency), and the server's CPU per request is what differs
    const serverLimited = [c.entry, n.entry].every((e) => e && e.runs.length && boundOf(e) === 'server');
    if (serverLimited) return [ratioPart(c, n, 'rps', ['>', 1], RPS)];
    const p = ratioPart(c, n, 'serverCpuUs', ['<', 1], CPU_REQ);
    return [{ ...p, text: `the servers were not both saturated, so server CPU per request compared: ${p.text}` }];
  });
  return verdictOf('Throughput (put-many) ahead of Nchan at equal worker counts', parts);
}

/** @param {Results} results */
function assessScaling(results) {
  const comets = sorted(
    results,
    entriesOf(results, 'scaling', { case: 'put-many' }).filter((e) => kindOf(results, e) === 'comet'),
  );
  /** @param {number} n */
  const atThreads = (n) => comets.find((e) => e.threads === n);
  const eight = atThreads(8);
  const parts = comets
    .filter((e) => e !== eight)
    .map((e) => ({ text: `${plural(e.threads, 'thread')}: ${e.runs.length ? `${fmtInt(med(e, 'rps'))} requests/s` : 'failed'}` }));
  const cores = results.meta?.machine?.cores ?? 'unknown';
  parts.push(
    eight
      ? ratioPart({ name: '8 threads', entry: eight }, { name: '1 thread', entry: atThreads(1) }, 'rps', ['≥', 5], RPS)
      : unknown(`no 8-thread run: needs ≥ 8 cores for the server; this machine has ${cores}`),
  );
  return verdictOf('Thread scaling: comet-server put-many at 8 threads ≥ 5x the requests/s at 1 thread', parts);
}

/** @param {Results} results */
function assessAuth(results) {
  /** @type {Part[]} */
  const parts = [];
  for (const c of ['put', 'get-chain']) {
    const authed = entriesOf(results, 'auth', { case: c }).filter((e) => e.target.endsWith('-auth'));
    if (authed.length === 0) parts.push(unknown(`${c}: not measured with auth`));
    for (const e of sorted(results, authed)) {
      const p = ratioPart(named(e, e.target), named(unauthenticatedOf(results, e), e.target.replace(/-auth$/, '')), 'serverCpuUs', ['≤', 1.1], CPU_REQ);
      parts.push({ ...p, text: `${c}: ${p.text}` });
    }
  }
  return verdictOf('Access control: an authenticated put and a chained authenticated get cost ≤ 1.1x the server CPU per request without auth', parts);
}

/** @param {Results} results */
function assessLimits(results) {
  /** @type {Part[]} */
  const parts = [];
  for (const c of ['put', 'get-chain']) {
    const limited = entriesOf(results, 'limits', { case: c }).filter((e) => e.target.endsWith('-limits'));
    if (limited.length === 0) parts.push(unknown(`${c}: not measured with the limits`));
    for (const e of sorted(results, limited)) {
      const p = ratioPart(named(e, e.target), named(unlimitedOf(results, e), e.target.replace(/-limits$/, '')), 'serverCpuUs', ['≤', 1.05], CPU_REQ);
      parts.push({ ...p, text: `${c}: ${p.text}` });
    }
  }
  return verdictOf(
    'Per-client limits: a put and a chained get with --rate-limit and --max-connections-per-ip on cost ≤ 1.05x the server CPU per request without them',
    parts,
  );
}

/**
 * Each performance target with the figures it was judged on.
 * @param {Results} results
 * @returns {Assessment[]}
 */
export function assessTargets(results) {
  return [assessPut, assessFanout, assessMemory, assessThroughput, assessScaling, assessAuth, assessLimits, assessStreamFanout, assessStreamMemory].map(
    (assess) => assess(results),
  );
}
