/**
 * The embedded default engine: every channel in this thread's memory, its
 * messages as UTF-8 bytes outside the JavaScript heap (message-ring.ts),
 * bounded by message count and bytes.
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
 * Watching stores nothing: a get waiting on a channel that is not in memory
 * (never written, or evicted) leaves only its name in `watchedAbsent`, not a
 * Channel charged to the budget, and the name goes with the owner's unwatch
 * (the channel's last waiting get gone). The first append creates the Channel
 * already watched. Otherwise gets on distinct never-written names each created
 * a channel that then lived for the whole TTL (issue 13: 200,000 gets with
 * timeout=1 left 200,000 channels, 64 MB charged to the budget). How many
 * names can be watched at once is bounded by --max-waiting, since each has a
 * get waiting (see waiters/wait-room.ts, which unwatches such a channel as
 * soon as its last get leaves).
 *
 * Memory policy: channels are kept in least-recently-written order (to within
 * a second). A channel with no new message for `channelTtlMs` and no watcher
 * is evicted. The budget counts what is allocated, not what is used: each
 * channel's storage and index as allocated, plus an estimate of its objects
 * on the heap. When the thread's share is exceeded, the least recently
 * written channels lose their oldest messages first and give their storage
 * back, and emptied unwatched channels are evicted. A channel that must
 * give storage back loses messages until at most half of its storage is in
 * use, so that copying what it keeps into smaller storage costs O(1) per
 * byte freed (losing one message at a time copied the whole channel for
 * every put once the budget was reached).
 */
import { Buffer } from 'node:buffer';
import { nextTime, nowMicros } from './clock.js';
import type { Engine, EngineStats, MessageListener, ReadLimits, ReadResult } from './engine.js';
import { MessageRing } from './message-ring.js';
import { StoragePool } from './storage-pool.js';
import { hashChannel } from './channel-hash.js';

export interface MemoryEngineOptions {
  /** Messages kept per channel. */
  bufferSize: number;
  /** UTF-8 bytes of JSON-encoded messages kept per channel. */
  bufferBytes: number;
  channelTtlMs: number;
  /** This thread's share of the memory budget, in bytes. */
  memoryBudget: number;
  /** Wall-clock microseconds at which the server started. */
  startTime: number;
}

/** Estimated heap overhead per channel: its objects, its Map entry, its Buffer and typed arrays' headers. */
const CHANNEL_COST = 400;
const EVICTED_SLOTS = 1 << 14;
const REORDER_MS = 1000;
const NONE = Buffer.alloc(0);

/**
 * A channel is its ring of messages, with its name, time and floor: one object
 * rather than two, since a put over many channels pays a cache miss for each
 * object it reaches (append's self time was 340 ns over 1,000 channels against
 * 70 on one, in a profile).
 */
class Channel extends MessageRing {
  /** Current time: the last message's, or the floor when none was put since. */
  time: number;
  lastWrite: number;
  watched = false;
  constructor(
    readonly name: string,
    public floor: number,
    now: number,
    pool: StoragePool,
  ) {
    super(pool);
    this.time = floor;
    this.lastWrite = now;
  }
}

export class MemoryEngine implements Engine {
  readonly appendsAtOnce = true;
  /** Iteration order is least recently written first (re-inserted on every append). */
  private readonly channels = new Map<string, Channel>();
  private readonly evicted = new Float64Array(EVICTED_SLOTS);
  /** Watched channels not in `channels`: a name, until their first append or unwatch. A name is in one or the other, never both. */
  private readonly watchedAbsent = new Set<string>();
  private listener: MessageListener = () => {};
  /** Bytes charged to the budget. */
  private used = 0;
  /**
   * Where the channels' storage comes from and goes back to. Its slabs
   * exceed the budget by a quarter, the room the buddy scheme needs for
   * blocks split and partly free (charging free blocks would make giving
   * storage back free nothing); past that, storage is allocated on its own.
   */
  private readonly pool: StoragePool;
  private messages = 0;

  constructor(private readonly options: MemoryEngineOptions) {
    this.pool = new StoragePool(options.memoryBudget * 1.25);
  }

  setListener(listener: MessageListener): void {
    this.listener = listener;
  }

  append(channel: string, body: string): number {
    const now = nowMicros();
    const ch = this.touch(channel, now / 1000);
    const held = ch.held;
    const time = nextTime(ch.time, now);
    ch.push(time, body);
    ch.time = time;
    this.messages++;
    while (ch.length > this.options.bufferSize || (ch.bytes > this.options.bufferBytes && ch.length > 1)) {
      this.dropOldest(ch);
    }
    this.used += ch.held - held;
    if (ch.watched) this.listener(channel, time, body);
    if (this.used > this.options.memoryBudget) this.enforceBudget(ch);
    return time;
  }

