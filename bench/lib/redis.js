// A redis-server of the harness's own for the cluster-mode targets (redis-N,
// cluster-N in ../harness/targets.js): on a free loopback port (never 6379,
// where the machine's own Redis may run), nothing persisted (`--save ""
// --appendonly no`), in a fresh directory, started and killed per run like
// every other target. Loopback only.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './common.js';

/** The redis-server binary on PATH or in /usr/bin, or null. */
export function findRedisServer() {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    const file = path.join(dir, 'redis-server');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** "7.0.15", or 'not installed'. */
export function redisVersion() {
  const bin = findRedisServer();
  if (!bin) return 'not installed';
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return /v=(\S+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

/** Sends one inline command, resolves the first reply line (bounded). */
function inline(port, command, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (err, line) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line);
    };
    const timer = setTimeout(() => done(new Error(`no answer to ${command} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (c) => {
      buf += c.toString('latin1');
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.slice(0, eol);
      if (!line.startsWith('$')) return done(null, line);
      const len = Number(line.slice(1));
      if (buf.length >= eol + 2 + len) done(null, buf.slice(eol + 2, eol + 2 + len));
    });
    sock.on('error', (err) => done(err));
  });
}

// every redis-server started here goes when this process exits, whatever happened
const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Starts redis-server on 127.0.0.1 and a free port; resolves once it (our
 * process, by its pid) answers PING:
 * {port, url, pid, proc, stop(), kill(), logTail()}. A port taken between
 * choosing and binding it is chosen again.
 */
export async function startRedisServer({ startTimeoutMs = 10_000 } = {}) {
  const bin = findRedisServer();
  if (!bin) throw new Error("redis-server is not installed (apt-get install redis-server)");
  let lastError = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      return await startOn(bin, port, startTimeoutMs);
    } catch (err) {
      lastError = err;
      if (!/Address already in use/.test(err.message)) throw err;
    }
  }
  throw lastError;
}

async function startOn(bin, port, startTimeoutMs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comet-bench-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''];
  const proc = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let output = '';
  const keep = (d) => (output = (output + d).slice(-4000));
  proc.stdout.setEncoding('utf8').on('data', keep);
  proc.stderr.setEncoding('utf8').on('data', keep);
  const exited = new Promise((r) =>
    proc.once('exit', (code, sig) => {
      live.delete(proc);
      fs.rmSync(dir, { recursive: true, force: true });
      r(code ?? sig);
    }),
  );
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    return exited;
  };
  const deadline = Date.now() + startTimeoutMs;
  let last = '';
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await exited;
      throw new Error(`redis-server on port ${port} exited (${proc.exitCode ?? proc.signalCode}) before answering: ${output.slice(-1000)}`);
    }
    try {
      // our own process must answer, not one that took the port first
      const info = await inline(port, 'INFO server');
      if (info.includes(`\r\nprocess_id:${proc.pid}\r\n`) && (await inline(port, 'PING')) === '+PONG') break;
      last = 'another process answers';
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`redis-server on port ${port} did not answer PING within ${startTimeoutMs} ms (${last}): ${output.slice(-1000)}`);
    }
    await sleep(20);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid,
    proc,
    logTail: () => output.slice(-2000),
    kill,
    /** Redis keeps nothing here: there is nothing to shut down gracefully. */
    stop: kill,
  };
}
