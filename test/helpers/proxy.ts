/**
 * Real reverse proxies in front of a real comet-server: Debian's nginx and
 * HAProxy, each run in the foreground as a child of the test from the files
 * users copy (deploy/nginx.conf, deploy/haproxy.cfg). Only what cannot stay
 * as shipped is rewritten, each by an exact string replacement that must
 * match (a shipped file that changed under the test fails it instead of being
 * silently tested some other way): the listen port, the upstream's port,
 * and the paths of pid, log, socket and temporary files, which go to a fresh
 * temp dir. Every proxy started here is stopped at the end of the tap test
 * that started it (and SIGKILLed, workers included, when this process exits),
 * whatever happened; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { childrenOf, cmdline, needs } from './bench.js';
import { freePort } from './redis.js';
import { CometEndpoint, connectionRefused, ROOT, sleep, waitFor } from './server.js';

export const NGINX = '/usr/sbin/nginx';
export const HAPROXY = '/usr/sbin/haproxy';
export const NGINX_CONF = path.join(ROOT, 'deploy', 'nginx.conf');
export const HAPROXY_CFG = path.join(ROOT, 'deploy', 'haproxy.cfg');
export const PROXY_MISSING = "install Debian's nginx and haproxy packages (apt-get install nginx haproxy)";

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether nginx and HAProxy are installed. When one is not, the test fails
 * under CI (CI=true, where both must be installed) and is skipped elsewhere;
 * the caller then returns.
 */
export function proxiesAvailable(t: Test): boolean {
  const missing = [NGINX, HAPROXY].filter((f) => !executable(f));
  return needs(t, missing.length === 0, `${missing.join(' and ')} not found: ${PROXY_MISSING}`);
}

/**
 * `text` with `from` replaced by `to`, where `from` must occur exactly once:
 * the rewrite then touches precisely the setting it names, and a shipped
 * file that no longer has it makes the test fail with the reason.
 */
export function replaceOnce(text: string, from: string, to: string, file: string): string {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`${file}: expected ${JSON.stringify(from)} exactly once, found it ${n} times`);
  return text.replace(from, () => to);
}

export interface Rewrite {
  /** Temp dir for pid, logs, sockets, temporary files. */
  dir: string;
  /** Loopback port the proxy listens on. */
  port: number;
  /** comet-server's port. */
  upstreamPort: number;
}

/** deploy/nginx.conf as the test runs it. */
export function nginxConfig(shipped: string, { dir, port, upstreamPort }: Rewrite): string {
  const f = 'deploy/nginx.conf';
  let c = shipped;
  c = replaceOnce(c, 'listen 80;', `listen 127.0.0.1:${port};`, f);
  c = replaceOnce(c, 'server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`, f);
  c = replaceOnce(c, 'pid /run/nginx.pid;', `pid ${dir}/nginx.pid;`, f);
  c = replaceOnce(c, 'error_log /var/log/nginx/error.log', `error_log ${dir}/error.log`, f);
  c = replaceOnce(c, 'access_log /var/log/nginx/access.log;', `access_log ${dir}/access.log;`, f);
  // The compiled-in temporary paths are under /var/lib/nginx, shared with the
  // machine's own nginx (and not writable unless root): ours go to dir.
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${dir}/${k};\n`).join('');
  c = replaceOnce(c, '\nhttp {\n', `\nhttp {\n${temp}`, f);
  return c;
}

/** deploy/haproxy.cfg as the test runs it. */
export function haproxyConfig(shipped: string, { dir, port, upstreamPort }: Rewrite): string {
  const f = 'deploy/haproxy.cfg';
  let c = shipped;
  c = replaceOnce(c, 'bind :80\n', `bind 127.0.0.1:${port}\n`, f);
  c = replaceOnce(c, 'server comet1 127.0.0.1:8080 ', `server comet1 127.0.0.1:${upstreamPort} `, f);
  c = replaceOnce(c, 'stats socket /run/haproxy/admin.sock ', `stats socket ${dir}/admin.sock `, f);
  // Into the test's output instead of a syslog socket that may not exist here.
  c = replaceOnce(c, 'log /dev/log local0\n', 'log stderr format raw local0\n', f);
  // Privilege dropping needs root and Debian's haproxy user; it changes
  // nothing of what HAProxy does with HTTP.
  for (const line of ['    chroot /var/lib/haproxy\n', '    user haproxy\n', '    group haproxy\n']) c = replaceOnce(c, line, '', f);
  return c;
}

const live = new Set<RunningProxy>();
process.on('exit', () => {
  for (const p of live) p.killNow();
});

/** Every proxy started by this process, stopped or not: a test's end can check that none outlived it. */
export const startedProxies: RunningProxy[] = [];

/** A proxy process (nginx's master and its workers, or HAProxy) and the protocol spoken through it. */
export class RunningProxy extends CometEndpoint {
  output = '';
  private exited = false;
  private readonly exit: Promise<void>;
  /** Worker processes, as last seen: nginx's survive a SIGKILLed master. */
  private workers: number[] = [];
  /** Every process of this proxy seen running (master and workers): pid -> command line. */
  readonly seen = new Map<number, string>();

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    port: number,
    readonly dir: string,
    readonly configPath: string,
  ) {
    super('127.0.0.1', port);
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (this.output = (this.output + c).slice(-20000)));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (this.output = (this.output + c).slice(-20000)));
    this.exit = new Promise((resolve) => proc.once('exit', () => resolve()));
    void this.exit.then(() => (this.exited = true));
    live.add(this);
    startedProxies.push(this);
    if (proc.pid !== undefined) this.seen.set(proc.pid, cmdline(proc.pid));
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** The master's children now (nginx's workers; HAProxy has none), remembered for the kill. */
  noteWorkers(): number[] {
    if (this.proc.pid !== undefined && this.alive) this.workers = childrenOf(this.proc.pid);
    for (const pid of this.workers) if (!this.seen.has(pid)) this.seen.set(pid, cmdline(pid));
    return this.workers;
  }

  /** A file of the temp dir ('' when absent), e.g. nginx's error.log. */
  file(name: string): string {
    try {
      return readFileSync(path.join(this.dir, name), 'utf8');
    } catch {
      return '';
    }
  }

  /** What the proxy said, for failure messages. */
  diagnostics(): string {
    return `--- ${this.name} output ---\n${this.output.slice(-3000)}\n--- error.log ---\n${this.file('error.log').slice(-3000)}`;
  }

  killNow(): void {
    for (const pid of [this.proc.pid, ...this.workers]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM (both proxies' fast shutdown), SIGKILL after 5 s; workers too; then the temp dir goes. */
  async stop(): Promise<void> {
    this.agent.destroy();
    this.noteWorkers();
    if (this.alive) {
      this.proc.kill('SIGTERM');
      await Promise.race([this.exit, sleep(5000, undefined, { ref: false })]);
    }
    // Whatever is left (a master that ignored SIGTERM, a worker it left behind).
    this.killNow();
    await Promise.race([this.exit, sleep(2000, undefined, { ref: false })]);
    await waitFor(() => this.workers.every((pid) => !isRunning(pid)), { timeoutMs: 5000, what: `${this.name} workers ${this.workers} gone` }).catch(
      () => undefined,
    );
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    // A zombie still answers kill(0): its state in /proc tells.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export interface ProxyOptions {
  /** comet-server's port. */
  upstreamPort: number;
  /** Applied to the rewritten config: the negative controls remove a setting this way. */
  edit?: (config: string) => string;
  startTimeoutMs?: number;
}

async function launch(
  t: Test,
  name: string,
  bin: string,
  argsFor: (configPath: string, dir: string) => string[],
  render: (r: Rewrite) => string,
  opts: ProxyOptions,
): Promise<RunningProxy> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `comet-${name}-`));
  // nginx started as root runs its workers as www-data (the shipped `user`): they must reach the dir.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const configPath = path.join(dir, name === 'nginx' ? 'nginx.conf' : 'haproxy.cfg');
  let config: string;
  try {
    config = render({ dir, port, upstreamPort: opts.upstreamPort });
    if (opts.edit) config = opts.edit(config);
    writeFileSync(configPath, config);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const proc = spawn(bin, argsFor(configPath, dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const proxy = new RunningProxy(name, proc, port, dir, configPath);
  t.teardown(() => proxy.stop());
  const timeoutMs = opts.startTimeoutMs ?? 10000;
  await waitFor(async () => !proxy.alive || !(await connectionRefused(proxy, 1000)), {
    timeoutMs,
    intervalMs: 50,
    what: `${name} listening on 127.0.0.1:${port}`,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${proxy.diagnostics()}`);
  });
  if (!proxy.alive) throw new Error(`${name} exited before listening\n${proxy.diagnostics()}`);
  proxy.noteWorkers();
  return proxy;
}

