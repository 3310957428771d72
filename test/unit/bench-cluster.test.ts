/**
 * The harness's cluster-mode parts that need no server: the cluster-mode
 * targets' ids, the plan of the cluster scenario and its options, spreading
 * load over a multi-node target's URLs (autocannon connections, wrk
 * threads), Redis's share of the CPU, merging a run into a kept results file,
 * and the report's Cluster mode section.
 * The harness running a real two-node cluster is in test/bench-cluster.test.ts.
 */
import t from 'tap';
import { splitConnections } from '../../bench/harness/load/autocannon-load.js';
import { wrkScript } from '../../bench/harness/load/wrk-load.js';
import { cpuOfParts, partFigures } from '../../bench/harness/cpu.js';
import { describeTarget } from '../../bench/harness/targets.js';
import { SCENARIOS, describe as describeUnit, plan } from '../../bench/harness/runner.js';
import { parseOptions, settingsFrom } from '../../bench/harness/settings.js';
import { entryKey, mergeResults } from '../../bench/harness/bench.js';
import { renderReport } from '../../bench/report/markdown.js';
import type { Entry, Results } from '../../bench/harness/types.js';

// ------------------------------------------------------------------ targets

t.test('describeTarget: redis-N and cluster-N[xT]', async (t) => {
  t.match(describeTarget('redis-1'), { id: 'redis-1', kind: 'redis', threads: 1, nodes: 1, adapterRef: 'simple-comet' });
  t.match(describeTarget('redis-2'), { kind: 'redis', threads: 2, nodes: 1 });
  t.match(describeTarget('cluster-2'), { kind: 'cluster', threads: 1, nodes: 2, label: '2 × comet-server --threads 1 --redis (2 nodes + Redis)' });
  t.match(describeTarget('cluster-3x2'), { kind: 'cluster', threads: 2, nodes: 3 });
  t.throws(() => describeTarget('cluster-0'), /at least 1/);
  t.throws(() => describeTarget('cluster'), /unknown target cluster: .*cluster-N\[xT\]/);
  t.throws(() => describeTarget('redis-x'), /unknown target/);
});

// ------------------------------------------------------------------ options and plan

t.test('options: --cluster-targets, --cluster-waiters, --merge', async (t) => {
  const o = parseOptions([], 'x');
  t.ok(SCENARIOS.includes('cluster'), 'the cluster scenario is part of a full run');
  t.same(o.clusterTargets, ['comet-1', 'redis-1', 'cluster-2']);
  t.same(o.clusterWaiters, [1000, 10000]);
  t.equal(o.merge, '');
  t.same(parseOptions(['--quick'], 'x').clusterWaiters, [1000]);
  const s = settingsFrom(parseOptions(['--cluster-targets', 'comet-2,cluster-2x2', '--cluster-waiters', '50,60', '--merge', 'R.json'], 'x'));
  t.same(s.clusterTargets, ['comet-2', 'cluster-2x2']);
  t.same(s.clusterWaiters, [50, 60]);
  t.throws(() => parseOptions(['--cluster-waiters', '0'], 'x'), /waiter counts/);
});

t.test('plan: the cluster scenario measures put-many and fan-out on its own targets', async (t) => {
  const s = settingsFrom(parseOptions(['--cluster-waiters', '100,200'], 'x'));
  const units = plan({ scenarios: ['cluster'], targets: ['ceiling', 'nchan-1'], settings: s });
  t.same(
    units.map((u) => [u.case, u.waiters ?? '-', u.target].join(' ')),
    [
      'put-many - comet-1',
      'put-many - redis-1',
      'put-many - cluster-2',
      'fanout 100 comet-1',
      'fanout 100 redis-1',
      'fanout 100 cluster-2',
      'fanout 200 comet-1',
      'fanout 200 redis-1',
      'fanout 200 cluster-2',
    ],
    '--target does not apply: each case, each cluster target side by side',
  );
  t.ok(units.every((u: { scenario: string; pin: unknown }) => u.scenario === 'cluster' && u.pin === s.pinning));
  t.equal(describeUnit(units[3]), 'cluster fanout W=100 comet-1');
  t.equal(describeUnit(units[0]), 'cluster put-many comet-1');
});

