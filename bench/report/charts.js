// The report's SVG charts (drawn by ./svg.js): which figures are charted,
// grouped how, with one bar per target or per kind of target.

import fs from 'node:fs';
import path from 'node:path';
import { fmtInt, median } from '../lib/common.js';
import { TRANSPORT_NAMES, entriesOf, kindOf, plural, sorted, targetOf, unique, values } from './results.js';
import { barChart, kindColour } from './svg.js';

/**
 * @typedef {import('../harness/types.js').Results} Results
 * @typedef {import('../harness/types.js').Entry} Entry
 * @typedef {{ id: string, name: string, colour: string }} Series
 * @typedef {string | number | undefined} GroupKey
 * @typedef {{ label: string, key: GroupKey, field: string }} Group
 * @typedef {{ groups: string[], series: { name: string, colour: string, values: (number | null)[], min: (number | null)[], max: (number | null)[] }[] }} Bars
 * @typedef {object} Chart
 * @property {string} file
 * @property {string} scenario
 * @property {Partial<Entry>} [where]
 * @property {string} title
 * @property {string} unit
 * @property {(results: Results, es: Entry[]) => Bars} data
 * @property {{ value: number, label: string }} [refLine]
 */

/** @type {Record<string, string>} */
const KIND_NAMES = {
  comet: 'comet-server',
  ceiling: 'raw uWebSockets.js ceiling',
  nchan: 'nginx + Nchan',
  redis: 'comet-server + Redis, one node',
  cluster: 'comet-server nodes + Redis',
  external: 'external',
};

/**
 * The target's colour: its kind's, shaded by its place among the targets of that kind.
 * @param {Results} results
 * @param {{ id: string, kind: string }} t
 */
function targetColour(results, t) {
  const same = results.targets.filter((o) => o.kind === t.kind);
  return kindColour(
    t.kind,
    Math.max(
      0,
      same.findIndex((o) => o.id === t.id),
    ),
  );
}

/** @param {Results} results @returns {(e: Entry) => Series} */
const perTarget = (results) => (e) => {
  const t = targetOf(results, e.target);
  return { id: t.id, name: t.label, colour: targetColour(results, t) };
};

/** @param {Results} results @returns {(e: Entry) => Series} */
const perKind = (results) => (e) => {
  const kind = kindOf(results, e);
  return { id: kind, name: KIND_NAMES[kind] ?? kind, colour: kindColour(kind) };
};

/**
 * Bar chart data: one bar per series (seriesOf an entry) in each group; a
 * group is { label, key, field } and holds the entries whose keyOf is its key.
 * @param {Results} results
 * @param {Entry[]} es
 * @param {{ keyOf: (e: Entry) => GroupKey, groups: Group[], seriesOf: (e: Entry) => Series }} how
 * @returns {Bars}
 */