/**
 * nginx in the foreground from deploy/nginx.conf (daemon off comes from the
 * command line, as the shipped file leaves it to the service manager).
 */
export function startNginx(t: Test, opts: ProxyOptions): Promise<RunningProxy> {
  const shipped = readFileSync(NGINX_CONF, 'utf8');
  return launch(
    t,
    'nginx',
    NGINX,
    // -e: the error log before the config is read (the compiled-in one may not be writable)
    (conf, dir) => ['-c', conf, '-p', `${dir}/`, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'],
    (r) => nginxConfig(shipped, r),
    opts,
  );
}

/** HAProxy in the foreground (-db) from deploy/haproxy.cfg. */
export function startHaproxy(t: Test, opts: ProxyOptions): Promise<RunningProxy> {
  const shipped = readFileSync(HAPROXY_CFG, 'utf8');
  return launch(
    t,
    'haproxy',
    HAPROXY,
    (conf) => ['-db', '-f', conf],
    (r) => haproxyConfig(shipped, r),
    opts,
  );
}

/** Runs a config check (`nginx -t`, `haproxy -c`) to its end (bounded): its exit code and output. */
export function checkConfig(bin: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** One command on HAProxy's runtime API (the stats socket of the config), its whole answer. */
export function haproxyCommand(proxy: RunningProxy, command: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path.join(proxy.dir, 'admin.sock'));
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`haproxy runtime API: no complete answer to ${command} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${command}\n`));
    sock.on('data', (c: string) => (out += c));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Without "prompt", HAProxy answers one command and closes.
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** The `show stat` row of a server (status, check_status, ...), keyed by the CSV header. */
export async function haproxyServerStat(proxy: RunningProxy, backend: string, server: string): Promise<Record<string, string> | undefined> {
  const lines = (await haproxyCommand(proxy, 'show stat')).split('\n').filter((l) => l !== '');
  const header = lines[0]?.replace(/^# /, '').split(',') ?? [];
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    if (cells[0] === backend && cells[1] === server) return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
  }
  return undefined;
}

/**
 * The client-side ports of every TCP connection to 127.0.0.1:port the kernel
 * knows now (/proc/net/tcp), in any state but LISTEN. Closed connections stay
 * there in TIME_WAIT for a minute, so the difference of two readings counts
 * every connection opened between them, however short-lived.
 */
export function connectionsTo(port: number): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] === '0A') continue;
    const local = parseInt(f[1]!.split(':')[1]!, 16);
    const remote = parseInt(f[2]!.split(':')[1]!, 16);
    if (local === port) ports.add(remote);
    else if (remote === port) ports.add(local);
  }
  return ports;
}
