/**
 * Starts the built server (`dist/cli/main.js`) as a child process and talks to
 * it over HTTP. Every server started here is SIGKILLed at the end of the tap
 * test that started it (and when this process exits), whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type http from 'node:http';
import t from 'tap';
import type { Test } from 'tap';
import { httpRequest, makeAgent, type Endpoint, type HttpResponse, type Params, type RequestOptions } from './http.js';
import { Metrics } from './metrics.js';
import { sleep, waitFor } from './wait.js';

export * from './http.js';
export * from './metrics.js';
export * from './wait.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StopResult extends ExitInfo {
  /** Milliseconds from sending the signal to the exit. */
  ms: number;
  /** True when the process ignored the signal and had to be SIGKILLed. */
  killed: boolean;
}

export interface StartOptions {
  threads?: number;
  /** Extra command-line arguments after `--port 0 --host 127.0.0.1 --threads N`. */
  args?: string[];
  /** Extra environment variables (undefined removes one). */
  env?: Record<string, string | undefined>;
  /** The tap test whose teardown stops the server (default: the root test). */
  t?: Test;
  /** Deadline for the listening line (default 15000 ms). */
  startTimeoutMs?: number;
}

export interface GetAnswer {
  time: number;
  messages: string[];
  missed?: boolean;
  res: HttpResponse;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * The environment for a child server: ours minus anything tap, ts-node or a
 * developer's shell could leak into it (NODE_OPTIONS carries tap's loaders;
 * COMET_* and UWS_* would change the server's configuration).
 */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAP|TS_NODE|COMET_|UWS_)/.test(k)) continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function assertBuilt(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
}

/** Parses JSON log lines, skipping anything else. */
export function parseLogLines(text: string): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l));
    } catch {
      // not JSON
    }
  }
  return out;
}

export class ProtocolFailure extends Error {
  constructor(
    what: string,
    readonly res: HttpResponse,
  ) {
    super(`${what}: HTTP ${res.status} ${res.body.slice(0, 500)}`);
  }
}

/**
 * The protocol spoken over HTTP to host:port: comet-server itself (CometServer
 * below) or anything in front of it, such as a reverse proxy.
 */
export class CometEndpoint implements Endpoint {
  readonly agent: http.Agent = makeAgent();

  constructor(
    readonly host = '127.0.0.1',
    public port = 0,
  ) {}

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  request(opts: RequestOptions = {}): Promise<HttpResponse> {
    return httpRequest(this, { agent: this.agent, ...opts });
  }

  /** GET / with the given protocol parameters in the query string. */
  call(params: Params, opts: RequestOptions = {}): Promise<HttpResponse> {
    return this.request({ ...opts, query: params });
  }

  /** POST / with the parameters as an application/x-www-form-urlencoded body. */
  post(form: Params, opts: RequestOptions = {}): Promise<HttpResponse> {
    return this.request({ method: 'POST', ...opts, form });
  }

  private static time(res: HttpResponse, what: string): number {
    if (res.status !== 200 || !res.json || !Number.isSafeInteger(res.json.time)) throw new ProtocolFailure(what, res);
    return res.json.time as number;
  }

  /**
   * put; returns the message's time (throws on anything but a 200 with a time).
   * A message too long for a URL under the default --max-header-bytes goes in
   * a form body, as the protocol and the client library do.
   */
  async put(channel: string, message: string, extra: Params = {}): Promise<number> {
    const params = { method: 'put', channel, message, ...extra };
    const res = message.length > 8 * 1024 ? await this.post(params) : await this.call(params);
    return CometEndpoint.time(res, `put ${channel}`);
  }

  /** sync; returns the channel's current time. */
  async sync(channel: string): Promise<number> {
    return CometEndpoint.time(await this.call({ method: 'sync', channel }), `sync ${channel}`);
  }

  /** get; throws on anything but a 200 with time and messages. */
  async get(channel: string, params: Params = {}, opts: RequestOptions = {}): Promise<GetAnswer> {
    const res = await this.call({ method: 'get', channel, ...params }, opts);
    const j = res.json;
    if (res.status !== 200 || !j || !Number.isSafeInteger(j.time) || !Array.isArray(j.messages)) {
      throw new ProtocolFailure(`get ${channel} ${JSON.stringify(params)}`, res);
    }
    return { time: j.time, messages: j.messages, missed: j.missed, res };
  }

  async metrics(): Promise<Metrics> {
    const res = await this.request({ path: '/metrics', timeoutMs: 5000 });
    if (res.status !== 200) throw new ProtocolFailure('GET /metrics', res);
    return new Metrics(res.body);
  }

  /** Current value of comet_waiting_gets (summed over threads). */
  async waiting(): Promise<number> {
    return (await this.metrics()).value('comet_waiting_gets');
  }

