/**
 * Metrics shared by all threads without any messaging: one SharedArrayBuffer
 * holding, first, the server-wide count of gets in progress (an Int32 updated
 * with Atomics, since it also enforces --max-waiting), in cluster mode the count
 * of the node's Redis connections that became ready (an Int32, not a metric:
 * the threads recover from a Redis outage together by it, see
 * engine/redis/recovery.ts), the open connections as
 * last counted by the main thread (a Float64, NaN until counted), the accept
 * gate's state and the main thread's GC pauses (written by the main thread), then one block of Float64 slots
 * per thread, each written only by its own thread and read by whichever
 * thread renders /metrics. An aligned 8-byte store is never torn on
 * the platforms Node supports, so readers see each value whole.
 */
import { ERROR_CODE_LIST, type ErrorCode } from '../protocol/errors.js';
import type { GcKind } from './gc.js';

export const SLOT = {
  requestsPut: 0,
  requestsGet: 1,
  requestsSync: 2,
  messagesIn: 3,
  messagesOut: 4,
  bytesIn: 5,
  bytesOut: 6,
  channels: 7,
  storedMessages: 8,
  storedBytes: 9,
  loopDelayP50: 10,
  loopDelayP99: 11,
  loopDelayMax: 12,
  newsSent: 13,
  storeSubscriptions: 14,
  storeUp: 15,
  tokensVerified: 16,
  tokensRemembered: 17,
  heapUsed: 18,
  unreadAnswers: 19,
  unreadBytes: 20,
  slowReadersClosed: 21,
  watchedChannels: 22,
  /** Connections closed at open by --max-connections-per-ip. */
  ipConnectionsRefused: 23,
  /** Requests and connections let through by the per-client limits because the table had no entry free for their address. */
  limitUntracked: 24,
  /** Seconds this thread was paused by scavenges (minor collections), summed. */
  gcMinorSeconds: 25,
  /** Seconds this thread was paused by mark-sweep-compact (major collections and their incremental steps), summed. */
  gcMajorSeconds: 26,
  /** Gets parked on this thread: registered with their channel's owner, waiting for a message. */
  parkedGets: 27,
  /** Streams open on this thread: server-sent events responses and WebSocket subscriptions. */
  streams: 28,
  /** WebSocket connections open on this thread. */
  webSockets: 29,
  /** Event streams (method=events) and WebSocket subscriptions opened. */
  requestsEvents: 30,
  requestsSubscribe: 31,
  /** This thread's V8 young generation as committed (--max-young-generation bounds it). */
  youngGeneration: 32,
} as const;
const ERRORS_BASE = 33;
export const SLOTS_PER_THREAD = ERRORS_BASE + ERROR_CODE_LIST.length;
const HEADER_BYTES = 64;
const REDIS_READY_OFFSET = 4;
const CONNECTIONS_OFFSET = 8;
/** The main thread's accept gate (server/accept-gate.ts): open files at its last look, its ceiling, and how often it closed the door. */
const ACCEPT_OFFSET = 16;
/** The main thread's GC pause seconds, minor then major (it has no block of slots: it serves no requests). */
const MAIN_GC_OFFSET = 48;
const ERROR_INDEX = new Map<ErrorCode, number>(ERROR_CODE_LIST.map((code, i) => [code, ERRORS_BASE + i]));

export function createMetricsBuffer(threads: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(HEADER_BYTES + threads * SLOTS_PER_THREAD * 8);
  setConnections(buffer, NaN);
  setAcceptState(buffer, { accepting: true, openFiles: NaN, ceiling: 0, pauses: 0 });
  return buffer;
}

/** Thread `thread`'s block of slots, a view into the shared buffer. */
function threadBlock(buffer: SharedArrayBuffer, thread: number): Float64Array {
  return new Float64Array(buffer, HEADER_BYTES + thread * SLOTS_PER_THREAD * 8, SLOTS_PER_THREAD);
}

export class ThreadMetrics {
  readonly values: Float64Array;
  private readonly waiting: Int32Array;

  constructor(buffer: SharedArrayBuffer, thread: number) {
    this.waiting = new Int32Array(buffer, 0, 1);
    this.values = threadBlock(buffer, thread);
  }

  add(slot: number, amount = 1): void {
    this.values[slot]! += amount;
  }

  set(slot: number, value: number): void {
    this.values[slot] = value;
  }

  error(code: ErrorCode): void {
    this.values[errorSlot(code)]! += 1;
  }

  /** Takes one of the server-wide slots for a get in progress; false when all `max` are taken. */
  reserveWaiting(max: number): boolean {
    if (Atomics.add(this.waiting, 0, 1) < max) return true;
    Atomics.sub(this.waiting, 0, 1);
    return false;
  }

  releaseWaiting(): void {
    Atomics.sub(this.waiting, 0, 1);
  }
}

/** The node's count of Redis connections that became ready, shared by its threads (engine/redis/recovery.ts). */
export function redisReadyCell(buffer: SharedArrayBuffer): Int32Array {
  return new Int32Array(buffer, REDIS_READY_OFFSET, 1);
}

/** Records the main thread's latest count of open client connections. */
export function setConnections(buffer: SharedArrayBuffer, count: number): void {
  new Float64Array(buffer, CONNECTIONS_OFFSET, 1)[0] = count;
}

/** What the accept gate saw last, and the pauses so far (written by the main thread only). */
export interface AcceptState {
  accepting: boolean;
  openFiles: number;
  ceiling: number;
  pauses: number;
}

export function setAcceptState(buffer: SharedArrayBuffer, state: AcceptState): void {
  const slots = new Float64Array(buffer, ACCEPT_OFFSET, 4);
  slots[0] = state.openFiles;
  slots[1] = state.ceiling;
  slots[2] = state.pauses;
  slots[3] = state.accepting ? 1 : 0;
}

/** Adds a garbage-collection pause of the main thread (only the main thread calls this). */
export function addMainGc(buffer: SharedArrayBuffer, kind: GcKind, seconds: number): void {
  new Float64Array(buffer, MAIN_GC_OFFSET, 2)[kind === 'minor' ? 0 : 1]! += seconds;
}

export interface MetricsSnapshot {
  waiting: number;
  /** Open client connections at the last count; NaN when not counted. */
  connections: number;
  accept: AcceptState;
  /** The main thread's GC pause seconds so far. */
  mainGc: Record<GcKind, number>;
  /** Per thread, indexed by SLOT values and error slots. */
  threads: Float64Array[];
}

export function readMetrics(buffer: SharedArrayBuffer, threads: number): MetricsSnapshot {
  const waiting = Atomics.load(new Int32Array(buffer, 0, 1), 0);
  const blocks: Float64Array[] = [];
  for (let t = 0; t < threads; t++) blocks.push(threadBlock(buffer, t).slice());
  const [openFiles, ceiling, pauses, accepting] = new Float64Array(buffer, ACCEPT_OFFSET, 4);
  const accept = { openFiles: openFiles!, ceiling: ceiling!, pauses: pauses!, accepting: accepting === 1 };
  const [minor, major] = new Float64Array(buffer, MAIN_GC_OFFSET, 2);
  return {
    waiting,
    connections: new Float64Array(buffer, CONNECTIONS_OFFSET, 1)[0]!,
    accept,
    mainGc: { minor: minor!, major: major! },
    threads: blocks,
  };
}

export function errorSlot(code: ErrorCode): number {
  return ERROR_INDEX.get(code)!;
}
