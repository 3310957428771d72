/**
 * The engine: the MessageRing of a channel's messages, the clock that assigns
 * message times, the channel-to-thread routing, and the MemoryEngine built on
 * them, and the Redis engine's recovery of a node's connections together.
(One file rather than five: every test file pays the TypeScript
 * loader's start-up cost of about two seconds.)
 */
import t, { type Test } from 'tap';
import { MessageRing } from '../../src/engine/message-ring.js';
import { SLAB_BYTES, StoragePool, storageFor } from '../../src/engine/storage-pool.js';
import { nextTime, nowMicros } from '../../src/engine/clock.js';
import { hashChannel } from '../../src/engine/channel-hash.js';
import { ownerOf } from '../../src/threads/router.js';
import { MemoryEngine, type MemoryEngineOptions } from '../../src/engine/memory-engine.js';
import type { ReadLimits } from '../../src/engine/engine.js';
import { readTexts } from '../helpers/read-texts.js';
import { NodeRecovery, ownRecoveryCell } from '../../src/engine/redis/recovery.js';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

// ---- message-ring ----------------------------------------------------------
/** The ring's private state, read for the layout the design promises (index growth, storage moves). */
function inside(ring: MessageRing): { index: Float64Array; store: Buffer; base: number; first: number; end: number } {
  return ring as unknown as { index: Float64Array; store: Buffer; base: number; first: number; end: number };
}

/** Every (time, body) pair in logical order. */
function contents(ring: MessageRing): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < ring.length; i++) out.push([ring.timeAt(i), ring.json(i, i + 1).toString()]);
  return out;
}

/** The live bytes as stored: every message followed by its comma. */
function stored(ring: MessageRing): string {
  const r = inside(ring);
  return r.store.toString('utf8', r.first - r.base, r.end - r.base);
}

t.test('MessageRing: a new ring is empty and holds only its index', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  t.equal(ring.length, 0);
  t.equal(ring.bytes, 0);
  t.equal(ring.held, 4 * 16, 'four index slots of two Float64s, no storage');
  t.equal(ring.indexAfter(-1), 0);
  t.equal(ring.indexAfter(Number.MAX_SAFE_INTEGER), 0);
});

t.test('MessageRing: push keeps order; each message is its UTF-8 bytes and a comma, so a run reads as a JSON list body', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  ring.push(10, '"a"');
  ring.push(20, '{"b":[1,2]}');
  ring.push(30, '3');
  t.same(contents(ring), [
    [10, '"a"'],
    [20, '{"b":[1,2]}'],
    [30, '3'],
  ]);
  t.equal(stored(ring), '"a",{"b":[1,2]},3,');
  t.same([ring.byteLengthAt(0), ring.byteLengthAt(1), ring.byteLengthAt(2)], [3, 11, 1]);
  t.equal(ring.bytes, 15, 'separators are not counted');
});

t.test('MessageRing: UTF-8 and U+2028 content round-trips, lengths are in bytes', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  const bodies = [JSON.stringify('€uro'), JSON.stringify('\u{1F600} emoji'), '"line\\u2028sep"', JSON.stringify('\u2028raw'), JSON.stringify('ünï')];
  bodies.forEach((body, i) => ring.push(i + 1, body));
  t.same(
    contents(ring).map(([, body]) => body),
    bodies,
  );
  bodies.forEach((body, i) => t.equal(ring.byteLengthAt(i), Buffer.byteLength(body), `bytes of message ${i}`));
  t.equal(
    ring.bytes,
    bodies.reduce((n, b) => n + Buffer.byteLength(b), 0),
  );
  t.equal(stored(ring), bodies.join(',') + ',');
});

t.test('MessageRing: the smallest JSON values (an empty string, an empty array) are stored and read back', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  ring.push(1, '""');
  ring.push(2, '[]');
  ring.push(3, '0');
  t.same(contents(ring), [
    [1, '""'],
    [2, '[]'],
    [3, '0'],
  ]);
  ring.shift();
  t.same(contents(ring), [
    [2, '[]'],
    [3, '0'],
  ]);
});

t.test('MessageRing: shift drops the oldest; an emptied ring is usable again', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  ring.push(1, '"one"');
  ring.push(2, '"two"');
  ring.shift();
  t.equal(ring.length, 1);
  t.same(contents(ring), [[2, '"two"']]);
  t.equal(ring.bytes, 5);
  ring.shift();
  t.equal(ring.length, 0);
  t.equal(ring.bytes, 0);
  t.equal(ring.indexAfter(0), 0);
  ring.push(4, '"four"');
  t.same(contents(ring), [[4, '"four"']]);
});

t.test('MessageRing: the index starts at 4 slots and doubles, keeping every message in order', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  const expected: Array<[number, string]> = [];
  for (let i = 1; i <= 100; i++) {
    ring.push(i * 10, `"m${i}"`);
    expected.push([i * 10, `"m${i}"`]);
    if (i === 4) t.equal(inside(ring).index.length / 2, 4, 'full at 4 without growing');
    if (i === 5) t.equal(inside(ring).index.length / 2, 8, 'grew to 8 on the fifth push');
  }
  t.equal(inside(ring).index.length / 2, 128);
  t.same(contents(ring), expected);
});

