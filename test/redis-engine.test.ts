/**
 * The cluster-mode engine against a real Redis, in what is its own beyond the
 * Engine contract (test/engine-contract.test.ts runs that against it, on one
 * Redis and on a Redis Cluster): what the Lua scripts leave in Redis, its
 * first second, restarts that lose the data, delivery to watchers on another
 * engine (another node), the read-back after an interrupted subscription and
 * the gap when that is impossible, and failure while Redis is down. The
 * black-box tests of whole nodes are in cluster*.test.ts.
 */
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { type ReadLimits, StoreFailure } from '../src/engine/engine.js';
import { connectionOptions } from '../src/engine/redis/connect.js';
import { channelKeys } from '../src/engine/redis/keys.js';
import { NodeRecovery, ownRecoveryCell } from '../src/engine/redis/recovery.js';
import { RedisEngine, type RedisEngineOptions } from '../src/engine/redis/redis-engine.js';
import type { Subscriber, SubscriberEvents } from '../src/engine/redis/subscriber.js';
import { redisPastFirstSecond } from './helpers/cluster.js';
import { redisAvailable, type RedisServer, startRedis } from './helpers/redis.js';
import { readTexts } from './helpers/read-texts.js';
import { sleep, waitFor } from './helpers/wait.js';

const ALL: ReadLimits = { maxMessages: 1_000_000, maxBytes: 1 << 30 };

function engine(t: Test, redis: RedisServer, options: Partial<RedisEngineOptions> = {}): RedisEngine {
  const e = new RedisEngine({
    target: { urls: [redis.url], cluster: false },
    prefix: 'test:',
    bufferSize: 1000,
    bufferBytes: 1 << 24,
    channelTtlMs: 300_000,
    timeoutMs: 1000,
    maxPending: 10_000,
    onConnection() {},
    ...options,
  });
  t.teardown(() => e.close());
  return e;
}

/** Resolves once the engine's command connection is ready. */
async function ready(e: RedisEngine): Promise<void> {
  await waitFor(() => e.stats().up, { timeoutMs: 5000, what: 'the Redis connection is ready' });
}

/** Two engines on one Redis: `a` publishes, `b` watches, and `got` holds the times `b`'s listener heard. */
async function publisherAndWatcher(t: Test): Promise<{ redis: RedisServer; a: RedisEngine; b: RedisEngine; got: number[] }> {
  const redis = await startRedis(t);
  const a = engine(t, redis);
  const b = engine(t, redis);
  await Promise.all([ready(a), ready(b)]);
  const got: number[] = [];
  b.setListener((_channel, time) => got.push(time));
  return { redis, a, b, got };
}

