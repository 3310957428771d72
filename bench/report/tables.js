// The report's tables: for each scenario, which rows, which columns (the
// figures as median (min–max), the ratios to the targets measured beside, the
// CPUs and which side was saturated) and in what order.

import { fmtFixed, fmtInt, fmtMiB, markdownTable, mmm } from '../lib/common.js';
import {
  ceilingOf,
  counterpart,
  countBounds,
  entriesOf,
  inMemoryOf,
  isNum,
  longPollOf,
  med,
  nchanOf,
  sorted,
  targetOf,
  TRANSPORT_NAMES,
  unauthenticatedOf,
  unlimitedOf,
  values,
} from './results.js';

/**
 * @typedef {import('../harness/types.js').Results} Results
 * @typedef {import('../harness/types.js').Entry} Entry
 * @typedef {import('../harness/types.js').Run} Run
 * @typedef {[head: string, field: string, fmt: (n: number) => string, absent?: string]} FigureColumn
 *   absent: what the cell says when no run has the figure (default 'n/a')
 * @typedef {[field: string, label: string][]} RatioKey the figures a ratio cell compares
 * @typedef {[head: string, cell: (results: Results, e: Entry, table: Table) => string][]} VersusColumns
 * @typedef {{ head: string, value: (e: Entry) => string | undefined, key: string }} IdColumn
 * @typedef {object} Table
 * @property {string} [heading]
 * @property {Partial<Entry>} [where] the scenario's entries it shows
 * @property {IdColumn[]} ids
 * @property {FigureColumn[]} figures
 * @property {RatioKey} key
 * @property {VersusColumns} [versus] default: the ceiling and Nchan
 * @property {boolean} [bound] a "saturated" column
 * @property {boolean} [perThread] "vs 1 thread" and "CPUs" columns
 * @typedef {{ id: string, tables: Table[] }} Scenario
 */

const f1 = fmtFixed(1);
const f2 = fmtFixed(2);

/** @type {FigureColumn[]} */
const DELIVERED = [
  ['delivered', 'delivered', fmtInt],
  ['expected', 'expected', fmtInt],
];
/**
 * The idle scenarios' figures, memory per subscriber first.
 * @param {string} perSubscriber its column's head
 * @returns {FigureColumn[]}
 */
const idleFigures = (perSubscriber) => [
  [perSubscriber, 'bytesPerWaiter', fmtInt],
  ['RSS before', 'rssBefore', fmtMiB],
  ['RSS after', 'rssAfter', fmtMiB],
  ['one publish to all (ms)', 'deliverMs', f1],
  ...DELIVERED,
];
/** @type {FigureColumn[]} */
const THROUGHPUT_FIGURES = [
  ['requests/s', 'rps', fmtInt],
  ['p50 (ms)', 'p50Ms', f2],
  ['p99 (ms)', 'p99Ms', f2],
  ['server CPU per request (µs)', 'serverCpuUs', f2],
  // '—': the target does not count its GC (Nchan), not that it has none
  ['GC per 1,000 requests (ms)', 'gcMsPer1k', f2, '—'],
  ['server cores', 'serverCores', f2],
  ['load generator cores', 'loadCores', f2],
  ['errors', 'errors', fmtInt],
  ['non-2xx', 'non2xx', fmtInt],
];
/** @type {FigureColumn[]} */
const FANOUT_FIGURES = [
  ['p50 (ms)', 'p50Ms', f1],
  ['p99 (ms)', 'p99Ms', f1],
  ['max (ms)', 'maxMs', f1],
  ['server CPU per delivery (µs)', 'serverCpuUs', f2],
  ['put answered (ms)', 'putMs', f2],
  ...DELIVERED,
];
/** @type {RatioKey} */
const THROUGHPUT_KEY = [
  ['rps', 'rps'],
  ['serverCpuUs', 'CPU/req'],
];
/** @type {RatioKey} */
const FANOUT_KEY = [
  ['p99Ms', 'p99'],
  ['serverCpuUs', 'CPU/delivery'],
];

/**
 * The comparison columns of a table: [header, cell(results, e, table)]; by default the ceiling's and Nchan's.
 * @type {VersusColumns}
 */