t.test('MessageRing: wrap-around: index slots are reused after shift, and growing a wrapped index unwraps it in order', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  for (let i = 1; i <= 4; i++) ring.push(i, `"m${i}"`);
  ring.shift();
  ring.shift();
  ring.shift(); // head at slot 3
  ring.push(5, '"m5"');
  ring.push(6, '"m6"');
  ring.push(7, '"m7"'); // full, wrapped
  t.equal(inside(ring).index.length / 2, 4, 'no growth while there is a free slot');
  t.equal(ring.indexAfter(5), 2);
  ring.push(8, '"m8"'); // grows
  t.equal(inside(ring).index.length / 2, 8);
  t.same(
    contents(ring).map(([time]) => time),
    [4, 5, 6, 7, 8],
  );
  t.equal(ring.indexAfter(6), 3);
  t.equal(stored(ring), '"m4","m5","m6","m7","m8",');
});

t.test('MessageRing: storage: moved to the front when a quarter is free, else doubled; never per message', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  const body = JSON.stringify('x'.repeat(14)); // 16 bytes, 17 with its comma
  ring.push(1, body);
  t.equal(inside(ring).store.length, 64, 'the first storage: one 64-byte unit');
  const first = inside(ring).store;
  ring.push(2, body);
  ring.push(3, body);
  t.equal(inside(ring).store, first, 'three messages (51 bytes) fit');
  ring.push(4, body);
  t.equal(inside(ring).store.length, 128, 'the fourth doubled it');
  const doubled = inside(ring).store;
  for (let i = 5; i <= 7; i++) ring.push(i, body); // 119 bytes used
  for (let i = 0; i < 5; i++) ring.shift(); // 34 live
  ring.push(8, body);
  t.equal(inside(ring).store, doubled, 'moved to the front of the same storage, not reallocated');
  t.equal(inside(ring).base, inside(ring).first, 'the oldest live byte is at the front');
  t.same(
    contents(ring).map(([time]) => time),
    [6, 7, 8],
  );
  t.equal(stored(ring), [body, body, body].join(',') + ',');
});

t.test('MessageRing: 64 KiB messages, and a message larger than the storage doubled', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  const big = JSON.stringify('é'.repeat(32 * 1024)); // 64 KiB + 2 bytes of UTF-8
  ring.push(1, '"small"');
  ring.push(2, big);
  t.ok(inside(ring).store.length >= 65_536 + 8 + 3, 'grew to fit it at once');
  ring.push(3, big);
  t.same(contents(ring), [
    [1, '"small"'],
    [2, big],
    [3, big],
  ]);
  t.equal(ring.byteLengthAt(1), 65_538);
  ring.shift();
  ring.shift();
  t.same(contents(ring), [[3, big]]);
});

t.test('MessageRing: trim gives back unused storage and index; everything when empty', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  for (let i = 1; i <= 40; i++) ring.push(i, JSON.stringify(`message ${i}`));
  for (let i = 0; i < 38; i++) ring.shift();
  const before = ring.held;
  t.ok(ring.heldTrimmed < before);
  const predicted = ring.heldTrimmed;
  ring.trim();
  t.equal(ring.held, predicted, 'heldTrimmed says what trim() leaves');
  t.equal(ring.held, 64 + 4 * 16, 'one storage unit and the smallest index');
  t.same(contents(ring), [
    [39, '"message 39"'],
    [40, '"message 40"'],
  ]);
  ring.push(41, '"after"');
  t.same(
    contents(ring).map(([, b]) => b),
    ['"message 39"', '"message 40"', '"after"'],
  );
  ring.shift();
  ring.shift();
  ring.shift();
  ring.trim();
  t.equal(ring.held, 4 * 16, 'an empty ring holds no storage');
  ring.push(42, '"again"');
  t.same(contents(ring), [[42, '"again"']]);
});

t.test('MessageRing: indexAfter finds the first time strictly greater than the cursor, near 2^53 too', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  for (const time of [10, 20, 30, 40, 50]) ring.push(time, String(time));
  const cases: Array<[number, number]> = [
    [-1, 0],
    [9, 0],
    [10, 1],
    [29, 2],
    [30, 3],
    [50, 5],
    [Number.MAX_SAFE_INTEGER, 5],
  ];
  for (const [since, index] of cases) t.equal(ring.indexAfter(since), index, `indexAfter(${since})`);
  const high = new MessageRing(new StoragePool(0));
  const base = Number.MAX_SAFE_INTEGER - 10;
  for (let i = 0; i < 10; i++) high.push(base + i, String(i));
  t.equal(high.timeAt(9), base + 9, 'Float64Array holds safe integers exactly');
  t.equal(high.indexAfter(base + 4), 5);
});