// ------------------------------------------------------------------ spreading the load

t.test('splitConnections: every URL an equal share, spread over the load processes', async (t) => {
  const total = (plan: Array<Array<{ url: string; connections: number }>>, url?: string) =>
    plan
      .flat()
      .filter((x) => url === undefined || x.url === url)
      .reduce((a, x) => a + x.connections, 0);

  t.same(splitConnections(50, 1, ['a']), [[{ url: 'a', connections: 50 }]], 'one process, one URL: all of them');
  t.same(
    splitConnections(50, 1, ['a', 'b']),
    [
      [
        { url: 'a', connections: 25 },
        { url: 'b', connections: 25 },
      ],
    ],
    'one process, two nodes: half each',
  );
  t.same(
    splitConnections(10, 3, ['a']).map((p) => p[0].connections),
    [4, 3, 3],
    'one URL: as before, the first processes take the leftovers',
  );
  const odd = splitConnections(51, 2, ['a', 'b']);
  t.equal(total(odd), 51, 'no connection lost');
  t.equal(total(odd, 'a'), 26);
  t.equal(total(odd, 'b'), 25);
  t.same(
    odd.map((p) => total([p])),
    [26, 25],
    'the processes as even as can be',
  );
  t.same(
    splitConnections(5, 4, ['a', 'b']).map((p) => p.map((x) => `${x.url}${x.connections}`).join('+')),
    ['a1+b1', 'a1', 'a1', 'b1'],
    "leftovers go on where the previous URL's stopped",
  );
  for (const [c, p, u] of [
    [7, 3, 2],
    [100, 4, 3],
    [5, 4, 2],
    [64, 8, 5],
  ] as const) {
    const urls = ['a', 'b', 'c', 'd', 'e'].slice(0, u);
    const plan = splitConnections(c, p, urls);
    t.equal(plan.length, p, `${c}/${p}/${u}: a list per process`);
    t.equal(total(plan), c, `${c}/${p}/${u}: every connection once`);
    const perUrl = urls.map((url) => total(plan, url));
    t.ok(Math.max(...perUrl) - Math.min(...perUrl) <= 1, `${c}/${p}/${u}: URLs within one connection of each other (${perUrl})`);
    const perProc = plan.map((x) => total([x]));
    t.ok(Math.max(...perProc) - Math.min(...perProc) <= 1, `${c}/${p}/${u}: processes within one connection of each other (${perProc})`);
    t.ok(
      plan.flat().every((x) => x.connections > 0),
      'no empty entries',
    );
  }
  const few = splitConnections(1, 3, ['a', 'b']);
  t.ok(
    few.every((p) => p.length > 0),
    'a process left without connections still gets one',
  );
  t.throws(() => splitConnections(5, 1, []), /no URL/);
});

