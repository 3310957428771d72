/**
 * Issue 14, "the memory budget does not bound memory": 60 KB puts to 20,000
 * channels with --max-memory 256 MB kept 255.9 MB charged while RSS peaked at
 * 1.16-1.22 GB (messages were strings on the heap, charged per character).
 * Messages are now bytes off the heap, charged as allocated, in blocks of
 * slabs that each thread allocates once (a quarter over its share of the
 * budget), the block of an evicted channel serving the next one: RSS, once
 * settled, must be within the idle process's RSS plus 1.5x the budget.
 *
 * Scaled down (128 MB, 8,000 channels: 3.6x the budget offered), with young
 * generations capped at 1 MB: they grow to 16 MB semi-spaces per thread
 * under any load, heap slack whatever the budget. Measured here under tap
 * (2 threads; bound idle + 192 MB), slabs: RSS idle + 296-314 MB at the
 * flood's peak (its requests' garbage, not yet collected), idle + 157-176 MB
 * settled within 6-7 s; a Buffer per channel given to a pool: + 349-377 MB,
 * then + 167-170 MB after 10-18 s; messages on the heap: idle + 814 MB
 * throughout. At the issue's own scale (256 MB, 20,000 channels, default heap
 * settings, outside tap; bound + 384 MB): peak idle + 300 MB and settled
 * + 289 MB with slabs, + 317 and + 305 MB with the pool, against + 959 MB
 * and + 440 MB with messages on the heap.
 */
import fs from 'node:fs';
import t from 'tap';
import { uniq } from './helpers/protocol.js';
import { type CometServer, makeAgent, sleep, startServer } from './helpers/server.js';

const MiB = 1024 * 1024;
const BUDGET = 128 * MiB;
const CHANNELS = 8000;
const MESSAGE = 'x'.repeat(60_000);
const CONCURRENCY = 16;
const SETTLE_S = 20;

function rssOf(srv: CometServer): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))![1]) * 1024;
}

const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MB`;

t.test(`${CHANNELS} puts of 60 KB to new channels with --max-memory ${mb(BUDGET)}: RSS stays within idle + 1.5x the budget`, async (t) => {
  // Without V8 coverage, which tap turns on for the servers of every other test: its counters and the
  // code it keeps unoptimised measure the instrumentation (idle RSS +45 MB, the flood's peak +60 MB).
  const env = { NODE_OPTIONS: '--max-semi-space-size=1', NODE_V8_COVERAGE: undefined, _TAPJS_PROCESSINFO_COVERAGE_: '0' };
  const srv = await startServer({ t, threads: 2, args: ['--max-memory', String(BUDGET)], env });
  const agent = makeAgent();
  t.teardown(() => agent.destroy());
  const prefix = uniq('rss');
  for (let i = 0; i < 20; i++) await srv.put(`${prefix}-warm-${i}`, 'hello');
  const idle = rssOf(srv);
  const bound = idle + 1.5 * BUDGET;

  let peak = idle;
  let next = 0;
  const failed: number[] = [];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CHANNELS) {
        const i = next++;
        const res = await srv.post({ method: 'put', channel: `${prefix}-${i}`, message: MESSAGE }, { agent, timeoutMs: 20_000 });
        if (res.status !== 200) failed.push(res.status);
        if (i % 50 === 0) peak = Math.max(peak, rssOf(srv));
      }
    }),
  );
  t.same(failed, [], 'every put was stored');
  // Settled: V8 frees the flood's garbage (its requests' strings and buffers) some seconds after
  // the load stops (its memory reducer: 7-8 s here); RSS is read each second until within the
  // bound, for at most SETTLE_S seconds. Without the change it stayed at idle + 814 MB throughout.
  const series: number[] = [];
  while (series.length < SETTLE_S && !(series.length > 0 && series.at(-1)! <= bound)) {
    await sleep(1000);
    series.push(rssOf(srv));
  }
  const settled = series.at(-1)!;
  t.comment(`RSS idle ${mb(idle)}, peak during the flood ${mb(peak)}, then ${series.map(mb).join(', ')}; bound ${mb(bound)}`);
  t.ok(settled <= bound, `RSS once settled (${mb(settled)}) within idle + 1.5x the budget (${mb(bound)})`);

  const m = await srv.metrics();
  t.ok(m.value('comet_stored_bytes') <= BUDGET, 'what is charged stays within the budget');
  const newest = await srv.get(`${prefix}-${CHANNELS - 1}`, { time: 0, timeout: 0 });
  t.equal(newest.messages[0], MESSAGE, 'the newest channel holds its message whole');
  const oldest = await srv.get(`${prefix}-0`, { time: 0, timeout: 0 });
  t.same([oldest.messages, oldest.missed], [[], true], 'the oldest lost it, reported missed');
});
