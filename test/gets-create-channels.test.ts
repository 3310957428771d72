/**
 * Issue 13, "gets create channels": gets with timeout=1 on 200,000 distinct
 * names created 200,000 channels (64 MB charged to the memory budget, RSS
 * +143 MB) that lived for the whole --channel-ttl. A get (or sync) on a
 * channel never written must store nothing: what it watches is a name, gone
 * with the channel's last get, and --max-waiting bounds how many there are.
 * The chained-get rule still holds on such a channel, across threads.
 */
import fs from 'node:fs';
import type http from 'node:http';
import t from 'tap';
import { redisPastFirstSecond, startNode } from './helpers/cluster.js';
import { checkError, checkMessages, uniq } from './helpers/protocol.js';
import { redisAvailable, startRedis } from './helpers/redis.js';
import { type CometServer, type HttpResponse, makeAgent, type Params, sleep, startServer, waitFor } from './helpers/server.js';

const THREADS = 2;
/** Gets answered at once (timeout=0), and gets that wait a second (timeout=1), each on its own never-written name. */
const IMMEDIATE = 20_000;
const WAITING = 10_000;
/** Gets in flight at once: enough for the timeout=1 gets to take about WAITING / CONCURRENCY seconds. */
const CONCURRENCY = 1000;
/** What RSS may grow by over the measured flood, from after a warm-up flood of the same kind: see the comment at the check. */
const RSS_BOUND = 24 * 1024 * 1024;
/** Housekeeping refreshes comet_channels and comet_stored_bytes every second. */
const GAUGE_REFRESH_MS = 1300;

