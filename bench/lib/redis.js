// redis-servers of our own, for the harness's cluster-mode targets (redis-N,
// cluster-N in ../harness/targets.js), its Redis client comparison, and the
// tests (test/helpers/redis.ts adds tap's teardown and Redis Cluster on top).
// Each is on a free loopback port (never 6379, where the machine's own Redis
// may run), persists nothing unless asked (`--save ""`), lives in a fresh
// directory that goes with it, and is SIGKILLed when this process exits,
// whatever happened. Every wait is bounded.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep, withTimeout } from './common.js';

export const REDIS_MISSING = "redis-server not found: install Debian's redis-server package (apt-get install redis-server)";

/**
 * The first executable `name` on PATH, then in /usr/bin and /usr/local/bin.
 * @param {string} name
 * @returns {string | undefined}
 */
export function findBinary(name) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** "7.0.15", or 'not installed'. */
export function redisVersion() {
  const bin = findBinary('redis-server');
  if (!bin) return 'not installed';
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return /v=(\S+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

/**
 * Whether 127.0.0.1:port can be bound now.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port for a cluster node: Redis Cluster's bus listens on port + 10000, which must be free as well. */
async function freeClusterPort() {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await canBind(port + 10000))) return port;
  }
  throw new Error('found no free port P with P + 10000 free too (Redis Cluster bus) in 50 tries');
}

/**
 * Sends one inline command and resolves its reply, bounded: a status or error
 * line as is ('+PONG', '-LOADING ...'), a bulk string's content.
 * @param {number} port
 * @param {string} command
 * @returns {Promise<string>}
 */
