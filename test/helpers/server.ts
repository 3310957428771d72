/**
 * Starts the built server (`dist/cli/main.js`) as a child process, with the
 * harness's launcher (bench/lib/server.js), and talks to it over HTTP. Every
 * server started here is SIGKILLed at the end of the tap test that started it
 * (and when this process exits), whatever happened.
 */
import type { ChildProcess } from 'node:child_process';
import type http from 'node:http';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { assertBuilt, repoRoot, serverMain, ServerProcess, type ExitInfo, type StopResult } from '../../bench/lib/server.js';
import { httpRequest, makeAgent, type Endpoint, type HttpResponse, type Params, type RequestOptions } from './http.js';
import { Metrics } from './metrics.js';
import { waitFor } from './wait.js';

export * from './http.js';
export * from './metrics.js';
export * from './wait.js';

export const ROOT = repoRoot;
export const MAIN = serverMain;

export type { ExitInfo, StopResult };

export interface StartOptions {
  threads?: number;
  /** Extra command-line arguments after `--port 0 --host 127.0.0.1 --threads N`. */
  args?: string[];
  /** Extra environment variables (undefined removes one). */
  env?: Record<string, string | undefined>;
  /** The tap test whose teardown stops the server (default: the root test). */
  t?: Test;
  /** Deadline for the listening line (default 15000 ms, 30000 under coverage). */
  startTimeoutMs?: number;
}

export interface GetAnswer {
  time: number;
  messages: string[];
  missed?: boolean;
  res: HttpResponse;
}

/** tap is collecting coverage (not --disable-coverage): its process-info hook says so. */
const COVERAGE = process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1';

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
  // Under tap's coverage the children's code (the server, its worker threads) is most of what
  // is covered: Node writes each thread's V8 coverage where tap reads its own at the end.
  if (COVERAGE) env.NODE_V8_COVERAGE = path.join(ROOT, '.tap', 'coverage');
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
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

/** How waitWaiting and waitParked wait: until the gauge equals n (exact) or reaches it, at most timeoutMs. */
interface GaugeWait {
  exact?: boolean;
  timeoutMs?: number;
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

  /** Current value of comet_waiting_gets (summed over threads): gets holding a waiting slot. */
  async waiting(): Promise<number> {
    return (await this.metrics()).value('comet_waiting_gets');
  }

  /** Current value of comet_parked_gets (summed over threads): gets registered with their owner, waiting for a message. */
  async parked(): Promise<number> {
    return (await this.metrics()).value('comet_parked_gets');
  }

  /**
   * Waits (bounded) until comet_waiting_gets >= n (or === n with exact).
   * Returns whether it got there. It counts gets from the moment they arrive,
   * before their owner thread has registered them: tests use it for slot
   * accounting; one that puts next and expects its get to hear the message
   * waits with waitParked instead.
   */
  waitWaiting(n: number, options: GaugeWait = {}): Promise<boolean> {
    return this.waitGauge('comet_waiting_gets', n, options);
  }

  /**
   * Waits (bounded) until comet_parked_gets >= n (or === n with exact): until
   * that many gets are registered with their channels' owners, so that a put
   * sent afterwards reaches them whichever thread takes it. Returns whether
   * it got there.
   */
  waitParked(n: number, options: GaugeWait = {}): Promise<boolean> {
    return this.waitGauge('comet_parked_gets', n, options);
  }

  private async waitGauge(name: string, n: number, { exact = false, timeoutMs = 3000 }: GaugeWait): Promise<boolean> {
    try {
      await waitFor(
        async () => {
          const v = (await this.metrics()).value(name);
          return exact ? v === n : v >= n;
        },
        { timeoutMs, what: `${name} ${exact ? '==' : '>='} ${n}` },
      );
      return true;
    } catch {
      return false;
    }
  }
}

export class CometServer extends CometEndpoint {
  readonly threads: number;
  readonly server: ServerProcess;

  constructor(args: string[], env: NodeJS.ProcessEnv, threads: number) {
    super();
    this.threads = threads;
    this.server = new ServerProcess([MAIN, ...args], { env });
  }

  get proc(): ChildProcess {
    return this.server.proc;
  }

  get stdout(): string {
    return this.server.stdout;
  }

  get stderr(): string {
    return this.server.stderr;
  }

  get exited(): Promise<ExitInfo> {
    return this.server.exited;
  }

  get exit(): ExitInfo | undefined {
    return this.server.exit;
  }

  /** Date.now() * 1000 taken just before spawning: a time older than the server's start. */
  get spawnedAtMicros(): number {
    return this.server.spawnedAtMicros;
  }

  get alive(): boolean {
    return this.server.alive;
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
    return this.server.logTail(n);
  }

  async waitListening(timeoutMs: number): Promise<void> {
    this.port = await this.server.waitListening(timeoutMs);
  }

  /** Sends a signal and waits (bounded) for the exit; SIGKILLs after the deadline. */
  stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<StopResult> {
    // The agent is left alone: answers sent just before the exit may still be unread.
    return this.server.stop(signal, timeoutMs);
  }

  /** Waits (bounded) for the process to exit by itself. */
  waitExit(timeoutMs: number): Promise<ExitInfo | undefined> {
    return this.server.waitExit(timeoutMs);
  }

  /** SIGKILL if still running; used by teardown. */
  async kill(): Promise<void> {
    this.agent.destroy();
    // V8 writes a process's coverage only when it exits by itself: under coverage, a graceful
    // stop first (a server stops in about 0.3 s; stop() still SIGKILLs one that hangs).
    if (COVERAGE) await this.server.stop('SIGTERM', 5000);
    else await this.server.kill();
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
  // Under coverage a server starts about twice as slowly (V8 counts every block).
  await srv.waitListening(opts.startTimeoutMs ?? (COVERAGE ? 30000 : 15000));
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
export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  assertBuilt();
  const p = new ServerProcess([MAIN, ...args], { env: childEnv(opts.env) });
  let listened = false;
  let timedOut = false;
  void p.listening.then(() => {
    listened = true;
    p.proc.kill('SIGKILL');
  });
  const timer = setTimeout(() => {
    timedOut = true;
    p.proc.kill('SIGKILL');
  }, opts.timeoutMs ?? 15000);
  await p.closed;
  clearTimeout(timer);
  return { ...p.exit!, stdout: p.stdout, stderr: p.stderr, listened, timedOut };
}