t.test('MessageRing: behaves as a FIFO queue of bytes under a long deterministic mix of pushes, shifts and trims', async (t) => {
  const ring = new MessageRing(new StoragePool(0));
  const model: Array<[number, string]> = [];
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const alphabet = ['a', 'é', '€', '\u{1F600}', '\u2028', '"', '\\'];
  let time = 0;
  let mismatches = 0;
  for (let step = 0; step < 5000; step++) {
    const roll = random();
    if (model.length > 0 && roll < 0.45) {
      ring.shift();
      model.shift();
    } else if (roll > 0.98) {
      ring.trim();
    } else {
      time += 1 + Math.floor(random() * 3);
      let text = '';
      const length = Math.floor(random() * (random() < 0.05 ? 3000 : 40));
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      const body = JSON.stringify(text);
      ring.push(time, body);
      model.push([time, body]);
    }
    if (ring.length !== model.length) mismatches++;
    if (ring.bytes !== model.reduce((n, [, b]) => n + Buffer.byteLength(b), 0)) mismatches++;
    if (step % 97 === 0) {
      if (JSON.stringify(contents(ring)) !== JSON.stringify(model)) mismatches++;
      if (stored(ring) !== model.map(([, b]) => b + ',').join('')) mismatches++;
      const probe = time - Math.floor(random() * 20);
      const expectedIndex = model.findIndex(([tm]) => tm > probe);
      if (ring.indexAfter(probe) !== (expectedIndex === -1 ? model.length : expectedIndex)) mismatches++;
    }
  }
  t.equal(mismatches, 0);
  t.same(contents(ring), model);
});

// ---- storage-pool ----------------------------------------------------------
t.test('StoragePool: sizes are powers of two from 64 bytes', async (t) => {
  t.same([0, 1, 64, 65, 129, 4096, 4097, 60_002, 65_536, 65_537, 2 ** 31 + 1].map(storageFor), [
    0,
    64,
    64,
    128,
    256,
    4096,
    8192,
    65_536,
    65_536,
    131_072,
    2 ** 32,
  ]);
});

/** Where a block lies: its slab (the ArrayBuffer) and its offset there. */
function placeOf(block: Buffer): [ArrayBufferLike, number] {
  return [block.buffer, block.byteOffset];
}

t.test('StoragePool: a block given back is handed to the next taker of its size; past the limit storage is a Buffer of its own', async (t) => {
  const pool = new StoragePool(SLAB_BYTES);
  t.equal(pool.slabBytes, SLAB_BYTES, 'one slab, allocated at once');
  const a = pool.take(65_536);
  t.equal(a.length, 65_536);
  pool.give(a);
  t.same(placeOf(pool.take(65_536)), placeOf(a), 'the same size takes the same block again');
  const blocks = Array.from({ length: SLAB_BYTES / 65_536 - 1 }, () => pool.take(65_536));
  t.ok(
    blocks.every((b) => b.buffer === a.buffer),
    'the slab holds 64 such blocks',
  );
  const own = pool.take(65_536);
  t.not(own.buffer, a.buffer, 'the slab full and the limit reached: a Buffer of its own');
  t.equal(own.buffer.byteLength, 65_536);
  pool.give(own);
  t.equal(pool.slabBytes, SLAB_BYTES, 'still one slab');
  t.equal(pool.take(0).length, 0);
  t.not(new StoragePool(0).take(64).buffer, new StoragePool(0).take(64).buffer, 'limit 0: every block on its own');
});

t.test('StoragePool: free buddies merge, so blocks given back small serve a large one again', async (t) => {
  const pool = new StoragePool(SLAB_BYTES);
  const small = Array.from({ length: SLAB_BYTES / 4096 }, () => pool.take(4096));
  t.equal(new Set(small.map((b) => b.byteOffset)).size, small.length, 'the slab cut into 1,024 distinct blocks');
  // Given back in an order that leaves no two buddies free together until the second half.
  for (let i = 0; i < small.length; i += 2) pool.give(small[i]!);
  t.not(pool.take(8192).buffer, small[0]!.buffer, 'no two free neighbours: an 8 KiB block is not in the slab');
  for (let i = 1; i < small.length; i += 2) pool.give(small[i]!);
  const whole = pool.take(SLAB_BYTES);
  t.same(placeOf(whole), [small[0]!.buffer, 0], 'every block merged back into the whole slab');
});

