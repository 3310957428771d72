/**
 * Cluster mode (--redis) under faults: Redis SIGKILLed and restarted on its
 * port (with and without persistence), one node SIGKILLed, one node cut off
 * from Redis by a proxy while the others go on. Real servers, real sockets,
 * real redis-servers; every wait and loop bounded. Skipped without
 * redis-server (failed under CI).
 */
import t, { type Test } from 'tap';
import {
  checkCleanPublisher,
  checkReader,
  isStoreDown,
  publisher,
  reader,
  redisPastFirstSecond,
  startNode,
  STORE_UNAVAILABLE,
  waitGauge,
  waitNumsub,
  type PublisherResult,
  type ReaderResult,
} from './helpers/cluster.js';
import { checkError, uniq } from './helpers/protocol.js';
import { redisAvailable, startRedis } from './helpers/redis.js';
import { startProxy } from './helpers/tcp-proxy.js';
import { sleep, stillPending, waitFor, within, type CometServer, type GetAnswer } from './helpers/server.js';

const notifyKey = (channel: string) => `comet:{${channel}}:n`;

/** A get retried (bounded) while the store answers 503. */
async function getRetrying(srv: CometServer, channel: string, params: Record<string, number>, deadlineMs = 10000): Promise<GetAnswer> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const res = await srv.call({ method: 'get', channel, ...params }, { timeoutMs: 30000 });
    if (!isStoreDown(res) || Date.now() > deadline) {
      if (res.status !== 200) throw new Error(`get ${channel}: HTTP ${res.status} ${res.body}`);
      return { time: res.json.time, messages: res.json.messages, missed: res.json.missed, res };
    }
    await sleep(100);
  }
}

/** Waits until every node has all its threads' Redis command connections ready again. */
async function waitAllUp(t: Test, nodes: CometServer[], timeoutMs = 10000): Promise<void> {
  const ups = await Promise.all(nodes.map((n) => waitGauge(n, 'comet_redis_up', (v) => v === n.threads, timeoutMs)));
  t.strictSame(
    ups,
    nodes.map((n) => n.threads),
    'comet_redis_up back to the thread count on every node',
  );
}

/** Has the reader seen every one of these messages? */
const sawAll = (r: ReaderResult, messages: string[]) => messages.every((m) => r.arrivedAt.has(m));

