// BENCHMARKS.md from the harness's results: the header, the prose (what each
// scenario measures and how to read it), and the sections put together from
// the verdicts (./verdicts.js), the tables (./tables.js) and the charts
// (./charts.js). Every figure is a median over runs with its min and max,
// because one run on a shared machine proves little; every comparison is
// between targets of the same results, measured side by side.

import path from 'node:path';
import { fmtInt, markdownTable } from '../lib/common.js';
import { CHARTS, chartsFor } from './charts.js';
import { entriesOf, isNum, plural, unique } from './results.js';
import { SCENARIOS, scenarioTables } from './tables.js';
import { assessTargets } from './verdicts.js';

/**
 * @typedef {import('../harness/types.js').Results} Results
 * @typedef {import('../harness/types.js').Failure} Failure
 */

/**
 * Each scenario's section heading and what it measures.
 * @type {Record<string, { title: string, method: string }>}
 */
const SECTIONS = {
  throughput: {
    title: 'Request throughput',
    method:
      'The load generator keeps its connections busy with one kind of request for the run: `put-one` publishes to one channel, `put-many` publishes round-robin over many channels, `sync` asks for a channel\'s time, `get-buffered` reads messages already stored. Server CPU per request is the target\'s CPU time (all its processes and threads) over the requests answered; cores are CPU time over wall time. GC per 1,000 requests is the garbage-collection pause time of all the target\'s threads over the measured window (its `comet_gc_seconds_total`), per 1,000 requests answered; "—" for a target that does not count it (Nchan, which has no GC). "Saturated" says whose cores ran out: where it is the load generator (`load` or `both`), requests/s is a lower bound and CPU per request is the figure to compare.',
  },
  fanout: {
    title: 'Fan-out',
    method:
      'W long-poll gets wait on one channel; each round publishes one message to it and times every delivery from the publish. Latencies are over all deliveries of a run\'s rounds; server CPU per delivery is the target\'s CPU time over the rounds divided by the deliveries; "put answered" is how long the publish itself took to be answered.',
  },
  channels: {
    title: 'Many channels',
    method:
      'W gets each wait on a channel of their own, then one message is published to each channel; the run is timed from the first publish to the last delivery. Deliveries/s is the deliveries over that time; server CPU per delivery includes the publish that caused it.',
  },
  idle: {
    title: 'Idle capacity',
    method:
      "N long-poll gets wait, idle; the resident memory of all the target's processes is read before they connect and once all N wait, and the difference over N is the memory per waiting get. Then one publish reaches all N, timed until the last delivery.",
  },
  'stream-fanout': {
    title: 'Streaming fan-out',
    method:
      "The fan-out measurement with streaming subscribers: W subscribers each hold a server-sent events stream (`GET ?method=events`, Nchan's EventSource) or a WebSocket (subscribed with one frame; Nchan's WebSocket subscriber) open on one channel through every round, and comet-server's own long-poll path (W chained gets) is measured beside them in the same run. Each round publishes one message and times every delivery from the publish to the subscriber's receipt of the event or frame; server CPU per delivery is the target's CPU time (all its processes and threads) from just before the publish until the last delivery, over the deliveries, as in the fan-out section. A long-poll subscriber takes the next message only once it has asked again, so the long-poll rows also measure that: the target's CPU from the gets asked again until it counts them all waiting (\"re-arming\"; its counter is read a few times meanwhile). \"Re-arming included\" is the sum, what a delivery costs to a subscriber that stays subscribed; a stream's is its CPU per delivery, since it is ready again at its delivery. The subscribers are raw sockets in client processes of their own (at most 6,000 each, spread over source addresses 127.0.0.2–9), reading events and frames with a minimal parser. The ratios are to the same target's long-poll row and to Nchan's row of the same transport at equal workers. The goal: comet-server's CPU per delivery over either transport no more than its long-poll path's, re-arming included, and no more than Nchan's on the same transport. Where the subscriber clients' CPU per delivery is near the server's, the load generator's cores can run out first (\"saturated\": `load`) and the latencies are then partly the clients'; CPU per delivery still compares the servers.",
  },
  'stream-idle': {
    title: 'Streaming idle capacity',
    method:
      "The idle-capacity measurement with streaming subscribers: N event streams or WebSockets open on one channel, idle; the resident memory of all the target's processes is read before they connect (after a warm-up with the same transport) and once all N are open, and the difference over N is the memory per open stream. Then one publish reaches all N, timed until the last delivery. comet-server's long-poll path (N waiting gets) is measured beside them in the same run. The goal: at most 1 KB per open stream at 10,000 streams, SSE and WebSocket alike (Nchan's streams cost about 10 KB each).",
  },
  scaling: {
    title: 'Thread scaling',
    method:
      'The put-many and fan-out measurements again at each thread (comet-server) or worker (Nchan) count, with the target and the load generator pinned to separate CPUs. A thread count above the CPUs the target is given measures the cost of sharing them, not scaling.',
  },
  cluster: {
    title: 'Cluster mode',
    method:
      "comet-server in memory on one node against cluster mode (`--redis`: channels in Redis, a put on one node wakes gets waiting on any), on one node and on several nodes sharing one Redis, measured side by side in one run. Every target is started afresh for each run, Redis included (its own `redis-server` on a free port, nothing persisted), and pinned with the nodes to the target's CPUs. put-many spreads the load generator's connections evenly over the nodes; in fan-out the waiters are spread evenly over the nodes and the publish goes to the first node, and the latencies are over every delivery on every node. Server CPU counts every process of the target, Redis included; \"of which Redis\" is the `redis-server` process's share of it.",
  },
  limits: {
    title: 'Per-client limits',
    method:
      "What the per-client limits cost: `comet-1` without them and `comet-1-limits` (the same server with `--rate-limit 1000000 --rate-burst 1000000 --max-connections-per-ip 100000`, so high that nothing is refused, and `--trust-proxy` off) side by side in one run. Every request comes from the load generator's one address, so each takes a token from the same entry of the table shared by the threads, and each connection is counted in it as it opens (the main thread's count of connections per address from `/proc/net/tcp`, every second, is in the server CPU too). `put` publishes to one channel; `get-chain` alternates a put and a get on one channel as a long-poll subscriber chains, so its figures are per request of the pair. A run in which anything was refused (a 429, or a connection closed by the limit) fails instead of giving figures. The ratio to the server without limits is the figure the target is judged on.",
  },
  auth: {
    title: 'Access control',
    method:
      'What `--auth all` costs: `comet-1` without access control and `comet-1-auth` (the same server with `--auth all` and a random HS256 secret of its own) side by side in one run, the latter sent a token signed with that secret in `Authorization: Bearer` on every request. `put` publishes to one channel; `get-chain` alternates a put and a get on one channel, each get from the time of the newest get answer (the answer carries the messages put since), as a long-poll subscriber chains, so its figures are per request of the pair. Every request re-uses one token: each server thread checks its signature once and finds it in its cache after ("tokens verified", "tokens found in the cache": the server\'s `/metrics` counters at the end of the run, warm-up included); a run in which any request was refused (401 or 403) fails instead of giving figures. The ratio to the server without auth is the figure the target is judged on.',
  },
};