t.test('StoragePool: random takes and gives: blocks never overlap and keep their bytes, and all given back makes the slabs whole', async (t) => {
  const pool = new StoragePool(3 * SLAB_BYTES);
  let seed = 7;
  const random = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
  const live: { block: Buffer; tag: number }[] = [];
  let corrupted = 0;
  let overlaps = 0;
  for (let step = 0; step < 20_000; step++) {
    if (live.length > 0 && random() < 0.45) {
      const [{ block, tag }] = live.splice(Math.floor(random() * live.length), 1);
      if (block![0] !== tag || block![block!.length - 1] !== tag) corrupted++;
      pool.give(block!);
    } else {
      const block = pool.take(storageFor(1 + Math.floor(random() ** 3 * 300_000)));
      const tag = step & 0xff;
      block.fill(tag);
      live.push({ block, tag });
    }
    if (step % 1000 === 999) {
      const slabIds = new Map<ArrayBufferLike, number>();
      const spans = live
        .filter(({ block }) => block.buffer.byteLength === 3 * SLAB_BYTES)
        .map(({ block }) => {
          if (!slabIds.has(block.buffer)) slabIds.set(block.buffer, slabIds.size);
          return [slabIds.get(block.buffer)!, block.byteOffset, block.byteOffset + block.length] as const;
        })
        .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      for (let i = 1; i < spans.length; i++) if (spans[i]![0] === spans[i - 1]![0] && spans[i]![1] < spans[i - 1]![2]) overlaps++;
    }
  }
  t.equal(corrupted, 0, 'every block kept what was written to it');
  t.equal(overlaps, 0, 'no two live blocks overlap');
  for (const { block } of live) pool.give(block);
  const slabs = Array.from({ length: pool.slabBytes / SLAB_BYTES }, () => pool.take(SLAB_BYTES));
  t.same(
    slabs.map((b) => [b.buffer.byteLength, b.byteOffset]).sort((x, y) => x[1]! - y[1]!),
    [0, 1, 2].map((i) => [3 * SLAB_BYTES, i * SLAB_BYTES]),
    'three slabs of one segment, each whole again',
  );
});

t.test('MemoryEngine: storage pool: under a flood of large puts to new channels, each new channel takes the storage an evicted one gave back', async (t) => {
  const budget = 4 * SLAB_BYTES;
  const e = engine({ memoryBudget: budget });
  const message = JSON.stringify('x'.repeat(60_000));
  const channels = (e as unknown as { channels: Map<string, MessageRing> }).channels;
  const pool = (e as unknown as { pool: StoragePool }).pool;
  let own = 0;
  let over = 0;
  for (let i = 0; i < 1000; i++) {
    await e.append(`flood-${i}`, message);
    if (inside(channels.get(`flood-${i}`)!).store.buffer.byteLength !== budget * 1.25) own++;
    if (e.stats().bytes > budget) over++;
  }
  t.equal(over, 0, 'within the budget after every put');
  t.equal(own, 0, 'every channel stored in a slab of the one segment');
  t.equal(pool.slabBytes, budget * 1.25, 'the slabs, a quarter over the budget, and no more for 1,000 channels');
});

// ---- clock -----------------------------------------------------------------
t.test('clock: nowMicros is an integer close to Date.now() in microseconds', async (t) => {
  const before = Date.now() * 1000;
  const now = nowMicros();
  const after = Date.now() * 1000;
  t.ok(Number.isSafeInteger(now), 'a safe integer');
  // 1 s of slack covers the monotonic/wall-clock offset; a unit error (ms, ns, s) would be far off
  t.ok(now >= before - 1_000_000, `${now} not far below ${before}`);
  t.ok(now <= after + 1_000_000, `${now} not far above ${after}`);
});

t.test('clock: nowMicros never goes backwards', async (t) => {
  let previous = nowMicros();
  let backwards = 0;
  for (let i = 0; i < 10_000; i++) {
    const now = nowMicros();
    if (now < previous) backwards++;
    previous = now;
  }
  t.equal(backwards, 0);
});

t.test('clock: nextTime gives the clock when it is ahead of the current time', async (t) => {
  const before = nowMicros();
  const time = nextTime(0);
  const after = nowMicros();
  t.ok(time >= before && time <= after, 'the wall-clock time');
  t.ok(Number.isSafeInteger(time));
  const fromPast = nextTime(before - 5_000_000);
  t.ok(fromPast >= before, 'a current time in the past does not hold the clock back');
});

t.test('clock: nextTime bumps by one when the clock has not passed the current time', async (t) => {
  const future = nowMicros() + 60_000_000;
  t.equal(nextTime(future), future + 1);
  t.equal(nextTime(future + 1), future + 2);
  const now = nowMicros();
  const equal = nextTime(now);
  t.ok(equal > now, 'strictly greater even when equal to the clock');
});

t.test('clock: chained nextTime calls are strictly increasing', async (t) => {
  let current = nowMicros();
  let notIncreasing = 0;
  for (let i = 0; i < 20_000; i++) {
    const next = nextTime(current);
    if (!(next > current) || !Number.isInteger(next)) notIncreasing++;
    current = next;
  }
  t.equal(notIncreasing, 0);
  t.ok(current < nowMicros() + 1_000_000, 'bumps stay close to the clock when the clock moves');
});

