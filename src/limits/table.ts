/**
 * The per-client table shared by every thread (--rate-limit,
 * --max-connections-per-ip): one SharedArrayBuffer, made by the main thread
 * and handed to each worker, so that an address has one budget on the
 * server, not one per thread the kernel happens to spread its connections
 * over.
 *
 * Open addressing over a fixed number of entries (--limit-table-size), keyed
 * by the address's four words, probing at most PROBES entries from the
 * address's hash (seeded per process, so that nobody can pick addresses that
 * collide). Each entry has its own lock word (Atomics.compareExchange); an
 * entry is written only under its lock, and its key only under the table's
 * insert lock too, so a look-up never sees a half-written key. Entries are
 * never emptied, only reused: an entry whose address has no connection open
 * and a full bucket (it would behave exactly as a new one) is taken over by
 * the next new address that probes it, so probe chains never break.
 *
 * Token bucket in fixed point: milli-tokens in an Int32 (a request costs
 * 1000), refilled at --rate-limit milli-tokens per millisecond of the shared
 * clock (performance.timeOrigin + performance.now(), the same in every
 * thread), up to --rate-burst tokens. The time of the last refill is a
 * Float64 beside the entries.
 *
 * When no entry is free within PROBES of an address's hash, the address is
 * not tracked: its requests and connections are let through (and counted as
 * untracked). That fails open on purpose: the table fills only when more
 * addresses than it holds are active at once, which an attacker controlling
 * that many addresses (an IPv6 /64 holds 2^64) can always arrange, and
 * failing closed would then let them lock every new client out; a
 * per-address limit cannot stop such an attacker in any case.
 */
import { performance } from 'node:perf_hooks';

/** Int32 words per entry: lock, state, four key words, milli-tokens, connections. */
const WORDS = 8;
const LOCK = 0;
const STATE = 1;
const KEY = 2;
const TOKENS = 6;
const CONNS = 7;
const LIVE = 1;
/** Entries probed from an address's hash before the table counts as full for it. */
export const PROBES = 32;
const HEADER_BYTES = 16;
/** Header words: the insert lock, the hash seed, whether a connection was refused since the last count. */
const INSERT_LOCK = 0;
const SEED = 1;
const REFUSED = 2;
const MILLI = 1000;

/** take() and openConnection(): the address could not be given an entry (the table is full around its hash); let through. */
export const UNTRACKED = -1;

export function tableBytes(size: number): number {
  return HEADER_BYTES + size * WORDS * 4 + size * 8;
}

/** The shared buffer for `size` entries, with a random hash seed (main thread, once). */
export function createLimitBuffer(size: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(tableBytes(size));
  new Int32Array(buffer, 0, 4)[SEED] = (Math.random() * 0x100000000) | 0;
  return buffer;
}

export interface BucketSettings {
  /** Tokens (requests) per second; 0: no rate limit. */
  rate: number;
  /** Bucket size in tokens. */
  burst: number;
}

/** This thread's origin (each thread loads its own copy of this module); `performance` imported, not the lazy global (see engine/clock.ts). */
const ORIGIN = performance.timeOrigin;

export function sharedNow(): number {
  return ORIGIN + performance.now();
}

export class LimitTable {
  private readonly header: Int32Array;
  private readonly words: Int32Array;
  private readonly times: Float64Array;
  readonly size: number;
  private readonly seed: number;
  /** Milli-tokens per millisecond: the rate in tokens per second. */
  private readonly rate: number;
  private readonly capacity: number;

  constructor(buffer: SharedArrayBuffer, bucket: BucketSettings) {
    this.size = (buffer.byteLength - HEADER_BYTES) / (WORDS * 4 + 8);
    this.header = new Int32Array(buffer, 0, 4);
    this.words = new Int32Array(buffer, HEADER_BYTES, this.size * WORDS);
    this.times = new Float64Array(buffer, HEADER_BYTES + this.size * WORDS * 4, this.size);
    this.seed = this.header[SEED]!;
    this.rate = bucket.rate;
    this.capacity = bucket.rate === 0 ? 0 : bucket.burst * MILLI;
  }

  /**
   * Takes a token for a request from this address at `now` (sharedNow()).
   * Returns 0 when taken, the milliseconds until a token will be there when
   * the bucket is empty, or UNTRACKED.
   */
  take(a: number, b: number, c: number, d: number, now: number): number {
    const entry = this.find(a, b, c, d, now);
    if (entry < 0) return UNTRACKED;
    const base = entry * WORDS;
    const tokens = this.refill(entry, now);
    let wait = 0;
    if (tokens >= MILLI) this.words[base + TOKENS] = tokens - MILLI;
    else wait = (MILLI - tokens) / this.rate;
    Atomics.store(this.words, base + LOCK, 0);
    return wait;
  }

  /**
   * A connection opening from this address: counted and 1 returned when the
   * address has fewer than `max` open, 0 (not counted) when it has `max`, or
   * UNTRACKED.
   */
  openConnection(a: number, b: number, c: number, d: number, max: number, now: number): number {
    const entry = this.find(a, b, c, d, now);
    if (entry < 0) return UNTRACKED;
    const at = entry * WORDS + CONNS;
    const allowed = this.words[at]! < max;
    if (allowed) this.words[at]!++;
    Atomics.store(this.words, entry * WORDS + LOCK, 0);
    if (!allowed) Atomics.store(this.header, REFUSED, 1);
    return allowed ? 1 : 0;
  }

