/**
 * A worker thread's entry point and life cycle (start, drain, exit, fatal
 * error); its parts are wired in thread.ts, and the main thread's side is
 * supervisor.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../log.js';
import { ThreadMetrics } from '../metrics/counters.js';
import { refusals } from '../protocol/errors.js';
import { loadUws } from '../uws.js';
import type { ControlMessage, WorkerReport, WorkerStartData } from './control.js';
import { restoreFastStringPrototype } from './fast-strings.js';
import { CometThread } from './thread.js';

const OWNER_GRACE_MS = 1000;

const data = workerData as WorkerStartData;
const { config, index } = data;
const parent = parentPort!;
const log = createLogger(config.logLevel, { thread: index });
const report = (message: WorkerReport) => parent.postMessage(message);
// The main thread loaded this build already: it cannot fail here.
loadUws(config.uwsBuild);
// Every module is loaded (ioredis among them, in either engine mode).
restoreFastStringPrototype();

const thread = new CometThread({
  config,
  index,
  ports: data.ports,
  startTime: data.startTime,
  metrics: new ThreadMetrics(data.metrics, index),
  metricsBuffer: data.metrics,
  redis: data.redis,
  auth: data.auth,
  limits: data.limits,
  log,
});

let exiting = false;

/** Closes every connection of this thread, then ends the thread. */
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  thread.close();
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
    thread.drain();
    waitForOwners(Date.now() + OWNER_GRACE_MS);
  } else if (message.type === 'exit') {
    exit(0);
  } else if (message.type === 'accepting') {
    thread.accepting(message.on);
  }
});

/**
 * Reports drained once no request of ours waits for an owner's reply. An owner
 * that does not reply within the grace period (a crashed thread) never will:
 * those requests are refused rather than left hanging.
 */
function waitForOwners(deadline: number): void {
  if (thread.awaitingOwners && Date.now() < deadline) {
    setTimeout(waitForOwners, 10, deadline);
    return;
  }
  thread.abandonOwners(refusals.shuttingDown());
  report({ type: 'drained' });
}

thread.listen(config.host, data.port).then(
  (port) => report({ type: 'listening', port }),
  (err: Error) => {
    report({ type: 'listen-failed', message: err.message });
    exit(1);
  },
);