t.test('Redis SIGKILLed and restarted on its port (appendonly, fsync always) while publishers and readers run', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t, { appendonly: true, args: ['--appendfsync', 'always'] });
  const [a, b] = await Promise.all([startNode(t, redis.url, 2), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);
  const nodes = [a, b];
  const channel = uniq('outage');
  const quiet = uniq('held');
  const syncs = await Promise.all(nodes.map((n) => n.sync(channel)));
  // A channel with one stored message and then no traffic (one with no keys at all could not be
  // vouched for after a Redis restart: its held gets would rightly be told missed).
  const quietSync = await a.put(quiet, 'before');
  // Gets waiting on it, with a timeout longer than the whole outage.
  const held = nodes.map((n) => n.get(quiet, { time: quietSync, timeout: 25 }, { timeoutMs: 40000 }));

  const pubs = [
    publisher(a, channel, 'pA', { pauseMs: 5, end: true, endDeadlineMs: 15000 }),
    publisher(b, channel, 'pB', { pauseMs: 5, end: true, endDeadlineMs: 15000 }),
  ];
  const ends = ['pA:end', 'pB:end'];
  const opts = { until: (r: ReaderResult) => sawAll(r, ends), deadlineMs: 40000, pollTimeout: 25 };
  const readers = [
    reader(a, channel, 'reader on A', syncs[0]!, opts),
    reader(a, channel, 'slow reader on A', syncs[0]!, { ...opts, pauseMs: () => Math.floor(Math.random() * 30) }),
    reader(b, channel, 'reader on B', syncs[1]!, opts),
  ];
  await sleep(700);
  t.ok(
    pubs.every((p) => p.result.acked.length > 10),
    'puts acknowledged before the outage',
    { acked: pubs.map((p) => p.result.acked.length) },
  );

  await redis.kill();
  const killedAt = Date.now();
  const down = await Promise.all(nodes.map((n) => waitGauge(n, 'comet_redis_up', (v) => v === 0, 5000)));
  t.strictSame(down, [0, 0], 'comet_redis_up drops to 0 on both nodes');
  await waitFor(() => pubs.every((p) => p.result.unavailable.length > 0), { timeoutMs: 5000, what: 'a 503 for each publisher' });
  const first503 = pubs[0]!.result.first503!;
  checkError(t, first503, 503, STORE_UNAVAILABLE, 'a put while Redis is down');
  t.match(first503.json?.error, /^the message store \(Redis\) is unavailable: /, 'the error says what is unavailable');
  checkError(t, await a.call({ method: 'sync', channel }), 503, STORE_UNAVAILABLE, 'sync while Redis is down');
  checkError(t, await b.call({ method: 'get', channel: quiet, time: quietSync, timeout: 5 }), 503, STORE_UNAVAILABLE, 'a new get while Redis is down');
  t.ok(await stillPending(Promise.race(held), 10), 'gets that were already waiting are held, not failed');
  const ackedAtRestart = pubs.map((p) => p.result.acked.length);
  // Down long enough for several failed reconnection attempts (the backoff doubles from 50 ms).
  await sleep(Math.max(0, 1500 - (Date.now() - killedAt)));
  t.strictSame(
    pubs.map((p) => p.result.acked.length),
    ackedAtRestart,
    'no put acknowledged while Redis is down',
  );

  await redis.restart();
  const restartedAt = Date.now();
  t.comment(`Redis down for ${restartedAt - killedAt} ms`);
  await waitFor(() => pubs.every((p, i) => p.result.acked.length > ackedAtRestart[i]!), {
    timeoutMs: 10000,
    what: 'a 200 for each publisher after the restart',
  });
  t.comment(`puts answered 200 again ${Date.now() - restartedAt} ms after the restart`);
  await waitAllUp(t, nodes);
  t.equal(
    await redis
      .cli('xlen', `comet:{${channel}}:s`)
      .then(Number)
      .then((n) => n >= ackedAtRestart[0]! + ackedAtRestart[1]!),
    true,
    'the stream kept every acknowledged message (AOF)',
  );

  const wake = await b.put(quiet, 'wake');
  const heldAnswers = await within(Promise.all(held), 5000, 'held gets answered after the restart');
  t.strictSame(
    heldAnswers.map((h) => [h.messages, h.time, h.missed]),
    [
      [['wake'], wake, undefined],
      [['wake'], wake, undefined],
    ],
    'the gets held through the outage are answered with the next message, on both nodes',
  );

  await sleep(500);
  for (const p of pubs) p.stop();
  const results: PublisherResult[] = await Promise.all(pubs.map((p) => p.done));
  for (const p of results) {
    t.strictSame(p.errors, [], `${p.name}: no answer other than 200 and 503`);
    t.ok(p.unavailable.length > 0, `${p.name}: some puts answered 503 during the outage (${p.unavailable.length})`);
    t.ok(
      p.acked.some((x) => x.message === `${p.name}:end`),
      `${p.name}: puts acknowledged again after the restart (${p.acked.length} in all)`,
    );
  }
  for (const r of await Promise.all(readers.map((x) => x.done))) {
    checkReader(t, r, results);
    t.comment(`${r.name}: ${r.messages.length} messages, ${r.unavailable} gets answered 503 and retried`);
  }
  t.ok(a.alive && b.alive, 'both nodes still running');
});

