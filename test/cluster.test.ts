/**
 * Cluster mode (--redis): several server processes ("nodes") on one Redis, or
 * on a three-master Redis Cluster, serve the same channels. Real servers over
 * real sockets and real redis-servers (test/helpers/redis.ts); skipped without
 * redis-server (failed under CI).
 *
 * - a node answers its first requests (no 503 while its connections open);
 * - two and three nodes (2 threads on some): a put on one answers the gets
 *   waiting on another, sync agrees everywhere, times strictly increase per
 *   channel whichever node puts;
 * - chaining readers on every node under concurrent publishers on every node;
 * - hidden costs: one Redis subscription per channel per node, dropped a few
 *   seconds after the last get left;
 * - bad input stores nothing, a bad --redis exits 2;
 * - the same guarantees on a Redis Cluster, with sharded subscriptions.
 *
 * Faults (Redis killed, a node killed, a node cut off) are in
 * cluster-faults.test.ts.
 */
import t, { type Test } from 'tap';
import calculateSlot from 'cluster-key-slot';
import { ownerOf } from '../src/threads/router.js';
import {
  checkCleanPublisher,
  checkReader,
  numsub,
  publisher,
  reader,
  redisPastFirstSecond,
  startNode,
  waitGauge,
  waitNumsub,
  type PublisherResult,
} from './helpers/cluster.js';
import { EventStreamClient, SocketClient } from './helpers/streams.js';
import { startProxy } from './helpers/tcp-proxy.js';
import { checkError, strictlyIncreasing, uniq } from './helpers/protocol.js';
import { freePort, redisAvailable, startRedis, startRedisCluster, type RedisServer } from './helpers/redis.js';
import { runCli, since, sleep, stillPending, waitFor, within, type CometServer } from './helpers/server.js';

/** Channel names whose owner thread on a 2-thread node is 0 and 1, `each` of both. */
function channelsOnBothThreads(prefix: string, each: number): string[] {
  const out: string[] = [];
  const per = [0, 0];
  for (let i = 0; i < 1000 && (per[0]! < each || per[1]! < each); i++) {
    const c = uniq(prefix);
    const owner = ownerOf(c, 2);
    if (per[owner]! < each) {
      per[owner]!++;
      out.push(c);
    }
  }
  return out;
}

const notifyKey = (channel: string) => `comet:{${channel}}:n`;

/**
 * A fresh channel: a get waiting on `to` with a cursor from sync, and one
 * without a time; a put on `from` answers both at once with the message and
 * its time; then sync agrees on every node. The gets are known to wait once
 * Redis shows the receiving node's subscription to the channel.
 */
async function crossNode(t: Test, redis: RedisServer, nodes: CometServer[], from: CometServer, to: CometServer, channel: string, label: string): Promise<void> {
  const synced = await to.sync(channel);
  const withCursor = to.get(channel, { time: synced, timeout: 10 });
  const withoutTime = to.get(channel, { timeout: 10 });
  const subs = await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 1, { timeoutMs: 4000 });
  t.strictSame(subs, [1], `${label}: the receiving node subscribed to the channel (one subscription for both gets)`);
  // Subscribed is not yet registered: the get without a time still reads the channel's time after subscribing.
  t.ok(await to.waitParked(2), `${label}: both gets parked`);
  t.ok(await stillPending(withCursor, 100), `${label}: the get waits for a message`);
  const message = `${label} é ${Math.random()}`;
  const started = performance.now();
  const time = await from.put(channel, message);
  const [a, b] = await within(Promise.all([withCursor, withoutTime]), 5000, `${label}: waiting gets answered`);
  t.ok(since(started) < 3000, `${label}: answered promptly, not by the timeout`, { ms: Math.round(since(started)) });
  t.strictSame([a.messages, a.time, a.missed], [[message], time, undefined], `${label}: get with a cursor answers with the message and its time`);
  t.strictSame([b.messages, b.time, b.missed], [[message], time, undefined], `${label}: get without a time answers with it too`);
  t.ok(time > synced, `${label}: the put's time is above the earlier sync`);
  const after = await Promise.all(nodes.map((n) => n.sync(channel)));
  t.strictSame(
    after,
    nodes.map(() => time),
    `${label}: sync on every node answers the put's time`,
  );
}

