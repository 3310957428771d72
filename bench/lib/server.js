// Starting a server under test as a child process: comet-server
// (dist/cli/main.js) or the raw uWebSockets.js ceiling
// (bench/targets/raw-uws.js), for the harness and for the tests
// (test/helpers/server.ts adds an HTTP client and tap's teardown on top).
// Loopback only.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sleep } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const serverMain = path.join(repoRoot, 'dist', 'cli', 'main.js');
export const rawTarget = path.join(repoRoot, 'bench', 'targets', 'raw-uws.js');

/** @typedef {{ code: number | null, signal: NodeJS.Signals | null }} ExitInfo */
/**
 * @typedef {ExitInfo & { ms: number, killed: boolean }} StopResult
 * ms: from sending the signal to the exit; killed: it ignored the signal and was SIGKILLed
 */

// every server started here goes when this process exits (a harness stopped by
// a signal exits through process.exit, which runs these handlers)
/** @type {Set<import('node:child_process').ChildProcess>} */
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function assertBuilt() {
  if (!fs.existsSync(serverMain)) throw new Error(`${serverMain} does not exist: run \`npm run build\` first`);
}

/**
 * The port of a {"msg":"listening","port":P} log line, or undefined.
 * @param {string} line
 * @returns {number | undefined}
 */
function listeningPort(line) {
  if (!line.startsWith('{')) return undefined;
  try {
    const o = JSON.parse(line);
    return o.msg === 'listening' && typeof o.port === 'number' && o.port > 0 ? o.port : undefined;
  } catch {
    return undefined;
  }
}

/** `node ...args` as a child process whose output is kept and whose listening line is watched for. */
export class ServerProcess {
  /** @type {ExitInfo | undefined} */
  exit = undefined;
  stdout = '';
  stderr = '';

  /**
   * @param {string[]} args node's arguments: the script, then its own
   * @param {{ env?: NodeJS.ProcessEnv, cwd?: string }} [opts] env: default this process's
   */
  constructor(args, { env = process.env, cwd = repoRoot } = {}) {
    this.args = args;
    /** Date.now() * 1000 taken just before spawning: a time older than the server's start. */
    this.spawnedAtMicros = Date.now() * 1000;
    const proc = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.pid = proc.pid;
    live.add(proc);
    /** @type {(port: number) => void} */
    let heard = () => {};
    /** The port of its listening line, once logged; never settles when none is. */
    this.listening = /** @type {Promise<number>} */ (new Promise((resolve) => (heard = resolve)));
    let partial = '';
    proc.stdout.setEncoding('utf8').on('data', (c) => {
      this.stdout += c;
      partial += c;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const port = listeningPort(partial.slice(0, nl).trim());
        partial = partial.slice(nl + 1);
        if (port !== undefined) heard(port);
      }
    });
    proc.stderr.setEncoding('utf8').on('data', (c) => (this.stderr += c));
    /** @type {Promise<ExitInfo>} */
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        live.delete(proc);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    /** Resolves once the process has exited and its output is all read. */
    this.closed = new Promise((resolve) => proc.on('close', () => resolve(undefined)));
  }

  get alive() {
    return this.exit === undefined;
  }

  /** Last characters of the output, for failure messages. */
  logTail(n = 2000) {
    return `--- stdout ---\n${this.stdout.slice(-n)}\n--- stderr ---\n${this.stderr.slice(-n)}`;
  }

  /**
   * Resolves the listening port; rejects when the process exits first, and
   * SIGKILLs it and rejects when the line does not come within timeoutMs.
   * @param {number} timeoutMs
   * @returns {Promise<number>}
   */
  async waitListening(timeoutMs) {
    const timer = delay(timeoutMs, /** @type {const} */ ('timeout'), { ref: false });
    const r = await Promise.race([this.listening, this.exited, timer]);
    if (typeof r === 'number') return r;
    if (r === 'timeout') {
      this.proc.kill('SIGKILL');
      throw new Error(`no {"msg":"listening","port":N} line within ${timeoutMs} ms from node ${this.args.join(' ')}\n${this.logTail()}`);
    }
    throw new Error(`server exited (${JSON.stringify(r)}) before listening: node ${this.args.join(' ')}\n${this.logTail()}`);
  }

  /**
   * Sends a signal and waits (bounded) for the exit; SIGKILLs after the deadline.
   * @param {NodeJS.Signals} [signal]
   * @returns {Promise<StopResult>}
   */
  async stop(signal = 'SIGTERM', timeoutMs = 10000) {
    const started = performance.now();
    if (this.exit) return { ...this.exit, ms: 0, killed: false };
    this.proc.kill(signal);
    // unref'd: a deadline that did not fire must not keep this process alive after the exit
    const r = await Promise.race([this.exited, delay(timeoutMs, undefined, { ref: false })]);
    if (r === undefined) {
      this.proc.kill('SIGKILL');
      const e = await this.exited;
      return { ...e, ms: performance.now() - started, killed: true };
    }
    return { ...r, ms: performance.now() - started, killed: false };
  }

  /**
   * Waits (bounded) for the process to exit by itself.
   * @param {number} timeoutMs
   * @returns {Promise<ExitInfo | undefined>}
   */
  waitExit(timeoutMs) {
    return Promise.race([this.exited, delay(timeoutMs, undefined, { ref: false })]);
  }

  /** SIGKILL if still running, then waits (bounded) for the exit. */
  async kill() {
    if (this.exit) return;
    this.proc.kill('SIGKILL');
    await Promise.race([this.exited, delay(5000, undefined, { ref: false })]);
  }
}

/**
 * Starts a target of the harness; waitListening() says when it serves.
 * target 'server': node dist/cli/main.js --port 0 --host 127.0.0.1 --threads N [--max-waiting M] [extra...]
 * target 'raw':    node bench/targets/raw-uws.js --port 0 --host 127.0.0.1
 * The child inherits this process's environment (or gets env): COMET_UWS_BUILD pins the build it runs on.
 * @param {{ target: 'server', threads: number, maxWaiting?: number, extraArgs?: string[], env?: NodeJS.ProcessEnv } | { target: 'raw' }} opts
 */
export function startTarget(opts) {
  if (opts.target === 'raw') return new ServerProcess([rawTarget, '--port', '0', '--host', '127.0.0.1']);
  assertBuilt();
  const args = [serverMain, '--port', '0', '--host', '127.0.0.1', '--threads', String(opts.threads)];
  if (opts.maxWaiting && opts.maxWaiting > 0) args.push('--max-waiting', String(opts.maxWaiting));
  args.push(...(opts.extraArgs ?? []));
  return new ServerProcess(args, opts.env ? { env: opts.env } : {});
}

/**
 * Resident set size of a process, in bytes, from /proc/PID/status (VmRSS, all threads).
 * @param {number} pid
 */
export function readRss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Summed RSS of pids() once it stops moving: 5 samples 200 ms apart within
 * 256 KiB, at most maxMs (then the last sample). pids is re-read every sample.
 * @param {() => number[]} pids
 * @returns {Promise<number>}
 */
export async function steadyRss(pids, maxMs = 15_000) {
  /** @type {number[]} */
  const samples = [];
  const deadline = Date.now() + maxMs;
  for (;;) {
    samples.push(pids().reduce((a, p) => a + readRss(p), 0));
    if (samples.length > 5) samples.shift();
    if (samples.length === 5 && Math.max(...samples) - Math.min(...samples) <= 256 * 1024) return samples[4];
    if (Date.now() > deadline) return samples[samples.length - 1];
    await sleep(200);
  }
}