// ---- shard -----------------------------------------------------------------
/** An independent FNV-1a (32-bit) over UTF-16 code units, in BigInt arithmetic. */
function referenceFnv1a(text: string): number {
  let hash = 0x811c9dc5n;
  for (let i = 0; i < text.length; i++) {
    hash ^= BigInt(text.charCodeAt(i));
    hash = (hash * 0x01000193n) & 0xffffffffn;
  }
  return Number(hash);
}

t.test('shard: hashChannel matches the published FNV-1a 32-bit test vectors', async (t) => {
  t.equal(hashChannel(''), 0x811c9dc5);
  t.equal(hashChannel('a'), 0xe40c292c);
  t.equal(hashChannel('foobar'), 0xbf9cf968);
});

t.test('shard: hashChannel agrees with a reference implementation, including non-ASCII', async (t) => {
  const samples = ['chat', 'room/42', 'é', '€uro', '日本語', '😀', 'a\u0000b', 'x'.repeat(300), 'Channel-With-Mixed_CASE.123'];
  for (const sample of samples) t.equal(hashChannel(sample), referenceFnv1a(sample), JSON.stringify(sample.slice(0, 20)));
});

t.test('shard: hashChannel returns an unsigned 32-bit integer', async (t) => {
  let bad = 0;
  for (let i = 0; i < 2000; i++) {
    const hash = hashChannel(`c${i}`);
    if (!Number.isInteger(hash) || hash < 0 || hash > 0xffffffff) bad++;
  }
  t.equal(bad, 0);
});

t.test('shard: hashChannel is stable and sensitive to every character', async (t) => {
  t.equal(hashChannel('room-1'), hashChannel('room-1'));
  t.not(hashChannel('room-1'), hashChannel('room-2'));
  t.not(hashChannel('ab'), hashChannel('ba'));
  t.not(hashChannel('a'), hashChannel('a\u0000'));
});

t.test('shard: ownerOf is 0 with one thread', async (t) => {
  for (const channel of ['', 'a', 'b', 'some channel', '😀']) t.equal(ownerOf(channel, 1), 0);
});

t.test('shard: ownerOf is within [0, threads) and stable', async (t) => {
  let outOfRange = 0;
  let unstable = 0;
  for (let threads = 2; threads <= 9; threads++) {
    for (let i = 0; i < 500; i++) {
      const channel = `channel-${i}`;
      const owner = ownerOf(channel, threads);
      if (!Number.isInteger(owner) || owner < 0 || owner >= threads) outOfRange++;
      if (ownerOf(channel, threads) !== owner) unstable++;
      if (owner !== hashChannel(channel) % threads) unstable++;
    }
  }
  t.equal(outOfRange, 0);
  t.equal(unstable, 0);
});

t.test('shard: ownerOf spreads 10,000 channels roughly evenly over 3 threads', async (t) => {
  const counts = [0, 0, 0];
  for (let i = 0; i < 10_000; i++) counts[ownerOf(`channel-${i}`, 3)]!++;
  t.equal(counts[0]! + counts[1]! + counts[2]!, 10_000);
  for (let thread = 0; thread < 3; thread++) {
    t.ok(counts[thread]! >= 2500 && counts[thread]! <= 4200, `thread ${thread} owns ${counts[thread]} channels`);
  }
});

t.test('shard: ownerOf spreads random-looking ids over 4 threads too', async (t) => {
  const counts = [0, 0, 0, 0];
  let seed = 7;
  for (let i = 0; i < 8000; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    counts[ownerOf(seed.toString(36), 4)]!++;
  }
  for (let thread = 0; thread < 4; thread++) {
    t.ok(counts[thread]! >= 1500 && counts[thread]! <= 2600, `thread ${thread} owns ${counts[thread]} channels`);
  }
});

// ---- MemoryEngine -----------------------------------------------------------
/*
 * MemoryEngine: what it promises beyond the Engine contract, which
 * test/engine-contract.test.ts checks of every engine (times, reads, caps,
 * `missed`, buffer limits, TTL, watchers, stats, close): its start time,
 * exact eviction bookkeeping, watched channels outliving their TTL, and the
 * memory budget. Most tests start the engine "in the future" (startTime
 * ahead of the clock) so that message times are exactly startTime + 1, + 2, ...
 * and every assertion on times is deterministic.
 */
const ALL: ReadLimits = { maxMessages: 1_000_000, maxBytes: 1_000_000_000 };
const TTL_MS = 60_000;

function engine(options: Partial<MemoryEngineOptions> = {}): MemoryEngine {
  return new MemoryEngine({
    bufferSize: 1000,
    bufferBytes: 1_000_000,
    channelTtlMs: TTL_MS,
    memoryBudget: 1_000_000_000,
    startTime: nowMicros(),
    ...options,
  });
}

/** A start time one minute ahead of the clock: times become START + 1, + 2, ... */
function futureStart(): number {
  return nowMicros() + 60_000_000;
}

/** Past every channel's TTL. */
function farFuture(): number {
  return Date.now() + TTL_MS * 10;
}

