/**
 * The main thread: starts the worker threads, wires their mesh, and owns the
 * server's life cycle.
 *
 * Start: every thread has its own listen socket on the same port, and the
 * kernel spreads connections over them (SO_REUSEPORT). uSockets enables
 * SO_REUSEPORT only for a non-zero port, so for --port 0 a free port is chosen
 * here first and every thread is given that one.
 *
 * Graceful stop (SIGTERM, SIGINT, stop()): every thread stops accepting and
 * answers its waiting gets with their timeout answer; once all are drained
 * (or --shutdown-timeout passed) they close their sockets and end; exit 0.
 *
 * Crash policy: if any worker thread dies, the server never stays half-alive
 * and does not restart the thread in place (its shard's in-memory channels
 * would be gone while clients of other threads kept running against it). The
 * surviving threads drain as in a graceful stop and the process exits 1, for
 * the service manager (systemd, Kubernetes, ...) to restart it; clients then
 * see "missed" for anything they had not received, as after any restart.
 */
import { Buffer } from 'node:buffer';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { type MessagePort, Worker } from 'node:worker_threads';
import { type AuthMaterial, loadAuthMaterial, MIN_SECRET_BYTES } from '../auth/keys.js';
import type { Config } from '../config/options.js';
import { nowMicros } from '../engine/clock.js';
import type { RedisTarget } from '../engine/redis/connect.js';
import type { Logger } from '../log.js';
import { startConnectionCounter } from '../metrics/connections.js';
import { addMainGc, createMetricsBuffer } from '../metrics/counters.js';
import { observeGc } from '../metrics/gc.js';
import { startConnectionCount } from '../limits/connection-count.js';
import { bucketOf, type LimitsMaterial, prepareLimits } from '../limits/limiter.js';
import { LimitTable } from '../limits/table.js';
import { meshPorts } from '../threads/mesh.js';
import type { ControlMessage, WorkerReport, WorkerStartData } from './control.js';
import { connectionCeiling, openFileLimit, startAcceptGate } from './accept-gate.js';
import { reachRedis } from './redis-probe.js';

export interface ServerHandle {
  port: number;
  /** Resolves with the process exit code once every thread has ended. */
  stopped: Promise<number>;
  stop(): void;
}

export async function startServer(config: Config, log: Logger): Promise<ServerHandle> {
  const auth = loadAuthMaterial(config);
  const limits = prepareLimits(config);
  warnAboutAuth(config, auth, log);
  const redis = config.redis === '' ? undefined : await reachRedis(config, log);
  const port = config.port === 0 ? await freePort(config.host) : config.port;
  const supervisor = new Supervisor(config, log, redis, auth, limits);
  try {
    await Promise.all(Array.from({ length: config.threads }, (_, index) => supervisor.spawn(index, port)));
  } catch (err) {
    await supervisor.abort();
    throw err;
  }
  // the main thread's own pauses: it serves no requests, but its counting and upkeep allocate too
  const stopGc = observeGc((kind, seconds) => addMainGc(supervisor.metricsBuffer, kind, seconds));
  const stopCounting = startConnectionCounter(supervisor.metricsBuffer, config.threads, config.connectionsInterval);
  const limit = openFileLimit();
  log.info({ openFileLimit: limit, maxConnections: connectionCeiling(config.maxConnections, limit) }, 'open files');
  const stopGate = startAcceptGate(config, supervisor.metricsBuffer, (on) => supervisor.accepting(on), log);
  const bucket = bucketOf(config);
  if (limits !== undefined) {
    const { rate, burst } = bucket;
    log.info(
      {
        rateLimit: rate,
        rateBurst: rate === 0 ? 0 : burst,
        maxConnectionsPerIp: config.maxConnectionsPerIp,
        trustProxy: config.trustProxy,
        limitTableSize: config.limitTableSize,
      },
      'per-client limits',
    );
  }
  const stopCountingPerIp =
    limits !== undefined && config.maxConnectionsPerIp > 0 ? startConnectionCount(new LimitTable(limits.table, bucket), port) : () => {};
  const stopped = supervisor.ended().then((code) => {
    stopGate();
    stopCountingPerIp();
    stopCounting();
    stopGc();
    return code;
  });
  return { port, stopped, stop: () => supervisor.stop() };
}

