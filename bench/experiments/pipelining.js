#!/usr/bin/env node
// What --pipelining ordered costs: it stops reading a connection while an
// answer is owed (res.pause(), then res.resume() before the answer: about 3
// system calls), which with 2 threads is every put to a channel of the other
// thread. The harness's put-many case measures the same server started with
// --pipelining close and with ordered, in turns, each pinned to the core the
// harness gives its own targets.
//
//   npm run build && node bench/experiments/pipelining.js [--rounds 2] [--runs 3] [--duration 3] [--threads 2]
//
// Needs wrk and taskset, as `npm run bench` does.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmtFixed, freePort, markdownTable, median, mmm, parseArgs, progress } from '../lib/common.js';
import { assertBuilt, repoRoot, ServerProcess, serverMain } from '../lib/server.js';

const USAGE = 'node bench/experiments/pipelining.js [--rounds 2] [--runs 3] [--duration 3] [--threads 2]';
const opts = parseArgs(process.argv.slice(2), { rounds: 2, runs: 3, duration: 3, threads: 2 }, USAGE);
const MODES = ['close', 'ordered'];

assertBuilt();
const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'comet-pipelining-')), 'results.json');
/** @type {Record<string, number[]>} */
const cpu = { close: [], ordered: [] };
/** @type {Record<string, number[]>} */
const rate = { close: [], ordered: [] };
for (let round = 1; round <= opts.rounds; round++) {
  for (const mode of MODES) {
    const port = await freePort();
    const server = new ServerProcess([serverMain, '--port', String(port), '--host', '127.0.0.1', '--threads', String(opts.threads), '--pipelining', mode]);
    try {
      await server.waitListening(10_000);
      // The core the harness pins its own targets to (bench/harness/cpu.js).
      spawnSync('taskset', ['-a', '-p', '-c', '0', String(server.pid)], { stdio: 'ignore' });
      progress(`round ${round}: --pipelining ${mode}`);
      const load = ['--generator', 'wrk', '--scenario', 'throughput', '--case', 'put-many', '--runs', String(opts.runs), '--duration', String(opts.duration)];
      const target = ['--target', 'external', '--url', `http://127.0.0.1:${port}/`, '--pid', String(server.pid), '--label', mode, '--json', json];
      const args = ['bench/cli.js', ...load, ...target];
      const run = spawnSync(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
      if (run.status !== 0) throw new Error(`the harness failed (exit ${run.status})`);
      for (const entry of JSON.parse(fs.readFileSync(json, 'utf8')).entries) {
        for (const r of entry.runs) {
          cpu[mode].push(r.serverCpuUs);
          rate[mode].push(r.rps);
        }
      }
    } finally {
      await server.stop();
    }
  }
}
const f1 = fmtFixed(1);
process.stdout.write(
  markdownTable(
    ['--pipelining', 'server µs CPU per put', 'req/s'],
    MODES.map((m) => [m, mmm(cpu[m], f1), mmm(rate[m], (x) => String(Math.round(x)))]),
  ) + `\nordered / close, CPU per put: ${(median(cpu.ordered) / median(cpu.close)).toFixed(2)}\n`,
);