function inlineCommand(port, command, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    /** @param {Error | undefined} err @param {string} [reply] */
    const done = (err, reply = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    const timer = setTimeout(() => done(new Error(`no answer to ${command} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.subarray(0, eol).toString('utf8');
      if (!line.startsWith('$')) return done(undefined, line);
      const len = Number(line.slice(1));
      if (len < 0) return done(undefined, line);
      if (buf.length >= eol + 2 + len) done(undefined, buf.subarray(eol + 2, eol + 2 + len).toString('utf8'));
    });
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error(`connection closed before a reply to ${command}`)));
  });
}

// Every process started here, and every directory made, goes when this
// process exits, even when nobody stopped them.
/** @type {Set<import('node:child_process').ChildProcess>} */
const live = new Set();
/** @type {Set<string>} */
const dirs = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * @typedef {object} Ran
 * @property {number | null} code
 * @property {NodeJS.Signals | null} signal
 * @property {string} stdout
 * @property {string} stderr
 * @property {boolean} timedOut
 */

/**
 * Runs a command to its end (SIGKILL after timeoutMs).
 * @param {string} file
 * @param {string[]} args
 * @param {number} timeoutMs
 * @returns {Promise<Ran>}
 */
export function runCommand(file, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(err);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/**
 * A failure message for a command run by runCommand.
 * @param {string} what
 * @param {Ran} r
 * @param {number} timeoutMs
 */
export function describeRun(what, r, timeoutMs) {
  const how = r.timedOut ? `did not end within ${timeoutMs} ms` : `exited with ${r.signal ?? `code ${r.code}`}`;
  return `${what} ${how}\n--- stdout ---\n${r.stdout.slice(-2000)}\n--- stderr ---\n${r.stderr.slice(-2000)}`;
}

/**
 * @typedef {object} RedisOptions
 * @property {boolean} [appendonly] `--appendonly yes` (default no): the data survives kill() and restart()
 * @property {boolean} [cluster] cluster mode (`--cluster-enabled yes ...`), on a port whose bus port is free too
 * @property {string[]} [args] extra redis-server arguments, after ours
 * @property {number} [startTimeoutMs] deadline for the first PONG after each start or restart (default 10000)
 * @property {number} [cliTimeoutMs] deadline for each redis-cli call (default 10000)
 */

/** @typedef {{ server: string, cli?: string }} RedisBinaries */

class RedisStartError extends Error {
  /** @param {string} message @param {string} log */
  constructor(message, log) {
    super(message);
    this.log = log;
  }
}

export class RedisServer {
  /** @type {import('node:child_process').ChildProcess | undefined} */
  #proc;
  #running = false;
  /** resolves when the process has exited */
  #exited = Promise.resolve();
  /** resolves when its output is all read too */
  #closed = Promise.resolve();
  #output = '';

  /**
   * Makes its directory; start() or startOnFreePort() runs it.
   * @param {RedisOptions} [opts]
   * @param {RedisBinaries} [bins] default: found on PATH
   */
  constructor(opts = {}, bins) {
    const server = bins?.server ?? findBinary('redis-server');
    if (!server) throw new Error(REDIS_MISSING);
    this.opts = opts;
    /** @type {RedisBinaries} */
    this.bins = { server, cli: bins ? bins.cli : findBinary('redis-cli') };
    this.port = 0;
    /** its own directory (--dir): dump, AOF, nodes.conf and redis.log */
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comet-redis-'));
    dirs.add(this.dir);
  }

  /** redis://127.0.0.1:PORT */
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The process is running (it may not answer yet). */
  get alive() {
    return this.#running;
  }

  /** @returns {number | undefined} */
  get pid() {
    return this.#proc?.pid;
  }

  get #logfile() {
    return path.join(this.dir, 'redis.log');
  }

  #args() {
    const a = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--daemonize',
      'no',
      '--save',
      '',
      '--appendonly',
      this.opts.appendonly ? 'yes' : 'no',
      '--dir',
      this.dir,
      '--logfile',
      this.#logfile,
    ];
    if (this.opts.cluster) a.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000');
    return [...a, ...(this.opts.args ?? [])];
  }

  /** The end of redis.log and of the process's own output, for failure messages. */
  logTail(n = 2000) {
    let log = '';
    try {
      log = fs.readFileSync(this.#logfile, 'utf8');
    } catch (err) {
      log = `(no log: ${String(err)})`;
    }
    return `--- ${this.#logfile} ---\n${log.slice(-n)}\n--- redis-server stdout/stderr ---\n${this.#output.slice(-n)}`;
  }

  /**
   * Chooses a free port and starts there; a port another process (a parallel
   * test file, a benchmark) binds between the choice and redis-server's own
   * bind is chosen again.
   */
  async startOnFreePort() {
    for (let attempt = 1; ; attempt++) {
      this.port = this.opts.cluster ? await freeClusterPort() : await freePort();
      try {
        await this.start();
        return;
      } catch (err) {
        if (attempt < 5 && err instanceof RedisStartError && /address already in use/i.test(err.log)) continue;
        throw err;
      }
    }
  }

  /** Spawns redis-server on this.port and waits for its PONG; on failure it is killed and the error names the log. */
  async start() {
    if (this.alive) throw new Error(`redis-server on port ${this.port} is still running: kill() or stop() it first`);
    this.#output = '';
    const proc = spawn(this.bins.server, this.#args(), { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = proc;
    this.#running = true;
    live.add(proc);
    proc.stdout.setEncoding('utf8').on('data', (c) => (this.#output += c));
    proc.stderr.setEncoding('utf8').on('data', (c) => (this.#output += c));
    this.#exited = new Promise((resolve) => {
      proc.on('error', (err) => {
        this.#output += `spawn error: ${String(err)}\n`;
        this.#running = false;
        live.delete(proc);
        resolve();
      });
      proc.on('exit', () => {
        this.#running = false;
        live.delete(proc);
        resolve();
      });
    });
    this.#closed = new Promise((resolve) => {
      proc.on('error', () => resolve());
      proc.on('close', () => resolve());
    });
    const timeoutMs = this.opts.startTimeoutMs ?? 10000;
    const deadline = Date.now() + timeoutMs;
    let last = '';
    let ours = false;
    while (Date.now() < deadline) {
      if (!this.alive) {
        await withTimeout(this.#closed, 2000, 'the output of redis-server').catch(() => undefined);
        throw new RedisStartError(
          `redis-server on port ${this.port} exited (${proc.exitCode ?? proc.signalCode}) before answering\n${this.logTail()}`,
          this.logTail(),
        );
      }
      try {
        if (!ours) {
          // Our own process must answer, not one that took the port first
          // (ours then exits with 'Address already in use').
          last = await inlineCommand(this.port, 'INFO server');
          ours = last.includes(`\r\nprocess_id:${proc.pid}\r\n`);
          if (!ours) last = `INFO server without process_id:${proc.pid}: ${last.slice(0, 200)}`;
        }
        if (ours) {
          // INFO is answered while the data set loads, PING only after ('-LOADING ...' before)
          last = await inlineCommand(this.port, 'PING');
          if (last === '+PONG') return;
        }
      } catch (err) {
        last = String(err);
      }
      await sleep(20);
    }
    await this.kill();
    throw new RedisStartError(
      `redis-server on port ${this.port} did not answer PING with +PONG within ${timeoutMs} ms (last: ${last})\n${this.logTail()}`,
      this.logTail(),
    );
  }

  /** SIGKILL, then waits (bounded) for the exit. Does nothing when it is not running. */
  async kill() {
    if (!this.alive) return;
    this.#proc?.kill('SIGKILL');
    await withTimeout(this.#exited, 5000, `exit of SIGKILLed redis-server on port ${this.port}`);
  }

  /** SIGTERM, then waits (bounded) for the exit; throws, after a SIGKILL, when it did not exit in time. */
  async stop() {
    if (!this.alive) return;
    this.#proc?.kill('SIGTERM');
    try {
      await withTimeout(this.#exited, 10000, `exit of redis-server on port ${this.port} after SIGTERM`);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Starts it again, same port, directory and options, and waits for its PONG; it must have been killed or stopped. */
  async restart() {
    await this.start();
  }

  /**
   * `redis-cli -h 127.0.0.1 -p PORT ...args`, resolving its stdout trimmed.
   * Rejects when redis-cli exits non-zero (e.g. nothing listens) or does not
   * end in time. Error replies come back as text ('ERR ...') with exit 0,
   * unless `-e` is among the arguments.
   * @param {string[]} args
   * @returns {Promise<string>}
   */
  async cli(...args) {
    if (!this.bins.cli) throw new Error("redis-cli not found: install Debian's redis-server package (apt-get install redis-server)");
    const timeoutMs = this.opts.cliTimeoutMs ?? 10000;
    const full = ['-h', '127.0.0.1', '-p', String(this.port), ...args];
    const r = await runCommand(this.bins.cli, full, timeoutMs);
    if (r.code !== 0 || r.timedOut) throw new Error(describeRun(`redis-cli ${full.join(' ')}`, r, timeoutMs));
    return r.stdout.trim();
  }

  /** Kills it and removes its directory. */
  async destroy() {
    try {
      await this.kill();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
      dirs.delete(this.dir);
    }
  }
}

/**
 * Starts a redis-server (see RedisServer) on 127.0.0.1 and a free port, and
 * resolves once our own process answers PING. Nothing is left behind when it
 * fails to start; destroy() stops it and removes its directory.
 * @param {RedisOptions} [opts]
 * @param {RedisBinaries} [bins] default: found on PATH
 */
export async function startRedisServer(opts = {}, bins) {
  const redis = new RedisServer(opts, bins);
  try {
    await redis.startOnFreePort();
  } catch (err) {
    await redis.destroy();
    throw err;
  }
  return redis;
}