  /** Whether a connection was refused since the last call (the main thread's cue to count again soon). */
  takeRefusedNote(): boolean {
    return Atomics.exchange(this.header, REFUSED, 0) === 1;
  }

  /**
   * Sets every entry's connection count from a count of the open
   * connections (the main thread's, see connection-count.ts), by the
   * address's words joined with commas; addresses not in `counts` have none.
   */
  setConnections(counts: ReadonlyMap<string, number>): void {
    const w = this.words;
    for (let entry = 0; entry < this.size; entry++) {
      const base = entry * WORDS;
      if (Atomics.load(w, base + STATE) !== LIVE) continue;
      this.lock(base);
      const key = `${w[base + KEY]},${w[base + KEY + 1]},${w[base + KEY + 2]},${w[base + KEY + 3]}`;
      w[base + CONNS] = counts.get(key) ?? 0;
      Atomics.store(w, base + LOCK, 0);
    }
  }

  /** Tests and metrics: the open connections counted for an address, or undefined when it has no entry. */
  connectionsOf(a: number, b: number, c: number, d: number): number | undefined {
    for (let i = 0; i < PROBES; i++) {
      const base = this.slot(a, b, c, d, i) * WORDS;
      if (Atomics.load(this.words, base + STATE) !== LIVE) return undefined;
      if (this.keyIs(base, a, b, c, d)) return Atomics.load(this.words, base + CONNS);
    }
    return undefined;
  }

  /** Tokens now in the entry's bucket, refilled up to `now`; the entry's lock is held. */
  private refill(entry: number, now: number): number {
    const at = entry * WORDS + TOKENS;
    const tokens = this.words[at]!;
    if (tokens >= this.capacity) {
      this.times[entry] = now;
      return tokens;
    }
    const elapsed = now - this.times[entry]!;
    if (!(elapsed > 0)) return tokens;
    const gained = elapsed * this.rate;
    if (tokens + gained >= this.capacity) {
      this.words[at] = this.capacity;
      this.times[entry] = now;
      return this.capacity;
    }
    // Whole milli-tokens only, and the clock advanced by just the time they took: no fraction is lost between requests.
    const whole = Math.floor(gained);
    this.words[at] = tokens + whole;
    this.times[entry]! += whole / this.rate;
    return tokens + whole;
  }

  private slot(a: number, b: number, c: number, d: number, probe: number): number {
    let h = this.seed ^ Math.imul(a, 0x9e3779b1) ^ Math.imul(b ^ 0x5bd1e995, 0x85ebca6b) ^ Math.imul(c ^ 0x1b873593, 0xc2b2ae35) ^ Math.imul(d, 0x27d4eb2f);
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d);
    h ^= h >>> 15;
    return ((h >>> 0) + probe) % this.size;
  }

  private keyIs(base: number, a: number, b: number, c: number, d: number): boolean {
    const w = this.words;
    return w[base + KEY + 3] === d && w[base + KEY + 2] === c && w[base + KEY + 1] === b && w[base + KEY] === a;
  }

  private lock(base: number): void {
    while (Atomics.compareExchange(this.words, base + LOCK, 0, 1) !== 0) {
      // Held by another thread for a few dozen instructions: spin.
    }
  }

  /**
   * The address's entry, with its lock held; -1 when it has none and none
   * can be given within PROBES. The common case, a known address, takes
   * one lock per entry probed and no other.
   */
  private find(a: number, b: number, c: number, d: number, now: number): number {
    const w = this.words;
    for (let i = 0; i < PROBES; i++) {
      const entry = this.slot(a, b, c, d, i);
      const base = entry * WORDS;
      if (Atomics.load(w, base + STATE) !== LIVE) break;
      this.lock(base);
      if (this.keyIs(base, a, b, c, d)) return entry;
      Atomics.store(w, base + LOCK, 0);
    }
    return this.insert(a, b, c, d, now);
  }

  /**
   * Under the insert lock, the only place keys are written (so that two
   * threads cannot both add one address, and keys read here without an
   * entry's lock are whole): looks again, then takes the first entry that
   * is empty or idle for this address.
   */
  private insert(a: number, b: number, c: number, d: number, now: number): number {
    const w = this.words;
    while (Atomics.compareExchange(this.header, INSERT_LOCK, 0, 1) !== 0) {
      // Only new addresses come here.
    }
    let found = -1;
    for (let i = 0; i < PROBES; i++) {
      const entry = this.slot(a, b, c, d, i);
      const base = entry * WORDS;
      if (w[base + STATE] !== LIVE) break;
      if (this.keyIs(base, a, b, c, d)) {
        this.lock(base);
        found = entry;
        break;
      }
    }
    for (let i = 0; i < PROBES && found < 0; i++) {
      const entry = this.slot(a, b, c, d, i);
      const base = entry * WORDS;
      this.lock(base);
      if (w[base + STATE] !== LIVE || (w[base + CONNS] === 0 && this.refill(entry, now) >= this.capacity)) {
        w[base + KEY] = a;
        w[base + KEY + 1] = b;
        w[base + KEY + 2] = c;
        w[base + KEY + 3] = d;
        w[base + TOKENS] = this.capacity;
        w[base + CONNS] = 0;
        this.times[entry] = now;
        Atomics.store(w, base + STATE, LIVE);
        found = entry;
      } else {
        Atomics.store(w, base + LOCK, 0);
      }
    }
    Atomics.store(this.header, INSERT_LOCK, 0);
    return found;
  }
}
