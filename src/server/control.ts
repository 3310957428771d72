/**
 * What the main thread and its worker threads say to each other about the
 * process's life cycle (start, drain, exit, failure); the threads' own
 * traffic about channels is threads/messages.ts.
 */
import type { MessagePort } from 'node:worker_threads';
import type { AuthMaterial } from '../auth/keys.js';
import type { Config } from '../config/options.js';
import type { RedisTarget } from '../engine/redis/connect.js';
import type { LimitsMaterial } from '../limits/limiter.js';

/** Sent by the main thread to a worker. */
export type ControlMessage = { type: 'drain' } | { type: 'exit' } | { type: 'accepting'; on: boolean };

/** Sent by a worker to the main thread. */
export type WorkerReport =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; message: string }
  | { type: 'drained' }
  | { type: 'fatal'; message: string; stack?: string };

/** What the main thread hands each worker thread at start (workerData). */
export interface WorkerStartData {
  config: Config;
  index: number;
  /** This thread's ends of the mesh: ports[i] links to thread i, null for itself. */
  ports: (MessagePort | null)[];
  /** Wall-clock microseconds at which the server started. */
  startTime: number;
  /** Port to listen on: the configured one, or the one thread 0 was given for port 0. */
  port: number;
  /** SharedArrayBuffer with the metrics of every thread, see metrics/counters.ts. */
  metrics: SharedArrayBuffer;
  /** Cluster mode: the Redis to keep channels in, as probed by the main thread; absent for the in-memory engine. */
  redis?: RedisTarget;
  /** The keys tokens are verified with (--auth), as read and checked by the main thread. */
  auth: AuthMaterial;
  /** The per-client limits' shared table and trusted proxies; absent when every per-client limit is off. */
  limits?: LimitsMaterial;
}
