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
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { Config } from '../config/options.js';
import { nowMicros } from '../engine/clock.js';
import { backoff, parseRedisUrls, probeRedis, type RedisTarget, redactUrls, UnsuitableRedisError } from '../engine/redis/connect.js';
import type { Logger } from '../log.js';
import { startConnectionCounter } from '../metrics/connections.js';
import { createMetricsBuffer } from '../metrics/counters.js';
import type { ControlMessage, WorkerReport, WorkerStartData } from './control.js';

export interface ServerHandle {
  port: number;
  /** Resolves with the process exit code once every thread has ended. */
  stopped: Promise<number>;
  stop(): void;
}

export async function startServer(config: Config, log: Logger, faultInjection: boolean): Promise<ServerHandle> {
  const redis = config.redis === '' ? undefined : await reachRedis(config, log);
  const startTime = nowMicros();
  const metricsBuffer = createMetricsBuffer(config.threads);
  const ports = meshPorts(config.threads);
  const workers: Worker[] = [];
  const exited: Promise<void>[] = [];
  const alive = new Set<number>();
  const drained = new Set<number>();
  let exitCode = 0;
  let stopping = false;
  let deadline: NodeJS.Timeout | undefined;

  const spawn = (index: number, port: number): Promise<number> => {
    const data: WorkerStartData = {
      index,
      startTime,
      port,
      metrics: metricsBuffer,
      faultInjection,
      redis,
      config,
      ports: ports[index]!,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: data,
      transferList: ports[index]!.filter((p): p is MessagePort => p !== null),
      stdout: false,
      stderr: false,
    });
    workers[index] = worker;
    alive.add(index);
    exited[index] = new Promise((resolve) => {
      worker.on('exit', (code) => {
        alive.delete(index);
        if (code !== 0 && !stopping) {
          log.fatal({ thread: index, code }, `worker thread ${index} died (exit code ${code}); shutting the server down`);
        }
        if (code !== 0 || !stopping) {
          exitCode = 1;
          stop();
        }
        checkDrained();
        resolve();
      });
    });
    worker.on('error', (err) => log.fatal({ thread: index, err }, `worker thread ${index} failed`));
    return new Promise((resolve, reject) => {
      const onReport = (message: WorkerReport) => {
        if (message.type === 'listening') resolve(message.port);
        else if (message.type === 'drained') {
          drained.add(index);
          checkDrained();
        }
        else if (message.type === 'listen-failed') reject(new Error(message.message));
        else if (message.type === 'fatal') {
          log.fatal({ thread: index }, `worker thread ${index} crashed (${message.message}); shutting the server down`);
          exitCode = 1;
          stop();
        }
      };
      worker.on('message', onReport);
      worker.once('exit', (code) => reject(new Error(`worker thread ${index} exited with code ${code} before listening`)));
    });
  };

  const send = (message: ControlMessage) => {
    for (const index of alive) workers[index]!.postMessage(message);
  };

  function stop(): void {
    if (stopping) return;
    stopping = true;
    deadline = setTimeout(() => {
      log.warn(`shutdown took longer than ${config.shutdownTimeout} s; closing the remaining connections`);
      send({ type: 'exit' });
    }, config.shutdownTimeout * 1000);
    send({ type: 'drain' });
  }

  /** Once every living thread has drained, all of them may close their sockets and end. */
  function checkDrained(): void {
    if (!stopping || deadline === undefined) return;
    for (const index of alive) if (!drained.has(index)) return;
    clearTimeout(deadline);
    deadline = undefined;
    send({ type: 'exit' });
  }

  const port = config.port === 0 ? await freePort(config.host) : config.port;
  try {
    await Promise.all(Array.from({ length: config.threads }, (_, i) => spawn(i, port)));
  } catch (err) {
    stopping = true;
    send({ type: 'exit' });
    await Promise.all(exited);
    throw err;
  }

  const stopCounting = startConnectionCounter(metricsBuffer, config.threads, config.connectionsInterval);
  const stopped = Promise.all(exited).then(() => {
    stopCounting();
    return exitCode;
  });
  return { port, stopped, stop };
}

/**
 * Finds out, before any thread starts, whether --redis is a single Redis or a
 * Cluster. A Redis that cannot be reached yet (started after us, say) is
 * waited for with backoff, one warning per attempt; one that can never serve
 * (too old) fails the start.
 */
async function reachRedis(config: Config, log: Logger): Promise<RedisTarget> {
  const urls = parseRedisUrls(config.redis);
  for (let attempt = 1; ; attempt++) {
    try {
      const target = await probeRedis(urls, config.redisTimeout);
      log.info({ redis: redactUrls(urls), cluster: target.cluster }, 'cluster mode: channels are kept in Redis');
      return target;
    } catch (err) {
      if (err instanceof UnsuitableRedisError) throw err;
      const delay = backoff(attempt);
      log.warn({ redis: redactUrls(urls), err: (err as Error).message, retryInMs: delay }, 'cannot reach Redis yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
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

/** ports[i][j]: thread i's end of the channel between threads i and j (null for i = j). */
function meshPorts(threads: number): (MessagePort | null)[][] {
  const ports: (MessagePort | null)[][] = Array.from({ length: threads }, () => new Array<MessagePort | null>(threads).fill(null));
  for (let i = 0; i < threads; i++) {
    for (let j = i + 1; j < threads; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }
  return ports;
}