  /**
   * Waits (bounded) until comet_waiting_gets >= n (or === n with exact).
   * Returns whether it got there; protocol tests use it only to know that
   * their gets have arrived, and go on either way after the deadline.
   */
  async waitWaiting(n: number, { exact = false, timeoutMs = 3000 } = {}): Promise<boolean> {
    try {
      await waitFor(async () => {
        const w = await this.waiting();
        return exact ? w === n : w >= n;
      }, { timeoutMs, what: `comet_waiting_gets ${exact ? '==' : '>='} ${n}` });
      return true;
    } catch {
      return false;
    }
  }
}

export class CometServer extends CometEndpoint {
  readonly threads: number;
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  /** Date.now() * 1000 taken just before spawning: a time older than the server's start. */
  readonly spawnedAtMicros: number;

  constructor(args: string[], env: NodeJS.ProcessEnv, threads: number) {
    super();
    this.threads = threads;
    this.spawnedAtMicros = Date.now() * 1000;
    this.proc = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stdout!.on('data', (c: string) => (this.stdout += c));
    this.proc.stderr!.on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        live.delete(this.proc);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  get stdoutLines(): string[] {
    return this.stdout.split('\n').filter((l) => l !== '');
  }

  /** Parsed JSON log lines from stdout and stderr. */
  logs(): Array<Record<string, any>> {
    return [...parseLogLines(this.stdout), ...parseLogLines(this.stderr)];
  }

  /** Last characters of the output, for failure messages. */
  outputTail(n = 2000): string {
    return `--- stdout ---\n${this.stdout.slice(-n)}\n--- stderr ---\n${this.stderr.slice(-n)}`;
  }

  async waitListening(timeoutMs: number): Promise<void> {
    const found = (): number | undefined => {
      for (const l of parseLogLines(this.stdout)) if (l.msg === 'listening' && typeof l.port === 'number') return l.port;
      return undefined;
    };
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const port = found();
      if (port !== undefined) {
        this.port = port;
        return;
      }
      if (!this.alive) throw new Error(`server exited (${JSON.stringify(this.exit)}) before listening\n${this.outputTail()}`);
      await sleep(20);
    }
    this.kill();
    throw new Error(`server did not log {"msg":"listening","port":N} within ${timeoutMs} ms\n${this.outputTail()}`);
  }

  /** Sends a signal and waits (bounded) for the exit; SIGKILLs after the deadline. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<StopResult> {
    const started = performance.now();
    if (this.exit) return { ...this.exit, ms: 0, killed: false };
    this.proc.kill(signal);
    // Unref'd: a deadline that did not fire must not keep the test process alive after the exit.
    const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
    const r = await Promise.race([this.exited, timer]);
    if (r === 'timeout') {
      this.proc.kill('SIGKILL');
      const e = await this.exited;
      return { ...e, ms: performance.now() - started, killed: true };
    }
    // The agent is left alone: answers sent just before the exit may still be unread.
    return { ...r, ms: performance.now() - started, killed: false };
  }

  /** Waits (bounded) for the process to exit by itself. */
  async waitExit(timeoutMs: number): Promise<ExitInfo | undefined> {
    const r = await Promise.race([this.exited, sleep(timeoutMs, undefined, { ref: false })]);
    return r;
  }

  /** SIGKILL if still running; used by teardown. */
  async kill(): Promise<void> {
    this.agent.destroy();
    if (this.exit) return;
    this.proc.kill('SIGKILL');
    await Promise.race([this.exited, sleep(5000, undefined, { ref: false })]);
  }
}

/**
 * Spawns `node dist/cli/main.js --port 0 --host 127.0.0.1 --threads N ...args`
 * and resolves once it logged its listening line.
 */
export async function startServer(opts: StartOptions = {}): Promise<CometServer> {
  assertBuilt();
  const threads = opts.threads ?? 1;
  const args = ['--port', '0', '--host', '127.0.0.1', '--threads', String(threads), ...(opts.args ?? [])];
  const srv = new CometServer(args, childEnv(opts.env), threads);
  (opts.t ?? t).teardown(() => srv.kill());
  await srv.waitListening(opts.startTimeoutMs ?? 15000);
  return srv;
}

export interface CliResult extends ExitInfo {
  stdout: string;
  stderr: string;
  /** The process logged a listening line (it was then killed). */
  listened: boolean;
  /** It neither exited nor listened within the deadline (it was then killed). */
  timedOut: boolean;
}

/** Runs the CLI with exactly `args` until it exits (bounded); kills it if it starts listening. */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    let listened = false;
    let timedOut = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => {
      stdout += c;
      if (!listened && parseLogLines(stdout).some((l) => l.msg === 'listening')) {
        listened = true;
        proc.kill('SIGKILL');
      }
    });
    proc.stderr.on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, opts.timeoutMs ?? 15000);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, signal, stdout, stderr, listened, timedOut });
    });
  });
}
