/**
 * The engine: the RingBuffer of a channel's messages, the clock that assigns
 * message times, the channel-to-thread routing, and the MemoryEngine built on
 * them, and the Redis engine's recovery of a node's connections together.
(One file rather than five: every test file pays the TypeScript
 * loader's start-up cost of about two seconds.)
 */
import t, { type Test } from 'tap';
import { RingBuffer } from '../../src/engine/ring-buffer.js';
import { nextTime, nowMicros } from '../../src/engine/clock.js';
import { hashChannel } from '../../src/engine/channel-hash.js';
import { ownerOf } from '../../src/threads/router.js';
import { MemoryEngine, type MemoryEngineOptions } from '../../src/engine/memory-engine.js';
import type { ReadLimits } from '../../src/engine/engine.js';
import { NodeRecovery, ownRecoveryCell } from '../../src/engine/redis/recovery.js';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

// ---- ring-buffer -----------------------------------------------------------
/** Storage capacity, read from the private typed array (the growth policy is part of the design). */
function capacityOf(ring: RingBuffer): number {
  return (ring as unknown as { times: Float64Array }).times.length;
}

/** Every (time, body) pair in logical order. */
function contents(ring: RingBuffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < ring.length; i++) out.push([ring.timeAt(i), ring.bodyAt(i)]);
  return out;
}

t.test('RingBuffer: a new ring is empty', async (t) => {
  const ring = new RingBuffer();
  t.equal(ring.length, 0);
  t.equal(ring.indexAfter(-1), 0);
  t.equal(ring.indexAfter(0), 0);
  t.equal(ring.indexAfter(Number.MAX_SAFE_INTEGER), 0);
});

t.test('RingBuffer: push keeps insertion order; timeAt and bodyAt address by logical index', async (t) => {
  const ring = new RingBuffer();
  ring.push(10, '"a"');
  ring.push(20, '"b"');
  ring.push(30, '"c"');
  t.equal(ring.length, 3);
  t.same(contents(ring), [
    [10, '"a"'],
    [20, '"b"'],
    [30, '"c"'],
  ]);
});

t.test('RingBuffer: shift removes and returns the oldest body', async (t) => {
  const ring = new RingBuffer();
  ring.push(1, 'one');
  ring.push(2, 'two');
  ring.push(3, 'three');
  t.equal(ring.shift(), 'one');
  t.equal(ring.length, 2);
  t.equal(ring.timeAt(0), 2);
  t.equal(ring.bodyAt(0), 'two');
  t.equal(ring.shift(), 'two');
  t.equal(ring.shift(), 'three');
  t.equal(ring.length, 0);
  t.equal(ring.indexAfter(0), 0);
  // usable again after being emptied
  ring.push(4, 'four');
  t.same(contents(ring), [[4, 'four']]);
});

t.test('RingBuffer: storage starts at 4 and doubles, keeping every message in order', async (t) => {
  const ring = new RingBuffer();
  t.equal(capacityOf(ring), 4);
  const expected: Array<[number, string]> = [];
  for (let i = 1; i <= 100; i++) {
    ring.push(i * 10, `m${i}`);
    expected.push([i * 10, `m${i}`]);
    if (i === 4) t.equal(capacityOf(ring), 4, 'full at 4 without growing');
    if (i === 5) t.equal(capacityOf(ring), 8, 'grew to 8 on the fifth push');
    if (i === 9) t.equal(capacityOf(ring), 16, 'grew to 16 on the ninth push');
  }
  t.equal(capacityOf(ring), 128);
  t.equal(ring.length, 100);
  t.same(contents(ring), expected);
});

t.test('RingBuffer: the initial capacity is rounded up to a power of two', async (t) => {
  t.equal(capacityOf(new RingBuffer(5)), 8);
  t.equal(capacityOf(new RingBuffer(8)), 8);
  t.equal(capacityOf(new RingBuffer(1)), 1);
  const one = new RingBuffer(1);
  one.push(1, 'a');
  one.push(2, 'b');
  one.push(3, 'c');
  t.same(contents(one), [
    [1, 'a'],
    [2, 'b'],
    [3, 'c'],
  ]);
});

