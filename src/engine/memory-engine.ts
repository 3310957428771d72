/**
 * The embedded default engine: every channel in this thread's memory, in a
 * ring buffer bounded by message count and bytes.
 *
 * "Known since": a channel's `floor` is the time up to which its history is
 * not vouched for. It starts at the server's start time (an in-memory server
 * knows nothing from before it started), rises to the last dropped message's
 * time when the buffer or the memory budget drops messages, and for a channel
 * re-created after eviction starts at the evicted channel's last time, which
 * is remembered in a small fixed table keyed by a hash of the channel id (a
 * collision only ever errs towards reporting `missed`). A read from a cursor
 * below the floor reports `missed`.
 *
 * Memory policy: channels are kept in least-recently-written order (to within
 * a second). A channel with no new message for `channelTtlMs` and no watcher
 * is evicted. When the thread's share of the memory budget is exceeded, the
 * least recently written channels lose their oldest messages first, and
 * emptied unwatched channels are evicted.
 */
import { nextTime } from './clock.js';
import type { Engine, EngineStats, MessageListener, ReadLimits, ReadResult } from './engine.js';
import { RingBuffer } from './ring-buffer.js';
import { hashChannel } from './channel-hash.js';

export interface MemoryEngineOptions {
  /** Messages kept per channel. */
  bufferSize: number;
  /** Encoded message characters kept per channel. */
  bufferBytes: number;
  channelTtlMs: number;
  /** This thread's share of the memory budget, in bytes. */
  memoryBudget: number;
  /** Wall-clock microseconds at which the server started. */
  startTime: number;
}

/** Estimated heap overhead per channel (object, Map entry, ring arrays) and per message (slot, string header). */
const CHANNEL_COST = 320;
const MESSAGE_COST = 48;
const EVICTED_SLOTS = 1 << 14;
const REORDER_MS = 1000;

class Channel {
  readonly ring = new RingBuffer();
  /** Characters of the bodies held. */
  bytes = 0;
  /** Current time: the last message's, or the floor when none was put since. */
  time: number;
  lastWrite: number;
  watched = false;
  constructor(
    readonly name: string,
    public floor: number,
    now: number,
  ) {
    this.time = floor;
    this.lastWrite = now;
  }
}

export class MemoryEngine implements Engine {
  /** Iteration order is least recently written first (re-inserted on every append). */
  private readonly channels = new Map<string, Channel>();
  private readonly evicted = new Float64Array(EVICTED_SLOTS);
  private listener: MessageListener = () => {};
  private used = 0;
  private messages = 0;

  constructor(private readonly options: MemoryEngineOptions) {}

  setListener(listener: MessageListener): void {
    this.listener = listener;
  }

  append(channel: string, body: string): number {
    const now = Date.now();
    const ch = this.touch(channel, now);
    const time = nextTime(ch.time, now);
    ch.ring.push(time, body);
    ch.time = time;
    ch.bytes += body.length;
    this.used += body.length + MESSAGE_COST;
    this.messages++;
    while (ch.ring.length > this.options.bufferSize || (ch.bytes > this.options.bufferBytes && ch.ring.length > 1)) {
      this.dropOldest(ch);
    }
    if (ch.watched) this.listener(channel, time, body);
    if (this.used > this.options.memoryBudget) this.enforceBudget(ch);
    return time;
  }

  currentTime(channel: string): number {
    return this.channels.get(channel)?.time ?? this.floorFor(channel);
  }

