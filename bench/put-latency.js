#!/usr/bin/env node
// Does a put's answer wait for the fan-out? Time from sending a put to its
// answer, with W gets waiting on the same channel, against W = 0.
//
//   node bench/put-latency.js [--waiters 0,1000,10000] [--threads 1,2] [--rounds 7] [--out FILE]
//
// Each round: a client process (bench/fanout-waiters.js) opens W long-poll gets
// on a fresh channel; once comet_waiting_gets shows them all, one put is sent
// on a keep-alive connection and timed to its answer; then the round waits
// until all W gets have their answer. Loopback only; every wait is bounded.

import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, fmtFixed, headerLines, loadAverage, markdownTable, mmm, parseArgs, progress, sleep, withTimeout } from './lib/common.js';
import { repoRoot, startTarget, waitingGets } from './lib/server.js';

const usage = 'node bench/put-latency.js [--waiters 0,1000,10000] [--threads 1,2] [--rounds 7] [--out FILE]';
const opts = parseArgs(process.argv.slice(2), { waiters: [0, 1000, 10000], threads: [1, 2], rounds: 7, out: '' }, usage);
const loadAtStart = loadAverage();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function timedPut(port, channel) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path: `/?method=put&channel=${channel}&message=m`, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - started));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('put timed out')));
    req.on('error', reject);
  });
}

async function round(port, waiters, channel) {
  let client;
  let answered = Promise.resolve();
  if (waiters > 0) {
    client = spawn(process.execPath, [path.join(repoRoot, 'bench', 'fanout-waiters.js'), String(port), String(waiters), channel], { stdio: 'ignore' });
    answered = new Promise((resolve, reject) => client.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`waiters exited ${code}`)))));
    const deadline = Date.now() + 30_000;
    while ((await waitingGets(port)) < waiters) {
      if (Date.now() > deadline) throw new Error(`only ${await waitingGets(port)} of ${waiters} gets waiting after 30 s`);
      await sleep(100);
    }
  }
  const putMs = await timedPut(port, channel);
  const started = performance.now();
  await withTimeout(answered, 30_000, 'fan-out answers');
  return { putMs, fanOutMs: waiters > 0 ? performance.now() - started + putMs : NaN };
}

const rows = [];
let n = 0;
for (const threads of opts.threads) {
  for (const waiters of opts.waiters) {
    const server = startTarget({ target: 'server', threads, maxWaiting: 100_000, extraArgs: ['--poll-timeout', '60'] });
    const port = await server.ready;
    const puts = [];
    const fanOuts = [];
    try {
      await timedPut(port, 'warm-up');
      for (let r = 0; r < opts.rounds; r++) {
        progress(`threads ${threads}, ${waiters} waiters: round ${r + 1}/${opts.rounds}`);
        const result = await round(port, waiters, `fan-${threads}-${waiters}-${n++}`);
        puts.push(result.putMs);
        fanOuts.push(result.fanOutMs);
      }
    } finally {
      await server.stop();
    }
    rows.push([threads, waiters.toLocaleString('en-US'), mmm(puts, fmtFixed(2)), waiters > 0 ? mmm(fanOuts, fmtFixed(1)) : 'n/a']);
  }
}
agent.destroy();

emit(
  [
    ...headerLines('Put latency while fanning out', loadAtStart),
    `- Cells: median (min–max) over ${opts.rounds} rounds, one server per row; the put is timed on a warm keep-alive connection.`,
    '- "all answered" runs from sending the put until the waiter process has every answer (it shares the two cores).',
    '',
    markdownTable(['threads', 'waiting gets on the channel', 'put answered (ms)', 'all waiters answered (ms)'], rows),
  ].join('\n'),
  opts.out,
);
