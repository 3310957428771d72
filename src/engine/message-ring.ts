/**
 * The messages of one channel, oldest first: their times, and their JSON
 * text as UTF-8 bytes in one Buffer, outside the JavaScript heap.
 *
 * Why bytes: a message kept as a string is an object the garbage collector
 * traces and, being kept, copies out of the young generation; under a flood
 * of puts every scavenge copied every message stored since the last one
 * (pauses of 4-16 ms every ~100 ms, the put p99 of issue 14). Here a put
 * leaves nothing behind on the heap: its bytes are written into the
 * channel's Buffer, its time and position into typed arrays.
 *
 *   bytes:  [ ... free ... | "a",  | "bc", | "d", | ... free ... ]
 *                          ^ first                ^ end
 *   each message is followed by a comma, so messages i..j read as one run
 *   of bytes, `m_i,...,m_j`, whose separators are already in place.
 *
 * Positions are logical (they only grow); `base` is the logical position of
 * bytes[0]. New bytes go at `end`; when they do not fit, the live bytes are
 * moved to the front (when that leaves a quarter of the storage free) or
 * into storage twice as large, so that moving costs O(1) per byte appended.
 * Dropping the oldest message only advances `first`: storage is given back
 * by trim(), which the engine calls when the memory budget asks for it, and
 * by release() when the channel goes. Storage and index come from, and go
 * back to, the engine's pool (storage-pool.ts).
 *
 * The index is a ring of slots, a power of two, that starts at 4 and
 * doubles (most channels hold few messages); a slot is two Float64s side by
 * side, a time and a start position: one object per channel, and one cache
 * line per put, rather than two of each. Times are strictly increasing, so a
 * cursor is found by binary search.
 */

import { Buffer } from 'node:buffer';
import { type StoragePool, storageFor } from './storage-pool.js';

const SEPARATOR = 0x2c; // ','
const MIN_INDEX = 4;

export class MessageRing {
  /** Per slot: [2 * slot] the message's time, [2 * slot + 1] the logical position of its first byte. */
  private index: Float64Array;
  /** The index's storage. */
  private indexStore: Buffer;
  private mask = MIN_INDEX - 1;
  /** Slot of the oldest message. */
  private head = 0;
  private count = 0;
  private store: Buffer;
  private base = 0;
  private first = 0;
  private end = 0;

  constructor(private readonly pool: StoragePool) {
    this.store = pool.take(0);
    this.indexStore = pool.take(MIN_INDEX * 16);
    this.index = float64s(this.indexStore);
  }

  get length(): number {
    return this.count;
  }

  /** UTF-8 bytes of the messages held, separators excluded. */
  get bytes(): number {
    return this.end - this.first - this.count;
  }

  /** Bytes this ring holds allocated: its storage and its index, used or not. */
  get held(): number {
    return this.store.length + this.index.length * 8;
  }

  /** What held would be after trim(). */
  get heldTrimmed(): number {
    return storageFor(this.end - this.first) + indexFor(this.count) * 16;
  }

  /** Appends `json` (one JSON value's text) at the newest end. */
  push(time: number, json: string): void {
    if (this.count * 2 === this.index.length) this.resizeIndex(this.index.length);
    let at = this.end - this.base;
    // A UTF-16 unit is at most 3 UTF-8 bytes: only near the end of the storage is the exact length needed.
    if (at + json.length * 3 + 1 > this.store.length) {
      const need = Buffer.byteLength(json) + 1;
      if (at + need > this.store.length) {
        this.makeRoom(need);
        at = this.end - this.base;
      }
    }
    const written = this.store.write(json, at);
    this.store[at + written] = SEPARATOR;
    const slot = (this.head + this.count) & this.mask;
    this.index[2 * slot] = time;
    this.index[2 * slot + 1] = this.end;
    this.end += written + 1;
    this.count++;
  }

  /** Drops the oldest message; call only when length > 0. */
  shift(): void {
    this.head = (this.head + 1) & this.mask;
    this.count--;
    this.first = this.count === 0 ? this.end : this.index[2 * this.head + 1]!;
  }

  timeAt(index: number): number {
    return this.index[2 * ((this.head + index) & this.mask)]!;
  }

  /** UTF-8 bytes of message `index`. */
  byteLengthAt(index: number): number {
    return this.startAfter(index) - this.startOf(index) - 1;
  }

  /**
   * Messages `from` to `to` - 1 (from < to) as the bytes they are stored as,
   * `m_from,...,m_to-1`: a view of the storage, valid until the ring next
   * changes. An answer splices it in as it is; nothing is decoded.
   */
  json(from: number, to: number): Buffer {
    return this.store.subarray(this.startOf(from) - this.base, this.startAfter(to - 1) - this.base - 1);
  }

  /** Index of the first message with time > since, or length when there is none. */
  indexAfter(since: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.timeAt(mid) <= since) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Gives back the storage the messages held do not use (all of it when there are none). */
  trim(): void {
    const live = this.end - this.first;
    const size = storageFor(live);
    if (size < this.store.length) this.moveTo(this.pool.take(size));
    const index = indexFor(this.count);
    if (index * 2 < this.index.length) this.resizeIndex(index);
  }

  /** Logical position just past message `index` and its separator. */
  private startAfter(index: number): number {
    return index + 1 < this.count ? this.startOf(index + 1) : this.end;
  }

  private startOf(index: number): number {
    return this.index[2 * ((this.head + index) & this.mask) + 1]!;
  }

  private makeRoom(need: number): void {
    const live = this.end - this.first;
    const capacity = this.store.length;
    if ((live + need) * 4 <= capacity * 3) this.moveTo(this.store);
    else this.moveTo(this.pool.take(storageFor(Math.max(capacity * 2, live + need))));
  }

  /** Gives the storage and the index back to the pool: the channel is gone, and the ring must not be used again. */
  release(): void {
    this.pool.give(this.store);
    this.pool.give(this.indexStore);
    this.store = this.pool.take(0);
  }

  /** Moves the live bytes to the front of `target` (the current storage itself, or new storage). */
  private moveTo(target: Buffer): void {
    const from = this.first - this.base;
    const to = this.end - this.base;
    if (target === this.store) target.copyWithin(0, from, to);
    else {
      this.store.copy(target, 0, from, to);
      this.pool.give(this.store);
    }
    this.store = target;
    this.base = this.first;
  }

  private resizeIndex(capacity: number): void {
    const store = this.pool.take(capacity * 16);
    const index = float64s(store);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) & this.mask;
      index[2 * i] = this.index[2 * slot]!;
      index[2 * i + 1] = this.index[2 * slot + 1]!;
    }
    this.pool.give(this.indexStore);
    this.indexStore = store;
    this.index = index;
    this.mask = capacity - 1;
    this.head = 0;
  }
}

/** `store` as Float64s: the pool's blocks start at multiples of 64 bytes. */
function float64s(store: Buffer): Float64Array {
  return new Float64Array(store.buffer, store.byteOffset, store.length / 8);
}

function indexFor(count: number): number {
  let capacity = MIN_INDEX;
  while (capacity < count) capacity *= 2;
  return capacity;
}