/** Puts alternating between the nodes, each after the previous was answered: strictly increasing times. */
async function alternatingPuts(t: Test, nodes: CometServer[], channel: string, count: number): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await nodes[i % nodes.length]!.put(channel, `alt-${i}`));
  t.ok(strictlyIncreasing(times), `${count} puts alternating over ${nodes.length} nodes: strictly increasing times`, {
    firstBad: times.findIndex((x, i) => i > 0 && x <= times[i - 1]!),
  });
  // And concurrent puts from every node at once: no two share a time, and the stream orders them by it.
  const before = await nodes[0]!.sync(channel);
  const concurrent = await Promise.all(
    nodes.flatMap((n, k) => Array.from({ length: 20 }, (_, j) => n.put(channel, `conc-${k}-${j}`).then((time) => ({ time, m: `conc-${k}-${j}` })))),
  );
  t.equal(
    new Set(concurrent.map((c) => c.time)).size,
    concurrent.length,
    `${concurrent.length} concurrent puts from ${nodes.length} nodes: all times distinct`,
  );
  t.ok(
    concurrent.every((c) => c.time > before),
    'all above the sync before them',
  );
  const got = await nodes[nodes.length - 1]!.get(channel, { time: before, timeout: 0 });
  t.strictSame(
    got.messages,
    [...concurrent].sort((x, y) => x.time - y.time).map((c) => c.m),
    'a get returns them in time order',
  );
}