async function appendAll(e: MemoryEngine, channel: string, bodies: string[]): Promise<number[]> {
  const times: number[] = [];
  for (const body of bodies) times.push(await e.append(channel, body));
  return times;
}

const json = (text: string) => JSON.stringify(text);

t.test('MemoryEngine: append: a start time ahead of the clock is respected (the server knows nothing before it)', async (t) => {
  const startTime = futureStart();
  const e = engine({ startTime });
  t.equal(await e.currentTime('a'), startTime);
  t.same(await appendAll(e, 'a', ['1', '2', '3']), [startTime + 1, startTime + 2, startTime + 3]);
  t.equal(await e.append('b', '1'), startTime + 1, 'each channel counts from the floor');
});

t.test('MemoryEngine: missed: the history vouched for begins exactly at the start time', async (t) => {
  const startTime = futureStart();
  const e = engine({ startTime });
  t.same(await readTexts(e, 'fresh', startTime - 1, ALL), { time: startTime, bodies: [], missed: true });
  t.same(await readTexts(e, 'fresh', startTime, ALL), { time: startTime, bodies: [], missed: false }, 'the start time itself is vouched for');
});

t.test('MemoryEngine: a get without a time answers with what was put from its arrival on, even what got here before it', async (t) => {
  const e = engine();
  const [before] = await appendAll(e, 'race', [json('before')]);
  while (nowMicros() <= before!) {
    // The arrival stamp must come after the earlier put's time, as it would for a get sent after its answer.
  }
  const arrival = nowMicros();
  t.same(await readTexts(e, 'race', -arrival, ALL), { time: before, bodies: [], missed: false }, 'nothing put after it yet: the current time');
  const after = await appendAll(e, 'race', [json('after 1'), json('after 2')]);
  t.same(
    await readTexts(e, 'race', -arrival, ALL),
    { time: after[1], bodies: [json('after 1'), json('after 2')], missed: false },
    'the puts that overtook it on their way to the owner are its answer, the earlier one is not',
  );
  t.same(
    await readTexts(e, 'race', -arrival, { maxMessages: 1, maxBytes: 1_000_000 }),
    { time: after[0], bodies: [json('after 1')], missed: false },
    'within the caps',
  );
  t.same(await readTexts(e, 'race', -nowMicros(), ALL), { time: after[1], bodies: [], missed: false }, 'a later arrival: nothing yet');

  const fresh = nowMicros();
  const [first] = await appendAll(e, 'new', [json('first')]);
  t.same(await readTexts(e, 'new', -fresh, ALL), { time: first, bodies: [json('first')], missed: false }, 'also on a channel the racing put created');
  t.same(await readTexts(e, 'never', -nowMicros(), ALL), { time: e.currentTime('never'), bodies: [], missed: false }, 'a channel never written: its time');

  const bumped = engine({ startTime: futureStart() });
  const times = await appendAll(bumped, 'ahead', [json('1'), json('2')]);
  t.same(
    await readTexts(bumped, 'ahead', -(times[1]! + 1), ALL),
    { time: times[1], bodies: [], missed: false },
    'times ahead of the clock: an arrival past them answers nothing',
  );
});

// Redis cannot tell a cursor at an expired channel's last message from an older one, and reports both missed.
t.test('MemoryEngine: eviction: an evicted channel is accounted for, and its last time remembered exactly', async (t) => {
  const startTime = futureStart();
  const e = engine({ startTime });
  const times = await appendAll(e, 'room', ['"a"', '"b"', '"c"']);
  await e.append('other', '"o"');
  e.sweep(Date.now());
  t.equal(e.stats().channels, 2, 'not evicted before the TTL');
  t.equal(e.stats().messages, 4);
  e.sweep(farFuture());
  t.same(e.stats(), { channels: 0, messages: 0, bytes: 0, subscriptions: 0, up: true }, 'everything evicted and accounted for');

  t.equal(await e.currentTime('room'), times[2], 'the current time survives eviction');
  t.same(await readTexts(e, 'room', times[2]!, ALL), { time: times[2], bodies: [], missed: false }, 'the last cursor lost nothing');
  const next = await e.append('room', '"d"');
  t.equal(next, times[2]! + 1, 'new times continue just above the evicted ones');
  t.same(await readTexts(e, 'room', times[2]!, ALL), { time: next, bodies: ['"d"'], missed: false });
});

t.test('MemoryEngine: eviction: only channels idle past the TTL go', async (t) => {
  const e = engine();
  await e.append('old', '"1"');
  const now = Date.now();
  e.sweep(now + TTL_MS - 1_000);
  t.equal(e.stats().channels, 1, 'kept while within the TTL');
  e.sweep(now + TTL_MS + 1_000);
  t.equal(e.stats().channels, 0, 'evicted after it');
});