t.test('RingBuffer: wrap-around: slots are reused after shift without growing', async (t) => {
  const ring = new RingBuffer();
  ring.push(1, 'a');
  ring.push(2, 'b');
  ring.push(3, 'c');
  ring.push(4, 'd');
  t.equal(ring.shift(), 'a');
  t.equal(ring.shift(), 'b');
  ring.push(5, 'e'); // slot 0
  ring.push(6, 'f'); // slot 1: the ring is full and wrapped, head at slot 2
  t.equal(capacityOf(ring), 4, 'no growth while there is room');
  t.same(contents(ring), [
    [3, 'c'],
    [4, 'd'],
    [5, 'e'],
    [6, 'f'],
  ]);
  t.equal(ring.indexAfter(2), 0);
  t.equal(ring.indexAfter(4), 2);
  t.equal(ring.indexAfter(5), 3);
  t.equal(ring.indexAfter(6), 4);
});

t.test('RingBuffer: growing a wrapped ring unwraps it in order', async (t) => {
  const ring = new RingBuffer();
  for (let i = 1; i <= 4; i++) ring.push(i, `m${i}`);
  ring.shift();
  ring.shift();
  ring.shift(); // head at slot 3
  ring.push(5, 'm5');
  ring.push(6, 'm6');
  ring.push(7, 'm7'); // full, wrapped
  ring.push(8, 'm8'); // grows
  t.equal(capacityOf(ring), 8);
  t.same(contents(ring), [
    [4, 'm4'],
    [5, 'm5'],
    [6, 'm6'],
    [7, 'm7'],
    [8, 'm8'],
  ]);
  t.equal(ring.indexAfter(6), 3);
});

t.test('RingBuffer: indexAfter finds the first time strictly greater than the cursor', async (t) => {
  const ring = new RingBuffer();
  const times = [10, 20, 30, 40, 50];
  for (const time of times) ring.push(time, String(time));
  const cases: Array<[number, number]> = [
    [-1, 0],
    [0, 0],
    [9, 0],
    [10, 1],
    [11, 1],
    [29, 2],
    [30, 3],
    [49, 4],
    [50, 5],
    [51, 5],
    [Number.MAX_SAFE_INTEGER, 5],
  ];
  for (const [since, index] of cases) t.equal(ring.indexAfter(since), index, `indexAfter(${since})`);
});

t.test('RingBuffer: indexAfter works with microsecond-sized times near 2^53', async (t) => {
  const ring = new RingBuffer();
  const base = Number.MAX_SAFE_INTEGER - 10;
  for (let i = 0; i < 10; i++) ring.push(base + i, `m${i}`);
  t.equal(ring.timeAt(9), base + 9, 'Float64Array holds safe integers exactly');
  t.equal(ring.indexAfter(base + 4), 5);
  t.equal(ring.indexAfter(base - 1), 0);
  t.equal(ring.indexAfter(base + 9), 10);
});

t.test('RingBuffer: behaves as a FIFO queue under a long deterministic mix of pushes and shifts', async (t) => {
  const ring = new RingBuffer();
  const model: Array<[number, string]> = [];
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  let time = 0;
  let mismatches = 0;
  for (let step = 0; step < 5000; step++) {
    if (model.length > 0 && random() < 0.45) {
      const expected = model.shift()!;
      if (ring.shift() !== expected[1]) mismatches++;
    } else {
      time += 1 + Math.floor(random() * 3);
      ring.push(time, `b${time}`);
      model.push([time, `b${time}`]);
    }
    if (ring.length !== model.length) mismatches++;
    if (step % 97 === 0) {
      if (JSON.stringify(contents(ring)) !== JSON.stringify(model)) mismatches++;
      const probe = time - Math.floor(random() * 20);
      const expectedIndex = model.findIndex(([tm]) => tm > probe);
      if (ring.indexAfter(probe) !== (expectedIndex === -1 ? model.length : expectedIndex)) mismatches++;
    }
  }
  t.equal(mismatches, 0);
  t.same(contents(ring), model);
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
  t.same(await e.read('fresh', startTime - 1, ALL), { time: startTime, bodies: [], missed: true });
  t.same(await e.read('fresh', startTime, ALL), { time: startTime, bodies: [], missed: false }, 'the start time itself is vouched for');
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
  t.same(await e.read('room', times[2]!, ALL), { time: times[2], bodies: [], missed: false }, 'the last cursor lost nothing');
  const next = await e.append('room', '"d"');
  t.equal(next, times[2]! + 1, 'new times continue just above the evicted ones');
  t.same(await e.read('room', times[2]!, ALL), { time: next, bodies: ['"d"'], missed: false });
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
  t.equal(e.stats().channels, 2, 'the two watched channels remain');
  t.same(await e.read('w', startTime, ALL), { time: times[1], bodies: ['"1"', '"2"'], missed: false });
  e.unwatch('w');
  e.unwatch('idle-watched');
  e.sweep(farFuture());
  t.equal(e.stats().channels, 0, 'evicted once unwatched');
  e.unwatch('never-seen');
  t.equal(e.stats().channels, 0, 'unwatching a channel never seen creates none');
});