const VERSUS_PEERS = [
  ['vs ceiling', (results, e, table) => (targetOf(results, e.target).kind === 'ceiling' ? '—' : ratioCell(e, ceilingOf(results, e), 'ceiling', table.key))],
  [
    'vs Nchan, same workers',
    (results, e, table) => (targetOf(results, e.target).kind === 'comet' ? ratioCell(e, nchanOf(results, e), 'Nchan', table.key) : '—'),
  ],
];
/** @type {VersusColumns} */
const VERSUS_STREAMS = [
  [
    'vs long-poll, same target',
    (results, e, table) => {
      const base = longPollOf(results, e);
      return base ? ratioCell(e, base, 'long-poll', table.key) : '—';
    },
  ],
  // the streams scenarios' case is the transport: Nchan's row with the same case has the same transport
  ['vs Nchan, same transport and workers', VERSUS_PEERS[1][1]],
];
/** @type {VersusColumns} */
const VERSUS_IN_MEMORY = [
  [
    'vs in memory, one node',
    (results, e, table) => {
      const base = inMemoryOf(results, e);
      return !base || base === e ? '—' : ratioCell(e, base, base.target, table.key);
    },
  ],
];

/** @type {VersusColumns} */
const VERSUS_NO_LIMITS = [
  [
    'vs without limits',
    (results, e, table) => {
      const base = unlimitedOf(results, e);
      return !base || base === e ? '—' : ratioCell(e, base, base.target, table.key);
    },
  ],
];

/** @type {VersusColumns} */
const VERSUS_NO_AUTH = [
  [
    'vs without auth',
    (results, e, table) => {
      const base = unauthenticatedOf(results, e);
      return !base || base === e ? '—' : ratioCell(e, base, base.target, table.key);
    },
  ],
];

/** @type {IdColumn} */
const byCase = { head: 'case', value: (e) => e.case, key: 'case' };
/** @type {IdColumn} */
const byWaiters = { head: 'waiters', value: (e) => fmtInt(/** @type {number} */ (e.waiters)), key: 'waiters' };
/** @type {IdColumn} */
const byTransport = { head: 'transport', value: (e) => TRANSPORT_NAMES[String(e.case)] ?? e.case, key: 'case' };
/** @type {IdColumn} */
const bySubscribers = { ...byWaiters, head: 'subscribers' };
/** @type {IdColumn} */
const byThreads = { head: 'threads', value: (e) => String(e.threads), key: 'threads' };

/**
 * The scenarios in the report's order, with their tables.
 * @type {Scenario[]}
 */