t.test('one Redis, two then three nodes', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis.url, 2), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);

  await t.test('a seed list whose first URL is down: the node starts on the one that answers', async (t) => {
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const node = await startNode(t, `${dead},${redis.url}`, 1);
    const time = await node.put(uniq('seeds'), 'x');
    t.ok(time > 0, 'puts are stored through the second URL');
  });

  await t.test('a node serves as soon as it listens: no 503 while its Redis connections are made', async (t) => {
    // A node whose every connection to Redis takes 300 ms to open: its threads
    // connect after the listening line. Its first requests, on channels owned
    // by both of its threads, wait for those connections instead of failing.
    const slow = await startProxy(t, redis.port, { delayMs: 300 });
    const fresh = await startNode(t, slow.url, 2);
    const chs = channelsOnBothThreads('first', 2);
    const answers = await Promise.all([
      ...chs.map((c) => fresh.call({ method: 'sync', channel: c })),
      ...chs.map((c) => fresh.call({ method: 'put', channel: c, message: 'x' })),
      ...chs.map((c) => fresh.call({ method: 'get', channel: c, time: 0, timeout: 0 })),
    ]);
    t.strictSame(
      answers.map((r) => r.status),
      answers.map(() => 200),
      'every first request answered 200',
      { bodies: answers.map((r) => r.body) },
    );
    await fresh.stop('SIGKILL');
  });

  await t.test('two nodes (2 threads and 1): put on one, the waiting get on the other answers', async (t) => {
    // Channels owned by each of A's two threads, so requests cross A's threads as well as the nodes.
    const chs = channelsOnBothThreads('two', 3);
    const pairs: Array<[CometServer, CometServer, string]> = [
      [a, b, 'A->B'],
      [b, a, 'B->A'],
      [a, a, 'A->A'],
    ];
    for (const [i, channel] of chs.entries()) {
      const [from, to, label] = pairs[i % 3]!;
      await crossNode(t, redis, [a, b], from, to, channel, `${label} (owner thread ${ownerOf(channel, 2)} on A)`);
    }
    await alternatingPuts(t, [a, b], chs[0]!, 60);
  });

  const c = await startNode(t, redis.url, 2);
  const nodes = [a, b, c];

  await t.test('three nodes: every ordered pair, sync agreement, alternating puts', async (t) => {
    const name = (n: CometServer) => 'ABC'[nodes.indexOf(n)];
    const chs = channelsOnBothThreads('three', 3);
    let i = 0;
    for (const from of nodes) {
      for (const to of nodes) {
        if (from !== to) await crossNode(t, redis, nodes, from, to, chs[i++]!, `${name(from)}->${name(to)}`);
      }
    }
    await alternatingPuts(t, nodes, chs[0]!, 90);
  });

  await t.test('chaining across nodes: 3 publishers on 3 nodes, 4 chaining readers from sync', async (t) => {
    const N = 200;
    const channel = uniq('chain');
    const syncs = await Promise.all(nodes.map((n) => n.sync(channel)));
    const all = (r: { messages: string[] }) => r.messages.length >= 3 * N;
    const readers = [
      reader(a, channel, 'reader on A', syncs[0]!, { until: all }),
      reader(b, channel, 'reader on B', syncs[1]!, { until: all }),
      reader(c, channel, 'reader on C', syncs[2]!, { until: all }),
      // A slow one, so that messages pile up between its gets and answers carry several.
      reader(a, channel, 'slow reader on A', syncs[0]!, { until: all, pauseMs: () => Math.floor(Math.random() * 20) }),
    ];
    const waiting = await Promise.all(nodes.map((n, i) => n.waitWaiting(i === 0 ? 2 : 1, { timeoutMs: 5000 })));
    t.strictSame(waiting, [true, true, true], 'every reader waits before the first put');
    const started = performance.now();
    const pubs = await Promise.all(nodes.map((n, i) => publisher(n, channel, `p${i}`, { count: N }).done));
    t.comment(`${3 * N} puts over 3 nodes in ${Math.round(since(started))} ms`);
    for (const p of pubs) checkCleanPublisher(t, p);
    // Promptly: well before a get's 10 s long-poll timeout would have re-read them.
    const results = await within(Promise.all(readers.map((r) => r.done)), 5000, 'every reader has every message');
    for (const r of results) {
      checkReader(t, r, pubs);
      t.equal(r.messages.length, 3 * N, `${r.name}: exactly ${3 * N} messages`);
    }
    t.ok(results[3]!.answers.length < 3 * N, 'the slow reader got several messages per answer at least once', { answers: results[3]!.answers.length });
    const order = results[0]!.messages.join('\n');
    t.ok(
      results.every((r) => r.messages.join('\n') === order),
      'every reader saw the same sequence',
    );
  });

  await t.test('streams across nodes: event streams and WebSockets on every node, 3 publishers on 3 nodes', async (t) => {
    const N = 100;
    const channel = uniq('streams');
    const from = await a.sync(channel);
    const events = await Promise.all(nodes.map((n) => EventStreamClient.open(n, { channel, time: from })));
    const sockets = await Promise.all(nodes.map((n) => SocketClient.open(n)));
    t.teardown(() => [...events, ...sockets].forEach((s) => s.close()));
    await waitFor(() => events.every((e) => e.comments >= 1), { what: 'every event stream open' });
    for (const ws of sockets) t.same(await ws.request({ id: 1, method: 'subscribe', channel, time: from }), { id: 1, time: from });
    const pubs = await Promise.all(nodes.map((n, i) => publisher(n, channel, `p${i}`, { count: N }).done));
    for (const p of pubs) checkCleanPublisher(t, p);
    const times = pubs.flatMap((p) => p.acked.map((m) => m.time)).sort((x, y) => x - y);
    for (const [i, e] of events.entries()) {
      await e.waitEvents(3 * N, 10_000);
      t.same(
        e.events.map((ev) => Number(ev.id)),
        times,
        `the event stream on node ${'ABC'[i]} has every message once, in time order`,
      );
    }
    const order = events[0]!.messages.join('\n');
    for (const [i, ws] of sockets.entries()) {
      await ws.waitMessages(channel, 3 * N, 10_000);
      t.equal(ws.messages(channel).join('\n'), order, `the WebSocket on node ${'ABC'[i]} saw the same sequence`);
      t.equal(ws.deliveries.at(-1)!.time, times.at(-1));
    }
  });
});

/** Pub/sub connections open at Redis, and their subscription counts (CLIENT LIST TYPE pubsub). */
async function pubsubClients(redis: RedisServer): Promise<Array<{ sub: number; ssub: number }>> {
  const out = await redis.cli('client', 'list', 'type', 'pubsub');
  return out
    .split('\n')
    .filter((l) => l.includes('id='))
    .map((l) => ({ sub: Number(/\bsub=(\d+)/.exec(l)?.[1] ?? 0), ssub: Number(/\bssub=(\d+)/.exec(l)?.[1] ?? 0) }));
}

