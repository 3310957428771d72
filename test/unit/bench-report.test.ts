/**
 * The benchmark report generator: SVG charts (bench/report/svg.js) and
 * BENCHMARKS.md (bench/report/markdown.js) with its performance-target verdicts
 * (bench/report/verdicts.js), tables and charts.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { barChart, compact, kindColour } from '../../bench/report/svg.js';
import { writeCharts } from '../../bench/report/charts.js';
import { renderReport } from '../../bench/report/markdown.js';
import { assessTargets } from '../../bench/report/verdicts.js';
import type { Bound, Entry, Results, TargetInfo } from '../../bench/harness/types.js';
import type { Assessment } from '../../bench/report/verdicts.js';

const FIXTURE: Results = JSON.parse(fs.readFileSync(new URL('../fixtures/bench-results.json', import.meta.url), 'utf8'));

// ---- a minimal XML well-formedness check (no dependency may be added) ----------
const NAME = '[A-Za-z][\\w:.-]*';
const OPEN = new RegExp(`^<(${NAME})((?:\\s+${NAME}="[^"<]*")*)\\s*(/?)>$`);
const CLOSE = new RegExp(`^</(${NAME})\\s*>$`);
const BARE_AMP = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[\da-fA-F]+);)/;

/** Problems that make the document not well-formed XML: bad tags, unbalanced tags, bare ampersands, more than one root. */
function xmlProblems(doc: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  const body = doc.replace(/^<\?xml[^?]*\?>/, '');
  for (const token of body.match(/<[^>]*>|[^<]+/g) ?? []) {
    if (BARE_AMP.test(token)) problems.push(`bare & in ${token}`);
    if (!token.startsWith('<')) {
      if (stack.length === 0 && token.trim()) problems.push(`text outside the root: ${token}`);
      continue;
    }
    const close = CLOSE.exec(token);
    if (close) {
      const open = stack.pop();
      if (open !== close[1]) problems.push(`</${close[1]}> closes <${open}>`);
      continue;
    }
    const open = OPEN.exec(token);
    if (!open) {
      problems.push(`malformed tag ${token}`);
      continue;
    }
    if (stack.length === 0) roots++;
    if (!open[3]) stack.push(open[1]);
  }
  if (stack.length) problems.push(`unclosed ${stack.join(', ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}

const SIMPLE = {
  title: 'Requests',
  unit: 'requests/s',
  groups: ['put-one', 'put-many'],
  series: [
    { name: 'comet', colour: kindColour('comet'), values: [52100, 48000], min: [50000, 47000], max: [53000, 49500] },
    { name: 'nchan', colour: kindColour('nchan'), values: [61000, 33000] },
  ],
};

const count = (s: string, sub: string) => s.split(sub).length - 1;

t.test('xmlProblems: the checker itself catches broken documents', async (t) => {
  t.same(xmlProblems('<?xml version="1.0"?>\n<svg a="1"><g/><text>x &amp; y</text></svg>\n'), []);
  t.not(xmlProblems('<svg><g></svg>'), []);
  t.not(xmlProblems('<svg><text>a & b</text></svg>'), []);
  t.not(xmlProblems('<svg><text a=1>x</text></svg>'), []);
  t.not(xmlProblems('<svg></svg><svg></svg>'), []);
});

t.test('barChart: a standalone, well-formed SVG 1.1 document', async (t) => {
  const svg = barChart(SIMPLE);
  t.same(xmlProblems(svg), []);
  t.match(
    svg,
    /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg" version="1.1" width="(\d+)" height="(\d+)" viewBox="0 0 \1 \2"/,
  );
  t.match(svg, /<rect x="0" y="0" width="\d+" height="\d+" fill="#ffffff"\/>/, 'white background');
  t.notMatch(svg, /<script|<style|href=|url\(|class=|style=/i, 'no scripts, stylesheets or external references');
  t.match(svg, /font-family="system-ui/);
  t.notMatch(svg, /NaN|undefined|Infinity/);
});

t.test('barChart: compact value labels, legend and group labels', async (t) => {
  const svg = barChart(SIMPLE);
  for (const label of ['52.1k', '48k', '61k', '33k', 'put-one', 'put-many', 'comet', 'nchan', 'requests/s']) t.match(svg, `>${label}</text>`, label);
});

t.test('barChart: text with <&>" is escaped everywhere', async (t) => {
  const nasty = 'a<&>"b';
  const svg = barChart({ ...SIMPLE, title: nasty, unit: nasty, groups: [nasty, 'x'], series: [{ ...SIMPLE.series[0], name: nasty }] });
  t.same(xmlProblems(svg), []);
  t.notOk(svg.includes(nasty), 'the raw text never appears');
  t.ok(count(svg, 'a&lt;&amp;&gt;&quot;b') >= 4, 'title, <title>, unit, legend (the group label wraps at spaces only)');
});

t.test('barChart: a null value leaves its bar out', async (t) => {
  const colour = '#123456';
  const bars = (values: Array<number | null>) =>
    count(barChart({ title: 'x', unit: 'u', groups: ['a', 'b', 'c'], series: [{ name: 's', colour, values }] }), `fill="${colour}"`);
  t.equal(bars([1, 2, 3]), 4, 'three bars and the legend swatch');
  t.equal(bars([1, null, 3]), 3);
  t.equal(bars([null, null, null]), 1, 'only the legend swatch');
  const svg = barChart({ title: 'x', unit: 'u', groups: ['a'], series: [{ name: 's', values: [null] }] });
  t.same(xmlProblems(svg), []);
  t.notMatch(svg, /NaN|undefined|Infinity/, 'an empty chart still has finite axes');
});

t.test('barChart: a min–max whisker only where min and max differ', async (t) => {
  const whiskerLines = (min: number[], max: number[]) =>
    count(barChart({ title: 'x', unit: 'u', groups: ['a', 'b'], series: [{ name: 's', values: [5, 5], min, max }] }), 'stroke="#24292f"');
  t.equal(whiskerLines([4, 5], [6, 5]), 3, 'one whisker: a line and two caps');
  t.equal(whiskerLines([4, 3], [6, 7]), 6);
});

t.test('barChart: deterministic', async (t) => {
  t.equal(barChart(SIMPLE), barChart(structuredClone(SIMPLE)));
});

t.test('barChart: the reference line and its label', async (t) => {
  const svg = barChart({ ...SIMPLE, refLine: { value: 2048, label: 'target 2 KB' } });
  t.match(svg, /<line [^>]*stroke-dasharray="6 4"\/>/);
  t.match(svg, '>target 2 KB</text>');
  t.notMatch(barChart(SIMPLE), 'stroke-dasharray', 'absent unless asked for');
  // the axis reaches the line even when every bar is below it
  const low = barChart({ title: 'x', unit: 'B', groups: ['a'], series: [{ name: 's', values: [900] }], refLine: { value: 2048, label: 'target 2 KB' } });
  t.match(low, />2\.5k<\/text>/);
});

t.test('compact and kindColour', async (t) => {
  t.same([52100, 52000, 999.6, 17.94, 0.8, 0, 1.5e6, 1300, 123456].map(compact), ['52.1k', '52k', '1k', '17.9', '0.8', '0', '1.5M', '1.3k', '123k']);
  t.equal(kindColour('comet', 1), kindColour('comet', 1));
  t.not(kindColour('comet', 0), kindColour('comet', 1), 'targets of one kind are told apart');
  t.equal(new Set(['comet', 'ceiling', 'nchan', 'external'].map((k) => kindColour(k))).size, 4);
});

// ---- the report -------------------------------------------------------------------

t.test('renderReport: every section of the fixture, in order', async (t) => {
  const md: string = renderReport(FIXTURE, { notes: 'A *human* note.\n\n| kept | as is |\n' });
  const headings = md.split('\n').filter((l) => l.startsWith('#'));
  t.same(headings, [
    '# Benchmarks',
    '## Performance targets',
    '## Request throughput',
    '## Fan-out',
    '## Many channels',
    '## Idle capacity',
    '## Thread scaling',
    '### put-many',
    '### fan-out',
    '## Notes',
    '## Failures',
  ]);
  for (const s of [
    '`npm run bench`',
    '`node bench/cli.js --scenario fanout --target comet-1,nchan-1`',
    '2026-11-26T07:00:00Z; took 13 min 32 s',
    '2 cores, AMD EPYC 7B13, 23.5 GiB RAM, Linux 6.1.0-27-cloud-amd64 x64, Node v20.20.2 (V8 11.3.244.8-node.33), open-files limit 20,000',
    'libnginx-mod-nchan 1:1.3.6-2',
    'wrk 4.1.0',
    '  - generator: autocannon',
    '  - waiters: 1000, 10000',
    'at start 0.10 0.20 0.30; at end 1.52 1.21 0.74',
    'Pinning: none',
    '![Request throughput](bench/charts/throughput.svg)',
    '![Request throughput: server CPU per request](bench/charts/throughput-cpu.svg)',
    'bench/charts/fanout.svg',
    'bench/charts/channels.svg',
    'bench/charts/idle.svg',
    'bench/charts/scaling.svg',
    'A *human* note.\n\n| kept | as is |\n',
    '- idle nchan-2 N=18000 run 2: nginx exited with code 1 before 18000 gets waited',
  ]) {
    t.ok(md.includes(s), s);
  }
  t.match(md, /\| put-many \| comet-server --threads 1 \| 3 \| [\d,]+ \([\d,]+–[\d,]+\) \|/, 'median (min–max) and the run count');
  t.notMatch(md, /NaN|undefined|Infinity|\[object/);
  t.ok(md.endsWith('\n') && !md.endsWith('\n\n'));
});

t.test('renderReport: a scenario absent from the results has no section and no chart', async (t) => {
  const noFanout = { ...FIXTURE, entries: FIXTURE.entries.filter((e) => e.scenario !== 'fanout'), failures: [] };
  const md: string = renderReport(noFanout);
  t.notMatch(md, '## Fan-out');
  t.notMatch(md, 'fanout.svg');
  t.match(md, '## Request throughput');
  t.notMatch(md, '## Notes', 'no notes, no section');
  t.notMatch(md, '## Failures');
  const onlyIdle = { ...FIXTURE, entries: FIXTURE.entries.filter((e) => e.scenario === 'idle') };
  t.same(
    renderReport(onlyIdle)
      .split('\n')
      .filter((l: string) => l.startsWith('## ')),
    ['## Performance targets', '## Idle capacity', '## Failures'],
  );
  t.match(renderReport(onlyIdle, { chartFiles: [] }), /## Idle capacity(?![^]*!\[)/, 'links only the charts written');
  t.match(renderReport(onlyIdle, { chartsDir: 'docs/img' }), '](docs/img/idle.svg)');
});

t.test('renderReport: an entry whose runs all failed reads "failed", not NaN', async (t) => {
  const md: string = renderReport(FIXTURE);
  const row = md.split('\n').find((l) => l.startsWith('| 10,000 | nginx + Nchan, 2 workers | 0 |'));
  t.ok(row, 'the channels row of nchan-2 is there');
  t.match(row, /^\| 10,000 \| nginx \+ Nchan, 2 workers \| 0 \| failed \| failed \|/);
  t.match(md, /\| 10,000 \| comet-server --threads 2 \| 3 \|.*\| n\/a \|$/m, 'the ratio to a failed Nchan is n/a');
  t.notMatch(md, /NaN/);
});

// ---- small fixtures for ratios and verdicts ---------------------------------------

const TARGETS: TargetInfo[] = [
  { id: 'comet-1', label: 'comet-server --threads 1', kind: 'comet', threads: 1 },
  { id: 'comet-2', label: 'comet-server --threads 2', kind: 'comet', threads: 2 },
  { id: 'ceiling', label: 'raw uWebSockets.js (fixed answers)', kind: 'ceiling', threads: 1 },
  { id: 'nchan-1', label: 'nginx + Nchan, 1 worker', kind: 'nchan', threads: 1 },
  { id: 'nchan-2', label: 'nginx + Nchan, 2 workers', kind: 'nchan', threads: 2 },
];

const COMET_8: TargetInfo = { id: 'comet-8', label: 'comet-server --threads 8', kind: 'comet', threads: 8 };

function results(entries: Entry[]): Results {
  return { meta: { machine: { cores: 2 } }, targets: [...TARGETS, COMET_8], entries, failures: [] };
}

/** A put-many entry with one run per CPU figure; requests/s follows from the CPU unless given. */
function put(
  target: string,
  cpu: number[],
  { bound = 'server' as Bound, rps = [] as number[], scenario = 'throughput', threads = undefined as number | undefined } = {},
): Entry {
  const runs = cpu.map((c, i) => ({ rps: rps[i] ?? 1e6 / c, serverCpuUs: c, bound }));
  return { scenario, case: 'put-many', target, runs, ...(threads === undefined ? {} : { threads }) };
}

const fanout = (target: string, cpu: number, p99: number, waiters = 10000): Entry => ({
  scenario: 'fanout',
  waiters,
  target,
  runs: [{ serverCpuUs: cpu, p99Ms: p99 }],
});
const idle = (target: string, bytes: number, waiters = 18000): Entry => ({ scenario: 'idle', waiters, target, runs: [{ bytesPerWaiter: bytes }] });

function assess(entries: Entry[], index: number): Assessment {
  return assessTargets(results(entries))[index];
}

t.test('ratios come from medians of runs', async (t) => {
  // means would give 4x; medians give 2x
  const md: string = renderReport(results([put('comet-1', [10, 20, 90]), put('ceiling', [10, 10, 10]), put('nchan-1', [40, 40, 40])]));
  t.match(md, '2.00x ceiling CPU/req');
  t.match(md, '0.50x ceiling rps');
  t.match(md, '0.50x Nchan CPU/req');
  t.match(md, '20.00 (10.00–90.00)');
  t.match(assess([put('comet-1', [10, 20, 90]), put('ceiling', [10, 10, 10]), put('nchan-1', [40])], 0).figures, '2.00x');
});

t.test('throughput table: GC per 1,000 requests, "—" for a target that does not count it', async (t) => {
  const withGc = (e: Entry, gc: Array<number | null>): Entry => ({ ...e, runs: e.runs.map((r, i) => ({ ...r, gcMsPer1k: gc[i] })) });
  const md: string = renderReport(
    results([
      withGc(put('comet-1', [10, 10, 10]), [0.5, 0.75, 0.6]),
      withGc(put('ceiling', [5, 5, 5]), [0.25, null, 0.5]),
      withGc(put('nchan-1', [20, 20, 20]), [null, null, null]),
    ]),
  );
  const lines = md.split('\n');
  const header = lines.find((l) => l.startsWith('| case |'))!;
  const column = header
    .split('|')
    .map((c) => c.trim())
    .indexOf('GC per 1,000 requests (ms)');
  t.ok(column > 0, 'the throughput table has the column', { header });
  const cell = (label: string) =>
    lines
      .find((l) => l.includes(`| ${label} |`))
      ?.split('|')
      [column]?.trim();
  t.equal(cell('comet-server --threads 1'), '0.60 (0.50–0.75)', 'comet: median (min–max) in ms');
  t.equal(cell('raw uWebSockets.js (fixed answers)'), '0.38 (0.25–0.50)', 'the ceiling: its own figure, over the runs that have it');
  t.equal(cell('nginx + Nchan, 1 worker'), '—', 'Nchan: no figure, not 0');
  t.notMatch(md, /NaN|null/);
});

t.test('assessTargets: put CPU against the ceiling and Nchan', async (t) => {
  const met = assess([put('comet-1', [12]), put('ceiling', [10]), put('nchan-1', [13])], 0);
  t.equal(met.verdict, 'met', '1.2x the ceiling and below Nchan');
  t.match(met.figures, 'comet-1 12.00 µs/request vs ceiling 10.00: 1.20x (goal ≤ 1.25x)');
  t.equal(assess([put('comet-1', [14]), put('ceiling', [10]), put('nchan-1', [15])], 0).verdict, 'not met', '1.4x the ceiling');
  t.equal(assess([put('comet-1', [12]), put('ceiling', [10]), put('nchan-1', [11])], 0).verdict, 'not met', 'above Nchan');

  const noNchan = assess([put('comet-1', [12]), put('ceiling', [10])], 0);
  t.equal(noNchan.verdict, 'not measured');
  t.match(noNchan.figures, 'Nchan (1 worker) not measured');
  t.match(noNchan.why, 'Nchan (1 worker) not measured');
  t.equal(assess([put('comet-1', [14]), put('ceiling', [10])], 0).verdict, 'not met', 'a part that fails decides, whatever is missing');

  const failed = assess([put('comet-1', [12]), { ...put('ceiling', []), runs: [] }, put('nchan-1', [13])], 0);
  t.equal(failed.verdict, 'not measured');
  t.match(failed.why, 'ceiling: all runs failed');

  const putOne = { ...put('comet-1', [30]), case: 'put-one' };
  const withPutOne = assess([put('comet-1', [12]), put('ceiling', [10]), put('nchan-1', [13]), putOne, { ...put('ceiling', [10]), case: 'put-one' }], 0);
  t.equal(withPutOne.verdict, 'met', 'put-one is shown, not judged');
  t.match(withPutOne.figures, 'put-one: comet-1 30.00 µs/request vs ceiling 10.00: 3.00x');
});

t.test('assessTargets: fan-out to 10,000 waiters against Nchan at equal workers', async (t) => {
  t.equal(assess([fanout('comet-1', 9, 200), fanout('nchan-1', 14, 200)], 1).verdict, 'met', 'equal p99 is no worse');
  t.equal(assess([fanout('comet-1', 9, 210), fanout('nchan-1', 14, 200)], 1).verdict, 'not met', 'p99 worse');
  t.equal(assess([fanout('comet-1', 15, 190), fanout('nchan-1', 14, 200)], 1).verdict, 'not met', 'CPU worse');
  const pairs = assess([fanout('comet-1', 9, 190), fanout('nchan-1', 14, 200), fanout('comet-2', 20, 190), fanout('nchan-2', 14, 200)], 1);
  t.equal(pairs.verdict, 'not met', 'comet-2 against nchan-2 counts where both ran');
  t.equal(
    assess([fanout('comet-1', 9, 190), fanout('nchan-1', 14, 200), fanout('comet-2', 20, 190)], 1).verdict,
    'met',
    'without nchan-2, comet-2 is not judged',
  );
  t.equal(assess([fanout('comet-1', 9, 190), fanout('nchan-1', 14, 200, 1000)], 1).verdict, 'not measured', 'only at 10,000 waiters');
  t.equal(assess([], 1).verdict, 'not measured');
  t.match(assess([fanout('comet-2', 9, 190), fanout('nchan-1', 14, 200)], 1).why, 'Nchan not measured at the thread counts comet-server ran with');
});

/** A streams row: the transport is its case. */
const stream = (scenario: 'stream-fanout' | 'stream-idle', transport: string, target: string, figures: Record<string, number>, waiters = 10000): Entry => ({
  scenario,
  case: transport,
  waiters,
  target,
  runs: [figures],
});

t.test('assessTargets: streaming fan-out CPU per delivery against the long-poll path and Nchan on the same transport', async (t) => {
  /** A stream is ready again at its delivery: its cycle is its delivery. */
  const streamed = (transport: string, target: string, us: number) => stream('stream-fanout', transport, target, { serverCpuUs: us, cycleCpuUs: us, p99Ms: 5 });
  const rows = (sse: number, ws: number, longpoll = 10, nchanSse = 12, nchanWs = 12, rearm = 5) => [
    streamed('sse', 'comet-1', sse),
    streamed('ws', 'comet-1', ws),
    stream('stream-fanout', 'longpoll', 'comet-1', { serverCpuUs: longpoll, rearmCpuUs: rearm, cycleCpuUs: longpoll + rearm, p99Ms: 5 }),
    streamed('sse', 'nchan-1', nchanSse),
    streamed('ws', 'nchan-1', nchanWs),
  ];
  const met = assess(rows(8, 9), 7);
  t.equal(met.verdict, 'met');
  t.match(met.figures, 'SSE, comet-1, 10,000 8.00 µs/delivery vs long-poll, comet-1 re-armed 15.00: 0.53x (goal ≤ 1x)');
  t.match(met.figures, 'answers alone: SSE, comet-1, 10,000 8.00 µs/delivery vs long-poll, comet-1 10.00: 0.80x;');
  t.match(met.figures, 'WebSocket, comet-1, 10,000 9.00 µs/delivery vs nchan-1 12.00: 0.75x (goal ≤ 1x)');
  t.equal(
    assess(rows(11, 9, 10, 12, 12, 5), 7).verdict,
    'met',
    "dearer than the long-poll answers alone, not than a long-poll's delivery with its get after it",
  );
  t.equal(assess(rows(11, 9, 10, 12, 12, 0.5), 7).verdict, 'not met', 'dearer than the long-poll path, re-arming included');
  t.equal(
    assess(
      rows(8, 9).map((e) => (e.case === 'longpoll' ? { ...e, runs: [{ serverCpuUs: 10, p99Ms: 5 }] } : e)),
      7,
    ).verdict,
    'not measured',
    'a long-poll row without its re-arming is not judged',
  );
  t.equal(assess(rows(8, 9, 10, 12, 8.5), 7).verdict, 'not met', "dearer than Nchan's WebSocket");
  const noNchan = assess(
    rows(8, 9).filter((e) => e.target !== 'nchan-1'),
    7,
  );
  t.equal(noNchan.verdict, 'not measured');
  t.match(noNchan.why, 'Nchan (1 worker) not measured');
  t.equal(assess([], 7).verdict, 'not measured');
});

t.test('assessTargets: memory per idle stream at 10,000, Nchan shown', async (t) => {
  const rows = (sse: number, ws: number) => [
    stream('stream-idle', 'sse', 'comet-1', { bytesPerWaiter: sse }),
    stream('stream-idle', 'ws', 'comet-1', { bytesPerWaiter: ws }),
    stream('stream-idle', 'longpoll', 'comet-1', { bytesPerWaiter: 900 }),
    stream('stream-idle', 'sse', 'nchan-1', { bytesPerWaiter: 10_000 }),
  ];
  const met = assess(rows(700, 1024), 8);
  t.equal(met.verdict, 'met', "Nchan's 10 KB is shown, not judged");
  t.match(met.figures, 'SSE, comet-1 700 B (goal ≤ 1,024); Nchan SSE, nchan-1 10,000 B (goal ≤ 1,024)');
  t.equal(assess(rows(700, 1100), 8).verdict, 'not met');
  t.equal(
    assess(
      rows(700, 1100).map((e) => ({ ...e, waiters: 1000 })),
      8,
    ).verdict,
    'not measured',
    'only at 10,000 streams',
  );
});

t.test('the streams sections: a row per transport, ratios to long-poll and to Nchan, and their charts', async (t) => {
  const r = results([
    stream('stream-fanout', 'longpoll', 'comet-1', { serverCpuUs: 10, rearmCpuUs: 10, cycleCpuUs: 20, p99Ms: 4, p50Ms: 2 }, 1000),
    stream('stream-fanout', 'ws', 'comet-1', { serverCpuUs: 5, cycleCpuUs: 5, p99Ms: 2, p50Ms: 1 }, 1000),
    stream('stream-fanout', 'ws', 'nchan-1', { serverCpuUs: 20, cycleCpuUs: 20, p99Ms: 8, p50Ms: 3 }, 1000),
    stream('stream-idle', 'sse', 'comet-1', { bytesPerWaiter: 600 }),
    stream('stream-idle', 'longpoll', 'comet-1', { bytesPerWaiter: 300 }),
  ]);
  const md: string = renderReport(r, { chartFiles: [{ file: 'stream-fanout-cpu.svg' }, { file: 'stream-fanout.svg' }, { file: 'stream-idle.svg' }] });
  t.match(md, /^## Streaming fan-out$/m);
  t.match(md, /^## Streaming idle capacity$/m);
  t.match(
    md,
    /\| WebSocket \| 1,000 \| comet-server --threads 1 \|[^\n]*\| — \| 5\.00 \|[^\n]*\| 0\.50x long-poll p99, 0\.50x long-poll CPU\/delivery, 0\.25x long-poll CPU\/delivery re-armed \| 0\.25x Nchan p99, 0\.25x Nchan CPU\/delivery, 0\.25x Nchan CPU\/delivery re-armed \|/,
    'a stream re-arms nothing',
  );
  t.match(md, /\| long-poll \| 1,000 \| comet-server --threads 1 \|[^\n]*\| 10\.00 \| 20\.00 \|/, "the long-poll row's re-arming and the sum");
  t.match(md, /\| long-poll \| 1,000 \| comet-server --threads 1 \|[^\n]*\| — \| — \|/, 'the long-poll row is the baseline');
  t.ok(md.indexOf('| WebSocket | 1,000') < md.indexOf('| long-poll | 1,000'), 'long-poll last');
  t.match(md, /\| SSE \| 10,000 \| comet-server --threads 1 \| 1 \| 600 \|[^\n]*\| 2\.00x long-poll bytes\/subscriber \|/);
  t.match(md, '![Streaming idle capacity: resident memory per open stream](bench/charts/stream-idle.svg)');

  const dir = t.testdir();
  const written = writeCharts(r, dir);
  t.same(
    written.map((c: { file: string }) => c.file),
    ['stream-fanout-cpu.svg', 'stream-fanout.svg', 'stream-idle.svg'],
  );
  for (const { file } of written) t.same(xmlProblems(fs.readFileSync(path.join(dir, file), 'utf8')), [], file);
  t.match(fs.readFileSync(path.join(dir, 'stream-fanout.svg'), 'utf8'), '>WebSocket,</text>', 'a group per transport');
  t.match(
    fs.readFileSync(path.join(dir, 'stream-fanout-cpu.svg'), 'utf8'),
    '>re-armed</text>',
    "long-poll's figure with its gets asked again beside its answers'",
  );
  t.match(fs.readFileSync(path.join(dir, 'stream-idle.svg'), 'utf8'), '>target 1 KB</text>');
});

t.test('assessTargets: memory per idle waiting get at 18,000', async (t) => {
  t.equal(assess([idle('comet-1', 1300), idle('comet-2', 2048), idle('nchan-1', 10000)], 2).verdict, 'met');
  const over = assess([idle('comet-1', 1300), idle('comet-2', 2100)], 2);
  t.equal(over.verdict, 'not met', 'every comet thread count must meet it');
  t.match(over.figures, 'comet-2 2,100 B');
  t.equal(assess([idle('comet-1', 1300, 10000)], 2).verdict, 'not measured', 'only at 18,000 waiters');
});

t.test('assessTargets: throughput against Nchan, requests/s only where both servers were the limit', async (t) => {
  const saturated = { bound: 'server' as const };
  const rps = assess([put('comet-1', [10], { rps: [60000], ...saturated }), put('nchan-1', [10], { rps: [50000], ...saturated })], 3);
  t.equal(rps.verdict, 'met');
  t.match(rps.figures, 'comet-1 60,000 requests/s vs nchan-1 50,000: 1.20x (goal > 1x)');
  const loadBound = assess([put('comet-1', [12], { rps: [60000], bound: 'load' }), put('nchan-1', [10], { rps: [50000], bound: 'load' })], 3);
  t.equal(loadBound.verdict, 'not met', 'more requests/s but more CPU per request');
  t.match(loadBound.figures, 'not both saturated, so server CPU per request compared');
  for (const bound of ['both', 'neither'] as const) {
    t.ok(
      assess([put('comet-1', [12], { bound }), put('nchan-1', [10], saturated)], 3).figures.includes('CPU per request compared'),
      `'${bound}' on one side: CPU compared`,
    );
  }
  t.equal(assess([put('comet-1', [10]), put('ceiling', [10])], 3).verdict, 'not measured', 'no Nchan');
});

t.test('assessTargets: thread scaling', async (t) => {
  const scaling = (threads: number, rps: number) => put(`comet-${threads}`, [10], { scenario: 'scaling', threads, rps: [rps] });
  const none = assess([scaling(1, 50000), scaling(2, 60000)], 4);
  t.equal(none.verdict, 'not measured');
  t.match(none.why, 'needs ≥ 8 cores for the server; this machine has 2');
  t.match(none.figures, '2 threads: 60,000 requests/s');
  t.equal(assess([scaling(1, 50000), scaling(8, 275000)], 4).verdict, 'met', '5.5x');
  t.equal(assess([scaling(1, 50000), scaling(8, 200000)], 4).verdict, 'not met', '4x');
  t.equal(assess([scaling(8, 200000)], 4).verdict, 'not measured', 'no 1-thread run');
});

t.test('assessTargets: access control, authenticated against unauthenticated CPU per request', async (t) => {
  const row = (c: string, target: string, cpu: number[]): Entry => ({ scenario: 'auth', case: c, target, runs: cpu.map((serverCpuUs) => ({ serverCpuUs })) });
  const both = (putAuth: number[], chainAuth: number[]) => [
    row('put', 'comet-1', [10, 10, 10]),
    row('put', 'comet-1-auth', putAuth),
    row('get-chain', 'comet-1', [20, 20, 20]),
    row('get-chain', 'comet-1-auth', chainAuth),
  ];
  const met = assess(both([10.5, 11, 30], [21, 22, 0]), 5);
  t.equal(met.verdict, 'met', 'medians 1.10x and 1.05x');
  t.match(met.figures, 'put: comet-1-auth 11.00 µs/request vs comet-1 10.00: 1.10x (goal ≤ 1.1x)');
  t.match(met.figures, 'get-chain: comet-1-auth 21.00 µs/request vs comet-1 20.00: 1.05x');
  t.equal(assess(both([11, 11.5, 12], [20, 20, 20]), 5).verdict, 'not met', 'put 1.15x');
  const half = assess(both([10], [20]).slice(0, 2), 5);
  t.equal(half.verdict, 'not measured');
  t.match(half.why, 'get-chain: not measured with auth');
  const failed = assess([...both([10], [20]).slice(0, 3), row('get-chain', 'comet-1-auth', [])], 5);
  t.equal(failed.verdict, 'not measured', 'every authenticated run failed');
  t.match(failed.why, 'comet-1-auth: all runs failed');
  const md: string = renderReport(results(both([11], [22])));
  t.match(md, /^## Access control$/m);
  t.match(md, '1.10x comet-1 CPU/req');
});

t.test('assessTargets: per-client limits, with against without, CPU per request within 1.05x', async (t) => {
  const row = (c: string, target: string, cpu: number[]): Entry => ({ scenario: 'limits', case: c, target, runs: cpu.map((serverCpuUs) => ({ serverCpuUs })) });
  const both = (putLimits: number[], chainLimits: number[]) => [
    row('put', 'comet-1', [10, 10, 10]),
    row('put', 'comet-1-limits', putLimits),
    row('get-chain', 'comet-1', [20, 20, 20]),
    row('get-chain', 'comet-1-limits', chainLimits),
  ];
  const met = assess(both([10.2, 10.5, 30], [21, 20.4, 0]), 6);
  t.equal(met.verdict, 'met', 'medians 1.05x and 1.02x');
  t.match(met.figures, 'put: comet-1-limits 10.50 µs/request vs comet-1 10.00: 1.05x (goal ≤ 1.05x)');
  t.equal(assess(both([10.6, 10.6, 10.6], [20, 20, 20]), 6).verdict, 'not met', 'put 1.06x');
  const half = assess(both([10], [20]).slice(0, 2), 6);
  t.equal(half.verdict, 'not measured');
  t.match(half.why, 'get-chain: not measured with the limits');
  const md: string = renderReport(results(both([10.5], [21])));
  t.match(md, /^## Per-client limits$/m);
  t.match(md, '1.05x comet-1 CPU/req');
});

t.test('assessTargets on the fixture: every target has a verdict and figures', async (t) => {
  const all: Assessment[] = assessTargets(FIXTURE);
  t.equal(all.length, 9);
  for (const a of all) {
    t.ok(['met', 'not met', 'not measured'].includes(a.verdict), a.target);
    t.ok(a.figures.length > 0);
    t.notMatch(a.figures, /NaN|undefined/);
  }
  t.same(
    all.map((a) => a.verdict),
    ['not met', 'not met', 'met', 'not met', 'not measured', 'not measured', 'not measured', 'not measured', 'not measured'],
  );
  const md: string = renderReport(FIXTURE);
  t.match(md, /\| Thread scaling: [^|]* \| [^|]* \| Not measured: no 8-thread run: needs ≥ 8 cores for the server; this machine has 2 \|/);
});

t.test('writeCharts: one SVG per scenario figure present, well-formed and deterministic', async (t) => {
  const root = t.testdir();
  const dir = path.join(root, 'charts');
  const written = writeCharts(FIXTURE, dir);
  t.same(
    written.map((c: { file: string }) => c.file),
    ['throughput.svg', 'throughput-cpu.svg', 'fanout.svg', 'channels.svg', 'idle.svg', 'scaling.svg'],
  );
  t.same(fs.readdirSync(dir).sort(), written.map((c: { file: string }) => c.file).sort());
  const first = new Map(written.map((c: { file: string }) => [c.file, fs.readFileSync(path.join(dir, c.file), 'utf8')]));
  for (const [file, svg] of first) t.same(xmlProblems(svg as string), [], file);
  t.match(first.get('idle.svg'), '>target 2 KB</text>');
  t.match(first.get('throughput.svg'), '>comet-server --threads 1</text>');
  t.match(first.get('scaling.svg'), '>nginx + Nchan</text>', 'scaling has one series per target kind');
  t.match(first.get('fanout.svg'), '>10,000 waiters: p99</text>');
  t.match(first.get('throughput.svg'), `fill="${kindColour('comet')}"`, 'comet-1 in the comet colour');

  writeCharts(FIXTURE, dir);
  for (const [file, svg] of first) t.equal(fs.readFileSync(path.join(dir, file as string), 'utf8'), svg, `${file} the same bytes again`);

  const other = path.join(root, 'subset');
  t.same(writeCharts({ ...FIXTURE, entries: FIXTURE.entries.filter((e) => e.scenario === 'idle') }, other), [
    { file: 'idle.svg', title: 'Idle capacity: resident memory per waiting get' },
  ]);
  t.same(fs.readdirSync(other), ['idle.svg']);
});

t.test('a ratio to a figure that is not positive reads n/a', async (t) => {
  const md: string = renderReport(results([idle('comet-1', 600, 1000), idle('ceiling', -250, 1000)]));
  const row = md.split('\n').find((l: string) => l.startsWith('| 1,000 | comet-server'));
  t.ok(row, 'the comet row is there');
  t.notMatch(row!, /-\d+\.\d+x/, 'no negative ratio');
  t.match(row!, /\| n\/a \|/, 'n/a instead');
});