export const SCENARIOS = [
  {
    id: 'throughput',
    tables: [{ ids: [byCase], figures: THROUGHPUT_FIGURES, key: THROUGHPUT_KEY, bound: true }],
  },
  {
    id: 'fanout',
    tables: [{ ids: [byWaiters], figures: FANOUT_FIGURES, key: FANOUT_KEY }],
  },
  {
    id: 'channels',
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
    tables: [
      {
        ids: [byWaiters],
        figures: idleFigures('bytes per waiting get'),
        key: [['bytesPerWaiter', 'bytes/waiter']],
      },
    ],
  },
  {
    id: 'stream-fanout',
    tables: [
      {
        ids: [byTransport, bySubscribers],
        figures: [
          ...FANOUT_FIGURES,
          // '—': a stream is ready for the next message at its delivery, with nothing to ask again
          ['server CPU per delivery re-arming (µs)', 'rearmCpuUs', f2, '—'],
          ['server CPU per delivery, re-arming included (µs)', 'cycleCpuUs', f2],
          ["subscriber clients' CPU per delivery (µs)", 'clientCpuUs', f2],
          ['server cores', 'serverCores', f2],
          ['load generator cores', 'loadCores', f2],
        ],
        key: [...FANOUT_KEY, ['cycleCpuUs', 'CPU/delivery re-armed']],
        versus: VERSUS_STREAMS,
        bound: true,
      },
    ],
  },
  {
    id: 'stream-idle',
    tables: [
      {
        ids: [byTransport, bySubscribers],
        figures: idleFigures('bytes per open stream (long-poll: per waiting get)'),
        key: [['bytesPerWaiter', 'bytes/subscriber']],
        versus: VERSUS_STREAMS,
      },
    ],
  },
  {
    id: 'scaling',
    tables: [
      { heading: 'put-many', where: { case: 'put-many' }, ids: [byThreads], figures: THROUGHPUT_FIGURES, key: THROUGHPUT_KEY, bound: true, perThread: true },
      { heading: 'fan-out', where: { case: 'fanout' }, ids: [byThreads, byWaiters], figures: FANOUT_FIGURES, key: FANOUT_KEY, perThread: true },
    ],
  },
  {
    id: 'cluster',
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
  {
    id: 'auth',
    tables: [
      {
        ids: [byCase],
        figures: [...THROUGHPUT_FIGURES, ['tokens verified', 'tokensVerified', fmtInt, '—'], ['tokens found in the cache', 'tokensRemembered', fmtInt, '—']],
        key: [
          ['serverCpuUs', 'CPU/req'],
          ['rps', 'rps'],
        ],
        versus: VERSUS_NO_AUTH,
        bound: true,
      },
    ],
  },
  {
    id: 'limits',
    tables: [
      {
        ids: [byCase],
        figures: THROUGHPUT_FIGURES,
        key: [
          ['serverCpuUs', 'CPU/req'],
          ['rps', 'rps'],
        ],
        versus: VERSUS_NO_LIMITS,
        bound: true,
      },
    ],
  },
];

/**
 * "0.71x ceiling rps, 1.38x ceiling CPU/req" from medians; '—' without a counterpart, 'n/a' when it has
 * no figures. A ratio of a figure that is not positive (memory growth lost in the noise of a small N) says nothing.
 * @param {Entry} e
 * @param {Entry | undefined} other
 * @param {string} name
 * @param {RatioKey} key
 */
function ratioCell(e, other, name, key) {
  if (!other) return '—';
  const parts = key
    .map(([field, label]) => /** @type {const} */ ([med(e, field) > 0 && med(other, field) > 0 ? med(e, field) / med(other, field) : NaN, label]))
    .filter(([r]) => isNum(r))
    .map(([r, label]) => `${r.toFixed(2)}x ${name} ${label}`);
  // rows merged in from another run (--merge) were not measured side by side
  const across = (e.merge ?? null) !== (other.merge ?? null) ? ' (different runs)' : '';
  return parts.length ? parts.join(', ') + across : 'n/a';
}

/** @param {Run[]} runs */
function boundCell(runs) {
  if (runs.length === 0) return 'failed';
  const counts = countBounds(runs);
  if (counts.size === 1) return [...counts.keys()][0];
  return [...counts].map(([b, n]) => `${b} ×${n}`).join(', ');
}

/** @param {Entry} e */
const pinCell = (e) => (e.pin ? `server ${e.pin.server}, load ${e.pin.load}` : 'not pinned');

/**
 * @param {Results} results
 * @param {Entry} e
 * @param {Table} table
 */
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

/**
 * @param {Results} results
 * @param {Entry[]} es
 * @param {Table} table
 */
function tableMarkdown(results, es, table) {
  const headers = [
    ...table.ids.map((id) => id.head),
    'target',
    'runs',
    ...table.figures.map(([head]) => head),
    ...(table.versus ?? VERSUS_PEERS).map(([head]) => head),
  ];
  if (table.perThread) headers.push('vs 1 thread', 'CPUs');
  if (table.bound) headers.push('saturated');
  return markdownTable(
    headers,
    sorted(results, es).map((e) => row(results, e, table)),
  );
}

/**
 * The tables of a scenario's section, each under its heading where it has
 * one; a table without entries is left out.
 * @param {Results} results
 * @param {Scenario} scenario
 * @returns {string[]} markdown lines
 */
export function scenarioTables(results, scenario) {
  /** @type {string[]} */
  const out = [];
  for (const table of scenario.tables) {
    const es = entriesOf(results, scenario.id, table.where);
    if (es.length === 0) continue;
    if (table.heading) out.push(`### ${table.heading}`, '');
    out.push(tableMarkdown(results, es, table), '');
  }
  return out;
}