t.test('hidden costs: one Redis subscription per channel per node, however many gets wait, and none once they left', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  // The two cases wait for the unsubscriptions in parallel, each with its own Redis and nodes.
  t.jobs = 2;

  t.test('50 waiting gets on one channel, over both threads of a node, then 50 on a second node', async (t) => {
    const redis = await startRedis(t);
    const [a, b] = await Promise.all([startNode(t, redis.url, 2), startNode(t, redis.url, 1)]);
    await redisPastFirstSecond(redis);
    const channel = uniq('cost');
    const key = notifyKey(channel);
    const from = await a.sync(channel);
    // 50 concurrent gets: 50 connections, spread by the kernel over A's two listening threads.
    const onA = Array.from({ length: 50 }, () => a.get(channel, { time: from, timeout: 20 }, { timeoutMs: 30000 }));
    t.ok(await a.waitWaiting(50, { exact: true, timeoutMs: 5000 }), 'A: 50 gets waiting');
    t.strictSame(await waitNumsub(redis, [key], ([n]) => n === 1, { timeoutMs: 3000 }), [1], 'PUBSUB NUMSUB: 1 subscription for 50 gets on one node');
    t.equal(await waitGauge(a, 'comet_redis_subscriptions', (v) => v === 1, 3000), 1, 'A: comet_redis_subscriptions 1');

    const abortB = new AbortController();
    const onB = Array.from({ length: 50 }, () =>
      b.get(channel, { time: from, timeout: 20 }, { timeoutMs: 30000, signal: abortB.signal }).catch((err: Error) => err),
    );
    t.ok(await b.waitWaiting(50, { exact: true, timeoutMs: 5000 }), 'B: 50 gets waiting');
    t.strictSame(await waitNumsub(redis, [key], ([n]) => n === 2, { timeoutMs: 3000 }), [2], 'PUBSUB NUMSUB: 2 with two nodes waiting');
    t.equal(await waitGauge(b, 'comet_redis_subscriptions', (v) => v === 1, 3000), 1, 'B: comet_redis_subscriptions 1');
    await sleep(300);
    t.strictSame([...(await numsub(redis, [key])).values()], [2], 'still 2 a moment later (not one per get)');
    const clients = await pubsubClients(redis);
    t.equal(
      clients.reduce((n, c) => n + c.sub, 0),
      2,
      'CLIENT LIST: 2 channel subscriptions in all',
      { clients },
    );

    // B's clients go away; A's are answered by a put.
    abortB.abort();
    const aborted = await within(Promise.all(onB), 5000, 'aborted gets on B');
    t.ok(
      aborted.every((x) => x instanceof Error),
      "B's gets were aborted by the client",
    );
    t.ok(await b.waitWaiting(0, { exact: true, timeoutMs: 3000 }), 'B: no get waiting');
    const newsBefore = (await a.metrics()).value('comet_news_sent_total');
    const time = await b.put(channel, 'wake');
    const answers = await within(Promise.all(onA), 5000, "A's gets answered");
    t.ok(
      answers.every((x) => x.time === time && x.messages.length === 1 && x.messages[0] === 'wake'),
      "A's 50 gets answered with the message",
    );
    // The owner thread on A sends one notice per thread with waiters: 2 shows the 50 gets were on both threads.
    const news = (await a.metrics()).value('comet_news_sent_total') - newsBefore;
    t.equal(news, 2, 'A: one cross-thread notice per thread with waiters (the gets were spread over both), not one per get');

    const left = performance.now();
    t.strictSame(await waitNumsub(redis, [key], ([n]) => n === 0, { timeoutMs: 8000 }), [0], 'PUBSUB NUMSUB back to 0 once the gets left');
    t.comment(`unsubscribed ${Math.round(since(left))} ms after the last get left (the linger is 2-3 s)`);
    t.equal(await waitGauge(a, 'comet_redis_subscriptions', (v) => v === 0, 3000), 0, 'A: comet_redis_subscriptions back to 0');
    t.equal(await waitGauge(b, 'comet_redis_subscriptions', (v) => v === 0, 3000), 0, 'B: comet_redis_subscriptions back to 0');
  });

  t.test('100 channels with a waiting get each: 100 subscriptions on one connection per thread, then 0', async (t) => {
    const redis = await startRedis(t);
    const a = await startNode(t, redis.url, 2);
    const chs = Array.from({ length: 100 }, () => uniq('many'));
    const keys = chs.map(notifyKey);
    const abort = new AbortController();
    const gets = chs.map((c) => a.get(c, { timeout: 20 }, { timeoutMs: 30000, signal: abort.signal }).catch((err: Error) => err));
    t.ok(await a.waitWaiting(100, { exact: true, timeoutMs: 5000 }), '100 gets waiting');
    const counts = await waitNumsub(redis, keys, (c) => c.every((n) => n === 1), { timeoutMs: 5000 });
    t.ok(
      counts.every((n) => n === 1),
      'PUBSUB NUMSUB: 1 for each of the 100 channels',
      { counts: counts.filter((n) => n !== 1) },
    );
    t.equal(await waitGauge(a, 'comet_redis_subscriptions', (v) => v === 100, 3000), 100, 'comet_redis_subscriptions 100');
    const clients = (await pubsubClients(redis)).filter((c) => c.sub > 0);
    t.ok(clients.length <= a.threads, `at most one subscriber connection per thread of the node (${clients.length})`, { clients });
    t.equal(
      clients.reduce((n, c) => n + c.sub, 0),
      100,
      '100 subscriptions in all',
    );

    abort.abort();
    await within(Promise.all(gets), 5000, 'aborted gets');
    t.ok(await a.waitWaiting(0, { exact: true, timeoutMs: 3000 }), 'no get waiting');
    const after = await waitNumsub(redis, keys, (c) => c.every((n) => n === 0), { timeoutMs: 8000 });
    t.ok(
      after.every((n) => n === 0),
      'PUBSUB NUMSUB back to 0 for every channel',
      { left: after.filter((n) => n !== 0).length },
    );
    t.equal(await redis.cli('pubsub', 'channels'), '', 'PUBSUB CHANNELS: none');
    t.equal(await waitGauge(a, 'comet_redis_subscriptions', (v) => v === 0, 3000), 0, 'comet_redis_subscriptions back to 0');
  });
});

