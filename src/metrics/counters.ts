/**
 * Metrics shared by all threads without any messaging: one SharedArrayBuffer
 * holding, first, the server-wide count of gets in progress (an Int32 updated
 * with Atomics, since it also enforces --max-waiting), the open connections as
 * last counted by the main thread (a Float64, NaN until counted), then one block of
 * Float64 slots per thread, each written only by its own thread and read by
 * whichever thread renders /metrics. An aligned 8-byte store is never torn on
 * the platforms Node supports, so readers see each value whole.
 */
import { ERROR_CODE_LIST, type ErrorCode } from '../protocol/errors.js';

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
  watchedChannels: 18,
} as const;
const ERRORS_BASE = 19;
export const SLOTS_PER_THREAD = ERRORS_BASE + ERROR_CODE_LIST.length;
const HEADER_BYTES = 16;
const CONNECTIONS_OFFSET = 8;
const ERROR_INDEX = new Map<ErrorCode, number>(ERROR_CODE_LIST.map((code, i) => [code, ERRORS_BASE + i]));

export function createMetricsBuffer(threads: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(HEADER_BYTES + threads * SLOTS_PER_THREAD * 8);
  setConnections(buffer, NaN);
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

/** Records the main thread's latest count of open client connections. */
export function setConnections(buffer: SharedArrayBuffer, count: number): void {
  new Float64Array(buffer, CONNECTIONS_OFFSET, 1)[0] = count;
}

export interface MetricsSnapshot {
  waiting: number;
  /** Open client connections at the last count; NaN when not counted. */
  connections: number;
  /** Per thread, indexed by SLOT values and error slots. */
  threads: Float64Array[];
}

export function readMetrics(buffer: SharedArrayBuffer, threads: number): MetricsSnapshot {
  const waiting = Atomics.load(new Int32Array(buffer, 0, 1), 0);
  const blocks: Float64Array[] = [];
  for (let t = 0; t < threads; t++) blocks.push(threadBlock(buffer, t).slice());
  return { waiting, connections: new Float64Array(buffer, CONNECTIONS_OFFSET, 1)[0]!, threads: blocks };
}

export function errorSlot(code: ErrorCode): number {
  return ERROR_INDEX.get(code)!;
}
