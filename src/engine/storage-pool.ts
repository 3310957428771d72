/**
 * Storage for the channels' messages and indexes (message-ring.ts): blocks
 * whose size is a power of two from 64 bytes up, carved out of a few large
 * slabs by a buddy allocator.
 *
 * Why slabs: every Buffer allocated on its own is memory V8 counts as
 * external, and past about 64 MB of it allocated since the last full
 * collection V8 runs one (about 6 ms, all requests of the thread waiting).
 * While 1,000 channels filled their buffers, each doubling of a channel's
 * storage allocated a Buffer and dropped one: a full collection every 2-3 s,
 * and a put p99 of 4.3 ms against Nchan's 1.0 (issue 14). Dropped Buffers
 * also held RSS until collected: under a flood of large puts to new channels,
 * each evicting an old one, RSS settled at idle + 440 MB for a 256 MB budget.
 * A block given back here is taken by the next channel that needs one, at
 * once: nothing is left for the collector.
 *
 * The slabs are allocated all at once, up to the pool's limit, as one
 * Buffer (a segment; one per GiB), when the pool is made (the engine, at the
 * thread's start). Allocated one by one as storage grew, they still counted
 * as external memory growing, and the full collections stayed (every
 * 1.5-3 s while 1,000 channels filled, 3-4 ms each, and incremental marking
 * steps up to 6 ms). Allocated at the first put, as 80 Buffers, each past
 * V8's limit brought a full collection of its own before the put was
 * answered (a fan-out's p99 went from 50 to 105 ms); as one, a single
 * collection, still in front of the first fan-out (60 ms). At the start
 * it costs nothing a request waits for. Memory pages are only resident once
 * written to: RSS follows what channels have stored, up to the limit, and
 * stays there (blocks given back stay with the pool), so that a flood's
 * memory is there for the next.
 *
 * The buddy scheme: a free block of 2^k units merges with its neighbour of
 * the same size (its buddy, at its offset XOR 2^k units) when that one is free
 * too, so storage given back in small blocks serves large ones again. Each
 * slab has one byte per 64-byte unit: k + 1 where a free block of 2^k units
 * starts, else 0. Free blocks are found through one stack of handles per
 * size; an entry whose block was merged or taken meanwhile is skipped when
 * met, and a stack that grows stale entries is compacted.
 *
 * Storage larger than a slab, or wanted past the pool's limit, is a Buffer
 * of its own, left to the collector when given back.
 */
import { Buffer } from 'node:buffer';

const UNIT_BITS = 6;
const UNIT = 1 << UNIT_BITS;
/** log2 of the slab size in units: 4 MiB slabs. */
const SLAB_ORDER = 16;
const SLAB_UNITS = 1 << SLAB_ORDER;
export const SLAB_BYTES = SLAB_UNITS * UNIT;
/** Slabs per segment: 1 GiB, so that a large budget is not one allocation the system may refuse. */
const SEGMENT_SLABS = 256;
const EMPTY = Buffer.alloc(0);

/** The storage size that holds `bytes`: what the pool hands out and takes back. */
export function storageFor(bytes: number): number {
  if (bytes <= UNIT) return bytes === 0 ? 0 : UNIT;
  return bytes <= 2 ** 30 ? 1 << (32 - Math.clz32(bytes - 1)) : 2 ** Math.ceil(Math.log2(bytes));
}

/** k such that a block of `size` bytes (a storageFor size up to a slab) is 2^k units. */
function orderOf(size: number): number {
  return 31 - Math.clz32(size >>> UNIT_BITS);
}

interface Slab {
  readonly bytes: Buffer;
  /** Per unit: k + 1 where a free block of 2^k units starts, else 0. */
  readonly free: Uint8Array;
}

export class StoragePool {
  private readonly slabs: Slab[] = [];
  /** Per segment (the ArrayBuffer its slabs share): the index of its first slab. */
  private readonly segments = new Map<ArrayBufferLike, number>();
  /** Per order: handles (slab * SLAB_UNITS + unit) of free blocks, with stale entries among them. */
  private readonly stacks: number[][] = Array.from({ length: SLAB_ORDER + 1 }, () => []);
  /** Per order: free blocks there are (each has at least one entry in its stack). */
  private readonly counts = new Uint32Array(SLAB_ORDER + 1);
  private readonly maxSlabs: number;

  /** `limit`: bytes of slabs (rounded down to whole ones); 0 gives every block a Buffer of its own. */
  constructor(limit: number) {
    this.maxSlabs = Math.floor(limit / SLAB_BYTES);
    this.allocateSlabs();
  }