t.test('bad input in cluster mode: 4xx and nothing stored; a bad --redis is refused at startup', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const node = await startNode(t, redis.url, 2, ['--max-message-bytes', '64']);
  await redisPastFirstSecond(redis);
  const channel = uniq('bad');
  checkError(t, await node.call({ method: 'put', channel }), 400, 'COMET_ERR_MISSING_MESSAGE', 'put without message');
  checkError(t, await node.call({ method: 'put', channel, message: 'x'.repeat(65) }), 413, 'COMET_ERR_MESSAGE_TOO_LARGE', 'message over the limit');
  checkError(
    t,
    await node.post({ method: 'put', channel, message: 'é'.repeat(33) }),
    413,
    'COMET_ERR_MESSAGE_TOO_LARGE',
    'POST message over the limit in bytes',
  );
  checkError(t, await node.call({ method: 'put', channel: '', message: 'x' }), 400, 'COMET_ERR_BAD_CHANNEL', 'empty channel');
  checkError(t, await node.call({ method: 'put', channel, message: 'x', callback: 'alert(1)' }), 400, 'COMET_ERR_BAD_CALLBACK', 'bad callback on put');
  checkError(t, await node.call({ method: 'get', channel, time: '-1' }), 400, 'COMET_ERR_BAD_TIME', 'bad time');
  checkError(t, await node.call({ method: 'get', channel, timeout: 'x' }), 400, 'COMET_ERR_BAD_TIMEOUT', 'bad timeout');
  checkError(t, await node.call({ method: 'publish', channel, message: 'x' }), 400, 'COMET_ERR_BAD_METHOD', 'bad method');
  t.equal(await redis.cli('dbsize'), '0', 'nothing stored in Redis');
  t.equal(await redis.cli('pubsub', 'channels'), '', 'nothing subscribed');
  const time = await node.put(channel, 'fine');
  t.strictSame((await node.get(channel, { time: time - 1, timeout: 0 })).messages, ['fine'], 'a valid put afterwards is stored and read');
  t.equal(await redis.cli('dbsize'), '2', "the channel's two keys (stream and meta)");
  t.equal(await redis.cli('xlen', `comet:{${channel}}:s`), '1', 'one message in the stream');

  for (const bad of [
    'http://127.0.0.1:6379',
    'redis://',
    'redis://[::1',
    'redis://127.0.0.1:99999',
    'redis://127.0.0.1:abc',
    'redis://127.0.0.1:0',
    'redis://127.0.0.1/db',
    `${redis.url},127.0.0.1:1`,
  ]) {
    const r = await runCli(['--port', '0', '--threads', '1', '--redis', bad], { timeoutMs: 5000 });
    t.equal(r.code, 2, `--redis ${JSON.stringify(bad)}: exit code 2`, { stderr: r.stderr.slice(0, 300), stdout: r.stdout.slice(0, 300), timedOut: r.timedOut });
    t.match(r.stderr, /--redis/, 'the message names the option');
  }
  const env = await runCli(['--port', '0', '--threads', '1'], { env: { COMET_REDIS: 'redis://[::1' }, timeoutMs: 5000 });
  t.equal(env.code, 2, 'a bad COMET_REDIS: exit code 2');
  const prefix = await runCli(['--port', '0', '--threads', '1', '--redis', redis.url, '--redis-prefix', 'a{b}'], { timeoutMs: 5000 });
  t.equal(prefix.code, 2, 'a --redis-prefix with braces: exit code 2');
});

