#!/usr/bin/env node
// The slow-reader attack of issue 13: connections that pipeline gets of a
// large answer in one write and never read. Before answers were written at
// the client's pace (src/protocol/slow-readers.ts), 100 connections x 200
// gets of a 1 MB answer took a 2-thread server from 122 MB to 3.6 GB of RSS
// and /healthz timed out.
//
//   npm run build && node bench/experiments/slow-readers.js [--connections 100] [--pipelined 200] [--seconds 5] [--threads 2]
//
// Prints the server's RSS before and at its peak while the attackers hold
// their connections open, and the slowest /healthz answer meanwhile.

import fs from 'node:fs';
import net from 'node:net';
import { freePort, parseArgs, progress, sleep } from '../lib/common.js';
import { assertBuilt, ServerProcess, serverMain } from '../lib/server.js';

const USAGE = 'node bench/experiments/slow-readers.js [--connections 100] [--pipelined 200] [--seconds 5] [--threads 2]';
const opts = parseArgs(process.argv.slice(2), { connections: 100, pipelined: 200, seconds: 5, threads: 2 }, USAGE);
/** 17 messages of 60,000 characters: a time=0 get answers about 1 MB. */
const MESSAGE = 'x'.repeat(60_000);
const MESSAGES = 17;

const rssMiB = (pid) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024);

assertBuilt();
const port = await freePort();
const server = new ServerProcess([serverMain, '--port', String(port), '--host', '127.0.0.1', '--threads', String(opts.threads)]);
try {
  await server.waitListening(10_000);
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < MESSAGES; i++) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `method=put&channel=full&message=${MESSAGE}`,
    });
    if (res.status !== 200) throw new Error(`put answered ${res.status}`);
  }
  const before = rssMiB(server.pid);
  const requests = 'GET /?method=get&channel=full&time=0 HTTP/1.1\r\nHost: attack\r\n\r\n'.repeat(opts.pipelined);
  progress(
    `${opts.connections} connections, each pipelining ${opts.pipelined} gets of a ${Math.round((MESSAGE.length * MESSAGES) / 1e6)} MB answer, never reading`,
  );
  const sockets = [];
  for (let i = 0; i < opts.connections; i++) {
    sockets.push(
      await new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.pause();
          socket.write(requests);
          resolve(socket);
        });
        socket.on('error', () => {});
      }),
    );
  }
  let peak = before;
  let slowestHealth = 0;
  const end = Date.now() + opts.seconds * 1000;
  while (Date.now() < end) {
    const started = Date.now();
    const health = await fetch(`${url}healthz`, { signal: AbortSignal.timeout(5000) });
    if (health.status !== 200) throw new Error(`/healthz answered ${health.status}`);
    slowestHealth = Math.max(slowestHealth, Date.now() - started);
    peak = Math.max(peak, rssMiB(server.pid));
    await sleep(100);
  }
  for (const socket of sockets) socket.destroy();
  process.stdout.write(
    `RSS before: ${before} MiB; peak during ${opts.seconds} s of attack: ${peak} MiB; slowest /healthz: ${slowestHealth} ms (${opts.threads} threads)\n`,
  );
} finally {
  await server.stop();
}
