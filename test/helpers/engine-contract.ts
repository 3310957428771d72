/**
 * The `Engine` contract (src/engine/engine.ts) as behaviour: one suite that
 * every engine runs unchanged (test/engine-contract.test.ts runs it against
 * the memory engine, one Redis and a Redis Cluster), so that an engine that
 * keeps its data elsewhere cannot quietly promise less.
 *
 * Only what all engines promise is here. Where an engine legitimately
 * differs, the test is in that engine's own file: the memory engine's start
 * time, exact eviction bookkeeping, watched channels surviving their TTL and
 * memory budget (test/unit/engine.test.ts); Redis's first second, key
 * expiry, restarts, other nodes and outages (test/redis-engine.test.ts).
 *
 * Every result is awaited, so the synchronous and the promised forms of
 * `Eventually` both pass. Channel names are distinct per test, because
 * engines of one fixture may share a store.
 */
import type { Test } from 'tap';
import { nowMicros } from '../../src/engine/clock.js';
import type { Engine, ReadLimits } from '../../src/engine/engine.js';
import { readTexts, texts } from './read-texts.js';
import { sleep, waitFor } from './wait.js';

export interface EngineLimits {
  bufferSize: number;
  bufferBytes: number;
  channelTtlMs: number;
}

export interface EngineFixture {
  /**
   * Where messages are kept, which decides what `stats()` counts (engine.ts,
   * EngineStats): 'thread' counts channels, messages and bytes held, 'store'
   * counts the subscriptions held at a shared store.
   */
  keeps: 'thread' | 'store';
  /** A new engine, ready for commands, closed at the end of `t`. Engines of one fixture share its store, if it has one. */
  open(t: Test, limits: EngineLimits): Promise<Engine>;
}

const ALL: ReadLimits = { maxMessages: 1_000_000, maxBytes: 1 << 30 };
const DEFAULTS: EngineLimits = { bufferSize: 1000, bufferBytes: 1 << 20, channelTtlMs: 300_000 };
/** How long a message not yet delivered may take to arrive (a shared store delivers through pub/sub). */
const DELIVERY_MS = 5000;
/** How long to listen for a message that must not arrive, once a later one did (pub/sub of different shards is not ordered). */
const SILENCE_MS = 200;
/** Appends this far apart get times at least 1000 µs apart, leaving room for a cursor between them. */
const APART_MS = 2;

const json = (text: string): string => JSON.stringify(text);

interface Heard {
  messages: Array<[string, number, string]>;
  gaps: string[];
}

/** Sets a listener on `e` recording every message and every gap it reports. */
function listen(e: Engine): Heard {
  const heard: Heard = { messages: [], gaps: [] };
  e.setListener(
    (channel, time, body) => heard.messages.push([channel, time, body]),
    (channel) => heard.gaps.push(channel),
  );
  return heard;
}

async function appendAll(e: Engine, channel: string, bodies: string[], apartMs = 0): Promise<number[]> {
  const times: number[] = [];
  for (const body of bodies) {
    if (apartMs > 0 && times.length > 0) await sleep(apartMs);
    times.push(await e.append(channel, body));
  }
  return times;
}

function increasing(times: number[]): boolean {
  return times.every((time, i) => i === 0 || time > times[i - 1]!);
}