function bars(results, es, { keyOf, groups, seriesOf }) {
  const ordered = sorted(results, es);
  /** @type {Series[]} */
  const series = [];
  for (const e of ordered) {
    const s = seriesOf(e);
    if (!series.some((o) => o.id === s.id)) series.push(s);
  }
  /** @param {(xs: number[]) => number} fn @returns {(s: Series) => (number | null)[]} */
  const stat = (fn) => (s) =>
    groups.map((g) => {
      const xs = values(
        ordered.find((e) => seriesOf(e).id === s.id && keyOf(e) === g.key),
        g.field,
      );
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

/**
 * A chart with one group per case or waiter count and one bar per target.
 * @param {(e: Entry) => GroupKey} keyOf
 * @param {(key: GroupKey) => string} label
 * @param {string} field
 * @returns {Chart['data']}
 */
function targetChart(keyOf, label, field) {
  return (results, es) => {
    const keys = unique(sorted(results, es).map(keyOf));
    return bars(results, es, { keyOf, groups: keys.map((key) => ({ label: label(key), key, field })), seriesOf: perTarget(results) });
  };
}

/** @param {GroupKey} w a waiter count */
const waitersLabel = (w) => `${fmtInt(/** @type {number} */ (w))} waiters`;

/**
 * A latency chart: for each key (a waiter count, or a transport and count) one group per figure, one bar per target.
 * @param {(e: Entry) => GroupKey} keyOf
 * @param {(key: GroupKey) => string} label
 * @param {[field: string, name: string][]} figures
 * @returns {Chart['data']}
 */
function latencyBars(keyOf, label, figures) {
  return (results, es) => {
    const groups = unique(sorted(results, es).map(keyOf)).flatMap((key) => figures.map(([field, name]) => ({ label: `${label(key)}: ${name}`, key, field })));
    return bars(results, es, { keyOf, groups, seriesOf: perTarget(results) });
  };
}

/** @type {[field: string, name: string][]} */
const P50_P99 = [
  ['p50Ms', 'p50'],
  ['p99Ms', 'p99'],
];

/** The streams scenarios' group of an entry: its transport (case) and count. @param {Entry} e */
const streamKey = (e) => `${e.case} ${e.waiters}`;
/** @param {GroupKey} key */
const streamLabel = (key) => {
  const [transport, n] = String(key).split(' ');
  return `${TRANSPORT_NAMES[transport] ?? transport}, ${fmtInt(Number(n))} subscribers`;
};

/**
 * Streaming fan-out CPU: a group per transport and count, and beside each long-poll group its
 * figure with the gets asked again included (a stream has nothing to ask again).
 * @type {Chart['data']}
 */
function streamCpuBars(results, es) {
  const groups = unique(sorted(results, es).map(streamKey)).flatMap((key) => {
    const group = { label: streamLabel(key), key, field: 'serverCpuUs' };
    return String(key).startsWith('longpoll ') ? [group, { label: `${streamLabel(key)}, re-armed`, key, field: 'cycleCpuUs' }] : [group];
  });
  return bars(results, es, { keyOf: streamKey, groups, seriesOf: perTarget(results) });
}

/** @type {Chart['data']} */
function scalingBars(results, es) {
  /** @param {Entry} e */
  const keyOf = (e) => e.threads;
  const threads = unique(sorted(results, es).map(keyOf));
  return bars(results, es, { keyOf, groups: threads.map((n) => ({ label: plural(n, 'thread'), key: n, field: 'rps' })), seriesOf: perKind(results) });
}

/** @type {Chart[]} */
export const CHARTS = [
  { file: 'throughput.svg', scenario: 'throughput', title: 'Request throughput', unit: 'requests/s', data: targetChart((e) => e.case, String, 'rps') },
  {
    file: 'throughput-cpu.svg',
    scenario: 'throughput',
    title: 'Request throughput: server CPU per request',
    unit: 'µs per request',
    data: targetChart((e) => e.case, String, 'serverCpuUs'),
  },
  {
    file: 'fanout.svg',
    scenario: 'fanout',
    title: 'Fan-out: latency from publish to delivery',
    unit: 'ms',
    data: latencyBars((e) => e.waiters, waitersLabel, [...P50_P99, ['maxMs', 'max']]),
  },
  {
    file: 'channels.svg',
    scenario: 'channels',
    title: 'Many channels: deliveries per second',
    unit: 'deliveries/s',
    data: targetChart((e) => e.waiters, waitersLabel, 'deliveriesPerSec'),
  },
  {
    file: 'idle.svg',
    scenario: 'idle',
    title: 'Idle capacity: resident memory per waiting get',
    unit: 'bytes per waiting get',
    data: targetChart((e) => e.waiters, waitersLabel, 'bytesPerWaiter'),
    refLine: { value: 2048, label: 'target 2 KB' },
  },
  {
    file: 'stream-fanout-cpu.svg',
    scenario: 'stream-fanout',
    title: 'Streaming fan-out: server CPU per delivery',
    unit: 'µs per delivery',
    data: streamCpuBars,
  },
  {
    file: 'stream-fanout.svg',
    scenario: 'stream-fanout',
    title: 'Streaming fan-out: latency from publish to delivery',
    unit: 'ms',
    data: latencyBars(streamKey, streamLabel, P50_P99),
  },
  {
    file: 'stream-idle.svg',
    scenario: 'stream-idle',
    title: 'Streaming idle capacity: resident memory per open stream',
    unit: 'bytes per open stream (long-poll: per waiting get)',
    data: targetChart(streamKey, streamLabel, 'bytesPerWaiter'),
    refLine: { value: 1024, label: 'target 1 KB' },
  },
  {
    file: 'scaling.svg',
    scenario: 'scaling',
    where: { case: 'put-many' },
    title: 'Thread scaling: put-many requests/s',
    unit: 'requests/s',
    data: scalingBars,
  },
  {
    file: 'cluster.svg',
    scenario: 'cluster',
    title: 'Cluster mode: server CPU per put and per delivery, Redis included',
    unit: 'µs per request or delivery',
    data: targetChart(
      (e) => (e.case === 'fanout' ? e.waiters : e.case),
      (k) => (typeof k === 'number' ? `fan-out, ${waitersLabel(k)}` : String(k)),
      'serverCpuUs',
    ),
  },
];

/**
 * The charts the results have data for.
 * @param {Results} results
 */
export function chartsFor(results) {
  return CHARTS.filter((c) => entriesOf(results, c.scenario, c.where).length > 0);
}

/** @param {Results} results @param {Chart} chart */
function chartSvg(results, chart) {
  const { groups, series } = chart.data(results, entriesOf(results, chart.scenario, chart.where));
  return barChart({ title: chart.title, unit: chart.unit, groups, series, refLine: chart.refLine });
}

/**
 * Writes one SVG chart per scenario figure present in results into dir
 * (created if needed); scenarios absent from the results get no chart.
 * @param {Results} results
 * @param {string} dir
 * @returns {{ file: string, title: string }[]} the files written, names relative to dir
 */
export function writeCharts(results, dir) {
  const charts = chartsFor(results);
  if (charts.length) fs.mkdirSync(dir, { recursive: true });
  for (const chart of charts) fs.writeFileSync(path.join(dir, chart.file), chartSvg(results, chart));
  return charts.map(({ file, title }) => ({ file, title }));
}