/** The port of the master serving each slot, from CLUSTER NODES. */
async function slotOwners(node: RedisServer): Promise<Map<number, number>> {
  const owners = new Map<number, number>();
  for (const line of (await node.cli('cluster', 'nodes')).split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 9 || !f[2]!.includes('master')) continue;
    const port = Number(/:(\d+)@/.exec(f[1]!)?.[1]);
    for (const range of f.slice(8)) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(range);
      if (!m) continue;
      for (let s = Number(m[1]); s <= Number(m[2] ?? m[1]); s++) owners.set(s, port);
    }
  }
  return owners;
}

t.test('a three-master Redis Cluster: the same guarantees, channels on every master, sharded subscriptions', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const cluster = await startRedisCluster(t);
  const owners = await slotOwners(cluster.nodes[0]!);
  t.equal(owners.size, 16384, 'CLUSTER NODES: every slot has a master');
  const masterOf = (channel: string) => cluster.nodes.find((n) => n.port === owners.get(calculateSlot(notifyKey(channel))))!;
  // Channels until each master owns two of them.
  const byMaster = new Map<number, string[]>(cluster.nodes.map((n) => [n.port, []]));
  for (let i = 0; i < 1000 && [...byMaster.values()].some((l) => l.length < 2); i++) {
    const c = uniq('rc');
    byMaster.get(masterOf(c).port)!.push(c);
  }
  const perMaster = [...byMaster.values()].map((l) => l.slice(0, 2));
  t.ok(
    perMaster.every((l) => l.length === 2),
    'two channels on each of the 3 masters',
  );
  const first = perMaster[0]![0]!;
  t.equal(
    await cluster.nodes[1]!.cli('-c', 'cluster', 'keyslot', notifyKey(first)),
    String(calculateSlot(notifyKey(first))),
    'CLUSTER KEYSLOT agrees with cluster-key-slot',
  );

  // A knows every master (after a seed that is down), B and C one seed each (the rest is discovered).
  const [a, b, c] = await Promise.all([
    startNode(t, [`redis://127.0.0.1:${await freePort()}`, ...cluster.urls].join(','), 2),
    startNode(t, cluster.urls[1]!, 1),
    startNode(t, cluster.urls[2]!, 1),
  ]);
  const nodes = [a, b, c];
  await redisPastFirstSecond(...cluster.nodes);
  t.ok(
    a
      .logs()
      .concat(b.logs())
      .every((l) => l.level < 50),
    'no error logged at start',
  );

  await t.test('put on one node, waiting gets on two others; sharded subscriptions on the owning master only', async (t) => {
    for (const [m, chs] of perMaster.entries()) {
      const channel = chs[0]!;
      const master = masterOf(channel);
      const others = cluster.nodes.filter((n) => n !== master);
      const from = nodes[m % 3]!;
      const [to1, to2] = nodes.filter((n) => n !== from) as [CometServer, CometServer];
      const synced = await from.sync(channel);
      const g1 = to1.get(channel, { time: synced, timeout: 10 });
      const g2 = to2.get(channel, { time: synced, timeout: 10 });
      const key = notifyKey(channel);
      t.strictSame(
        await waitNumsub(master, [key], ([n]) => n === 2, { sub: 'shardnumsub', timeoutMs: 4000 }),
        [2],
        `master ${master.port}: PUBSUB SHARDNUMSUB 2 (one per waiting node)`,
      );
      for (const o of others)
        t.strictSame([...(await numsub(o, [key], 'shardnumsub')).values()], [0], `master ${o.port}: no subscription to a channel it does not own`);
      t.strictSame([...(await numsub(master, [key])).values()], [0], 'no classic (non-sharded) subscription');
      const time = await from.put(channel, `m${m}`);
      const [r1, r2] = await within(Promise.all([g1, g2]), 5000, 'waiting gets answered');
      t.strictSame(
        [r1.messages, r1.time, r2.messages, r2.time],
        [[`m${m}`], time, [`m${m}`], time],
        `master ${master.port}: both waiting gets answered with the message`,
      );
      t.strictSame(await Promise.all(nodes.map((n) => n.sync(channel))), [time, time, time], 'sync agrees on every node');
      t.equal(
        await master.cli('exists', `comet:{${channel}}:s`, `comet:{${channel}}:m`),
        '2',
        `stream and meta stored on master ${master.port}, which owns the slot`,
      );
      const times: number[] = [];
      for (let i = 0; i < 30; i++) times.push(await nodes[i % 3]!.put(channel, `alt-${i}`));
      t.ok(strictlyIncreasing(times) && times[0]! > time, '30 puts alternating over the nodes: strictly increasing times');
    }
  });

  await t.test('chaining over 6 channels on 3 masters: 3 publishers on 3 nodes, a reader per node and channel', async (t) => {
    // Both channels of each master (the first ones already hold messages: the readers start from sync).
    const chs = perMaster.flatMap((l) => l);
    const N = 40;
    const syncs = await Promise.all(chs.map((ch) => a.sync(ch)));
    const readers = chs.flatMap((ch, i) =>
      nodes.map((n, k) => ({
        ch,
        r: reader(n, ch, `reader on ${'ABC'[k]} of ${ch}`, syncs[i]!, {
          until: (x) => x.messages.length >= 3 * N,
          pauseMs: () => (k === 2 ? Math.floor(Math.random() * 10) : 0),
        }),
      })),
    );
    for (const n of nodes) t.ok(await n.waitWaiting(chs.length, { timeoutMs: 5000 }), 'readers waiting');
    const pubs = await Promise.all(nodes.map((n, k) => Promise.all(chs.map((ch) => publisher(n, ch, `p${k}`, { count: N }).done))));
    await within(Promise.all(readers.map((x) => x.r.done)), 5000, 'every reader has every message, well before a long-poll timeout');
    for (const [i, ch] of chs.entries()) {
      const mine = pubs.map((perChannel) => perChannel[i]!) as PublisherResult[];
      for (const p of mine) checkCleanPublisher(t, p);
      for (const { r } of readers.filter((x) => x.ch === ch)) {
        const res = await r.done;
        checkReader(t, res, mine);
        t.equal(res.messages.length, 3 * N, `${res.name}: ${3 * N} messages`);
      }
    }
    const masters = new Set(chs.map((ch) => masterOf(ch).port));
    t.equal(masters.size, 3, 'the channels live on all three masters');
  });
});