t.test("wrkScript: one URL keeps wrk's own address, several place each thread", async (t) => {
  const reqs = [{ path: '/?method=put&channel=a&message=m' }];
  const single = wrkScript(reqs);
  t.notMatch(single, /thread\.addr/, 'one URL: wrk connects where its URL says');
  t.same(wrkScript(reqs, []), single, 'an empty list is the same');
  const multi = wrkScript(reqs, ['http://127.0.0.1:4001/', 'http://127.0.0.1:4002/comet']);
  t.match(multi, /local addrs = \{\n {2}\{ \[==\[127\.0\.0\.1\]==\], \[==\[4001\]==\] \},\n {2}\{ \[==\[127\.0\.0\.1\]==\], \[==\[4002\]==\] \},\n\}/);
  t.match(
    multi,
    /local a = addrs\[\(threads % #addrs\) \+ 1\]\n {2}thread\.addr = wrk\.lookup\(a\[1\], a\[2\]\)\[1\]\n {2}thread:set\("offset", threads\)/,
    'thread k to node k mod n, before its offset is counted',
  );
  t.match(multi, /wrk\.format\(\[==\[GET\]==\], \[==\[\/\?method=put&channel=a&message=m\]==\]/);
});

t.test("cpuOfParts and partFigures: Redis's share per operation and in cores", async (t) => {
  const now = cpuOfParts({ self: [process.pid] });
  t.ok(now.self > 0, 'this process has used CPU');
  t.same(cpuOfParts(undefined), {}, 'a target without parts');
  t.same(partFigures({ redis: 1000 }, { redis: 4000 }, 100, 6), { redisCpuUs: 30, redisCores: 0.5 });
  t.same(partFigures({}, { redis: 500 }, 10, 1), { redisCpuUs: 50, redisCores: 0.5 }, 'a sum of rounds starts at nothing');
  t.ok(Number.isNaN(partFigures({ redis: 0 }, { redis: 5 }, 0, 1).redisCpuUs), 'no operation: no figure per operation');
  t.same(partFigures({}, {}, 10, 1), {});
});

// ------------------------------------------------------------------ merging

const e = (scenario: string, target: string, value: number, extra: Partial<Entry> = {}): Entry => ({ scenario, target, ...extra, runs: [{ rps: value }] });

function base(): Results {
  return {
    meta: { date: 'then', command: 'comet-bench --generator wrk', settings: { runs: 3 } },
    targets: [
      { id: 'comet-1', kind: 'comet', threads: 1, label: 'one' },
      { id: 'ceiling', kind: 'ceiling', threads: 1, label: 'raw' },
    ],
    entries: [
      e('throughput', 'comet-1', 1, { case: 'put-many' }),
      e('throughput', 'ceiling', 2, { case: 'put-many' }),
      e('fanout', 'comet-1', 3, { waiters: 1000 }),
      e('fanout', 'comet-1', 4, { waiters: 10000 }),
      e('cluster', 'comet-1', 5, { case: 'put-many' }),
    ],
    failures: [
      { what: 'fanout W=10000 comet-1 run 2/3', message: 'old' },
      { what: 'fanout W=1000 ceiling run 1/3', message: 'kept' },
    ],
  };
}

function fresh(date: string, entries: Entry[], failures: Results['failures'] = []): Results {
  return {
    meta: { date, command: `comet-bench --scenario cluster (${date})`, machine: { cores: 2 }, durationS: 60, loadAverage: { start: '1', end: '2' } },
    targets: [
      { id: 'comet-1', kind: 'comet', threads: 1, label: 'one, relabelled' },
      { id: 'cluster-2', kind: 'cluster', threads: 1, nodes: 2, label: 'two nodes' },
    ],
    entries,
    failures,
  };
}

t.test('mergeResults: rows measured again replace theirs in place, the rest is kept', async (t) => {
  const b = base();
  const before = JSON.stringify(b);
  const f = fresh(
    'now',
    [e('cluster', 'comet-1', 50, { case: 'put-many' }), e('cluster', 'cluster-2', 60, { case: 'put-many' }), e('fanout', 'comet-1', 40, { waiters: 10000 })],
    [{ what: 'cluster put-many cluster-2 run 3/3', message: 'new' }],
  );
  const m = mergeResults(b, f);
  t.equal(JSON.stringify(b), before, 'the base is not changed');
  t.same(
    m.entries.map((x: Entry) => [x.scenario, x.case ?? x.waiters, x.target, x.runs[0].rps, x.merge ?? null]),
    [
      ['throughput', 'put-many', 'comet-1', 1, null],
      ['throughput', 'put-many', 'ceiling', 2, null],
      ['fanout', 1000, 'comet-1', 3, null],
      ['fanout', 10000, 'comet-1', 40, 0],
      ['cluster', 'put-many', 'comet-1', 50, 0],
      ['cluster', 'put-many', 'cluster-2', 60, 0],
    ],
    'same key replaced where it was, new keys added at the end, tagged with their merge',
  );
  t.same(m.meta.date, 'then', "the header stays the base run's");
  t.equal(m.meta.merges.length, 1);
  t.match(m.meta.merges[0], {
    date: 'now',
    command: 'comet-bench --scenario cluster (now)',
    durationS: 60,
    rows: ['cluster put-many comet-1', 'cluster put-many cluster-2', 'fanout W=10000 comet-1'],
  });
  t.same(m.meta.merges[0].machine, { cores: 2 }, 'its machine: a later run may have had another');
  t.same(
    m.failures,
    [
      { what: 'fanout W=1000 ceiling run 1/3', message: 'kept' },
      { what: 'cluster put-many cluster-2 run 3/3', message: 'new', merge: 0 },
    ],
    "a replaced row's old failures go",
  );
  t.same(
    m.targets.map((x) => [x.id, x.label]),
    [
      ['comet-1', 'one, relabelled'],
      ['ceiling', 'raw'],
      ['cluster-2', 'two nodes'],
    ],
  );

  // the same subset once more: its earlier merge has no rows left and goes
  const again = mergeResults(
    m,
    fresh('later', [
      e('cluster', 'comet-1', 51, { case: 'put-many' }),
      e('cluster', 'cluster-2', 61, { case: 'put-many' }),
      e('fanout', 'comet-1', 41, { waiters: 10000 }),
    ]),
  );
  t.same(
    again.meta.merges.map((x: { date: string }) => x.date),
    ['later'],
  );
  t.ok(
    again.entries.filter((x: Entry) => x.merge !== undefined).every((x: Entry) => x.merge === 0),
    'renumbered',
  );
  t.same(again.failures, [{ what: 'fanout W=1000 ceiling run 1/3', message: 'kept' }], "the earlier merge's failure went with its row");

  // a part of it: both merges keep rows
  const part = mergeResults(m, fresh('part', [e('cluster', 'cluster-2', 62, { case: 'put-many' })]));
  t.same(
    part.meta.merges.map((x: { date: string }) => x.date),
    ['now', 'part'],
  );
  t.same(
    part.entries.filter((x: Entry) => x.merge !== undefined).map((x: Entry) => [x.target, x.case ?? x.waiters, x.merge]),
    [
      ['comet-1', 10000, 0],
      ['comet-1', 'put-many', 0],
      ['cluster-2', 'put-many', 1],
    ],
  );
  t.equal(entryKey({ scenario: 'a', target: 'b', runs: [] }), entryKey({ scenario: 'a', target: 'b', runs: [{ rps: 1 }] }), 'runs are not part of the key');
  t.not(
    entryKey({ scenario: 'scaling', case: 'fanout', threads: 1, target: 'comet-1', runs: [] }),
    entryKey({ scenario: 'scaling', case: 'fanout', threads: 2, target: 'comet-1', runs: [] }),
  );
});

t.test('the report: rows from different runs say so in their ratios, merges are listed', async (t) => {
  const m = mergeResults(base(), fresh('now', [e('throughput', 'comet-1', 10, { case: 'put-many' })]));
  const md: string = renderReport(m);
  t.match(md, /^\| put-many \| one, relabelled \| 1 \| 10 \|.*\| 5\.00x ceiling rps \(different runs\) \|/m);
  t.match(
    md,
    /^- Merged in later \(`--merge`\), replacing the rows it measured again: `comet-bench --scenario cluster \(now\)`, now, took 1 min 0 s, load average 1 at start and 2 at end; 1 row \(throughput\)\. A machine of the same description can be faster or slower on another day: compare these rows with each other, not with the rows of other runs$/m,
  );
  const f = fresh('now', [e('throughput', 'comet-1', 10, { case: 'put-many' })]);
  f.meta.settings = { runs: 3, clusterWaiters: [100, 200] };
  t.match(
    renderReport(mergeResults(base(), f)),
    /; 1 row \(throughput\); its settings where they differ from those above: clusterWaiters 100, 200\. A machine/,
    'the settings it ran with that the header does not show',
  );
  const same: string = renderReport(base());
  t.match(same, /^\| put-many \| one \| 1 \|.*\| 0\.50x ceiling rps \|/m, 'rows of one run: no remark');
});

// ------------------------------------------------------------------ the Cluster mode section

function clusterResults(): Results {
  const run = (rps: number, cpu: number, redis?: number) => ({
    rps,
    p50Ms: 0.4,
    p99Ms: 2,
    serverCpuUs: cpu,
    ...(redis === undefined ? {} : { redisCpuUs: redis }),
    serverCores: 0.99,
    loadCores: 0.5,
    errors: 0,
    non2xx: 0,
    bound: 'server' as const,
  });
  const fan = (p99: number, cpu: number, redis?: number) => ({
    p50Ms: p99 / 2,
    p99Ms: p99,
    maxMs: p99 + 1,
    serverCpuUs: cpu,
    ...(redis === undefined ? {} : { redisCpuUs: redis }),
    putMs: 1,
    delivered: 2000,
    expected: 2000,
    bound: 'load' as const,
  });
  return {
    meta: { command: 'x', settings: {} },
    targets: [
      { id: 'comet-1', kind: 'comet', threads: 1, label: 'comet-server --threads 1' },
      { id: 'redis-1', kind: 'redis', threads: 1, nodes: 1, label: 'comet-server --threads 1 --redis (one node + Redis)' },
      { id: 'cluster-2', kind: 'cluster', threads: 1, nodes: 2, label: '2 × comet-server --threads 1 --redis (2 nodes + Redis)' },
    ],
    entries: [
      { scenario: 'cluster', case: 'put-many', target: 'comet-1', runs: [run(100000, 9), run(110000, 10), run(90000, 8)] },
      { scenario: 'cluster', case: 'put-many', target: 'redis-1', runs: [run(40000, 25, 10), run(41000, 24, 11), run(39000, 26, 9)] },
      { scenario: 'cluster', case: 'put-many', target: 'cluster-2', runs: [run(30000, 30, 11)] },
      { scenario: 'cluster', case: 'fanout', waiters: 1000, target: 'comet-1', runs: [fan(20, 10)] },
      { scenario: 'cluster', case: 'fanout', waiters: 1000, target: 'redis-1', runs: [fan(25, 11, 0.5)] },
      { scenario: 'cluster', case: 'fanout', waiters: 1000, target: 'cluster-2', runs: [] },
    ],
    failures: [{ what: 'cluster fanout W=1000 cluster-2 run 1/1', message: 'boom' }],
  };
}

t.test("the Cluster mode section: CPU with Redis, Redis's share, ratios to the in-memory node", async (t) => {
  const md: string = renderReport(clusterResults());
  t.match(md, /^## Cluster mode$/m);
  t.match(md, /^### put-many$/m);
  t.match(
    md,
    /^\| target \| runs \| requests\/s \| p50 \(ms\) \| p99 \(ms\) \| server CPU per request, Redis included \(µs\) \| of which Redis \(µs\) \| server cores \| load generator cores \| errors \| non-2xx \| vs in memory, one node \| saturated \|$/m,
  );
  t.match(
    md,
    /^\| comet-server --threads 1 \| 3 \| 100,000 \(90,000–110,000\) \|[^\n]*\| 9\.00 \(8\.00–10\.00\) \| — \|[^\n]*\| — \| server \|$/m,
    'the in-memory row: no Redis, no ratio',
  );
  t.match(
    md,
    /^\| comet-server --threads 1 --redis \(one node \+ Redis\) \| 3 \| 40,000 \(39,000–41,000\) \|[^\n]*\| 25\.00 \(24\.00–26\.00\) \| 10\.00 \(9\.00–11\.00\) \|[^\n]*\| 0\.40x comet-1 rps, 2\.78x comet-1 CPU\/req \| server \|$/m,
  );
  t.match(md, /^\| 2 × comet-server[^\n]*\| 1 \| 30,000 \|[^\n]*\| 30\.00 \| 11\.00 \|[^\n]*\| 0\.30x comet-1 rps, 3\.33x comet-1 CPU\/req \| server \|$/m);
  t.match(md, /^### fan-out$/m);
  t.match(
    md,
    /^\| 1,000 \| comet-server --threads 1 --redis \(one node \+ Redis\) \| 1 \| 12\.5 \| 25\.0 \| 26\.0 \| 11\.00 \| 0\.50 \| 1\.00 \| 2,000 \| 2,000 \| 1\.25x comet-1 p50, 1\.25x comet-1 p99, 1\.10x comet-1 CPU\/delivery \|$/m,
  );
  t.match(md, /^\| 1,000 \| 2 × comet-server[^\n]*\| 0 \| failed \| failed \|/m, 'a failed row reads failed');
  t.match(md, /!\[Cluster mode: server CPU per put and per delivery, Redis included\]\(bench\/charts\/cluster\.svg\)/);
  t.match(md, /^ {2}- `cluster-2`: 2 × comet-server --threads 1 --redis \(2 nodes \+ Redis\)$/m);
  t.notMatch(md, /^## Request throughput$/m, 'no throughput section without throughput rows');
});
