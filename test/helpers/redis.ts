/**
 * Real Redis servers for the tests: each `redis-server` started here is our
 * own, on a free loopback port (never 6379, where the machine's own Redis may
 * run), in a fresh temporary directory, and is SIGKILLed and its directory
 * removed at the end of the tap test that started it (and when this process
 * exits), whatever happened. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { sleep, waitFor, within } from './wait.js';

export const REDIS_MISSING = "redis-server not found: install Debian's redis-server package (apt-get install redis-server)";

/** Redis Cluster's number of hash slots. */
export const CLUSTER_SLOTS = 16384;

/** The first executable `name` on PATH, then in /usr/bin. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== ''), '/usr/bin'];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Paths of redis-server and redis-cli, or undefined when either is missing. */
export function redisBinaries(): { server: string; cli: string } | undefined {
  const server = findBinary('redis-server');
  const cli = findBinary('redis-cli');
  return server && cli ? { server, cli } : undefined;
}

/**
 * Whether redis-server and redis-cli are installed. When they are not, the
 * test fails under CI (CI=true, where .ci/run installs them) and is skipped
 * elsewhere; the caller then returns.
 */
export function redisAvailable(t: Test): boolean {
  if (redisBinaries()) return true;
  if (process.env.CI === 'true') t.fail(REDIS_MISSING);
  else t.skip(REDIS_MISSING, () => {});
  return false;
}

function binaries(): { server: string; cli: string } {
  const b = redisBinaries();
  if (!b) throw new Error(REDIS_MISSING);
  return b;
}

/** A port nothing listens on now: bound on 127.0.0.1:0, read, closed. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether 127.0.0.1:port can be bound now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free port for a cluster node: Redis Cluster's bus listens on port + 10000,
 * which must be a port too and free as well.
 */
async function freeClusterPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await canBind(port + 10000))) return port;
  }
  throw new Error('found no free port P with P + 10000 free too (Redis Cluster bus) in 50 tries');
}

/**
 * Sends one inline command and resolves its reply, bounded: a status or error
 * line as is ('+PONG', '-LOADING ...'), a bulk string's content.
 */
function inlineCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, reply?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => done(new Error(`no answer to ${command} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (c: Buffer) => {
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

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to its end (SIGKILL after timeoutMs). */
function run(file: string, args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => (stdout += c));
    proc.stderr.on('data', (c: string) => (stderr += c));
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

function describeRun(what: string, r: Ran, timeoutMs: number): string {
  const how = r.timedOut ? `did not end within ${timeoutMs} ms` : `exited with ${r.signal ?? `code ${r.code}`}`;
  return `${what} ${how}\n--- stdout ---\n${r.stdout.slice(-2000)}\n--- stderr ---\n${r.stderr.slice(-2000)}`;
}

// Every redis-server and redis-cli started here, and the directories made, go
// when this process exits, even when a teardown did not run.
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export interface RedisOptions {
  /** `--appendonly yes` (default no): the data survives kill() and restart(). */
  appendonly?: boolean;
  /** Cluster mode (`--cluster-enabled yes ...`); startRedisCluster sets it. */
  cluster?: boolean;
  /** Extra redis-server arguments, after ours. */
  args?: string[];
  /** Deadline for the first PONG after each start or restart (default 10000 ms). */
  startTimeoutMs?: number;
  /** Deadline for each redis-cli call (default 10000 ms). */
  cliTimeoutMs?: number;
}

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** Its own directory (--dir): dump, AOF, nodes.conf and redis.log. */
  readonly dir: string;
  /** The process is running (it may not answer yet). */
  readonly alive: boolean;
  /** SIGKILL, then waits (bounded) for the exit. Does nothing when it is not running. */
  kill(): Promise<void>;
  /** SIGTERM, then waits (bounded) for the exit; throws, after a SIGKILL, when it did not exit in time. */
  stop(): Promise<void>;
  /** Starts it again, same port, directory and options, and waits for its PONG; it must have been killed or stopped. */
  restart(): Promise<void>;
  /**
   * `redis-cli -h 127.0.0.1 -p PORT ...args`, resolving its stdout trimmed.
   * Rejects when redis-cli exits non-zero (e.g. nothing listens) or does not
   * end in time. Error replies come back as text ('ERR ...') with exit 0,
   * unless `-e` is among the arguments.
   */
  cli(...args: string[]): Promise<string>;
  /** The end of redis.log and of the process's own output, for failure messages. */
  logTail(n?: number): string;
}

class RedisInstance implements RedisServer {
  port = 0;
  readonly dir: string;
  private proc: ChildProcess | undefined;
  private running = false;
  /** Resolves when the process has exited. */
  private exited: Promise<void> = Promise.resolve();
  /** Resolves when its output is all read too. */
  private closed: Promise<void> = Promise.resolve();
  private output = '';

  constructor(
    private readonly opts: RedisOptions,
    readonly bins: { server: string; cli: string },
  ) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'comet-redis-'));
    dirs.add(this.dir);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.running;
  }

  private get logfile(): string {
    return path.join(this.dir, 'redis.log');
  }

  private args(): string[] {
    const a = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--daemonize', 'no',
      '--save', '',
      '--appendonly', this.opts.appendonly ? 'yes' : 'no',
      '--dir', this.dir,
      '--logfile', this.logfile,
    ];
    if (this.opts.cluster) a.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000');
    return [...a, ...(this.opts.args ?? [])];
  }

  logTail(n = 2000): string {
    let log = '';
    try {
      log = readFileSync(this.logfile, 'utf8');
    } catch (err) {
      log = `(no log: ${String(err)})`;
    }
    return `--- ${this.logfile} ---\n${log.slice(-n)}\n--- redis-server stdout/stderr ---\n${this.output.slice(-n)}`;
  }

  /** Spawns redis-server on this.port and waits for its PONG; on failure it is killed and the error names the log. */
  async start(): Promise<void> {
    if (this.alive) throw new Error(`redis-server on port ${this.port} is still running: kill() or stop() it first`);
    this.output = '';
    const proc = spawn(this.bins.server, this.args(), { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.running = true;
    live.add(proc);
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stdout!.on('data', (c: string) => (this.output += c));
    proc.stderr!.on('data', (c: string) => (this.output += c));
    this.exited = new Promise((resolve) => {
      proc.on('error', (err) => {
        this.output += `spawn error: ${String(err)}\n`;
        this.running = false;
        live.delete(proc);
        resolve();
      });
      proc.on('exit', () => {
        this.running = false;
        live.delete(proc);
        resolve();
      });
    });
    this.closed = new Promise((resolve) => {
      proc.on('error', () => resolve());
      proc.on('close', () => resolve());
    });
    const timeoutMs = this.opts.startTimeoutMs ?? 10000;
    const deadline = Date.now() + timeoutMs;
    let last = '';
    let ours = false;
    while (Date.now() < deadline) {
      if (!this.alive) {
        await within(this.closed, 2000, 'the output of redis-server').catch(() => undefined);
        throw new RedisStartError(`redis-server on port ${this.port} exited (${proc.exitCode ?? proc.signalCode}) before answering\n${this.logTail()}`, this.logTail());
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
    throw new RedisStartError(`redis-server on port ${this.port} did not answer PING with +PONG within ${timeoutMs} ms (last: ${last})\n${this.logTail()}`, this.logTail());
  }

  async kill(): Promise<void> {
    if (!this.alive) return;
    this.proc!.kill('SIGKILL');
    await within(this.exited, 5000, `exit of SIGKILLed redis-server on port ${this.port}`);
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc!.kill('SIGTERM');
    try {
      await within(this.exited, 10000, `exit of redis-server on port ${this.port} after SIGTERM`);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  async restart(): Promise<void> {
    await this.start();
  }

  async cli(...args: string[]): Promise<string> {
    const timeoutMs = this.opts.cliTimeoutMs ?? 10000;
    const full = ['-h', '127.0.0.1', '-p', String(this.port), ...args];
    const r = await run(this.bins.cli, full, timeoutMs);
    if (r.code !== 0 || r.timedOut) throw new Error(describeRun(`redis-cli ${full.join(' ')}`, r, timeoutMs));
    return r.stdout.trim();
  }

  /** Kills it and removes its directory. */
  async destroy(): Promise<void> {
    try {
      await this.kill();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      dirs.delete(this.dir);
    }
  }
}

class RedisStartError extends Error {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(message);
  }
}

/**
 * Starts one redis-server on 127.0.0.1 and a free port, in a new directory,
 * with `--save "" --appendonly no` (or yes), and resolves once it answers
 * PING. Killed and its directory removed at the end of `t`.
 */
export async function startRedis(t: Test, opts: RedisOptions = {}): Promise<RedisServer> {
  const inst = new RedisInstance(opts, binaries());
  t.teardown(() => inst.destroy());
  // The port is free when chosen, but another process (a parallel test file)
  // may bind it before redis-server does: then choose again.
  for (let attempt = 1; ; attempt++) {
    inst.port = opts.cluster ? await freeClusterPort() : await freePort();
    try {
      await inst.start();
      return inst;
    } catch (err) {
      if (attempt < 3 && err instanceof RedisStartError && /address already in use/i.test(err.log)) continue;
      throw err;
    }
  }
}

export interface ClusterOptions extends Omit<RedisOptions, 'cluster'> {
  /** Number of masters, no replicas (default 3, the fewest redis-cli --cluster create accepts). */
  masters?: number;
  /** Deadline for `redis-cli --cluster create` (default 30000 ms). */
  createTimeoutMs?: number;
  /** Deadline for cluster_state:ok on every node (default 20000 ms). */
  okTimeoutMs?: number;
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** Every node's redis://127.0.0.1:PORT */
  urls: string[];
  /** The first node's URL. */
  url: string;
  /**
   * Waits (bounded, default 20000 ms) until every node's CLUSTER INFO shows
   * cluster_state:ok, all 16384 slots assigned and every node known; e.g.
   * after restarting a node.
   */
  waitOk(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled redis-servers (each on a free port P with
 * its bus on P + 10000, in its own directory), joins them with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and
 * resolves once every node reports cluster_state:ok with all slots assigned.
 * Torn down at the end of `t`.
 */
export async function startRedisCluster(t: Test, opts: ClusterOptions = {}): Promise<RedisCluster> {
  const { masters = 3, createTimeoutMs = 30000, okTimeoutMs = 20000, ...nodeOpts } = opts;
  if (!Number.isInteger(masters) || masters < 3) throw new Error(`a Redis cluster needs at least 3 masters (got ${masters})`);
  const bins = binaries();
  const nodes = await Promise.all(Array.from({ length: masters }, () => startRedis(t, { ...nodeOpts, cluster: true })));
  const createArgs = ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'];
  const r = await run(bins.cli, createArgs, createTimeoutMs);
  if (r.code !== 0 || r.timedOut) {
    throw new Error(`${describeRun(`redis-cli ${createArgs.join(' ')}`, r, createTimeoutMs)}\n${nodes.map((n) => n.logTail(1000)).join('\n')}`);
  }
  const waitOk = async (timeoutMs = okTimeoutMs): Promise<void> => {
    const bad = new Map<number, string>();
    try {
      await waitFor(
        async () => {
          const infos = await Promise.all(nodes.map((n) => n.cli('cluster', 'info').catch((err) => `error: ${String(err).split('\n')[0]}`)));
          bad.clear();
          infos.forEach((info, i) => {
            const ok =
              /^cluster_state:ok$/m.test(info) &&
              new RegExp(`^cluster_slots_assigned:${CLUSTER_SLOTS}$`, 'm').test(info) &&
              new RegExp(`^cluster_known_nodes:${nodes.length}$`, 'm').test(info);
            if (!ok) bad.set(nodes[i].port, info);
          });
          return bad.size === 0;
        },
        { timeoutMs, intervalMs: 100, what: `cluster_state:ok on all ${nodes.length} nodes` },
      );
    } catch (err) {
      const detail = [...bad].map(([port, info]) => `--- CLUSTER INFO of 127.0.0.1:${port} ---\n${info}`).join('\n');
      throw new Error(`${String(err)}\n${detail}`);
    }
  };
  await waitOk();
  const urls = nodes.map((n) => n.url);
  return { nodes, urls, url: urls[0], waitOk };
}
