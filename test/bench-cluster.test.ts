/**
 * The harness's cluster-mode targets for real: comet-bench (bench/cli.js) as
 * a child process starting two comet-server nodes on a redis-server of its
 * own, through put-many and fan-out at tiny sizes; and the cluster scenario
 * merged into a kept results file and rendered. Asserts on the results JSON
 * (the rows, Redis's CPU counted), and that no redis-server or node process
 * of the command outlives it; and bench/experiments/redis-clients.js, the client
 * comparison, at a tiny size. Skipped without redis-server (failed under CI).
 * Everything it writes goes to a tap testdir. The pure parts are in
 * test/unit/bench-cluster.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { TINY, bench, describe, diag, outliving, runNode, stillRunning, wrkAvailable, type Entry, type Ran, type Results } from './helpers/bench.js';
import { ROOT } from './helpers/server.js';
import { redisAvailable } from './helpers/redis.js';

t.setTimeout(180_000);

/** The target's processes the command started: its redis-server and its nodes. */
async function checkNothingLeft(t: Test, r: Ran, nodes: number): Promise<void> {
  const targets = [...r.seen].filter(([, cmd]) => /redis-server|dist\/cli\/main\.js/.test(cmd));
  t.ok(
    targets.some(([, cmd]) => /redis-server/.test(cmd)),
    'a redis-server was started',
    { seen: [...r.seen.values()] },
  );
  t.ok(targets.filter(([, cmd]) => /dist\/cli\/main\.js .*--redis redis:\/\/127\.0\.0\.1:\d+/.test(cmd)).length >= nodes, `${nodes} nodes on it were started`);
  t.notOk(
    targets.some(([, cmd]) => /:6379\b/.test(cmd)),
    'never the system Redis on 6379',
  );
  const alive = () => stillRunning(targets).map(([p, cmd]) => `${p} ${cmd}`);
  t.same(await outliving(alive), [], 'no redis-server or node process outlives the command');
}

function checkRow(t: Test, e: Entry | undefined, what: string, redis: boolean): void {
  t.ok(e, `${what}: a row`);
  if (!e) return;
  t.equal(e.runs.length, 1, `${what}: one run`);
  const run = e.runs[0] ?? {};
  t.ok((run.serverCpuUs as number) > 0, `${what}: server CPU per operation (${run.serverCpuUs})`);
  if (redis) {
    t.ok((run.redisCpuUs as number) > 0, `${what}: Redis's CPU counted (${run.redisCpuUs} µs per operation)`);
    t.ok((run.redisCpuUs as number) < (run.serverCpuUs as number), `${what}: Redis's share is part of the target's CPU`);
    t.ok((run.redisCores as number) > 0, `${what}: Redis's cores`);
  } else {
    t.notOk('redisCpuUs' in run, `${what}: no Redis share for a target without Redis`);
  }
  if (e.case === 'put-many') {
    t.ok((run.requests as number) > 0 && (run.rps as number) > 0, `${what}: requests answered`);
    t.equal(run.non2xx, 0, `${what}: every answer 2xx`);
    t.equal(run.errors, 0, `${what}: no errors`);
  } else {
    t.equal(run.delivered, e.waiters! * (run.rounds as number), `${what}: every waiter on every node got every round (${run.delivered})`);
    t.ok((run.p99Ms as number) >= (run.p50Ms as number) && (run.p50Ms as number) > 0, `${what}: latencies`);
  }
}

t.test('cluster-2 through put-many and fan-out', { timeout: 90_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const json = path.join(t.testdir(), 'results.json');
  const r = await bench(['--target', 'cluster-2', '--scenario', 'throughput,fanout', '--case', 'put-many', '--waiters', '100', ...TINY, '--json', json], {
    timeoutMs: 80_000,
  });
  t.equal(r.code, 0, 'exit code 0', diag(r));
  const results: Results = JSON.parse(fs.readFileSync(json, 'utf8'));
  t.same(results.failures, [], 'no failed runs');
  t.same(results.entries.map(describe).sort(), ['fanout 100 cluster-2', 'throughput put-many cluster-2']);
  t.match(results.targets, [{ id: 'cluster-2', kind: 'cluster', nodes: 2, threads: 1 }]);
  t.match(results.meta.versions, { 'redis-server': /^\d+\.\d+/ }, 'the Redis version is reported');
  for (const e of results.entries) checkRow(t, e, describe(e), true);
  await checkNothingLeft(t, r, 2);
});