if (redisAvailable(t)) {
  t.test('reading a channel creates no keys', async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis);
    await ready(e);
    const cursor = await e.currentTime('fresh');
    await readTexts(e, 'fresh', cursor, ALL);
    await readTexts(e, 'fresh', 0, ALL);
    t.equal(await redis.cli('EXISTS', 'test:{fresh}:s', 'test:{fresh}:m'), '0');
  });

  t.test("a Redis server's first second: cursors handed out in it are not missed, chaining from them does not loop", async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis);
    await ready(e);
    const info = await redis.cli('INFO', 'server');
    if (!/uptime_in_seconds:0\r?\n/.test(info)) t.comment('Redis already lived a second: the first-second case was not reached this time');
    const cursor = await e.currentTime('early');
    const empty = await readTexts(e, 'early', cursor, ALL);
    t.same([empty.bodies, empty.missed], [[], false], 'a cursor from sync in the first second is not missed');
    const again = await readTexts(e, 'early', empty.time, ALL);
    t.equal(again.missed, false, 'nor the time the answer gave');
    const time = await e.append('early', '"m"');
    t.ok(time > cursor && time > empty.time, 'the first append is above both');
    t.same(await readTexts(e, 'early', cursor, ALL), { time, bodies: ['"m"'], missed: false });
  });

  t.test('trimming keeps the stream and the byte count of its hash in step', async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis, { bufferSize: 5, bufferBytes: 20 });
    await ready(e);
    for (let i = 0; i < 8; i++) await e.append('c', `"${i}"`);
    t.equal(await redis.cli('XLEN', 'test:{c}:s'), '5', 'five kept');
    t.equal(await redis.cli('HGET', 'test:{c}:m', 'b'), '15', 'their bytes');
    await e.append('c', `"${'x'.repeat(12)}"`);
    t.equal(await redis.cli('XLEN', 'test:{c}:s'), '3', 'bytes: 3 + 3 + 14 <= 20');
    t.equal(await redis.cli('HGET', 'test:{c}:m', 'b'), '20');
    await e.append('c', `"${'y'.repeat(40)}"`);
    t.equal(await redis.cli('XLEN', 'test:{c}:s'), '1', 'a message over the byte bound is kept alone');
    t.equal(await redis.cli('HGET', 'test:{c}:m', 'b'), '42');
  });

  t.test("both keys expire the channel TTL after the channel's last append", async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis, { channelTtlMs: 1500 });
    await ready(e);
    await redisPastFirstSecond(redis); // in its first second times, and so expiries, may run up to a second ahead
    await e.append('idle', '"a"');
    const ttl = Number(await redis.cli('PTTL', 'test:{idle}:s'));
    t.ok(ttl > 0 && ttl <= 1500, `the stream expires (PTTL ${ttl})`);
    t.ok(Number(await redis.cli('PTTL', 'test:{idle}:m')) > 0, 'so does the hash');
    await waitFor(async () => (await redis.cli('EXISTS', 'test:{idle}:s', 'test:{idle}:m')) === '0', { timeoutMs: 5000, what: 'keys expired' });
  });

  t.test('a Redis restart that lost the data: cursors from before it see missed', async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis);
    await ready(e);
    await redisPastFirstSecond(redis);
    const time = await e.append('lost', '"a"');
    await redis.kill();
    const down = await e.append('lost', '"b"').then(
      () => undefined,
      (err: unknown) => err,
    );
    t.equal(down instanceof StoreFailure && down.kind, 'unavailable', 'down: unavailable at once');
    await redis.restart(); // at once, within the same second: Redis knows its start to the second only, which must not hide the loss
    await ready(e);
    const read = await waitFor(() => readTexts(e, 'lost', time, ALL).catch(() => undefined), { timeoutMs: 5000, what: 'reads work again' });
    t.equal(read.missed, true, 'the restart is reported as missed');
    t.same(read.bodies, []);
    t.ok((await e.append('lost', '"c"')) > time, 'appends work again, above');
  });

  t.test('another engine watching a channel receives every message, in order', async (t) => {
    const redis = await startRedis(t);
    const a = engine(t, redis);
    const b = engine(t, redis);
    await Promise.all([ready(a), ready(b)]);
    const got: Array<[string, number, string]> = [];
    b.setListener((channel, time, body) => got.push([channel, time, body]));
    await b.watch('news');
    t.equal(await redis.cli('PUBSUB', 'NUMSUB', 'test:{news}:n'), 'test:{news}:n\n1', 'one subscription in Redis');
    const times = [await a.append('news', '"1"'), await a.append('news', '"2"'), await a.append('other', '"x"'), await a.append('news', '"3"')];
    await waitFor(() => got.length >= 3, { timeoutMs: 5000, what: 'three messages' });
    t.same(got, [
      ['news', times[0], '"1"'],
      ['news', times[1], '"2"'],
      ['news', times[3], '"3"'],
    ]);
    b.unwatch('news');
    await waitFor(async () => (await redis.cli('PUBSUB', 'NUMSUB', 'test:{news}:n')) === 'test:{news}:n\n0', {
      timeoutMs: 5000,
      what: 'unsubscribed in Redis',
    });
    await a.append('news', '"4"');
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.equal(got.length, 3, 'nothing after unwatch');
  });

  t.test('a subscription cut by Redis: what was published meanwhile is read back, without gap or repeat', async (t) => {
    const { redis, a, b, got } = await publisherAndWatcher(t);
    await b.watch('cut');
    const sent: number[] = [];
    for (let i = 0; i < 5; i++) sent.push(await a.append('cut', `"before${i}"`));
    await waitFor(() => got.length === 5, { timeoutMs: 5000, what: 'the first five' });
    // Kill b's subscriber connection and publish while it is away; its reconnection takes at least the 50 ms backoff floor's half.
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    for (let i = 0; i < 20; i++) sent.push(await a.append('cut', `"during${i}"`));
    await waitFor(() => got.length >= 25, { timeoutMs: 10_000, what: 'the messages published during the cut' });
    for (let i = 0; i < 5; i++) sent.push(await a.append('cut', `"after${i}"`));
    await waitFor(() => got.length >= 30, { timeoutMs: 5000, what: 'the ones after' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.same(got, sent, 'every message once, in order');
    t.equal(await redis.cli('PUBSUB', 'NUMSUB', 'test:{cut}:n'), 'test:{cut}:n\n1', 'subscribed again, once');
  });

  t.test('an announcement that arrives with the re-subscription is held until what the cut lost was read back', async (t) => {
    // ioredis emits a message that shares a read with the SUBSCRIBE's reply
    // before the reply's promise callbacks run. That cannot be timed from
    // outside, so the subscriber's events are played here in that order:
    // re-subscription sent, an announcement, re-subscription settled.
    const { a, b, got } = await publisherAndWatcher(t);
    await b.watch('race');
    const { notify } = channelKeys('test:', 'race');
    const subscriber = (b as unknown as { subscriber: Pick<Subscriber, 'unsubscribe'> & { events: SubscriberEvents } }).subscriber;
    // The subscription is cut: what a publishes now is not heard.
    subscriber.unsubscribe(notify);
    const lost = [await a.append('race', '"lost0"'), await a.append('race', '"lost1"')];
    const latest = await a.append('race', '"latest"');
    subscriber.events.resubscribing([notify]);
    subscriber.events.announcement(notify, `${latest} "latest"`);
    subscriber.events.resubscribed([notify]);
    await waitFor(() => got.length >= 3, { timeoutMs: 5000, what: 'the read-back' });
    t.same(got, [...lost, latest], 'the lost messages first, then the one announced with the re-subscription, once each');
  });

  t.test('a watched channel whose messages a Redis restart lost: the gap is reported, once the subscription is back', async (t) => {
    const redis = await startRedis(t);
    const a = engine(t, redis);
    const b = engine(t, redis);
    await Promise.all([ready(a), ready(b)]);
    await redisPastFirstSecond(redis); // a restart after less than a second of life cannot be told from none (scripts.ts)
    const got: string[] = [];
    const gaps: string[] = [];
    b.setListener(
      (_channel, _time, body) => got.push(body),
      (channel) => gaps.push(channel),
    );
    await b.watch('gap');
    await a.append('gap', '"before"');
    await waitFor(() => got.length === 1, { timeoutMs: 5000, what: 'the message before the restart' });
    await redis.kill();
    await redis.restart();
    await waitFor(() => gaps.length > 0, { timeoutMs: 10_000, what: 'the gap reported' });
    await ready(a);
    await a.append('gap', '"after"');
    await waitFor(() => got.length === 2, { timeoutMs: 5000, what: 'the message after the restart' });
    t.same(got, ['"before"', '"after"'], 'delivery goes on');
    t.same(gaps, ['gap'], 'the gap reported once');
  });

  t.test('Redis down: every operation fails at once as unavailable, saying why; then recovers by itself', async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis, { timeoutMs: 3000 });
    await ready(e);
    await e.append('d', '"a"');
    await redis.kill();
    await waitFor(() => !e.stats().up, { timeoutMs: 5000, what: 'the engine sees Redis down' });
    const started = Date.now();
    for (const op of [() => e.append('d', '"b"'), () => e.currentTime('d'), () => e.read('d', 0, ALL), () => e.watch('d')]) {
      const err = await (op() as Promise<unknown>).then(
        () => undefined,
        (err: unknown) => err,
      );
      t.ok(err instanceof StoreFailure, 'a StoreFailure');
      t.equal((err as StoreFailure).kind, 'unavailable');
      t.match((err as StoreFailure).message, /^the message store \(Redis\) is unavailable: /);
    }
    t.ok(Date.now() - started < 1000, 'at once, not after the command timeout');
    t.equal(e.stats().subscriptions, 0, 'a failed watch holds no subscription');
    await redis.restart();
    await ready(e);
    t.ok((await e.append('d', '"c"')) > 0, 'appends again');
  });

  t.test('engines sharing a ready count (the threads of one node) recover together: once one is back, the others serve at once', async (t) => {
    const redis = await startRedis(t);
    const readyCell = ownRecoveryCell();
    const engines = [1, 2, 3, 4].map(() => engine(t, redis, { readyCell }));
    await Promise.all(engines.map(ready));
    await redisPastFirstSecond(redis);
    await Promise.all(engines.map((e, i) => e.watch(`held${i}`)));
    await redis.kill();
    await waitFor(() => engines.every((e) => !e.stats().up), { timeoutMs: 5000, what: 'every engine sees Redis down' });
    await sleep(1500); // several failed attempts: each connection now waits 0.4 to 2 s before its next
    await redis.restart();
    await waitFor(() => engines.some((e) => e.stats().up), { timeoutMs: 5000, intervalMs: 2, what: 'one engine connected again' });
    // At once, in the turn that saw the first one back: the others' requests wait for their own connections instead of failing.
    const appends = await Promise.allSettled(engines.map((e, i) => e.append(`after${i}`, '"x"')));
    t.same(
      appends.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')),
      engines.map(() => 'ok'),
      'every engine appends as soon as one is back',
    );
    const watches = await Promise.allSettled(engines.map((e, i) => e.watch(`new${i}`)));
    t.same(
      watches.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')),
      engines.map(() => 'ok'),
      'every engine subscribes as soon as one is back (its subscriber connection too)',
    );
  });

  t.test('without requests, the other engines of the node reconnect as soon as one is back, not at the end of their backoff', async (t) => {
    const redis = await startRedis(t);
    const readyCell = ownRecoveryCell();
    const engines = [1, 2, 3, 4].map(() => engine(t, redis, { readyCell }));
    await Promise.all(engines.map(ready));
    await redis.kill();
    await waitFor(() => engines.every((e) => !e.stats().up), { timeoutMs: 5000, what: 'every engine sees Redis down' });
    await sleep(1500);
    await redis.restart();
    await waitFor(() => engines.some((e) => e.stats().up), { timeoutMs: 5000, intervalMs: 2, what: 'one engine connected again' });
    const first = Date.now();
    await waitFor(() => engines.every((e) => e.stats().up), { timeoutMs: 5000, intervalMs: 2, what: 'every engine connected again' });
    const spread = Date.now() - first;
    t.ok(spread < 300, `all connected within 300 ms of the first (${spread} ms; each on its own backoff: up to 2 s)`);
  });

  t.test("cutting a backoff short reconnects at once, and the attempt it replaced never runs (pins ioredis's private reconnectTimeout)", async (t) => {
    const redis = await startRedis(t);
    const conn = new Redis(redis.url, { ...connectionOptions(1000), retryStrategy: () => 1500 });
    conn.on('error', () => {});
    t.teardown(() => conn.disconnect());
    const tracked = new NodeRecovery(ownRecoveryCell(), 1000).track(conn);
    await waitFor(() => conn.status === 'ready', { timeoutMs: 5000, what: 'connected' });
    await redis.kill();
    await waitFor(() => conn.status === 'reconnecting', { timeoutMs: 5000, what: 'waiting out its backoff' });
    t.ok((conn as unknown as { reconnectTimeout: unknown }).reconnectTimeout, 'ioredis keeps the pending attempt in reconnectTimeout');
    await redis.restart();
    const started = Date.now();
    await tracked.catchUp();
    t.equal(conn.status, 'ready', 'reconnected');
    t.ok(Date.now() - started < 1000, 'at once, not after the 1.5 s backoff');
    conn.disconnect();
    await sleep(2000);
    t.equal(conn.status, 'end', 'a closed connection stays closed: the replaced attempt did not run');
  });

  t.test('at most maxPending commands in flight; past it, unavailable at once', async (t) => {
    const redis = await startRedis(t);
    const e = engine(t, redis, { maxPending: 2 });
    await ready(e);
    const results = await Promise.allSettled([e.append('p', '"1"'), e.append('p', '"2"'), e.append('p', '"3"')]);
    t.same(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected'],
    );
    t.equal(((results[2] as PromiseRejectedResult).reason as StoreFailure).kind, 'unavailable');
    t.ok((await e.append('p', '"4"')) > 0, 'fine again once they completed');
  });
}