t.test('a Redis with a password: the node authenticates, and its password never reaches the log', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const secret = 'pw-s3cret-x9';
  const redis = await startRedis(t);
  await redis.cli('CONFIG', 'SET', 'requirepass', secret); // after start: the helper's readiness check speaks no AUTH
  const url = `redis://:${secret}@127.0.0.1:${redis.port}`;
  const node = await startNode(t, url, 2);
  const channel = uniq('auth');
  const time = await node.put(channel, 'hello');
  t.ok(time > 0, 'a put is stored');
  t.equal(await redis.cli('-a', secret, '--no-auth-warning', 'EXISTS', `comet:{${channel}}:s`), '1', 'in the Redis that asked for the password');
  // A dropped connection logs again on its way back: the log lines about Redis must name it without the password.
  await redis.cli('-a', secret, '--no-auth-warning', 'CLIENT', 'KILL', 'TYPE', 'normal');
  await waitFor(async () => (await node.call({ method: 'sync', channel })).status === 200, { timeoutMs: 5000, what: 'a sync answered after the reconnection' });
  const lines = node.logs().filter((l) => typeof l.redis === 'string');
  t.ok(lines.length > 0, 'log lines name the Redis');
  t.notOk(node.outputTail(1_000_000).includes(secret), 'the password is nowhere in the output');
  t.ok(
    lines.every((l) => String(l.redis).includes(':***@')),
    'the URL is logged with the password masked',
    { lines: lines.map((l) => l.redis) },
  );
});