  /** Bytes of slabs allocated. */
  get slabBytes(): number {
    return this.slabs.length * SLAB_BYTES;
  }

  /** Storage of exactly `size` bytes (a size storageFor gave), its contents undefined. */
  take(size: number): Buffer {
    if (size === 0) return EMPTY;
    if (size <= SLAB_BYTES) {
      const handle = this.block(orderOf(size));
      if (handle >= 0) {
        const start = (handle & (SLAB_UNITS - 1)) << UNIT_BITS;
        return this.slabs[Math.floor(handle / SLAB_UNITS)]!.bytes.subarray(start, start + size);
      }
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Takes back storage that take() gave and nothing uses any more. */
  give(buffer: Buffer): void {
    const first = this.segments.get(buffer.buffer);
    if (first === undefined) return;
    const offset = buffer.byteOffset;
    const s = first + Math.floor(offset / SLAB_BYTES);
    this.release(s, (offset % SLAB_BYTES) >>> UNIT_BITS, orderOf(buffer.length));
  }

  /** A free block of 2^order units, split from a larger one if need be: its handle, or -1 when there is none. */
  private block(order: number): number {
    let k = order;
    while (k <= SLAB_ORDER && this.counts[k] === 0) k++;
    if (k > SLAB_ORDER) return -1;
    const handle = this.pop(k);
    const s = Math.floor(handle / SLAB_UNITS);
    const unit = handle & (SLAB_UNITS - 1);
    const free = this.slabs[s]!.free;
    while (k > order) {
      k--;
      const buddy = unit + (1 << k);
      free[buddy] = k + 1;
      this.counts[k]!++;
      this.stacks[k]!.push(s * SLAB_UNITS + buddy);
    }
    return handle;
  }

  /** Takes a free block of 2^k units off its stack; there is one (counts[k] > 0). */
  private pop(k: number): number {
    const stack = this.stacks[k]!;
    for (;;) {
      const handle = stack.pop()!;
      const free = this.slabs[Math.floor(handle / SLAB_UNITS)]!.free;
      const unit = handle & (SLAB_UNITS - 1);
      if (free[unit] === k + 1) {
        free[unit] = 0;
        this.counts[k]!--;
        return handle;
      }
    }
  }

  private release(s: number, start: number, order: number): void {
    const free = this.slabs[s]!.free;
    let unit = start;
    let k = order;
    while (k < SLAB_ORDER) {
      const buddy = unit ^ (1 << k);
      if (free[buddy] !== k + 1) break;
      free[buddy] = 0;
      this.counts[k]!--;
      unit &= ~(1 << k);
      k++;
    }
    free[unit] = k + 1;
    this.counts[k]!++;
    const stack = this.stacks[k]!;
    stack.push(s * SLAB_UNITS + unit);
    if (stack.length > 2 * this.counts[k]! + 64) this.compact(k);
  }

  /** Keeps one entry per free block of 2^k units: merges and takes leave stale ones behind. */
  private compact(k: number): void {
    const stack = this.stacks[k]!;
    const kept: number[] = [];
    for (const handle of stack) {
      const free = this.slabs[Math.floor(handle / SLAB_UNITS)]!.free;
      const unit = handle & (SLAB_UNITS - 1);
      if (free[unit] !== k + 1) continue;
      free[unit] = 0xff; // seen: a second entry of the same block is not kept
      kept.push(handle);
    }
    for (const handle of kept) this.slabs[Math.floor(handle / SLAB_UNITS)]!.free[handle & (SLAB_UNITS - 1)] = k + 1;
    this.stacks[k] = kept;
  }

  /** Every slab, each one free block. */
  private allocateSlabs(): void {
    for (let first = 0; first < this.maxSlabs; first += SEGMENT_SLABS) {
      const segment = Buffer.allocUnsafeSlow(Math.min(SEGMENT_SLABS, this.maxSlabs - first) * SLAB_BYTES);
      this.segments.set(segment.buffer, first);
      for (let start = 0; start < segment.length; start += SLAB_BYTES) {
        const slab: Slab = { bytes: segment.subarray(start, start + SLAB_BYTES), free: new Uint8Array(SLAB_UNITS) };
        slab.free[0] = SLAB_ORDER + 1;
        this.stacks[SLAB_ORDER]!.push(this.slabs.length * SLAB_UNITS);
        this.slabs.push(slab);
      }
    }
    this.counts[SLAB_ORDER] = this.maxSlabs;
  }
}