/** Configurations that run but protect less than they seem to; the keys themselves are never logged. */
function warnAboutAuth(config: Config, auth: AuthMaterial, log: Logger): void {
  const keys = auth.secrets.length + auth.publicKeys.length;
  if (config.auth === 'off' && keys > 0) log.warn('keys are configured but --auth is off: every request is served without a token');
  const short = auth.secrets.filter((secret) => Buffer.byteLength(secret) < MIN_SECRET_BYTES).length;
  if (short > 0)
    log.warn(`${short} HS256 secret(s) shorter than ${MIN_SECRET_BYTES} bytes: fit for development only (openssl rand -base64 48 makes a good one)`);
}

class Supervisor {
  readonly metricsBuffer: SharedArrayBuffer;
  private readonly startTime = nowMicros();
  private readonly ports: (MessagePort | null)[][];
  private readonly workers: Worker[] = [];
  private readonly exited: Promise<void>[] = [];
  private readonly alive = new Set<number>();
  private readonly drained = new Set<number>();
  private exitCode = 0;
  private stopping = false;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly redis: RedisTarget | undefined,
    private readonly auth: AuthMaterial,
    private readonly limits: LimitsMaterial | undefined,
  ) {
    this.metricsBuffer = createMetricsBuffer(config.threads);
    this.ports = meshPorts(config.threads);
  }

  /** Starts worker thread `index`; resolves with its port once it listens. */
  spawn(index: number, port: number): Promise<number> {
    const ports = this.ports[index]!;
    const data: WorkerStartData = {
      config: this.config,
      index,
      ports,
      startTime: this.startTime,
      port,
      metrics: this.metricsBuffer,
      redis: this.redis,
      auth: this.auth,
      limits: this.limits,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: data,
      transferList: ports.filter((p): p is MessagePort => p !== null),
      resourceLimits: { maxYoungGenerationSizeMb: this.config.maxYoungGeneration / 2 ** 20 },
      stdout: false,
      stderr: false,
    });
    this.workers[index] = worker;
    this.alive.add(index);
    this.exited[index] = new Promise((resolve) => worker.on('exit', (code) => resolve(this.onExit(index, code))));
    worker.on('error', (err) => this.log.fatal({ thread: index, err }, `worker thread ${index} failed`));
    return new Promise((resolve, reject) => {
      worker.on('message', (message: WorkerReport) => {
        if (message.type === 'listening') resolve(message.port);
        else if (message.type === 'listen-failed') reject(new Error(message.message));
        else this.onReport(index, message);
      });
      worker.once('exit', (code) => reject(new Error(`worker thread ${index} exited with code ${code} before listening`)));
    });
  }

  /** Graceful stop: every thread drains, then all end together. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.deadline = setTimeout(() => {
      this.log.warn(`shutdown took longer than ${this.config.shutdownTimeout} s; closing the remaining connections`);
      this.send({ type: 'exit' });
    }, this.config.shutdownTimeout * 1000);
    this.send({ type: 'drain' });
  }

  /** A start that failed: every thread started so far ends at once. */
  async abort(): Promise<void> {
    this.stopping = true;
    this.send({ type: 'exit' });
    await Promise.all(this.exited);
  }

  /** Resolves with the process exit code once every thread has ended. */
  async ended(): Promise<number> {
    await Promise.all(this.exited);
    return this.exitCode;
  }

  private onReport(index: number, message: WorkerReport): void {
    if (message.type === 'drained') {
      this.drained.add(index);
      this.checkDrained();
    } else if (message.type === 'fatal') {
      this.log.fatal({ thread: index }, `worker thread ${index} crashed (${message.message}); shutting the server down`);
      this.exitCode = 1;
      this.stop();
    }
  }

  private onExit(index: number, code: number): void {
    this.alive.delete(index);
    if (code !== 0 && !this.stopping) {
      this.log.fatal({ thread: index, code }, `worker thread ${index} died (exit code ${code}); shutting the server down`);
    }
    if (code !== 0 || !this.stopping) {
      this.exitCode = 1;
      this.stop();
    }
    this.checkDrained();
  }

  /** Tells every thread to stop or start accepting connections on the public port (the accept gate); not once stopping. */
  accepting(on: boolean): void {
    if (!this.stopping) this.send({ type: 'accepting', on });
  }

  private send(message: ControlMessage): void {
    for (const index of this.alive) this.workers[index]!.postMessage(message);
  }

  /** Once every living thread has drained, all of them may close their sockets and end. */
  private checkDrained(): void {
    if (!this.stopping || this.deadline === undefined) return;
    for (const index of this.alive) if (!this.drained.has(index)) return;
    clearTimeout(this.deadline);
    this.deadline = undefined;
    this.send({ type: 'exit' });
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