t.test('the cluster scenario with wrk, merged into a kept results file and rendered', { timeout: 90_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  if (!wrkAvailable(t)) return;
  // a kept results file with a row of another scenario and an old cluster row
  const kept: Results = {
    meta: { command: 'comet-bench (an earlier run)', date: 'earlier', settings: { runs: 1 } },
    targets: [{ id: 'comet-1', kind: 'comet', threads: 1, label: 'comet-server --threads 1' }],
    entries: [
      { scenario: 'throughput', case: 'sync', target: 'comet-1', runs: [{ rps: 1234, serverCpuUs: 9 }] },
      { scenario: 'cluster', case: 'put-many', target: 'comet-1', runs: [{ rps: 1, serverCpuUs: 1 }] },
    ],
    failures: [],
  };
  const dir = t.testdir({ 'kept.json': JSON.stringify(kept) });
  const merged = path.join(dir, 'kept.json');
  const report = path.join(dir, 'BENCH.md');
  const r = await bench(
    [
      '--generator',
      'wrk',
      '--scenario',
      'cluster',
      '--cluster-targets',
      'comet-1,cluster-2',
      '--cluster-waiters',
      '100',
      ...TINY,
      '--json',
      path.join(dir, 'fresh.json'),
      '--merge',
      merged,
      '--report',
      report,
      '--charts',
      path.join(dir, 'charts'),
    ],
    { timeoutMs: 80_000 },
  );
  t.equal(r.code, 0, 'exit code 0', diag(r));
  const fresh: Results = JSON.parse(fs.readFileSync(path.join(dir, 'fresh.json'), 'utf8'));
  t.same(
    fresh.entries.map(describe),
    ['cluster put-many comet-1', 'cluster put-many cluster-2', 'cluster fanout 100 comet-1', 'cluster fanout 100 cluster-2'],
    'this run: each case on each target',
  );
  const results: Results = JSON.parse(fs.readFileSync(merged, 'utf8'));
  t.same(
    results.entries.map((e) => [describe(e), e.merge ?? null]),
    [
      ['throughput sync comet-1', null],
      ['cluster put-many comet-1', 0],
      ['cluster put-many cluster-2', 0],
      ['cluster fanout 100 comet-1', 0],
      ['cluster fanout 100 cluster-2', 0],
    ],
    'the kept row stays, the old cluster row is replaced, the new rows are added',
  );
  t.equal(results.entries[0].runs[0].rps, 1234, 'the kept row as it was');
  t.ok((results.entries[1].runs[0].rps as number) > 1, "the replaced row has this run's figures");
  t.equal(results.meta.command, 'comet-bench (an earlier run)', "the header stays the kept file's");
  t.match(results.meta.merges, [{ command: /--scenario cluster/, rows: Array }]);
  for (const e of results.entries.filter((x) => x.scenario === 'cluster')) checkRow(t, e, describe(e), e.target !== 'comet-1');
  const md = fs.readFileSync(report, 'utf8');
  t.match(md, /^## Request throughput$/m, "the kept row's section");
  t.match(md, /^## Cluster mode$/m, 'the Cluster mode section');
  t.match(
    md,
    /^\| 2 × comet-server --threads 1 --redis \(2 nodes \+ Redis\) \| 1 \| [\d,]+ \|.*\| \d+\.\d\dx comet-1 rps, \d+\.\d\dx comet-1 CPU\/req \| \w+ \|$/m,
    'put-many of the two nodes against the in-memory node',
  );
  t.match(md, /^- Merged in later \(`--merge`\)/m);
  t.ok(fs.existsSync(path.join(dir, 'charts', 'cluster.svg')), 'the Cluster mode chart');
  await checkNothingLeft(t, r, 2);
});

t.test('bench/experiments/redis-clients.js compares the two clients on a redis-server of its own', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const r = await runNode(path.join(ROOT, 'bench', 'experiments', 'redis-clients.js'), ['--calls', '2000', '--in-flight', '20', '--runs', '1'], {
    timeoutMs: 50_000,
  });
  t.equal(r.code, 0, 'exit code 0', diag(r));
  for (const client of ['ioredis', 'node-redis']) {
    const row = new RegExp(`^\\| ${client} \\| (\\d+\\.\\d+) \\| ([\\d,]+) \\|$`, 'm').exec(r.stdout);
    t.ok(row && Number(row[1]) > 0 && Number(row[2]!.replace(/,/g, '')) > 0, `${client}: CPU per call and calls/s measured`, { stdout: r.stdout });
  }
  t.same(stillRunning([...r.seen].filter(([, cmd]) => /redis-server/.test(cmd))), [], 'its redis-server is gone');
});
