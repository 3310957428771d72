// BENCHMARKS.md and its charts from the harness's results object. Plain ESM,
// no dependencies. Every figure is a median over runs with its min and max,
// because one run on a shared machine proves little; every comparison is
// between targets of the same results, measured side by side.

import fs from 'node:fs';
import path from 'node:path';
import { fmtFixed, fmtInt, fmtMiB, markdownTable, median, mmm } from '../lib/common.js';
import { barChart, kindColour } from './svg.js';

const f1 = fmtFixed(1);
const f2 = fmtFixed(2);
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/** Throughput cases in the order that reads best: from the cheapest request to the dearest. */
const CASE_ORDER = ['put-one', 'put-many', 'sync', 'get-buffered', 'fanout'];
const KIND_NAMES = {
  comet: 'comet-server',
  ceiling: 'raw uWebSockets.js ceiling',
  nchan: 'nginx + Nchan',
  redis: 'comet-server + Redis, one node',
  cluster: 'comet-server nodes + Redis',
  external: 'external',
};

// ---- results access -----------------------------------------------------------

function targetOf(results, id) {
  return results.targets.find((t) => t.id === id) ?? { id, label: id, kind: 'unknown', threads: null };
}

const kindOf = (results, e) => targetOf(results, e.target).kind;

/** Thread or worker count: scaling entries carry their own, the others their target's. */
const threadsOf = (results, e) => e.threads ?? targetOf(results, e.target).threads;

function entriesOf(results, scenario, where = {}) {
  return results.entries.filter((e) => e.scenario === scenario && Object.entries(where).every(([k, v]) => e[k] === v));
}

/** A field of an entry's runs, leaving out runs that lack it. */
function values(e, field) {
  return (e?.runs ?? []).map((r) => r[field]).filter(isNum);
}

const med = (e, field) => median(values(e, field));

/** Entries ordered by case, thread count, waiter count, then the results' target order. */
function sorted(results, es) {
  const caseRank = (c) => (CASE_ORDER.includes(c) ? CASE_ORDER.indexOf(c) : CASE_ORDER.length);
  const targetRank = (id) => results.targets.findIndex((t) => t.id === id);
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
 */
function counterpart(results, e, pick, threads = e.threads) {
  return results.entries.find(
    (o) => o.scenario === e.scenario && o.case === e.case && o.waiters === e.waiters && o.threads === threads && pick(targetOf(results, o.target), o),
  );
}

const ceilingOf = (results, e) => counterpart(results, e, (t) => t.kind === 'ceiling');

/** The in-memory comet-server measured beside a cluster-mode entry: the same threads per node if there is one. */
function inMemoryOf(results, e) {
  const threads = threadsOf(results, e);
  return (
    counterpart(results, e, (t) => t.kind === 'comet' && t.threads === threads) ??
    counterpart(results, e, (t) => t.kind === 'comet')
  );
}
const nchanOf = (results, e) => counterpart(results, e, (t, o) => t.kind === 'nchan' && threadsOf(results, o) === threadsOf(results, e));

/** The bound most runs report (ties broken by name, so that the answer is stable). */
function boundOf(e) {
  const counts = countBounds(e.runs);
  return [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a) || (a < b ? -1 : 1))[0];
}