function rssOf(srv: CometServer): number {
  const status = fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

interface Gauges {
  channels: number;
  bytes: number;
  watched: number;
  waiting: number;
  /** comet_watched_channels is exported at all. */
  exported: boolean;
}

async function gauges(srv: CometServer): Promise<Gauges> {
  const m = await srv.metrics();
  return {
    channels: m.value('comet_channels'),
    bytes: m.value('comet_stored_bytes'),
    watched: m.value('comet_watched_channels'),
    waiting: m.value('comet_waiting_gets'),
    exported: m.has('comet_watched_channels'),
  };
}

/** Runs `total` requests, at most `concurrency` at a time; returns how many answered with each status. */
async function flood(srv: CometServer, agent: http.Agent, total: number, concurrency: number, params: (i: number) => Params): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const res: HttpResponse = await srv.call(params(next++), { agent, timeoutMs: 10_000 });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

t.test(`${IMMEDIATE} gets with timeout=0 and ${WAITING} with timeout=1 on never-written names store no channel, and RSS stays flat`, async (t) => {
  // Young generations capped at 1 MB: they would otherwise grow to their working size (16 MB
  // semi-spaces per thread) during the flood, which is heap slack, not memory kept.
  const srv = await startServer({ t, threads: THREADS, env: { NODE_OPTIONS: '--max-semi-space-size=1' } });
  const agent = makeAgent();
  t.teardown(() => agent.destroy());
  const prefix = uniq('flood');
  const syncs = await flood(srv, agent, 2000, 100, (i) => ({ method: 'sync', channel: `${prefix}-sync-${i}` }));
  t.same([...syncs], [[200, 2000]], 'syncs on never-written names answered');
  // Warm-up, the same kind of flood: the connections, the JIT and the heap reach their working size before the baseline.
  await flood(srv, agent, IMMEDIATE / 2, CONCURRENCY, (i) => ({ method: 'get', channel: `${prefix}-warm-${i}`, timeout: 0 }));
  await flood(srv, agent, WAITING / 2, CONCURRENCY, (i) => ({ method: 'get', channel: `${prefix}-warm-wait-${i}`, timeout: 1 }));
  await sleep(GAUGE_REFRESH_MS);
  const rssBefore = rssOf(srv);
  t.same(await gauges(srv), { channels: 0, bytes: 0, watched: 0, waiting: 0, exported: true }, 'after syncs and gets answered at once: nothing stored');

  let started = performance.now();
  const now = await flood(srv, agent, IMMEDIATE, CONCURRENCY, (i) => ({ method: 'get', channel: `${prefix}-now-${i}`, timeout: 0 }));
  t.same([...now], [[200, IMMEDIATE]], `${IMMEDIATE} gets with timeout=0 answered`);
  t.comment(`${IMMEDIATE} gets with timeout=0 in ${Math.round(performance.now() - started)} ms`);

  // Sampled while the timeout=1 gets wait: nothing stored, only names watched.
  const samples: Gauges[] = [];
  let flooding = true;
  const sampler = (async () => {
    while (flooding) {
      samples.push(await gauges(srv));
      await sleep(400);
    }
  })();
  started = performance.now();
  const waited = await flood(srv, agent, WAITING, CONCURRENCY, (i) => ({ method: 'get', channel: `${prefix}-wait-${i}`, timeout: 1 }));
  const elapsed = performance.now() - started;
  flooding = false;
  await sampler;
  t.same([...waited], [[200, WAITING]], `${WAITING} gets with timeout=1 answered`);
  t.comment(`${WAITING} gets with timeout=1 in ${Math.round(elapsed)} ms, ${samples.length} samples of the gauges`);
  const busy = samples.filter((s) => s.waiting > 0);
  t.ok(busy.length >= 3 && busy.some((s) => s.watched >= CONCURRENCY / 2), 'the gauges were sampled while hundreds of gets waited', {
    busy: busy.map((s) => [s.waiting, s.watched]),
  });
  t.same(
    samples.filter((s) => s.channels !== 0 || s.bytes !== 0),
    [],
    'while they waited: comet_channels and comet_stored_bytes stayed 0',
  );
  t.ok(
    samples.every((s) => s.watched <= CONCURRENCY),
    `comet_watched_channels never above the gets in flight (${CONCURRENCY})`,
    { max: Math.max(...samples.map((s) => s.watched)) },
  );

  const after = await waitFor(
    async () => {
      const g = await gauges(srv);
      return g.watched === 0 && g.waiting === 0 ? g : undefined;
    },
    { timeoutMs: 1000, intervalMs: 50, what: 'every watch gone with its last get (well within the 2 s linger of written channels)' },
  );
  await sleep(GAUGE_REFRESH_MS);
  t.same(await gauges(srv), { ...after, channels: 0, bytes: 0 }, 'afterwards: no channel, no byte stored, nothing watched');
  // RSS after each of five rounds of 16,000 such gets (2 cores, 2 threads, default heap
  // settings): 138, 133, 128, 130, 137 MB with the change, nothing kept. At this scale RSS
  // does not tell the fix apart: here, with small young generations, it went -13 MB with the
  // change and -14 MB without it (its 30,000 kept channels, about 15 MB of heap, hidden by the
  // heap shrinking after the warm-up). The gauges above pin the fix exactly; this bound only
  // catches gross growth. Where RSS does differ is the 200,000-name probe in the README
  // (+176 MB before, +43 MB of heap slack after). The first full-size flood after the half-size
  // warm-up still grows RSS by 11-17 MB (five runs, with and without V8 coverage, on this
  // build and on the one before messages moved off the heap), while six such rounds in a row
  // settle after the second (92, 98, 102, 99, 99, 101 MB on both builds): slack, not a leak,
  // hence the 24 MB bound.
  const grown = rssOf(srv) - rssBefore;
  t.comment(`RSS ${Math.round(rssBefore / 1048576)} MB before, grew by ${(grown / 1048576).toFixed(1)} MB over ${IMMEDIATE + WAITING} gets`);
  t.ok(grown < RSS_BOUND, `RSS grew by less than ${RSS_BOUND / 1048576} MB`, { grown });
});

t.test('the chained-get rule on a fresh channel: sync, get, put (also between them, and from either thread) gives the message once', async (t) => {
  const srv = await startServer({ t, threads: THREADS });
  // A connection per request: the kernel spreads them over both threads, so gets, puts and
  // owners sit on different threads in some of the trials and on the same one in others.
  const agent = makeAgent(false);
  t.teardown(() => agent.destroy());
  const TRIALS = 12;
  const names = Array.from({ length: TRIALS }, () => uniq('fresh'));
  const syncs = await Promise.all(names.map((ch) => srv.sync(ch)));
  const fromSync = names.map((ch, i) => srv.get(ch, { time: syncs[i], timeout: 15 }, { agent, timeoutMs: 20_000 }));
  const noTime = names.map((ch) => srv.get(ch, { timeout: 15 }, { agent, timeoutMs: 20_000 }));
  t.ok(await srv.waitWaiting(2 * TRIALS, { exact: true, timeoutMs: 5000 }), 'every get waits');
  await sleep(GAUGE_REFRESH_MS);
  const waiting = await gauges(srv);
  t.same([waiting.channels, waiting.bytes, waiting.watched], [0, 0, TRIALS], 'while they wait: one watched name per channel, nothing stored');

  const puts = await Promise.all(names.map((ch) => srv.call({ method: 'put', channel: ch, message: `first ${ch}` }, { agent })));
  const putTimes = puts.map((res) => res.json.time as number);
  for (let i = 0; i < TRIALS; i++) {
    const ch = names[i]!;
    for (const [label, pending] of [
      ['from the sync time', fromSync[i]!],
      ['without a time', noTime[i]!],
    ] as const) {
      const a = await pending;
      checkMessages(t, a, [`first ${ch}`], `trial ${i} (get ${label})`);
      t.equal(a.time, putTimes[i], `trial ${i} (get ${label}): the answer's time is the put's`);
      checkMessages(t, await srv.get(ch, { time: a.time, timeout: 0 }, { agent }), [], `trial ${i}: chaining on from it`);
    }
  }

  // The put lands between the sync and the get.
  for (let i = 0; i < TRIALS; i++) {
    const ch = uniq('between');
    const s = await srv.sync(ch);
    const tp = await srv.put(ch, 'between');
    const a = await srv.get(ch, { time: s, timeout: 5 }, { agent });
    checkMessages(t, a, ['between'], `trial ${i}: put between sync and get`);
    t.equal(a.time, tp);
  }
  await sleep(GAUGE_REFRESH_MS);
  t.equal((await gauges(srv)).channels, 2 * TRIALS, 'only the channels written are stored');
});

t.test('--max-waiting bounds the watched never-written channels: one more get is refused 503, and the server recovers', async (t) => {
  const MAX = 200;
  const srv = await startServer({ t, threads: THREADS, args: ['--max-waiting', String(MAX)] });
  const agent = makeAgent();
  t.teardown(() => agent.destroy());
  const prefix = uniq('bound');
  const held = Array.from({ length: MAX }, (_, i) => srv.call({ method: 'get', channel: `${prefix}-${i}`, timeout: 2 }, { agent, timeoutMs: 10_000 }));
  t.ok(await srv.waitWaiting(MAX, { exact: true, timeoutMs: 5000 }), `${MAX} gets wait`);
  const refused = await srv.call({ method: 'get', channel: `${prefix}-one-more`, timeout: 2 }, { agent });
  checkError(t, refused, 503, 'COMET_ERR_TOO_MANY_WAITING', 'a get past --max-waiting');
  const full = await gauges(srv);
  t.same([full.watched, full.waiting], [MAX, MAX], 'one watched name per waiting get, no more');
  t.equal((await srv.metrics()).value('comet_errors_total', { code: 'COMET_ERR_TOO_MANY_WAITING' }), 1, 'the refusal is counted');

  const answers = await Promise.all(held);
  t.ok(
    answers.every((res) => res.status === 200 && res.json.messages.length === 0),
    'the held gets time out normally',
  );
  await waitFor(async () => (await gauges(srv)).watched === 0, { timeoutMs: 1000, intervalMs: 50, what: 'the watches gone with their gets' });
  await sleep(GAUGE_REFRESH_MS);
  const after = await gauges(srv);
  t.same([after.channels, after.bytes, after.watched, after.waiting], [0, 0, 0, 0], 'nothing left behind');

  const ch = `${prefix}-recovered`;
  const get = srv.get(ch, { timeout: 10 }, { agent, timeoutMs: 15_000 });
  t.ok(await srv.waitWaiting(1, { exact: true }), 'a new get waits again');
  t.ok(await srv.waitParked(1, { exact: true }), 'parked');
  const tp = await srv.put(ch, 'recovered');
  const a = await get;
  checkMessages(t, a, ['recovered'], 'the new get');
  t.equal(a.time, tp);
});

t.test('cluster mode: gets on never-written names write nothing to Redis, and their subscriptions end with their last get', async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  await redisPastFirstSecond(redis);
  const srv = await startNode(t, redis.url, THREADS);
  const agent = makeAgent();
  t.teardown(() => agent.destroy());
  const prefix = uniq('redis-flood');
  const GETS = 2000;
  const statuses = await flood(srv, agent, GETS, 500, (i) =>
    i % 2 ? { method: 'get', channel: `${prefix}-${i}`, timeout: 1 } : { method: 'sync', channel: `${prefix}-${i}` },
  );
  t.same([...statuses], [[200, GETS]], `${GETS / 2} gets with timeout=1 and ${GETS / 2} syncs answered`);
  t.equal(await redis.cli('dbsize'), '0', 'nothing was written to Redis');
  const m = await waitFor(
    async () => {
      const metrics = await srv.metrics();
      return metrics.value('comet_redis_subscriptions') === 0 && metrics.has('comet_watched_channels') && metrics.value('comet_watched_channels') === 0
        ? metrics
        : undefined;
    },
    { timeoutMs: 1000, intervalMs: 50, what: 'no subscription or watch left (well within the 2 s linger of written channels)' },
  );
  t.equal(m.value('comet_waiting_gets'), 0);
  t.equal(await redis.cli('pubsub', 'channels'), '', 'PUBSUB CHANNELS: none');
});
