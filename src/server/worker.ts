/**
 * A worker thread: one uWS App on the shared port, the owner of its shard of
 * channels, and the waiting gets of its connections. Its whole life cycle
 * (start, drain, exit, fatal error) is here; the main thread's side is in
 * supervisor.ts.
 *
 * A worker must close every socket it holds before its thread ends: uWS keeps
 * native handles on the thread's event loop, and Node aborts the whole process
 * when a thread's loop closes with handles still open.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import type { Engine } from '../engine/engine.js';
import { MemoryEngine } from '../engine/memory-engine.js';
import { type RedisTarget, redactUrls } from '../engine/redis/connect.js';
import { RedisEngine } from '../engine/redis/redis-engine.js';
import { Responder } from '../protocol/respond.js';
import { HttpFront } from '../http/server.js';
import { loadUws } from '../uws.js';
import { createLogger } from '../log.js';
import { SLOT, ThreadMetrics } from '../metrics/counters.js';
import { CometError } from '../protocol/errors.js';
import { WaitRoom } from '../waiters/wait-room.js';
import { Mesh } from '../threads/mesh.js';
import { Owner } from '../threads/owner.js';
import type { ControlMessage, WorkerReport, WorkerStartData } from './control.js';
import { Router } from '../threads/router.js';

const data = workerData as WorkerStartData;
const { config, index } = data;
const parent = parentPort!;
const log = createLogger(config.logLevel, { thread: index });
const report = (message: WorkerReport) => parent.postMessage(message);
// The main thread loaded this build already: it cannot fail here.
loadUws(config.uwsBuild);

const metrics = new ThreadMetrics(data.metrics, index);
const engine: Engine = data.redis ? redisEngine(data.redis) : new MemoryEngine({
  bufferSize: config.bufferSize,
  bufferBytes: config.bufferBytes,
  channelTtlMs: config.channelTtl * 1000,
  memoryBudget: Math.floor(config.maxMemory / config.threads),
  startTime: data.startTime,
});

function redisEngine(target: RedisTarget): RedisEngine {
  let up: boolean | undefined;
  return new RedisEngine({
    target,
    prefix: config.redisPrefix,
    bufferSize: config.bufferSize,
    bufferBytes: config.bufferBytes,
    channelTtlMs: config.channelTtl * 1000,
    timeoutMs: config.redisTimeout,
    maxPending: config.redisMaxPending,
    // One line per change of state, not one per failed reconnection attempt.
    onConnection(nowUp, where, err) {
      if (nowUp === up) return;
      up = nowUp;
      if (nowUp) log.info({ redis: redactUrls(where) }, 'Redis connection ready');
      else log.warn({ redis: redactUrls(where), err: err?.message }, 'Redis connection lost; reconnecting');
    },
  });
}
const mesh = new Mesh(index, data.ports);
const router = new Router(mesh);
const owner = new Owner(engine, mesh, router, { maxMessages: config.maxAnswerMessages, maxBytes: config.maxAnswerBytes }, metrics);
const responder = new Responder(config.corsOrigin);
const waitRoom = new WaitRoom(router, responder, metrics, config);
router.connect(owner, waitRoom);
const front = new HttpFront({ config, router, waitRoom, responder, metrics, metricsBuffer: data.metrics, faultInjection: data.faultInjection, log });

const LOOP_SAMPLE_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
loopDelay.enable();
/** The histogram holds whole intervals between samples: the delay is what exceeds the sampling period. */
const delaySeconds = (nanos: number) => Math.max(0, nanos / 1e6 - LOOP_SAMPLE_MS) / 1000;
const housekeeping = setInterval(() => {
  metrics.set(SLOT.loopDelayP50, delaySeconds(loopDelay.percentile(50)));
  metrics.set(SLOT.loopDelayP99, delaySeconds(loopDelay.percentile(99)));
  metrics.set(SLOT.loopDelayMax, delaySeconds(loopDelay.max));
  loopDelay.reset();
  engine.sweep();
  const stats = engine.stats();
  metrics.set(SLOT.channels, stats.channels);
  metrics.set(SLOT.storedMessages, stats.messages);
  metrics.set(SLOT.storedBytes, stats.bytes);
  metrics.set(SLOT.storeSubscriptions, stats.subscriptions);
  metrics.set(SLOT.storeUp, stats.up ? 1 : 0);
}, 1000);

let exiting = false;
const OWNER_GRACE_MS = 1000;

/** Closes every connection of this thread, then ends the thread. */
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  clearInterval(housekeeping);
  loopDelay.disable();
  waitRoom.stop();
  front.closeAll();
  mesh.close();
  void engine.close();
  process.exit(code);
}

process.on('uncaughtException', (err) => {
  log.fatal({ err }, `thread ${index} crashed`);
  report({ type: 'fatal', message: err.message, stack: err.stack });
  // Not from inside whatever native callback threw: uWS must unwind first.
  setImmediate(() => exit(1));
});

parent.on('message', (message: ControlMessage) => {
  if (message.type === 'drain') {
    front.stopListening();
    waitRoom.drain();
    waitForOwners(Date.now() + OWNER_GRACE_MS);
  } else if (message.type === 'exit') {
    exit(0);
  }
});

/**
 * Reports drained once no request of ours waits for an owner's reply. An owner
 * that does not reply within the grace period (a crashed thread) never will:
 * those requests are refused rather than left hanging.
 */
function waitForOwners(deadline: number): void {
  if (router.busy && Date.now() < deadline) {
    setTimeout(waitForOwners, 10, deadline);
    return;
  }
  router.failAll(new CometError('COMET_ERR_SHUTTING_DOWN', 'the server is shutting down'));
  report({ type: 'drained' });
}

front.listen(config.host, data.port).then(
  (port) => report({ type: 'listening', port }),
  (err: Error) => {
    report({ type: 'listen-failed', message: err.message });
    exit(1);
  },
);