// Not in the contract suite although engine.ts promises it of every engine: Redis expires a watched channel's keys too (README, Cluster mode, `missed`).
t.test('MemoryEngine: eviction: watched channels are never evicted', async (t) => {
  const startTime = futureStart();
  const e = engine({ startTime });
  await e.watch('w');
  const times = await appendAll(e, 'w', ['"1"', '"2"']);
  await e.watch('idle-watched');
  await e.append('u', '"u"');
  e.sweep(farFuture());
  // 'w' was watched before its first append (a name then, a channel watched from that append); 'idle-watched' was never written, so it is no stored channel at all.
  t.equal(e.stats().channels, 1, 'the watched channel remains; the watched never-written one is not stored');
  t.same(await readTexts(e, 'w', startTime, ALL), { time: times[1], bodies: ['"1"', '"2"'], missed: false });
  e.unwatch('w');
  e.unwatch('idle-watched');
  e.sweep(farFuture());
  t.equal(e.stats().channels, 0, 'evicted once unwatched');
  e.unwatch('never-seen');
  t.equal(e.stats().channels, 0, 'unwatching a channel never seen creates none');
});

t.test('MemoryEngine: memory budget: the least recently written channel loses its oldest messages first', async (t) => {
  const startTime = futureStart();
  const body = json('x'.repeat(98)); // 100 bytes, 101 stored
  const fill = async (e: MemoryEngine) => ({ a: await appendAll(e, 'a', Array(10).fill(body)), b: await appendAll(e, 'b', Array(3).fill(body)) });
  // Measure what a, b and their 13 messages hold, then make that the whole budget.
  const probe = engine({ startTime });
  await fill(probe);
  const budget = probe.stats().bytes;
  t.ok(budget > 13 * 101, 'the storage and index held are counted, not only the bytes used');

  const e = engine({ startTime, memoryBudget: budget });
  const { a } = await fill(e);
  t.equal(e.stats().messages, 13, 'at the budget, nothing dropped');
  const b = [];
  for (let i = 0; i < 3; i++) b.push(await e.append('b', body));
  t.ok(e.stats().bytes <= budget, `back within the budget once b's storage grew (${e.stats().bytes} of ${budget})`);
  const left = await readTexts(e, 'a', startTime, ALL);
  t.ok(left.bodies.length > 0 && left.bodies.length < 10, `a (least recently written) kept its newest ${left.bodies.length} of 10`);
  t.equal(left.missed, true, 'its dropped oldest are reported missed');
  t.equal(left.time, a[9], 'and its newest is kept');
  const kept = await readTexts(e, 'a', a[9 - left.bodies.length]!, ALL);
  t.same(kept, { time: a[9], bodies: left.bodies, missed: false }, 'a reader who had the dropped ones misses nothing');
  t.equal((await readTexts(e, 'b', startTime, ALL)).bodies.length, 6, 'b, being written, kept everything');
  t.equal((await readTexts(e, 'b', startTime, ALL)).missed, false);
  t.same(b, [startTime + 4, startTime + 5, startTime + 6]);

  // Writing to a makes b the least recently written one.
  for (let i = 0; i < 20; i++) await e.append('a', body);
  t.ok(e.stats().bytes <= budget);
  t.equal((await readTexts(e, 'b', startTime, ALL)).missed, true, 'now b loses its oldest');
});

t.test('MemoryEngine: memory budget: older channels are emptied first, the channel being written keeps its newest message', async (t) => {
  const startTime = futureStart();
  const e = engine({ startTime, memoryBudget: 1 });
  const calls: number[] = [];
  e.setListener((_channel, time) => calls.push(time));
  await e.watch('w');
  const tw = await e.append('w', '"w"');
  t.same(calls, [tw], 'the listener saw the message');
  t.equal(e.stats().messages, 1, 'the newest message of the channel being written is kept, even over the budget');
  t.same(await readTexts(e, 'w', startTime, ALL), { time: tw, bodies: ['"w"'], missed: false });

  const tu = await e.append('u', '"u"');
  t.equal(e.stats().messages, 1, 'the older channel lost its message');
  t.equal(e.stats().channels, 2, 'the emptied watched channel stays');
  t.same(await readTexts(e, 'w', startTime, ALL), { time: tw, bodies: [], missed: true }, 'the dropped message is reported missed');
  t.same(await readTexts(e, 'w', tw, ALL), { time: tw, bodies: [], missed: false }, 'a reader who had it misses nothing');
  t.same(await readTexts(e, 'u', startTime, ALL), { time: tu, bodies: ['"u"'], missed: false });

  e.unwatch('w');
  await e.append('v', '"v"');
  t.equal(e.stats().channels, 1, 'the emptied unwatched channels are evicted, oldest written first');
  t.equal(await e.currentTime('w'), tw, 'and their times are remembered');
  t.equal(await e.currentTime('u'), tu);
  t.same(await readTexts(e, 'w', startTime, ALL), { time: tw, bodies: [], missed: true });
  t.ok((await e.append('w', '"again"')) > tw);
});