export function engineContract(t: Test, fixture: EngineFixture): void {
  const open = (t: Test, limits: Partial<EngineLimits> = {}): Promise<Engine> => fixture.open(t, { ...DEFAULTS, ...limits });

  t.test('append: times are safe integers near the wall clock, strictly increasing per channel', async (t) => {
    const e = await open(t);
    const channels = ['times-a', 'times-b', 'times-c'];
    const last = new Map<string, number>();
    for (const channel of channels) last.set(channel, await e.currentTime(channel));
    const bad: string[] = [];
    for (let i = 0; i < 150; i++) {
      const channel = channels[i % 3]!;
      const time = await e.append(channel, json(`m${i}`));
      if (!Number.isSafeInteger(time) || !(time > last.get(channel)!)) bad.push(`${channel}: ${time} after ${last.get(channel)}`);
      last.set(channel, time);
    }
    t.same(bad, []);
    // A minute of slack: Redis's clock runs up to a second ahead in its first second; a unit error (ms, ns) is far off.
    t.ok(Math.abs(last.get('times-a')! - Date.now() * 1000) < 60_000_000, 'wall-clock microseconds');
  });

  t.test('operations on one channel take effect and resolve in call order, whichever form the results take', async (t) => {
    const e = await open(t);
    const before = await e.currentTime('order');
    const resolved: string[] = [];
    const appends: Array<Promise<number>> = [];
    for (let i = 0; i < 30; i++) {
      appends.push(Promise.resolve(e.append('order', json(`m${i}`))).then((time) => (resolved.push(`append ${i}`), time)));
    }
    const read = Promise.resolve(e.read('order', before, ALL)).then((r) => (resolved.push('read'), texts(r)));
    const times = await Promise.all(appends);
    t.ok(increasing(times), 'times increase in call order');
    t.same(
      (await read).bodies,
      Array.from({ length: 30 }, (_, i) => json(`m${i}`)),
      'a read called after the appends sees them all',
    );
    t.same(resolved, [...Array.from({ length: 30 }, (_, i) => `append ${i}`), 'read'], 'results resolve in call order');
  });

  t.test('currentTime: every later append is above it; a cursor from it reads exactly the later messages', async (t) => {
    const e = await open(t, { bufferSize: 2 });
    const bad: string[] = [];
    for (let i = 0; i < 60; i++) {
      const channel = `current-${i % 4}`;
      const current = await e.currentTime(channel);
      const time = await e.append(channel, '"x"');
      if (!(time > current)) bad.push(`${channel}: append ${time} not above currentTime ${current}`);
      const after = await e.currentTime(channel);
      if (after !== time) bad.push(`${channel}: currentTime ${after} after an append at ${time}`);
    }
    t.same(bad, []);
    await appendAll(e, 'current-sync', ['"old1"', '"old2"']);
    const cursor = await e.currentTime('current-sync');
    const times = await appendAll(e, 'current-sync', ['"new1"', '"new2"']);
    t.same(await readTexts(e, 'current-sync', cursor, ALL), { time: times[1], bodies: ['"new1"', '"new2"'], missed: false });
  });

  t.test('read with no cursor, arrived after every append: the current time, no messages, never missed', async (t) => {
    const e = await open(t, { bufferSize: 2 });
    const fresh = await readTexts(e, 'nocursor-fresh', -nowMicros(), ALL);
    t.same([fresh.bodies, fresh.missed], [[], false], 'a channel never written');
    t.ok(Number.isSafeInteger(fresh.time) && Math.abs(fresh.time - Date.now() * 1000) < 60_000_000, 'its time is about now');
    const times = await appendAll(e, 'nocursor', ['"a"', '"b"', '"c"']);
    t.same(
      await readTexts(e, 'nocursor', -(times[2]! + 1), ALL),
      { time: times[2], bodies: [], missed: false },
      'a written channel, messages dropped included',
    );
  });

  t.test('read from a cursor: the newer messages, oldest first, with the time of the last one', async (t) => {
    const e = await open(t);
    const bodies = ['"m1"', '"m2"', '"m3"', '"m4"', '"m5"'];
    const before = await e.currentTime('cursor');
    const times = await appendAll(e, 'cursor', bodies, APART_MS);
    t.same(await readTexts(e, 'cursor', before, ALL), { time: times[4], bodies, missed: false }, 'all, from a cursor before the first');
    t.same(await readTexts(e, 'cursor', times[1]!, ALL), { time: times[4], bodies: bodies.slice(2), missed: false }, 'after the second');
    t.same(await readTexts(e, 'cursor', times[1]! + 1, ALL), { time: times[4], bodies: bodies.slice(2), missed: false }, 'from between two times');
    t.same(await readTexts(e, 'cursor', times[3]!, ALL), { time: times[4], bodies: ['"m5"'], missed: false }, 'after the fourth');
    t.same(await readTexts(e, 'cursor', times[4]!, ALL), { time: times[4], bodies: [], missed: false }, 'nothing newer: the current time');
    const ahead = times[4]! + 1000;
    t.same(await readTexts(e, 'cursor', ahead, ALL), { time: ahead, bodies: [], missed: false }, 'a cursor ahead: the time is never below it');
  });

  t.test('read: at most maxMessages, and paging from each answer gives every message exactly once', async (t) => {
    const e = await open(t);
    const bodies = Array.from({ length: 10 }, (_, i) => json(`m${i}`));
    const before = await e.currentTime('paging');
    const times = await appendAll(e, 'paging', bodies);
    const page = { maxMessages: 3, maxBytes: 1 << 20 };
    t.same(await readTexts(e, 'paging', before, page), { time: times[2], bodies: bodies.slice(0, 3), missed: false });
    const collected: string[] = [];
    let cursor = before;
    for (let round = 0; round < 10 && cursor < times[9]!; round++) {
      const next = await readTexts(e, 'paging', cursor, page);
      t.ok(next.bodies.length >= 1 && next.bodies.length <= 3, `page ${round}: 1 to 3 messages`);
      collected.push(...next.bodies);
      cursor = next.time;
    }
    t.same(collected, bodies);
    t.equal(cursor, times[9]);
  });

  t.test('read: at most maxBytes, but always at least one message', async (t) => {
    const e = await open(t);
    const bodies = ['"12345678"', '"abcdefgh"', '"ABCDEFGH"', '"zzzzzzzz"']; // 10 bytes each
    const before = await e.currentTime('bytes');
    const times = await appendAll(e, 'bytes', bodies);
    const read = (since: number, maxBytes: number, maxMessages = 100) => readTexts(e, 'bytes', since, { maxMessages, maxBytes });
    t.same(await read(before, 20), { time: times[1], bodies: bodies.slice(0, 2), missed: false }, 'exactly 20 bytes fit');
    t.same(await read(before, 29), { time: times[1], bodies: bodies.slice(0, 2), missed: false }, '29 bytes: still two');
    t.same(await read(before, 30), { time: times[2], bodies: bodies.slice(0, 3), missed: false });
    t.same(await read(before, 1), { time: times[0], bodies: bodies.slice(0, 1), missed: false }, 'one message even when larger than maxBytes');
    t.same(await read(times[2]!, 1), { time: times[3], bodies: bodies.slice(3), missed: false });
    t.same(await read(before, 1 << 20, 1), { time: times[0], bodies: bodies.slice(0, 1), missed: false }, 'maxMessages 1');
  });

  t.test('a channel never written: a cursor from its current time is not missed, and later appends are above it', async (t) => {
    const e = await open(t);
    const cursor = await e.currentTime('never');
    const empty = await readTexts(e, 'never', cursor, ALL);
    t.same([empty.bodies, empty.missed], [[], false]);
    t.ok(empty.time >= cursor, 'the time is never below the cursor');
    const ahead = cursor + 5_000_000;
    t.same(await readTexts(e, 'never', ahead, ALL), { time: ahead, bodies: [], missed: false }, 'a cursor ahead is kept');
    const time = await e.append('never', '"x"');
    t.ok(time > cursor && time > empty.time, 'the first append is above both times handed out');
    t.same(await readTexts(e, 'never', cursor, ALL), { time, bodies: ['"x"'], missed: false });
  });

  t.test('missed: a cursor older than the history the engine vouches for, messages still returned', async (t) => {
    const e = await open(t);
    t.same((await readTexts(e, 'old-fresh', 0, ALL)).missed, true, 'time 0 on a channel never written');
    const times = await appendAll(e, 'old', ['"x"', '"y"']);
    t.same(await readTexts(e, 'old', 0, ALL), { time: times[1], bodies: ['"x"', '"y"'], missed: true }, 'time 0 on a written channel');
  });

  t.test('bufferSize: the oldest messages are dropped; a cursor before the last dropped one sees missed, from it not', async (t) => {
    const e = await open(t, { bufferSize: 3 });
    const bodies = ['"m1"', '"m2"', '"m3"', '"m4"', '"m5"'];
    const before = await e.currentTime('full');
    const times = await appendAll(e, 'full', bodies);
    const kept = { time: times[4], bodies: bodies.slice(2) };
    t.same(await readTexts(e, 'full', before, ALL), { ...kept, missed: true }, 'from before the first: the last three, missed');
    t.same(await readTexts(e, 'full', times[0]!, ALL), { ...kept, missed: true }, 'from the first: m2 is lost');
    t.same(await readTexts(e, 'full', times[1]!, ALL), { ...kept, missed: false }, 'from the last dropped: nothing newer was lost');
    t.same(await readTexts(e, 'full', times[2]!, ALL), { time: times[4], bodies: bodies.slice(3), missed: false });
    t.equal(await e.currentTime('full'), times[4], 'dropping does not change the current time');
  });

  t.test('bufferBytes: the oldest messages are dropped past the byte bound; a single message over it is kept alone', async (t) => {
    const e = await open(t, { bufferBytes: 25 });
    const bodies = ['"12345678"', '"abcdefgh"', '"ABCDEFGH"']; // 10 bytes each
    const before = await e.currentTime('heavy');
    const times = await appendAll(e, 'heavy', bodies);
    t.same(await readTexts(e, 'heavy', before, ALL), { time: times[2], bodies: bodies.slice(1), missed: true });
    t.same(await readTexts(e, 'heavy', times[0]!, ALL), { time: times[2], bodies: bodies.slice(1), missed: false });
    const big = json('x'.repeat(100));
    const bigTime = await e.append('heavy', big);
    t.same(await readTexts(e, 'heavy', times[2]!, ALL), { time: bigTime, bodies: [big], missed: false }, 'larger than bufferBytes, kept');
    t.same(await readTexts(e, 'heavy', times[0]!, ALL), { time: bigTime, bodies: [big], missed: true }, 'alone');
  });

  t.test('channel ids are distinct channels, whatever characters they hold', async (t) => {
    const e = await open(t);
    // Braces and percent signs are what a Redis hash tag is made of; the rest is neither ASCII nor one UTF-16 unit.
    const names = ['a}b', 'a%7Db', 'a%b', '{x}', 'a{b}c', 'é', '日本語', '😀', 'a b'];
    for (const name of names) await e.append(`ids-${name}`, json(name));
    for (const name of names) t.same((await readTexts(e, `ids-${name}`, 0, ALL)).bodies, [json(name)], `${name} holds its own message only`);
  });

  t.test('watch: messages appended once watch resolved reach the listener in order, with their times; only until unwatch', async (t) => {
    const e = await open(t);
    const heard = listen(e);
    await e.append('watched', '"before watch"');
    await e.watch('watched');
    await e.watch('marker');
    const times: number[] = [];
    for (let i = 0; i < 20; i++) times.push(await e.append(i % 5 === 2 ? 'unwatched' : 'watched', json(`m${i}`)));
    const expected = times.flatMap((time, i) => (i % 5 === 2 ? [] : [['watched', time, json(`m${i}`)] as [string, number, string]]));
    await waitFor(() => heard.messages.length >= expected.length, { timeoutMs: DELIVERY_MS, what: `${expected.length} messages` });
    t.same(heard.messages, expected, 'the watched channel only, in order, nothing from before the watch');

    e.unwatch('watched');
    await e.append('watched', '"after unwatch"');
    const marker = await e.append('marker', '"marker"');
    await waitFor(() => heard.messages.some(([, time]) => time === marker), { timeoutMs: DELIVERY_MS, what: 'the marker' });
    await sleep(SILENCE_MS);
    t.same(heard.messages.slice(expected.length), [['marker', marker, '"marker"']], 'nothing after unwatch');
    t.same(heard.gaps, [], 'no gap reported while the store works');
  });

  t.test('watch: watching again after unwatch delivers again; unwatching a channel never watched is harmless', async (t) => {
    const e = await open(t);
    const heard = listen(e);
    e.unwatch('rewatch-never');
    await e.watch('rewatch');
    e.unwatch('rewatch');
    await e.watch('rewatch');
    const time = await e.append('rewatch', '"again"');
    await waitFor(() => heard.messages.length >= 1, { timeoutMs: DELIVERY_MS, what: 'the message' });
    await sleep(SILENCE_MS);
    t.same(heard.messages, [['rewatch', time, '"again"']], 'delivered once');
  });

  t.test('watch stores nothing: a watched channel never written is not held, its first append reaches the listener, and unwatch leaves nothing', async (t) => {
    const e = await open(t);
    const heard = listen(e);
    const names = Array.from({ length: 1000 }, (_, i) => `never-written-${i}`);
    for (const name of names) await e.watch(name);
    await readTexts(e, names[0]!, await e.currentTime(names[0]!), ALL);
    t.same([e.stats().channels, e.stats().messages, e.stats().bytes], [0, 0, 0], 'watching 1000 names and reading one stores no channel');
    const time = await e.append(names[1]!, '"first"');
    await waitFor(() => heard.messages.length >= 1, { timeoutMs: DELIVERY_MS, what: 'the first message' });
    t.same(heard.messages, [[names[1], time, '"first"']], 'the first append on a watched name is passed on');
    if (fixture.keeps === 'thread') t.equal(e.stats().channels, 1, 'and only it is now stored');
    for (const name of names) e.unwatch(name);
    t.equal(e.stats().subscriptions, 0, 'no subscription left once unwatched');
    await e.append(names[2]!, '"unwatched"');
    await sleep(SILENCE_MS);
    // By its channel: times are per channel, and two channels written in the same millisecond share one.
    t.notOk(
      heard.messages.some(([channel]) => channel === names[2]),
      'an unwatched name is forgotten: its append is not passed on',
    );
  });

  t.test('channelTtlMs: an idle channel is forgotten after it; older cursors then see missed, times keep increasing', async (t) => {
    const ttlMs = 1000;
    const e = await open(t, { channelTtlMs: ttlMs });
    const times = await appendAll(e, 'idle', ['"a"', '"b"']);
    e.sweep(Date.now());
    t.same(await readTexts(e, 'idle', times[0]!, ALL), { time: times[1], bodies: ['"b"'], missed: false }, 'kept within the TTL');
    // sweep() is the memory engine's eviction; Redis expires keys by itself and sweeps nothing.
    await waitFor(
      async () => {
        e.sweep(Date.now());
        return (await readTexts(e, 'idle', times[0]!, ALL)).missed;
      },
      { timeoutMs: ttlMs + 5000, intervalMs: 100, what: 'the idle channel forgotten' },
    );
    const read = await readTexts(e, 'idle', times[0]!, ALL);
    t.same([read.bodies, read.missed], [[], true], 'its messages are gone, reported missed');
    t.ok((await e.currentTime('idle')) >= times[1]!, 'the current time is not below its last message');
    const again = await e.append('idle', '"c"');
    t.ok(again > times[1]!, 'a re-created channel continues above');
    t.same(await readTexts(e, 'idle', times[0]!, ALL), { time: again, bodies: ['"c"'], missed: true }, 'and still reports the loss to older cursors');
  });

  t.test('stats: up while the store is reachable; what is counted depends on where messages are kept', async (t) => {
    const e = await open(t, { bufferSize: 2 });
    await appendAll(e, 'stats-a', ['"1"', '"2"', '"3"']);
    await e.append('stats-b', '"4"');
    await e.watch('stats-a');
    await e.watch('stats-c');
    const stats = e.stats();
    t.equal(stats.up, true);
    if (fixture.keeps === 'thread') {
      t.same(
        [stats.channels, stats.messages, stats.subscriptions],
        [2, 3, 0],
        'channels, messages held (not those dropped; stats-c, watched but never written, is not stored); no subscriptions',
      );
      t.ok(stats.bytes >= 9, 'bytes count at least the bodies held');
    } else {
      t.same(
        [stats.channels, stats.messages, stats.bytes, stats.subscriptions],
        [0, 0, 0, 2],
        'one subscription per watched channel; the store keeps the rest',
      );
    }
    e.unwatch('stats-a');
    e.unwatch('stats-c');
    t.equal(e.stats().subscriptions, 0, 'none once unwatched');
  });

  t.test('close: resolves, and the listener hears nothing more of the channels it watched', async (t) => {
    const e = await open(t);
    const heard = listen(e);
    await e.watch('closing');
    await e.close();
    // A closed engine may refuse the append; another engine of the same store (if it has one) publishes it.
    await Promise.resolve(e.append('closing', '"after close"')).catch(() => undefined);
    const other = await open(t);
    await other.append('closing', '"from another engine"');
    await sleep(SILENCE_MS);
    t.same(heard.messages, []);
  });
}