t.test('Redis restarted without persistence: a cursor from before the restart gets missed:true, nothing crashes', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis.url, 2), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);
  const nodes = [a, b];
  const channel = uniq('lost');
  const from = await a.sync(channel);
  const times: number[] = [];
  for (const m of ['m1', 'm2', 'm3']) times.push(await b.put(channel, m));
  const got = await a.get(channel, { time: from, timeout: 0 });
  t.strictSame(got.messages, ['m1', 'm2', 'm3'], 'a reader has m1..m3');
  const cursor = got.time;
  // A get waiting across the restart, with the same cursor.
  const parked = a.get(channel, { time: cursor, timeout: 20 }, { timeoutMs: 30000 }).catch((err: Error) => err);
  t.ok(await a.waitWaiting(1), 'a get waits');
  // Parked, not merely sent: A subscribed to the channel, and read after subscribing.
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 1), [1], 'A subscribed');
  await sleep(200);

  await redis.kill();
  await redis.restart();
  t.equal(await redis.cli('dbsize'), '0', 'Redis came back empty');
  await waitAllUp(t, nodes);

  for (const [i, n] of nodes.entries()) {
    const g = await getRetrying(n, channel, { time: cursor, timeout: 5 });
    t.strictSame([g.messages, g.missed], [[], true], `node ${'AB'[i]}: a get with the old cursor answers at once with missed:true`);
    t.ok(g.time >= cursor, 'its time is not below the cursor');
  }
  const t4 = await b.put(channel, 'm4');
  t.ok(t4 > times[2]!, 'times still increase across the restart');
  const p = await within(parked, 5000, 'the get waiting across the restart is answered');
  t.notOk(p instanceof Error, 'the get waiting across the restart was held, not failed', { err: p instanceof Error ? p.message : undefined });
  if (!(p instanceof Error)) {
    t.equal(p.missed, true, 'it is told missed too: the restart lost what came after its cursor');
    t.ok(
      p.messages.every((m: string) => m === 'm4'),
      'with nothing but what Redis still holds',
      { messages: p.messages },
    );
  }
  const g = await a.get(channel, { time: cursor, timeout: 5 });
  t.strictSame([g.messages, g.missed], [['m4'], true], 'a get with the old cursor: what is held now, and missed:true');
  // The client resynchronises: sync, then chain without missed.
  const resync = await a.sync(channel);
  t.equal(resync, t4, 'sync answers the newest time');
  const next = b.put(channel, 'm5');
  const chained = await a.get(channel, { time: resync, timeout: 5 });
  t.strictSame([chained.messages, chained.missed], [['m5'], undefined], 'chaining from the new sync: no missed');
  await next;
  for (const n of nodes) {
    t.ok(n.alive, 'node still running');
    t.equal((await n.request({ path: '/healthz' })).status, 200, 'healthz 200');
  }
});

t.test('a node SIGKILLed mid-run: the clients of the other nodes see nothing wrong', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const [a, b, c] = await Promise.all([startNode(t, redis.url, 2), startNode(t, redis.url, 1), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);
  const channel = uniq('nodekill');
  const syncs = await Promise.all([a, b, c].map((n) => n.sync(channel)));
  const N = 150;
  const pA = publisher(a, channel, 'pA', { count: N, pauseMs: 3 });
  const pB = publisher(b, channel, 'pB', { count: N, pauseMs: 3 });
  const pC = publisher(c, channel, 'pC', { pauseMs: 3 });
  let cKilled = false;
  const until = (r: ReaderResult) =>
    cKilled &&
    sawAll(r, [`pA:${N - 1}`, `pB:${N - 1}`]) &&
    sawAll(
      r,
      pC.result.acked.map((x) => x.message),
    );
  const readers = [
    reader(a, channel, 'reader on A', syncs[0]!, { until }),
    reader(a, channel, 'slow reader on A', syncs[0]!, { until, pauseMs: () => Math.floor(Math.random() * 20) }),
    reader(b, channel, 'reader on B', syncs[1]!, { until }),
  ];
  const onC = reader(c, channel, 'reader on C', syncs[2]!, { maxErrors: 1 });
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 3), [3], 'the three nodes subscribed');

  await waitFor(() => pC.result.acked.length >= 40, { timeoutMs: 5000, what: "40 of C's puts acknowledged" });
  const stop = await c.stop('SIGKILL');
  cKilled = true;
  t.equal(stop.signal, 'SIGKILL', 'node C killed');
  pC.stop();
  onC.stop();
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 2), [2], "Redis dropped C's subscription");
  t.ok(pA.result.acked.length < N || pB.result.acked.length < N, 'A and B were still publishing when C died', {
    a: pA.result.acked.length,
    b: pB.result.acked.length,
  });

  const results = await Promise.all([pA.done, pB.done, pC.done]);
  checkCleanPublisher(t, results[0]!);
  checkCleanPublisher(t, results[1]!);
  t.comment(`C: ${results[2]!.acked.length} puts acknowledged before it died`);
  for (const r of await Promise.all(readers.map((x) => x.done))) {
    checkReader(t, r, results);
    t.equal(r.unavailable, 0, `${r.name}: no 503`);
  }
  await onC.done;
  t.ok(a.alive && b.alive, 'A and B still running');
  t.equal(await waitGauge(a, 'comet_redis_up', (v) => v === a.threads, 3000), a.threads, 'A still connected to Redis');
});