/**
 * @param {Results} results
 * @param {import('./tables.js').Scenario} scenario
 * @param {string[]} chartLinks
 */
function scenarioSection(results, scenario, chartLinks) {
  const { title, method } = SECTIONS[scenario.id];
  return [`## ${title}`, '', method, '', ...scenarioTables(results, scenario), ...chartLinks.flatMap((link) => [link, ''])];
}

/** @param {unknown} s seconds */
function duration(s) {
  if (!isNum(s)) return 'unknown';
  const m = Math.floor(s / 60);
  return m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

/** @param {unknown} v */
function settingValue(v) {
  if (Array.isArray(v)) return v.join(', ');
  return v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** @param {Record<string, any> | undefined} obj */
const list = (obj) => Object.entries(obj ?? {});

/** @param {Results} results */
function header(results) {
  const m = results.meta ?? {};
  const mc = m.machine ?? {};
  const fd = /^\d+$/.test(String(mc.fdLimit)) ? fmtInt(Number(mc.fdLimit)) : (mc.fdLimit ?? 'unknown');
  const lines = [
    '# Benchmarks',
    '',
    'comet-server measured against the raw uWebSockets.js ceiling (`bench/targets/raw-uws.js`: fixed answers, gets held until a put on their channel, no storage) and nginx with Nchan, side by side in one run of the benchmark harness (`comet-bench`, see [bench/README.md](bench/README.md) for the method). This file is generated from `BENCHMARKS-results.json`: `npm run bench` runs every scenario on every target and rewrites both with the charts; single scenarios or targets run with e.g. `node bench/cli.js --scenario fanout --target comet-1,nchan-1` (add `--report FILE` for a report of their own), and `--merge BENCHMARKS-results.json --report BENCHMARKS.md` puts their rows in here in place of the same rows, as `npm run bench:cluster` does for the Cluster mode section. Each figure is the median (min–max) over runs; each run starts its target afresh.',
    '',
    `- Command: \`${m.command ?? 'npm run bench'}\``,
    `- Date: ${m.date ?? 'unknown'}; took ${duration(m.durationS)}`,
    `- Machine: ${plural(mc.cores ?? '?', 'core')}, ${mc.cpu ?? 'unknown CPU'}, ${mc.memGiB ?? '?'} GiB RAM, ${mc.os ?? 'unknown OS'}, Node ${mc.node ?? '?'} (V8 ${mc.v8 ?? '?'}), open-files limit ${fd}`,
    `- Versions: ${
      list(m.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'unknown'
    }`,
    `- Load average (1/5/15 min): at start ${m.loadAverage?.start ?? 'n/a'}; at end ${m.loadAverage?.end ?? 'n/a'}`,
    `- Pinning: ${m.pinning ? `target on CPUs ${m.pinning.server}, load generator on CPUs ${m.pinning.load}` : 'none; the target and the load generator share the cores'}`,
    '- Targets:',
    ...results.targets.map((t) => `  - \`${t.id}\`: ${t.label}`),
    '- Settings:',
    ...list(m.settings).map(([k, v]) => `  - ${k}: ${settingValue(v)}`),
  ];
  for (const g of m.merges ?? []) {
    const scenarios = unique((g.rows ?? []).map((/** @type {string} */ r) => r.split(' ')[0]));
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

/** @param {Results} results */
function targetsSection(results) {
  const rows = assessTargets(results).map((a) => [a.target, a.figures, a.why ? `${VERDICT_TEXT[a.verdict]}: ${a.why}` : VERDICT_TEXT[a.verdict]]);
  return ['## Performance targets', '', markdownTable(['target', 'figures', 'verdict'], rows), ''];
}

/** @param {Failure[]} failures */
function failuresSection(failures) {
  // continuation lines indented so that a multi-line message stays in its list item
  return ['## Failures', '', ...failures.map((f) => `- ${f.what}: ${String(f.message).replace(/\n/g, '\n  ')}`), ''];
}

/**
 * The complete text of BENCHMARKS.md.
 * @param {Results} results
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