t.test('MemoryEngine: memory budget: the next append brings usage from empty channels back within the budget', async (t) => {
  const budget = 50_000;
  const e = engine({ memoryBudget: budget });
  for (let i = 0; i < 2000; i++) await e.currentTime(`probe-${i}`);
  const time = await e.append('x', '"kept"');
  t.ok(e.stats().bytes <= budget, `${e.stats().bytes} bytes after the append`);
  t.ok(e.stats().channels < 2000, 'empty unwatched channels were evicted');
  t.same((await readTexts(e, 'x', time - 1, ALL)).bodies, ['"kept"'], 'the new message itself is kept');
});

t.test('MemoryEngine: regression: a flood of sync/get on new channel ids used to create channels past the budget', async (t) => {
  const budget = 50_000;
  const e = engine({ memoryBudget: budget });
  for (let i = 0; i < 1000; i++) await e.currentTime(`sync-${i}`);
  for (let i = 0; i < 1000; i++) await readTexts(e, `get-${i}`, -1, ALL);
  t.ok(e.stats().bytes <= budget, `${e.stats().bytes} bytes accounted with a budget of ${budget}`);
  t.ok(e.stats().channels < 2000, `${e.stats().channels} empty channels held`);
});

// ---- redis recovery ---------------------------------------------------------
/** An ioredis connection as NodeRecovery sees it: status, events, connect(), and the private backoff timer. */
class FakeConnection extends EventEmitter {
  status = 'connecting';
  reconnectTimeout: NodeJS.Timeout | null = null;
  connects = 0;
  connect(): Promise<void> {
    this.connects++;
    this.status = 'connecting';
    return Promise.resolve();
  }
  up(): void {
    this.status = 'ready';
    this.emit('ready');
  }
  /** Lost, as ioredis does it: 'close', then a reconnection attempt after the backoff. */
  drop(backoffMs = 60_000): void {
    this.status = 'close';
    this.emit('close');
    this.status = 'reconnecting';
    this.reconnectTimeout = setTimeout(() => {
      this.reconnectTimeout = null;
      void this.connect();
    }, backoffMs);
  }
}

/** Two threads of one node: their recoveries share the ready count. */
function twoThreads(t: Test) {
  const cell = ownRecoveryCell();
  const threads = [new NodeRecovery(cell, 1000), new NodeRecovery(cell, 1000)];
  const conns = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
  // Thread 0: one connection; thread 1: a command and a subscriber connection.
  const tracked = [threads[0]!.track(conns[0]!), threads[1]!.track(conns[1]!), threads[1]!.track(conns[2]!)];
  for (const c of conns) c.up();
  t.teardown(() => {
    for (const r of threads) r.close();
    for (const c of conns) clearTimeout(c.reconnectTimeout ?? undefined);
  });
  return { threads, conns, tracked };
}

t.test('NodeRecovery: while Redis is down nothing is behind, and the backoff runs its course', async (t) => {
  const { conns, tracked } = twoThreads(t);
  for (const c of conns) c.drop();
  await sleep(10);
  t.same(
    tracked.map((c) => c.behind),
    [false, false, false],
    'no connection became ready: requests fail at once, as before',
  );
  t.same(
    conns.map((c) => c.connects),
    [0, 0, 0],
    'no reconnection before the backoff',
  );
});

t.test('NodeRecovery: once one connection is back, every other of the node reconnects at once, on every thread', async (t) => {
  const { conns, tracked } = twoThreads(t);
  for (const c of conns) c.drop();
  await sleep(10);
  conns[0]!.up();
  t.same(
    tracked.map((c) => c.behind),
    [false, true, true],
    'the others are behind as soon as the first is ready (the count is shared memory: no message to wait for)',
  );
  await sleep(10);
  t.same(
    conns.slice(1).map((c) => [c.connects, c.status, c.reconnectTimeout]),
    [
      [1, 'connecting', null],
      [1, 'connecting', null],
    ],
    "woken, the other thread reconnected both its connections now, and cleared ioredis's pending attempt",
  );
  conns[1]!.up();
  t.equal(tracked[1]!.behind, false, 'ready again: not behind');
  t.equal(tracked[2]!.behind, true, 'the one still connecting is');
});

t.test('NodeRecovery: catchUp waits for the connection, at most the timeout, and reconnects it now', async (t) => {
  const { conns, tracked } = twoThreads(t);
  for (const c of conns) c.drop();
  conns[0]!.up();
  const waiting = tracked[1]!.catchUp();
  t.equal(conns[1]!.status, 'connecting', 'reconnecting now, not after the backoff');
  t.equal(tracked[1]!.catchUp(), waiting, 'requests meanwhile share one wait');
  conns[1]!.up();
  await waiting;
  t.pass('settled on ready');
  const failing = tracked[2]!.catchUp();
  conns[2]!.drop();
  await failing;
  t.pass('settled when the attempt failed: the request then fails (503)');
  const started = Date.now();
  await tracked[2]!.catchUp();
  t.ok(Date.now() - started >= 900, 'an attempt that never settles is waited for at most the timeout');
});