t.test('a node cut off from Redis: its waiting gets are held, then given what was put meanwhile (read back)', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const proxy = await startProxy(t, redis.port);
  // A reaches Redis through the proxy, B directly.
  const [a, b] = await Promise.all([startNode(t, proxy.url, 2), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);
  const channel = uniq('cut');
  const from = await b.sync(channel);
  const until = (r: ReaderResult) => r.arrivedAt.has('after:end');
  const onA = reader(a, channel, 'reader on A (cut off)', from, { until, pollTimeout: 25 });
  const onB = reader(b, channel, 'reader on B', from, { until, pollTimeout: 25 });
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 2), [2], 'both nodes subscribed');

  const before = await publisher(b, channel, 'before', { count: 20 }).done;
  await waitFor(
    () =>
      sawAll(
        onA.result,
        before.acked.map((x) => x.message),
      ),
    { timeoutMs: 5000, what: 'A has the first 20' },
  );
  t.ok(await a.waitWaiting(1), "A's reader waits");
  await sleep(200); // parked, not still reading: a read cut off midway is rightly a 503

  proxy.cut();
  t.equal(await waitGauge(a, 'comet_redis_up', (v) => v === 0, 5000), 0, 'A lost Redis');
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 1), [1], "Redis dropped A's subscription");
  const during = await publisher(b, channel, 'during', { count: 20 }).done;
  checkCleanPublisher(t, during);
  checkError(t, await a.call({ method: 'put', channel, message: 'x' }), 503, STORE_UNAVAILABLE, 'a put on A while cut off');
  await sleep(300);
  t.notOk(onA.result.arrivedAt.has('during:0'), 'A cannot see them while cut off');
  t.equal(onA.result.unavailable, 0, "A's get was held all along (never answered 503)");

  proxy.heal();
  const healed = Date.now();
  const caughtUp = await waitFor(
    () =>
      sawAll(
        onA.result,
        during.acked.map((x) => x.message),
      ),
    { timeoutMs: 8000, what: 'A reads back what it missed' },
  ).catch(() => false);
  t.ok(caughtUp, "A's held get is given the messages put while it was cut off, without a new put", { seen: onA.result.messages.length });
  t.comment(`A caught up ${Date.now() - healed} ms after the partition healed`);
  await waitAllUp(t, [a]);
  const after = await publisher(a, channel, 'after', { count: 20, end: true }).done;
  for (const r of await Promise.all([onA.done, onB.done])) checkReader(t, r, [before, during, after]);
});

