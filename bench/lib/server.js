// Starting and probing a server under test: comet-server (dist/cli/main.js) or
// the raw uWebSockets.js ceiling (bench/targets/raw-uws.js). Loopback only.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const serverMain = path.join(repoRoot, 'dist', 'cli', 'main.js');
export const rawTarget = path.join(repoRoot, 'bench', 'targets', 'raw-uws.js');

// every server started here goes when this process exits (a harness stopped by
// a signal exits through process.exit, which runs these handlers)
const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Starts a server and resolves once it logged {"msg":"listening","port":P}.
 * target 'server': node dist/cli/main.js --port 0 --host 127.0.0.1 --threads N [--max-waiting M] [extra...]
 * target 'raw':    node bench/targets/raw-uws.js --port 0 --host 127.0.0.1
 */
export function startTarget({ target, threads, maxWaiting, extraArgs = [], startTimeoutMs = 30_000 }) {
  let args;
  if (target === 'raw') {
    args = [rawTarget, '--port', '0', '--host', '127.0.0.1'];
  } else {
    if (!fs.existsSync(serverMain)) throw new Error(`${serverMain} does not exist: run npm run build first`);
    args = [serverMain, '--port', '0', '--host', '127.0.0.1', '--threads', String(threads)];
    if (maxWaiting > 0) args.push('--max-waiting', String(maxWaiting));
    args.push(...extraArgs);
  }
  const proc = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const tail = [];
  const remember = (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  let errText = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    errText = (errText + d).slice(-4000);
  });
  const ready = new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        proc.kill('SIGKILL');
        reject(new Error(`no "listening" line within ${startTimeoutMs} ms from ${args.join(' ')}\n${tail.join('\n')}\n${errText}`));
      }
    }, startTimeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        remember(line);
        if (done) continue;
        try {
          const o = JSON.parse(line);
          if (o.msg === 'listening' && typeof o.port === 'number' && o.port > 0) {
            done = true;
            clearTimeout(timer);
            resolve(o.port);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    proc.once('exit', (code, sig) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? sig}) before listening: ${args.join(' ')}\n${tail.join('\n')}\n${errText}`));
      }
    });
  });
  const exited = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
  return {
    proc,
    pid: proc.pid,
    args,
    ready,
    exited,
    logTail: () => tail.join('\n') + (errText ? `\n[stderr] ${errText}` : ''),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resident set size of a process, in bytes, from /proc/PID/status (VmRSS, all threads). */
export function readRss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Summed RSS of pids() once it stops moving: 5 samples 200 ms apart within
 * 256 KiB, at most maxMs (then the last sample). pids is re-read every sample.
 */
export async function steadyRss(pids, maxMs = 15_000) {
  const samples = [];
  const deadline = Date.now() + maxMs;
  for (;;) {
    samples.push(pids().reduce((a, p) => a + readRss(p), 0));
    if (samples.length > 5) samples.shift();
    if (samples.length === 5 && Math.max(...samples) - Math.min(...samples) <= 256 * 1024) return samples.at(-1);
    if (Date.now() > deadline) return samples.at(-1);
    await sleep(200);
  }
}