  /**
   * Reading never creates a channel (only append and watch do), so a flood of
   * syncs or gets on distinct channel ids costs no memory.
   */
  read(channel: string, since: number, limits: ReadLimits): ReadResult {
    const ch = this.channels.get(channel);
    if (ch === undefined) {
      const floor = this.floorFor(channel);
      return { time: Math.max(floor, since), bodies: [], missed: since >= 0 && since < floor };
    }
    if (since < 0) return { time: ch.time, bodies: [], missed: false };
    const missed = since < ch.floor;
    const ring = ch.ring;
    let index = ring.indexAfter(since);
    if (index === ring.length) return { time: Math.max(ch.time, since), bodies: [], missed };
    const bodies: string[] = [];
    let size = 0;
    let time = since;
    while (index < ring.length && bodies.length < limits.maxMessages) {
      const body = ring.bodyAt(index);
      size += body.length;
      if (size > limits.maxBytes && bodies.length > 0) break;
      bodies.push(body);
      time = ring.timeAt(index);
      index++;
    }
    return { time, bodies, missed };
  }

  watch(channel: string): void {
    this.open(channel).watched = true;
  }

  unwatch(channel: string): void {
    const ch = this.channels.get(channel);
    if (ch) ch.watched = false;
  }

  stats(): EngineStats {
    return { channels: this.channels.size, messages: this.messages, bytes: this.used, subscriptions: 0, up: true };
  }

  /** Evicts channels idle for longer than the TTL; the owner calls it periodically. */
  sweep(nowMs = Date.now()): void {
    const deadline = nowMs - this.options.channelTtlMs;
    for (const ch of this.channels.values()) {
      // The order is exact to within REORDER_MS: stop only past that slack.
      if (ch.lastWrite > deadline + REORDER_MS) break;
      if (ch.lastWrite <= deadline && !ch.watched) this.evict(ch);
    }
  }

  close(): Promise<void> {
    this.channels.clear();
    return Promise.resolve();
  }

  /** Where the history of a channel not in memory starts: the server's start, or its eviction. */
  private floorFor(channel: string): number {
    return Math.max(this.options.startTime, this.evicted[evictedSlot(channel)]!);
  }

  /** The channel, created when absent. */
  private open(channel: string): Channel {
    let ch = this.channels.get(channel);
    if (ch === undefined) {
      ch = new Channel(channel, this.floorFor(channel), Date.now());
      this.channels.set(channel, ch);
      this.used += CHANNEL_COST + channel.length * 2;
      if (this.used > this.options.memoryBudget) this.enforceBudget(ch);
    }
    return ch;
  }

  /**
   * The channel, created when absent, marked written. It moves to the most
   * recently written end at most once per REORDER_MS: re-inserting into the
   * Map on every put showed in profiles, and eviction and the memory policy
   * only need the order to within a second.
   */
  private touch(channel: string, now: number): Channel {
    const ch = this.channels.get(channel);
    if (ch === undefined) return this.open(channel);
    if (now - ch.lastWrite >= REORDER_MS) {
      this.channels.delete(channel);
      this.channels.set(channel, ch);
    }
    ch.lastWrite = now;
    return ch;
  }

  private dropOldest(ch: Channel): void {
    ch.floor = ch.ring.timeAt(0);
    const body = ch.ring.shift();
    ch.bytes -= body.length;
    this.used -= body.length + MESSAGE_COST;
    this.messages--;
  }

  private evict(ch: Channel): void {
    const slot = evictedSlot(ch.name);
    if (ch.time > this.evicted[slot]!) this.evicted[slot] = ch.time;
    this.used -= ch.bytes + ch.ring.length * MESSAGE_COST + CHANNEL_COST + ch.name.length * 2;
    this.messages -= ch.ring.length;
    this.channels.delete(ch.name);
  }

  /** Frees the least recently written channels' oldest messages first; `current`, being written, goes last. */
  private enforceBudget(current: Channel): void {
    for (const ch of this.channels.values()) {
      if (ch === current) continue;
      while (ch.ring.length > 0 && this.used > this.options.memoryBudget) this.dropOldest(ch);
      if (ch.ring.length === 0 && !ch.watched) this.evict(ch);
      if (this.used <= this.options.memoryBudget) return;
    }
    while (current.ring.length > 1 && this.used > this.options.memoryBudget) this.dropOldest(current);
  }
}

function evictedSlot(channel: string): number {
  return Math.imul(hashChannel(channel), 0x9e3779b1) >>> (32 - 14);
}