t.test('a node cut off from Redis while Redis restarts and loses data: its held gets say missed', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const proxy = await startProxy(t, redis.port);
  const [a, b] = await Promise.all([startNode(t, proxy.url, 1), startNode(t, redis.url, 1)]);
  await redisPastFirstSecond(redis);
  const channel = uniq('cutlost');
  const from = await b.sync(channel);
  const held = a.get(channel, { time: from, timeout: 25 }, { timeoutMs: 40000 }).catch((err: Error) => err);
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 1), [1], 'A subscribed');
  await sleep(200); // and read after subscribing: the get is parked
  proxy.cut();
  t.equal(await waitGauge(a, 'comet_redis_up', (v) => v === 0, 5000), 0, 'A lost Redis');
  // Acknowledged while A is cut off, then lost with Redis's data.
  for (let i = 0; i < 5; i++) await b.put(channel, `lost:${i}`);
  await redis.kill();
  await redis.restart();
  proxy.heal();
  // No put: only A's re-subscription answers the held get. The engine reads back (and so finds
  // the loss and reports the gap that re-reads the get) only once the subscription is in place again.
  const answer = await within(held, 5000, 'the held get is answered once A subscribed again and read back');
  if (answer instanceof Error) {
    t.fail('the held get failed', { err: answer.message });
    return;
  }
  t.equal(answer.missed, true, 'the held get says missed: lost:0..4 were acknowledged after its cursor and are gone');
  t.strictSame(answer.messages, [], 'and holds nothing lost');
  await waitAllUp(t, [a, b]);
  // The channel was never written (as far as A heard): with its last get answered, A keeps no
  // subscription for it, rather than one lingering after every get (issue 13 item 5).
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 0), [0], 'A unsubscribed with its last get');
  // And A subscribes and hears news again after the outage.
  const next = a.get(channel, { time: answer.time, timeout: 20 }, { timeoutMs: 30000 });
  t.strictSame(await waitNumsub(redis, [notifyKey(channel)], ([n]) => n === 1), [1], 'a new get on A subscribes again');
  await sleep(200); // and reads after subscribing: the get is parked
  const time = await b.put(channel, 'new');
  const fresh = await within(next, 5000, 'the new get is answered');
  t.strictSame([fresh.time, fresh.messages, fresh.missed], [time, ['new'], undefined], 'with the message put on B, nothing missed');
});

t.test('Redis hangs (SIGSTOP): requests answer 503 within --redis-timeout, held gets stay held, all recovers on SIGCONT', { timeout: 60_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const node = await startNode(t, redis.url, 2, ['--redis-timeout', '500']);
  const channel = uniq('hang');
  const from = await node.put(channel, 'before');
  const held = node.get(channel, { time: from, timeout: 20 }, { timeoutMs: 30000 });
  t.ok(await node.waitWaiting(1), 'a get waits');
  await sleep(200); // parked, not still reading
  const pid = Number(/process_id:(\d+)/.exec(await redis.cli('INFO', 'server'))?.[1]);
  process.kill(pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  });
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => node.call({ method: 'put', channel, message: `stuck:${i}` }, { timeoutMs: 10000 })));
  const took = Date.now() - started;
  for (const res of answers) checkError(t, res, 503, STORE_UNAVAILABLE, 'a put while Redis hangs');
  t.ok(took < 3000, `answered within the command timeout, not held (${took} ms)`);
  t.ok(await stillPending(held, 10), 'the waiting get is still held');
  process.kill(pid, 'SIGCONT');
  const after = await waitFor(
    async () => {
      const res = await node.call({ method: 'put', channel, message: 'after' });
      return res.status === 200 ? res.json.time : undefined;
    },
    { timeoutMs: 10000, what: 'a put answered 200 after SIGCONT' },
  );
  // Puts answered 503 were queued in Redis's socket when it stopped: Redis runs them once it
  // resumes (a 503 means "may or may not be stored"), and the held get is woken by them or by 'after'.
  const answer = await within(held, 5000, 'the held get is answered');
  const seen: string[] = [...answer.messages];
  let cursor = answer.time;
  while (!seen.includes('after')) {
    const next = await node.get(channel, { time: cursor, timeout: 5 });
    t.ok(next.messages.length > 0, 'chaining on reaches more messages');
    if (next.messages.length === 0) break;
    seen.push(...next.messages);
    cursor = next.time;
  }
  t.equal(seen.at(-1), 'after', "chaining from the held get's answer reaches 'after', last", { seen });
  t.ok(
    seen.every((m) => m === 'after' || m.startsWith('stuck:')),
    'only what was put meanwhile',
  );
  t.equal(new Set(seen).size, seen.length, 'no message twice');
  t.equal(cursor, after, "the chain ends at 'after''s time");
  t.ok(node.alive, 'the node is still running');
});