  currentTime(channel: string): number {
    return this.channels.get(channel)?.time ?? this.floorFor(channel);
  }

  /**
   * Reading never creates a channel (only append does), so a flood of syncs
   * or gets on distinct channel ids costs no stored channel.
   */
  read(channel: string, since: number, limits: ReadLimits, times?: number[]): ReadResult {
    const ch = this.channels.get(channel);
    if (ch === undefined) {
      const floor = this.floorFor(channel);
      return { time: Math.max(floor, since), count: 0, json: NONE, missed: since >= 0 && since < floor };
    }
    let first: number;
    let missed = false;
    if (since < 0) {
      // No cursor: messages stamped from the get's arrival on were put after it arrived, even those stored before it got here.
      const arrival = -since;
      first = ch.time < arrival ? ch.length : ch.indexAfter(arrival - 1);
      if (first === ch.length) return { time: ch.time, count: 0, json: NONE, missed };
    } else {
      missed = since < ch.floor;
      first = ch.indexAfter(since);
      if (first === ch.length) return { time: Math.max(ch.time, since), count: 0, json: NONE, missed };
    }
    const last = Math.min(ch.length, first + limits.maxMessages);
    let end = first + 1;
    let size = ch.byteLengthAt(first);
    while (end < last && (size += ch.byteLengthAt(end)) <= limits.maxBytes) end++;
    if (times !== undefined) for (let i = first; i < end; i++) times.push(ch.timeAt(i));
    return { time: ch.timeAt(end - 1), count: end - first, json: ch.json(first, end), missed };
  }

  /**
   * A channel in memory is marked watched (so never evicted); one that is not
   * is only remembered by name. Its time stays what currentTime() gave (the
   * floor), so the waiting get's cursor is below the first append's time.
   */
  watch(channel: string): void {
    const ch = this.channels.get(channel);
    if (ch !== undefined) ch.watched = true;
    else this.watchedAbsent.add(channel);
  }

  unwatch(channel: string): void {
    const ch = this.channels.get(channel);
    if (ch !== undefined) ch.watched = false;
    else this.watchedAbsent.delete(channel);
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
    this.watchedAbsent.clear();
    return Promise.resolve();
  }

  /** Where the history of a channel not in memory starts: the server's start, or its eviction. */
  private floorFor(channel: string): number {
    return Math.max(this.options.startTime, this.evicted[evictedSlot(channel)]!);
  }

  /** The channel, created when absent (by an append: the only caller), already watched if gets wait on it. */
  private open(channel: string): Channel {
    let ch = this.channels.get(channel);
    if (ch === undefined) {
      ch = new Channel(channel, this.floorFor(channel), Date.now(), this.pool);
      ch.watched = this.watchedAbsent.delete(channel);
      this.channels.set(channel, ch);
      // Charged here, the budget enforced by append once the message is in: a new channel then takes the storage that an evicted one gives back.
      this.used += CHANNEL_COST + channel.length * 2 + ch.held;
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

  /** Drops the oldest message; its storage stays allocated, for the next (see giveBack). */
  private dropOldest(ch: Channel): void {
    ch.floor = ch.timeAt(0);
    ch.shift();
    this.messages--;
  }

  /**
   * Drops `ch`'s oldest messages, keeping at least `keep`, until giving its
   * unused storage back brings usage within the budget and at most half of
   * its storage is in use; then gives it back.
   */
  private giveBack(ch: Channel, keep: number): void {
    const budget = this.options.memoryBudget;
    while (ch.length > keep && (this.used - ch.held + ch.heldTrimmed > budget || ch.heldTrimmed * 2 > ch.held)) {
      this.dropOldest(ch);
    }
    const held = ch.held;
    ch.trim();
    this.used += ch.held - held;
  }

  private evict(ch: Channel): void {
    const slot = evictedSlot(ch.name);
    if (ch.time > this.evicted[slot]!) this.evicted[slot] = ch.time;
    this.used -= ch.held + CHANNEL_COST + ch.name.length * 2;
    this.messages -= ch.length;
    ch.release();
    this.channels.delete(ch.name);
  }

  /** Frees the least recently written channels' oldest messages first; `current`, being written, goes last. */
  private enforceBudget(current: Channel): void {
    for (const ch of this.channels.values()) {
      if (ch === current) continue;
      this.giveBack(ch, 0);
      if (ch.length === 0 && !ch.watched) this.evict(ch);
      if (this.used <= this.options.memoryBudget) return;
    }
    this.giveBack(current, 1);
  }
}

function evictedSlot(channel: string): number {
  return Math.imul(hashChannel(channel), 0x9e3779b1) >>> (32 - 14);
}
