#!/usr/bin/env node
// Whether a put can cost a uWebSockets.js server less CPU than it costs Nchan
// (issue 14's goal). Measures, side by side in one harness run, the server CPU
// per put of: the least any uWebSockets.js server can do (empty-uws.js: one
// fixed answer, the query never read), the harness's bare ceiling
// (bench/targets/raw-uws.js), comet-server with one thread, and nginx + Nchan
// with one worker. Whatever a server does on top of empty-uws.js, it cannot go
// below it: when Nchan's CPU per put is below the empty handler's, no server on
// this stack can beat Nchan's.
//
//   npm run build && node bench/experiments/put-floor.js [--runs 3] [--duration 5]
//
// Needs wrk, taskset and nginx with Nchan, as `npm run bench` does.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmtFixed, freePort, markdownTable, median, mmm, parseArgs } from '../lib/common.js';
import { assertBuilt, repoRoot, ServerProcess } from '../lib/server.js';

const USAGE = 'node bench/experiments/put-floor.js [--runs 3] [--duration 5]';
const opts = parseArgs(process.argv.slice(2), { runs: 3, duration: 5 }, USAGE);
const EMPTY = 'empty uWS handler';

assertBuilt();
const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'comet-put-floor-')), 'results.json');
const port = await freePort();
const empty = new ServerProcess([path.join(repoRoot, 'bench', 'experiments', 'empty-uws.js'), '--port', String(port)]);
try {
  await empty.waitListening(10_000);
  const args = [
    'bench/cli.js',
    ...['--generator', 'wrk', '--scenario', 'throughput', '--case', 'put-one,put-many'],
    ...['--runs', String(opts.runs), '--duration', String(opts.duration)],
    ...['--target', 'external,ceiling,comet-1,nchan-1', '--url', `http://127.0.0.1:${port}/`, '--pid', String(empty.pid), '--label', EMPTY],
    ...['--json', json],
  ];
  const run = spawnSync(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  if (run.status !== 0) throw new Error(`the harness failed (exit ${run.status})`);
} finally {
  await empty.stop();
}

const entries = JSON.parse(fs.readFileSync(json, 'utf8')).entries;
const f2 = fmtFixed(2);
const rows = [];
let out = '';
for (const kind of ['put-one', 'put-many']) {
  const cpu = new Map(entries.filter((e) => e.case === kind).map((e) => [e.target === 'external' ? EMPTY : e.target, e.runs.map((r) => r.serverCpuUs)]));
  const floor = median(cpu.get(EMPTY));
  for (const [target, runs] of cpu) rows.push([kind, target, mmm(runs, f2), (median(runs) / floor).toFixed(2)]);
  const nchan = cpu.get('nchan-1');
  if (nchan) out += `${kind}: Nchan's CPU per put is ${(median(nchan) / floor).toFixed(2)}x the empty uWebSockets.js handler's\n`;
}
process.stdout.write(`${markdownTable(['case', 'target', 'server µs CPU per put', '× empty handler'], rows)}\n${out}`);