t.test('MemoryEngine: memory budget: the least recently written channel loses its oldest message first', async (t) => {
  const startTime = futureStart();
  const body = json('12345678');
  const fill = async (e: MemoryEngine) => {
    const a = await appendAll(e, 'a', [body, body, body]);
    const b = await appendAll(e, 'b', [body, body, body]);
    return { a, b };
  };
  // Measure what a, b and their 6 messages cost, then make that the whole budget.
  const probe = engine({ startTime });
  await fill(probe);
  const budget = probe.stats().bytes;
  t.ok(budget > 0);

  const e = engine({ startTime, memoryBudget: budget });
  const { a, b } = await fill(e);
  t.equal(e.stats().messages, 6, 'at the budget, nothing dropped');
  const b4 = await e.append('b', body);
  t.equal(e.stats().messages, 6, 'one message dropped to stay within the budget');
  t.ok(e.stats().bytes <= budget);
  t.same(await e.read('a', startTime, ALL), { time: a[2], bodies: [body, body], missed: true }, 'a (least recently written) lost its oldest');
  t.same(await e.read('a', a[0]!, ALL), { time: a[2], bodies: [body, body], missed: false });
  t.same(await e.read('b', startTime, ALL), { time: b4, bodies: [body, body, body, body], missed: false }, 'b kept everything');
  t.same(b, [startTime + 1, startTime + 2, startTime + 3]);

  // Writing to a makes b the least recently written one.
  await e.append('a', body);
  t.same(await e.read('b', startTime, ALL), { time: b4, bodies: [body, body, body], missed: true }, 'now b loses its oldest');
  t.same(await e.read('a', a[0]!, ALL), { time: a[2]! + 1, bodies: [body, body, body], missed: false });
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
  t.same(await e.read('w', startTime, ALL), { time: tw, bodies: ['"w"'], missed: false });

  const tu = await e.append('u', '"u"');
  t.equal(e.stats().messages, 1, 'the older channel lost its message');
  t.equal(e.stats().channels, 2, 'the emptied watched channel stays');
  t.same(await e.read('w', startTime, ALL), { time: tw, bodies: [], missed: true }, 'the dropped message is reported missed');
  t.same(await e.read('w', tw, ALL), { time: tw, bodies: [], missed: false }, 'a reader who had it misses nothing');
  t.same(await e.read('u', startTime, ALL), { time: tu, bodies: ['"u"'], missed: false });

  e.unwatch('w');
  await e.append('v', '"v"');
  t.equal(e.stats().channels, 1, 'the emptied unwatched channels are evicted, oldest written first');
  t.equal(await e.currentTime('w'), tw, 'and their times are remembered');
  t.equal(await e.currentTime('u'), tu);
  t.same(await e.read('w', startTime, ALL), { time: tw, bodies: [], missed: true });
  t.ok((await e.append('w', '"again"')) > tw);
});

t.test('MemoryEngine: memory budget: the next append brings usage from empty channels back within the budget', async (t) => {
  const budget = 50_000;
  const e = engine({ memoryBudget: budget });
  for (let i = 0; i < 2000; i++) await e.currentTime(`probe-${i}`);
  const time = await e.append('x', '"kept"');
  t.ok(e.stats().bytes <= budget, `${e.stats().bytes} bytes after the append`);
  t.ok(e.stats().channels < 2000, 'empty unwatched channels were evicted');
  t.same((await e.read('x', time - 1, ALL)).bodies, ['"kept"'], 'the new message itself is kept');
});

t.test('MemoryEngine: regression: a flood of sync/get on new channel ids used to create channels past the budget', async (t) => {
  const budget = 50_000;
  const e = engine({ memoryBudget: budget });
  for (let i = 0; i < 1000; i++) await e.currentTime(`sync-${i}`);
  for (let i = 0; i < 1000; i++) await e.read(`get-${i}`, -1, ALL);
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
