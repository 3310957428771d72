#!/usr/bin/env node
// What a put costs when it lands on a thread that does not own its channel
// (issue 14, "cross-thread puts"): the put crosses the MessagePort mesh to its
// owner and the answer comes back. A client cannot choose the thread its
// connection lands on (SO_REUSEPORT picks), so each run sends puts over one
// keep-alive connection to 1,000 channels all owned by one thread
// (threads/router.ts ownerOf), and the server's per-thread CPU tells which
// case the run was: one worker busy, the other idle, is all local; both busy
// is all forwarded. Every round starts a fresh --threads 2 server pinned to
// one core and runs each owner's channel set, in alternating order.
//
//   npm run build && node bench/experiments/forwarded-puts.js [--rounds 6] [--duration 4]
//
// Needs wrk and taskset, as `npm run bench` does.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashChannel } from '../../dist/engine/channel-hash.js';
import { fmtFixed, freePort, markdownTable, median, mmm, parseArgs, progress } from '../lib/common.js';
import { assertBuilt, ServerProcess, serverMain } from '../lib/server.js';

const USAGE = 'node bench/experiments/forwarded-puts.js [--rounds 6] [--duration 4]';
const opts = parseArgs(process.argv.slice(2), { rounds: 6, duration: 4 }, USAGE);
const CHANNELS = 1000;
/** A run is all local when the second-busiest thread used less than this share of the busiest one's CPU. */
const IDLE_SHARE = 0.15;

assertBuilt();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comet-forwarded-'));

/** 1,000 channel names owned by `thread` of 2, and a wrk script putting to them in turn. */
function scriptFor(thread) {
  const names = [];
  for (let i = 0; names.length < CHANNELS; i++) if (hashChannel(`fw-${i}`) % 2 === thread) names.push(`fw-${i}`);
  const file = path.join(dir, `owner-${thread}.lua`);
  fs.writeFileSync(
    file,
    `local names = {${names.map((n) => `"${n}"`).join(',')}}\nlocal i = 0\n` +
      `request = function()\n  i = i % #names + 1\n  return wrk.format("GET", "/?method=put&message=abcdefghijklmnopqrstuvwxyz012345&channel=" .. names[i])\nend\n`,
  );
  return file;
}

/** CPU used so far by each thread of a process, in microseconds, by thread id. */
function threadCpuUs(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const text = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    out.set(tid, ((Number(f[11]) + Number(f[12])) * 1e6) / 100);
  }
  return out;
}

function wrk(url, script, seconds) {
  const run = spawnSync('taskset', ['-c', '1', 'wrk', '-t1', '-c1', `-d${seconds}s`, '-s', script, url], { encoding: 'utf8' });
  const requests = Number(/(\d+) requests in/.exec(run.stdout ?? '')?.[1]);
  if (run.status !== 0 || !(requests > 0)) throw new Error(`wrk failed: ${run.stderr || run.stdout}`);
  return requests;
}

const scripts = [scriptFor(0), scriptFor(1)];
/** @type {{ local: number[], forwarded: number[] }} */
const cpu = { local: [], forwarded: [] };
for (let round = 1; round <= opts.rounds; round++) {
  const port = await freePort();
  const server = new ServerProcess([serverMain, '--port', String(port), '--host', '127.0.0.1', '--threads', '2']);
  try {
    await server.waitListening(10_000);
    spawnSync('taskset', ['-a', '-p', '-c', '0', String(server.pid)], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}/`;
    for (const owner of round % 2 === 0 ? [0, 1] : [1, 0]) {
      wrk(url, scripts[owner], 1);
      const before = threadCpuUs(server.pid);
      const requests = wrk(url, scripts[owner], opts.duration);
      const after = threadCpuUs(server.pid);
      const used = [...after].map(([tid, us]) => us - (before.get(tid) ?? 0)).sort((a, b) => b - a);
      const total = used.reduce((a, b) => a + b, 0);
      const kind = used[1] < used[0] * IDLE_SHARE ? 'local' : 'forwarded';
      cpu[kind].push(total / requests);
      progress(`round ${round}, channels of thread ${owner}: ${kind}, ${(total / requests).toFixed(1)} µs CPU per put, ${requests} puts`);
    }
  } finally {
    await server.stop();
  }
}
const f1 = fmtFixed(1);
process.stdout.write(
  markdownTable(
    ['put', 'runs', 'server µs CPU per put'],
    ['local', 'forwarded'].map((k) => [k, String(cpu[k].length), cpu[k].length > 0 ? mmm(cpu[k], f1) : '—']),
  ) +
    (cpu.local.length > 0 && cpu.forwarded.length > 0
      ? `\nforwarded / local, CPU per put: ${(median(cpu.forwarded) / median(cpu.local)).toFixed(2)}\n`
      : '\nevery run was of one kind: run more rounds\n'),
);