function countBounds(runs) {
  const counts = new Map();
  for (const r of runs) counts.set(r.bound ?? 'n/a', (counts.get(r.bound ?? 'n/a') ?? 0) + 1);
  return counts;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---- performance targets --------------------------------------------------------

// An assessment is a list of parts, each { text } (shown only) or
// { text, ok: true | false | null, why } (judged; null when it could not be).

/** Why a comparison cannot be made with entry e (named name), or null when it can. */
function missing(name, e, field) {
  if (!e) return `${name} not measured`;
  if (e.runs.length === 0) return `${name}: all runs failed`;
  if (values(e, field).length === 0) return `${name}: no ${field} figure`;
  return null;
}

const RATIO_OK = { '≤': (r, x) => r <= x, '<': (r, x) => r < x, '≥': (r, x) => r >= x, '>': (r, x) => r > x };

/**
 * Judges median(a.field) / median(b.field) against goal, e.g. ['≤', 1.25].
 * @returns {{ text: string, ok: boolean | null, why?: string }}
 */
function ratioPart(a, b, field, [op, limit], { fmt, unit }) {
  const why = missing(a.name, a.entry, field) ?? missing(b.name, b.entry, field);
  if (why) return { text: why, ok: null, why };
  const x = med(a.entry, field);
  const y = med(b.entry, field);
  const r = x / y;
  return {
    text: `${a.name} ${fmt(x)} ${unit} vs ${b.name} ${fmt(y)}: ${r.toFixed(2)}x (goal ${op} ${limit}x)`,
    ok: RATIO_OK[op](r, limit),
  };
}

function limitPart(a, field, limit, { fmt, unit }) {
  const why = missing(a.name, a.entry, field);
  if (why) return { text: why, ok: null, why };
  const x = med(a.entry, field);
  return { text: `${a.name} ${fmt(x)} ${unit} (goal ≤ ${fmt(limit)})`, ok: x <= limit };
}

const unknown = (why) => ({ text: why, ok: null, why });

/** Shown, not judged. */
const shown = ({ text }) => ({ text });

function verdictOf(target, parts) {
  const judged = parts.filter((p) => 'ok' in p);
  const figures = parts.map((p) => p.text).join('; ');
  if (judged.some((p) => p.ok === false)) return { target, figures, verdict: 'not met' };
  const open = judged.filter((p) => p.ok === null);
  if (open.length) return { target, figures, verdict: 'not measured', why: open.map((p) => p.why).join('; ') };
  return { target, figures, verdict: 'met' };
}

const named = (e, fallback) => ({ name: e ? e.target : fallback, entry: e });

const CPU_REQ = { fmt: f2, unit: 'µs/request' };
const CPU_DELIVERY = { fmt: f2, unit: 'µs/delivery' };
const P99 = { fmt: f1, unit: 'ms p99' };
const RPS = { fmt: fmtInt, unit: 'requests/s' };
const BYTES = { fmt: fmtInt, unit: 'B' };

function assessPut(results) {
  const at = (kind, threads, c) =>
    entriesOf(results, 'throughput', { case: c }).find((e) => kindOf(results, e) === kind && threadsOf(results, e) === threads);
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

function assessFanout(results) {
  const comets = entriesOf(results, 'fanout', { waiters: 10000 }).filter((e) => kindOf(results, e) === 'comet');
  const parts = versusNchan(results, sorted(results, comets), (c, n) => [
    ratioPart(c, n, 'serverCpuUs', ['≤', 1], CPU_DELIVERY),
    ratioPart(c, n, 'p99Ms', ['≤', 1], P99),
  ]);
  return verdictOf('Fan-out to 10,000 waiters: comet-server server CPU per delivery and p99 latency no worse than Nchan at equal workers', parts);
}

function assessMemory(results) {
  const comets = entriesOf(results, 'idle', { waiters: 18000 }).filter((e) => kindOf(results, e) === 'comet');
  const parts = sorted(results, comets).map((e) => limitPart({ name: e.target, entry: e }, 'bytesPerWaiter', 2048, BYTES));
  if (parts.length === 0) parts.push(unknown('no idle run of comet-server at 18,000 waiters'));
  return verdictOf('Resident memory per idle waiting get ≤ 2 KB (2,048 B) at 18,000 waiters, every comet-server thread count', parts);
}

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

function assessScaling(results) {
  const comets = sorted(
    results,
    entriesOf(results, 'scaling', { case: 'put-many' }).filter((e) => kindOf(results, e) === 'comet'),
  );
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

/**
 * Each performance target with the figures it was judged on.
 * @param {object} results the harness's results object
 * @returns {{ target: string, figures: string, verdict: 'met' | 'not met' | 'not measured', why?: string }[]}
 */
export function assessTargets(results) {
  return [assessPut, assessFanout, assessMemory, assessThroughput, assessScaling].map((assess) => assess(results));
}

// ---- scenario tables --------------------------------------------------------------

const DELIVERED = [
  ['delivered', 'delivered', fmtInt],
  ['expected', 'expected', fmtInt],
];
const THROUGHPUT_FIGURES = [
  ['requests/s', 'rps', fmtInt],
  ['p50 (ms)', 'p50Ms', f2],
  ['p99 (ms)', 'p99Ms', f2],
  ['server CPU per request (µs)', 'serverCpuUs', f2],
  ['server cores', 'serverCores', f2],
  ['load generator cores', 'loadCores', f2],
  ['errors', 'errors', fmtInt],
  ['non-2xx', 'non2xx', fmtInt],
];
const FANOUT_FIGURES = [
  ['p50 (ms)', 'p50Ms', f1],
  ['p99 (ms)', 'p99Ms', f1],
  ['max (ms)', 'maxMs', f1],
  ['server CPU per delivery (µs)', 'serverCpuUs', f2],
  ['put answered (ms)', 'putMs', f2],
  ...DELIVERED,
];
const THROUGHPUT_KEY = [
  ['rps', 'rps'],
  ['serverCpuUs', 'CPU/req'],
];
const FANOUT_KEY = [
  ['p99Ms', 'p99'],
  ['serverCpuUs', 'CPU/delivery'],
];

/** The comparison columns of a table: [header, cell(results, e, table)]; by default the ceiling's and Nchan's. */
const VERSUS_PEERS = [
  ['vs ceiling', (results, e, table) => (targetOf(results, e.target).kind === 'ceiling' ? '—' : ratioCell(e, ceilingOf(results, e), 'ceiling', table.key))],
  ['vs Nchan, same workers', (results, e, table) => (targetOf(results, e.target).kind === 'comet' ? ratioCell(e, nchanOf(results, e), 'Nchan', table.key) : '—')],
];
const VERSUS_IN_MEMORY = [
  [
    'vs in memory, one node',
    (results, e, table) => {
      const base = inMemoryOf(results, e);
      return !base || base === e ? '—' : ratioCell(e, base, base.target, table.key);
    },
  ],
];

const byCase = { head: 'case', value: (e) => e.case, key: 'case' };
const byWaiters = { head: 'waiters', value: (e) => fmtInt(e.waiters), key: 'waiters' };
const byThreads = { head: 'threads', value: (e) => String(e.threads), key: 'threads' };

const SCENARIOS = [
  {
    id: 'throughput',
    title: 'Request throughput',
    method:
      'The load generator keeps its connections busy with one kind of request for the run: `put-one` publishes to one channel, `put-many` publishes round-robin over many channels, `sync` asks for a channel\'s time, `get-buffered` reads messages already stored. Server CPU per request is the target\'s CPU time (all its processes and threads) over the requests answered; cores are CPU time over wall time. "Saturated" says whose cores ran out: where it is the load generator (`load` or `both`), requests/s is a lower bound and CPU per request is the figure to compare.',
    tables: [{ ids: [byCase], figures: THROUGHPUT_FIGURES, key: THROUGHPUT_KEY, bound: true }],
  },
  {
    id: 'fanout',
    title: 'Fan-out',
    method:
      'W long-poll gets wait on one channel; each round publishes one message to it and times every delivery from the publish. Latencies are over all deliveries of a run\'s rounds; server CPU per delivery is the target\'s CPU time over the rounds divided by the deliveries; "put answered" is how long the publish itself took to be answered.',
    tables: [{ ids: [byWaiters], figures: FANOUT_FIGURES, key: FANOUT_KEY }],
  },
  {
    id: 'channels',
    title: 'Many channels',
    method:
      'W gets each wait on a channel of their own, then one message is published to each channel; the run is timed from the first publish to the last delivery. Deliveries/s is the deliveries over that time; server CPU per delivery includes the publish that caused it.',
    tables: [
      {
        ids: [byWaiters],
        figures: [
          ['deliveries/s', 'deliveriesPerSec', fmtInt],
          ['server CPU per delivery (µs)', 'serverCpuUs', f2],
          ['elapsed (ms)', 'elapsedMs', f1],
          ['load generator cores', 'loadCores', f2],
          ...DELIVERED,
        ],
        key: [
          ['deliveriesPerSec', 'deliveries/s'],
          ['serverCpuUs', 'CPU/delivery'],
        ],
      },
    ],
  },
  {
    id: 'idle',
    title: 'Idle capacity',
    method:
      'N long-poll gets wait, idle; the resident memory of all the target\'s processes is read before they connect and once all N wait, and the difference over N is the memory per waiting get. Then one publish reaches all N, timed until the last delivery.',
    tables: [
      {
        ids: [byWaiters],
        figures: [
          ['bytes per waiting get', 'bytesPerWaiter', fmtInt],
          ['RSS before', 'rssBefore', fmtMiB],
          ['RSS after', 'rssAfter', fmtMiB],
          ['one publish to all (ms)', 'deliverMs', f1],
          ...DELIVERED,
        ],
        key: [['bytesPerWaiter', 'bytes/waiter']],
      },
    ],
  },
  {
    id: 'scaling',
    title: 'Thread scaling',
    method:
      'The put-many and fan-out measurements again at each thread (comet-server) or worker (Nchan) count, with the target and the load generator pinned to separate CPUs. A thread count above the CPUs the target is given measures the cost of sharing them, not scaling.',
    tables: [
      { heading: 'put-many', where: { case: 'put-many' }, ids: [byThreads], figures: THROUGHPUT_FIGURES, key: THROUGHPUT_KEY, bound: true, perThread: true },
      { heading: 'fan-out', where: { case: 'fanout' }, ids: [byThreads, byWaiters], figures: FANOUT_FIGURES, key: FANOUT_KEY, perThread: true },
    ],
  },
  {
    id: 'cluster',
    title: 'Cluster mode',
    method:
      'comet-server in memory on one node against cluster mode (`--redis`: channels in Redis, a put on one node wakes gets waiting on any), on one node and on several nodes sharing one Redis, measured side by side in one run. Every target is started afresh for each run, Redis included (its own `redis-server` on a free port, nothing persisted), and pinned with the nodes to the target\'s CPUs. put-many spreads the load generator\'s connections evenly over the nodes; in fan-out the waiters are spread evenly over the nodes and the publish goes to the first node, and the latencies are over every delivery on every node. Server CPU counts every process of the target, Redis included; "of which Redis" is the `redis-server` process\'s share of it.',
    tables: [
      {
        heading: 'put-many',
        where: { case: 'put-many' },
        ids: [],
        figures: [
          ['requests/s', 'rps', fmtInt],
          ['p50 (ms)', 'p50Ms', f2],
          ['p99 (ms)', 'p99Ms', f2],
          ['server CPU per request, Redis included (µs)', 'serverCpuUs', f2],
          ['of which Redis (µs)', 'redisCpuUs', f2, '—'],
          ['server cores', 'serverCores', f2],
          ['load generator cores', 'loadCores', f2],
          ['errors', 'errors', fmtInt],
          ['non-2xx', 'non2xx', fmtInt],
        ],
        key: THROUGHPUT_KEY,
        versus: VERSUS_IN_MEMORY,
        bound: true,
      },
      {
        heading: 'fan-out',
        where: { case: 'fanout' },
        ids: [byWaiters],
        figures: [
          ['p50 (ms)', 'p50Ms', f1],
          ['p99 (ms)', 'p99Ms', f1],
          ['max (ms)', 'maxMs', f1],
          ['server CPU per delivery, Redis included (µs)', 'serverCpuUs', f2],
          ['of which Redis (µs)', 'redisCpuUs', f2, '—'],
          ['put answered (ms)', 'putMs', f2],
          ...DELIVERED,
        ],
        key: [
          ['p50Ms', 'p50'],
          ['p99Ms', 'p99'],
          ['serverCpuUs', 'CPU/delivery'],
        ],
        versus: VERSUS_IN_MEMORY,
      },
    ],
  },
];

/**
 * "0.71x ceiling rps, 1.38x ceiling CPU/req" from medians; '—' without a counterpart, 'n/a' when it has
 * no figures. A ratio of a figure that is not positive (memory growth lost in the noise of a small N) says nothing.
 */
function ratioCell(e, other, name, key) {
  if (!other) return '—';
  const parts = key
    .map(([field, label]) => [med(e, field) > 0 && med(other, field) > 0 ? med(e, field) / med(other, field) : NaN, label])
    .filter(([r]) => isNum(r))
    .map(([r, label]) => `${r.toFixed(2)}x ${name} ${label}`);
  // rows merged in from another run (--merge) were not measured side by side
  const across = (e.merge ?? null) !== (other.merge ?? null) ? ' (different runs)' : '';
  return parts.length ? parts.join(', ') + across : 'n/a';
}

function boundCell(runs) {
  if (runs.length === 0) return 'failed';
  const counts = countBounds(runs);
  if (counts.size === 1) return [...counts.keys()][0];
  return [...counts].map(([b, n]) => `${b} ×${n}`).join(', ');
}

const pinCell = (e) => (e.pin ? `server ${e.pin.server}, load ${e.pin.load}` : 'not pinned');

function row(results, e, table) {
  const t = targetOf(results, e.target);
  const figures = table.figures.map(([, field, fmt, absent]) => {
    if (e.runs.length === 0) return 'failed';
    const xs = values(e, field);
    return xs.length === 0 && absent ? absent : mmm(xs, fmt);
  });
  const cells = [...table.ids.map((id) => id.value(e)), t.label, String(e.runs.length), ...figures];
  for (const [, cell] of table.versus ?? VERSUS_PEERS) cells.push(cell(results, e, table));
  if (table.perThread) {
    const one = counterpart(results, e, (u) => u.kind === t.kind, 1);
    cells.push(one === e ? '—' : ratioCell(e, one, '1-thread', table.key), pinCell(e));
  }
  if (table.bound) cells.push(boundCell(e.runs));
  return cells;
}

function tableMarkdown(results, es, table) {
  const headers = [...table.ids.map((id) => id.head), 'target', 'runs', ...table.figures.map(([head]) => head), ...(table.versus ?? VERSUS_PEERS).map(([head]) => head)];
  if (table.perThread) headers.push('vs 1 thread', 'CPUs');
  if (table.bound) headers.push('saturated');
  return markdownTable(headers, sorted(results, es).map((e) => row(results, e, table)));
}

function scenarioSection(results, scenario, chartLinks) {
  const out = [`## ${scenario.title}`, '', scenario.method, ''];
  for (const table of scenario.tables) {
    const es = entriesOf(results, scenario.id, table.where);
    if (es.length === 0) continue;
    if (table.heading) out.push(`### ${table.heading}`, '');
    out.push(tableMarkdown(results, es, table), '');
  }
  out.push(...chartLinks.flatMap((link) => [link, '']));
  return out;
}

// ---- charts -----------------------------------------------------------------------

/** The target's colour: its kind's, shaded by its place among the targets of that kind. */
function targetColour(results, t) {
  const same = results.targets.filter((o) => o.kind === t.kind);
  return kindColour(t.kind, Math.max(0, same.findIndex((o) => o.id === t.id)));
}

const perTarget = (results) => (e) => {
  const t = targetOf(results, e.target);
  return { id: t.id, name: t.label, colour: targetColour(results, t) };
};

const perKind = (results) => (e) => {
  const kind = kindOf(results, e);
  return { id: kind, name: KIND_NAMES[kind] ?? kind, colour: kindColour(kind) };
};

const unique = (xs) => [...new Set(xs)];

/**
 * Bar chart data: one bar per series (seriesOf an entry) in each group; a
 * group is { label, key, field } and holds the entries whose keyOf is its key.
 */
function bars(results, es, { keyOf, groups, seriesOf }) {
  const ordered = sorted(results, es);
  const series = [];
  for (const e of ordered) {
    const s = seriesOf(e);
    if (!series.some((o) => o.id === s.id)) series.push(s);
  }
  const stat = (fn) => (s) =>
    groups.map((g) => {
      const xs = values(ordered.find((e) => seriesOf(e).id === s.id && keyOf(e) === g.key), g.field);
      return xs.length ? fn(xs) : null;
    });
  return {
    groups: groups.map((g) => g.label),
    series: series.map((s) => ({
      name: s.name,
      colour: s.colour,
      values: stat(median)(s),
      min: stat((xs) => Math.min(...xs))(s),
      max: stat((xs) => Math.max(...xs))(s),
    })),
  };
}

/** A chart with one group per case or waiter count and one bar per target. */
function targetChart(keyOf, label, field) {
  return (results, es) => {
    const keys = unique(sorted(results, es).map(keyOf));
    return bars(results, es, { keyOf, groups: keys.map((key) => ({ label: label(key), key, field })), seriesOf: perTarget(results) });
  };
}

const waitersLabel = (w) => `${fmtInt(w)} waiters`;

function fanoutBars(results, es) {
  const keyOf = (e) => e.waiters;
  const groups = unique(sorted(results, es).map(keyOf)).flatMap((w) =>
    [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['maxMs', 'max']].map(([field, name]) => ({ label: `${waitersLabel(w)}: ${name}`, key: w, field })),
  );
  return bars(results, es, { keyOf, groups, seriesOf: perTarget(results) });
}

function scalingBars(results, es) {
  const keyOf = (e) => e.threads;
  const threads = unique(sorted(results, es).map(keyOf));
  return bars(results, es, { keyOf, groups: threads.map((n) => ({ label: plural(n, 'thread'), key: n, field: 'rps' })), seriesOf: perKind(results) });
}

const CHARTS = [
  { file: 'throughput.svg', scenario: 'throughput', title: 'Request throughput', unit: 'requests/s', data: targetChart((e) => e.case, String, 'rps') },
  { file: 'throughput-cpu.svg', scenario: 'throughput', title: 'Request throughput: server CPU per request', unit: 'µs per request', data: targetChart((e) => e.case, String, 'serverCpuUs') },
  { file: 'fanout.svg', scenario: 'fanout', title: 'Fan-out: latency from publish to delivery', unit: 'ms', data: fanoutBars },
  { file: 'channels.svg', scenario: 'channels', title: 'Many channels: deliveries per second', unit: 'deliveries/s', data: targetChart((e) => e.waiters, waitersLabel, 'deliveriesPerSec') },
  {
    file: 'idle.svg',
    scenario: 'idle',
    title: 'Idle capacity: resident memory per waiting get',
    unit: 'bytes per waiting get',
    data: targetChart((e) => e.waiters, waitersLabel, 'bytesPerWaiter'),
    refLine: { value: 2048, label: 'target 2 KB' },
  },
  { file: 'scaling.svg', scenario: 'scaling', where: { case: 'put-many' }, title: 'Thread scaling: put-many requests/s', unit: 'requests/s', data: scalingBars },
  {
    file: 'cluster.svg',
    scenario: 'cluster',
    title: 'Cluster mode: server CPU per put and per delivery, Redis included',
    unit: 'µs per request or delivery',
    data: targetChart((e) => (e.case === 'fanout' ? e.waiters : e.case), (k) => (typeof k === 'number' ? `fan-out, ${waitersLabel(k)}` : String(k)), 'serverCpuUs'),
  },
];

/** The charts the results have data for. */
function chartsFor(results) {
  return CHARTS.filter((c) => entriesOf(results, c.scenario, c.where).length > 0);
}

function chartSvg(results, chart) {
  const { groups, series } = chart.data(results, entriesOf(results, chart.scenario, chart.where));
  return barChart({ title: chart.title, unit: chart.unit, groups, series, refLine: chart.refLine });
}

/**
 * Writes one SVG chart per scenario figure present in results into dir
 * (created if needed); scenarios absent from the results get no chart.
 * @param {object} results the harness's results object
 * @param {string} dir
 * @returns {{ file: string, title: string }[]} the files written, names relative to dir
 */
export function writeCharts(results, dir) {
  const charts = chartsFor(results);
  if (charts.length) fs.mkdirSync(dir, { recursive: true });
  for (const chart of charts) fs.writeFileSync(path.join(dir, chart.file), chartSvg(results, chart));
  return charts.map(({ file, title }) => ({ file, title }));
}

// ---- the document -----------------------------------------------------------------

function duration(s) {
  if (!isNum(s)) return 'unknown';
  const m = Math.floor(s / 60);
  return m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

function settingValue(v) {
  if (Array.isArray(v)) return v.join(', ');
  return v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
}

const list = (obj) => Object.entries(obj ?? {});

function header(results) {
  const m = results.meta ?? {};
  const mc = m.machine ?? {};
  const fd = /^\d+$/.test(String(mc.fdLimit)) ? fmtInt(Number(mc.fdLimit)) : mc.fdLimit ?? 'unknown';
  const lines = [
    '# Benchmarks',
    '',
    'comet-server measured against the raw uWebSockets.js ceiling (`bench/targets/raw-uws.js`: fixed answers, gets held until a put on their channel, no storage) and nginx with Nchan, side by side in one run of the benchmark harness (`comet-bench`, see [bench/README.md](bench/README.md) for the method). This file is generated from `BENCHMARKS-results.json`: `npm run bench` runs every scenario on every target and rewrites both with the charts; single scenarios or targets run with e.g. `node bench/cli.js --scenario fanout --target comet-1,nchan-1` (add `--report FILE` for a report of their own), and `--merge BENCHMARKS-results.json --report BENCHMARKS.md` puts their rows in here in place of the same rows, as `npm run bench:cluster` does for the Cluster mode section. Each figure is the median (min–max) over runs; each run starts its target afresh.',
    '',
    `- Command: \`${m.command ?? 'npm run bench'}\``,
    `- Date: ${m.date ?? 'unknown'}; took ${duration(m.durationS)}`,
    `- Machine: ${plural(mc.cores ?? '?', 'core')}, ${mc.cpu ?? 'unknown CPU'}, ${mc.memGiB ?? '?'} GiB RAM, ${mc.os ?? 'unknown OS'}, Node ${mc.node ?? '?'} (V8 ${mc.v8 ?? '?'}), open-files limit ${fd}`,
    `- Versions: ${list(m.versions).map(([k, v]) => `${k} ${v}`).join(', ') || 'unknown'}`,
    `- Load average (1/5/15 min): at start ${m.loadAverage?.start ?? 'n/a'}; at end ${m.loadAverage?.end ?? 'n/a'}`,
    `- Pinning: ${m.pinning ? `target on CPUs ${m.pinning.server}, load generator on CPUs ${m.pinning.load}` : 'none; the target and the load generator share the cores'}`,
    '- Targets:',
    ...results.targets.map((t) => `  - \`${t.id}\`: ${t.label}`),
    '- Settings:',
    ...list(m.settings).map(([k, v]) => `  - ${k}: ${settingValue(v)}`),
  ];
  if (m.readBack) lines.push(`- Results file: ${m.readBack}`);
  for (const g of m.merges ?? []) {
    const scenarios = unique((g.rows ?? []).map((r) => r.split(' ')[0]));
    // its settings where they differ from the header's
    const differ = list(g.settings).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(m.settings?.[k]));
    const settings = differ.length ? `; its settings where they differ from those above: ${differ.map(([k, v]) => `${k} ${settingValue(v)}`).join('; ')}` : '';
    lines.push(
      `- Merged in later (\`--merge\`), replacing the rows it measured again: \`${g.command ?? '?'}\`, ${g.date ?? 'unknown date'}, took ${duration(g.durationS)}, load average ${g.loadAverage?.start ?? 'n/a'} at start and ${g.loadAverage?.end ?? 'n/a'} at end; ${plural((g.rows ?? []).length, 'row')} (${scenarios.join(', ')})${settings}. A machine of the same description can be faster or slower on another day: compare these rows with each other, not with the rows of other runs`,
    );
  }
  if (results.failures?.length) lines.push(`- ${plural(results.failures.length, 'run')} failed: see [Failures](#failures)`);
  return lines;
}

const VERDICT_TEXT = { met: 'Met', 'not met': 'Not met', 'not measured': 'Not measured' };

function targetsSection(results) {
  const rows = assessTargets(results).map((a) => [a.target, a.figures, a.why ? `${VERDICT_TEXT[a.verdict]}: ${a.why}` : VERDICT_TEXT[a.verdict]]);
  return ['## Performance targets', '', markdownTable(['target', 'figures', 'verdict'], rows), ''];
}

function failuresSection(failures) {
  // continuation lines indented so that a multi-line message stays in its list item
  return ['## Failures', '', ...failures.map((f) => `- ${f.what}: ${String(f.message).replace(/\n/g, '\n  ')}`), ''];
}

/**
 * The complete text of BENCHMARKS.md.
 * @param {object} results the harness's results object
 * @param {object} [options]
 * @param {string} [options.notes] markdown written by people, inserted verbatim under "Notes"
 * @param {string} [options.chartsDir] where the charts are, relative to BENCHMARKS.md
 * @param {{ file: string }[]} [options.chartFiles] the charts written (writeCharts's answer); by default those the results have data for
 * @returns {string}
 */
export function renderReport(results, { notes = '', chartsDir = 'bench/charts', chartFiles = chartsFor(results) } = {}) {
  const written = new Set(chartFiles.map((c) => c.file));
  const out = [...header(results), '', ...targetsSection(results)];
  for (const scenario of SCENARIOS) {
    if (entriesOf(results, scenario.id).length === 0) continue;
    const links = CHARTS.filter((c) => c.scenario === scenario.id && written.has(c.file)).map((c) => `![${c.title}](${path.posix.join(chartsDir, c.file)})`);
    out.push(...scenarioSection(results, scenario, links));
  }
  const text = notes.replace(/^\n+|\s+$/g, '');
  if (text) out.push('## Notes', '', text, '');
  if (results.failures?.length) out.push(...failuresSection(results.failures));
  return out.join('\n').replace(/\n+$/, '\n');
}
