#!/usr/bin/env node
// Which Redis client should cluster mode use? Both maintained Node.js clients
// run the server's own append script (src/engine/redis/scripts.ts) against a
// redis-server of this command's own, with as many calls in flight as a busy
// node has, and the client's CPU per call is what is compared: it is spent on
// the node's event loop, beside the HTTP work.
//
//   npm run build && node bench/experiments/redis-clients.js [--calls 100000] [--in-flight 200] [--runs 3]
//
// Runs interleave the clients; figures are the median (min-max). The calling
// process runs on one core and redis-server on another, where there are two.

import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { APPEND } from '../../dist/engine/redis/scripts.js';
import { coreCount, fmtFixed, fmtInt, markdownTable, mmm, parseArgs, progress } from '../lib/common.js';
import { startRedisServer } from '../lib/redis.js';

const USAGE = 'node bench/experiments/redis-clients.js [--calls 100000] [--in-flight 200] [--runs 3]';
const opts = parseArgs(process.argv.slice(2), { calls: 100_000, inFlight: 200, runs: 3 }, USAGE);
const ARGS = (i) => {
  const tag = `{c${i % 1000}}`;
  return [`bench:${tag}:s`, `bench:${tag}:m`, `bench:${tag}:n`, '"hello world"', '1000', '16777216', '300000', 'PUBLISH'];
};

/** `opts.calls` calls of `call(i)` with `opts.inFlight` outstanding; the process's CPU and the wall time they took. */
async function measure(call) {
  let next = 0;
  const lane = async () => {
    while (next < opts.calls) await call(next++);
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: opts.inFlight }, lane));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { cpuUsPerCall: (cpu.user + cpu.system) / opts.calls, callsPerS: (opts.calls / ms) * 1000 };
}

const redis = await startRedisServer();
try {
  if (coreCount() >= 2) {
    spawnSync('taskset', ['-a', '-pc', '1', String(redis.pid)]);
    spawnSync('taskset', ['-a', '-pc', '0', String(process.pid)]);
  }
  const ioredis = new Redis(redis.url);
  ioredis.defineCommand('cometAppend', { numberOfKeys: 3, lua: APPEND });
  const nodeRedis = createClient({ url: redis.url });
  await nodeRedis.connect();
  const sha = await nodeRedis.scriptLoad(APPEND);
  const clients = {
    ioredis: (i) => ioredis.cometAppend(...ARGS(i)),
    'node-redis': (i) => nodeRedis.sendCommand(['EVALSHA', sha, '3', ...ARGS(i)]),
  };
  const results = Object.fromEntries(Object.keys(clients).map((name) => [name, []]));
  for (const call of Object.values(clients)) await measure(call); // warm-up: JIT and script cache
  for (let run = 1; run <= opts.runs; run++) {
    for (const [name, call] of Object.entries(clients)) {
      const r = await measure(call);
      results[name].push(r);
      progress(`run ${run}/${opts.runs} ${name}: ${r.cpuUsPerCall.toFixed(2)} µs CPU per call, ${fmtInt(r.callsPerS)} calls/s`);
    }
  }
  ioredis.disconnect();
  await nodeRedis.quit();
  const rows = Object.entries(results).map(([name, rs]) => [
    name,
    mmm(
      rs.map((r) => r.cpuUsPerCall),
      fmtFixed(2),
    ),
    mmm(
      rs.map((r) => r.callsPerS),
      fmtInt,
    ),
  ]);
  process.stdout.write(
    `Append script, ${fmtInt(opts.calls)} calls, ${opts.inFlight} in flight, ${opts.runs} runs (median, min-max):\n\n` +
      markdownTable(['client', 'client CPU per call (µs)', 'calls/s'], rows) +
      '\n',
  );
} finally {
  await redis.destroy();
}
