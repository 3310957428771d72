/**
 * The benchmark harness's streams scenario (comet-bench --scenario streams)
 * as a user runs it: the real command as a child process over real sockets,
 * tiny settings, against comet-server (and Nchan where it is installed), so
 * that a scenario broken on either side (the subscriber clients, the
 * server's streams, the report) fails here rather than in a release
 * measurement. Everything it writes goes to a tap testdir. Its parts are
 * unit-tested in test/unit/bench-harness.test.ts and
 * test/unit/bench-report.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { findNchanModule, findNginx } from '../bench/targets/nchan/start.js';
import { TINY, bench, describe, diag, outliving, processesMatching, stillRunning, type Results } from './helpers/bench.js';

t.setTimeout(150_000);

t.test('streams: SSE and WebSocket fan-out and idle beside the long-poll path', { timeout: 140_000 }, async (t) => {
  // Nchan's EventSource and WebSocket subscribers where nginx is installed (CI installs it)
  const nchan = !!(findNginx() && findNchanModule());
  const targets = nchan ? ['comet-1', 'nchan-1'] : ['comet-1'];
  const dir = t.testdir();
  const json = path.join(dir, 'results.json');
  const report = path.join(dir, 'BENCH.md');
  const charts = path.join(dir, 'charts');
  // 1,000 idle streams: at a few hundred what each adds is within the targets' RSS noise
  const args = ['--scenario', 'streams', '--target', targets.join(','), '--stream-waiters', '100', '--stream-idle', '1000'];
  const r = await bench([...args, ...TINY, '--json', json, '--report', report, '--charts', charts], { timeoutMs: 130_000 });
  t.equal(r.code, 0, 'exit code 0', diag(r));

  const results: Results = JSON.parse(fs.readFileSync(json, 'utf8'));
  t.same(results.failures, [], 'no failed runs');
  const expected = ['stream-fanout sse 100', 'stream-fanout ws 100', 'stream-idle sse 1000', 'stream-idle ws 1000'].flatMap((row) =>
    targets.map((target) => `${row} ${target}`),
  );
  expected.push('stream-fanout longpoll 100 comet-1', 'stream-idle longpoll 1000 comet-1');
  t.same(results.entries.map(describe).sort(), expected.sort(), 'SSE and WebSocket on every target, long-poll on comet-server alone');

  for (const e of results.entries) {
    const what = describe(e);
    t.equal(e.runs.length, 1, `${what}: one run`);
    const run = e.runs[0] ?? {};
    const rounds = e.scenario === 'stream-fanout' ? (run.rounds as number) : 1;
    t.equal(run.delivered, e.waiters! * rounds, `${what}: every subscriber got every message (${run.delivered})`);
    t.equal(run.expected, run.delivered, `${what}: delivered === expected`);
    if (e.scenario === 'stream-fanout') {
      for (const k of ['p50Ms', 'p99Ms', 'maxMs', 'serverCpuUs', 'clientCpuUs', 'serverCores', 'loadCores']) {
        t.ok(typeof run[k] === 'number' && Number.isFinite(run[k]) && (run[k] as number) > 0, `${what}: ${k} finite and positive (${run[k]})`);
      }
      t.ok((run.p99Ms as number) >= (run.p50Ms as number), `${what}: p99 >= p50`);
      if (e.case === 'longpoll') {
        // the gets asked again cost something: a parse, a route and a park each
        t.ok(typeof run.rearmCpuUs === 'number' && (run.rearmCpuUs as number) > 0, `${what}: rearmCpuUs positive (${run.rearmCpuUs})`);
        const sum = (run.serverCpuUs as number) + (run.rearmCpuUs as number);
        t.ok(Math.abs((run.cycleCpuUs as number) - sum) < 1e-9, `${what}: cycleCpuUs ${run.cycleCpuUs} = serverCpuUs + rearmCpuUs (${sum})`);
      } else {
        t.equal(run.rearmCpuUs, undefined, `${what}: nothing to re-arm`);
        t.equal(run.cycleCpuUs, run.serverCpuUs, `${what}: ready again at its delivery`);
      }
    } else {
      // a bytes scale, not a value check: a garbage collection between the readings can outweigh 1,000 streams
      const b = run.bytesPerWaiter as number;
      t.ok(Number.isFinite(b) && Math.abs(b) <= 20_000, `${what}: bytesPerWaiter ${b} on a bytes scale (|b| <= 20 KB)`);
    }
  }

  const md = fs.readFileSync(report, 'utf8');
  for (const s of ['Streaming fan-out', 'Streaming idle capacity']) t.match(md, new RegExp(`^## ${s}$`, 'm'), `report section "${s}"`);
  t.match(md, /\| Streaming fan-out: comet-server server CPU per delivery over SSE and WebSocket [^|]*\| [^|]*long-poll, comet-1/, 'the CPU goal judged');
  t.match(
    md,
    /\| Streams: resident memory per idle open stream ≤ 1 KB[^|]*\| [^|]*\| Not measured: no streams run of comet-server at 10,000/,
    'the memory goal wants 10,000 streams',
  );
  t.notMatch(md, /^## Failures$/m, 'no failures section');
  const svgs = fs.readdirSync(charts).sort();
  t.same(svgs, ['stream-fanout-cpu.svg', 'stream-fanout.svg', 'stream-idle.svg'], 'its charts');
  for (const f of svgs) t.ok(md.includes(`charts/${f}`), `${f} is linked from the report`);

  // the subscriber processes go with the command (a leftover would hold 1,000 sockets open)
  const LOAD = /longpoll-child\.js/;
  const clients = [...r.seen].filter(([, cmd]) => LOAD.test(cmd));
  t.ok(clients.length > 0, 'subscriber processes were seen');
  const alive = () => [...new Set([...stillRunning(clients).map(([p]) => p), ...processesMatching(LOAD)])];
  t.same(await outliving(alive), [], 'no subscriber process outlives the command');
});
