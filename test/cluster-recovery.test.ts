/**
 * Cluster mode after a Redis outage: a node recovers as one. Regression test
 * for issue 13 item 7: each worker thread's connections reconnected on their
 * own backoff (up to 2 s apart), so once Redis was back one thread served
 * while another still answered 503 COMET_ERR_STORE_UNAVAILABLE for up to ~2 s
 * (a put on one node then a get on the next failed in 2 of 3 runs of a kill -9
 * test). Now, from the node's first 200 after the restart, every request to
 * that node must succeed, whichever thread takes it and whichever owns its
 * channel.
 *
 * Requests are spread over every thread two ways: each one on a fresh
 * connection (SO_REUSEPORT hands connections to the threads by their source
 * port), and over many channels (a channel's owner thread runs its Redis
 * commands, whichever thread took the request). A third of the gets wait on
 * their channel, so they also need the owner's subscriber connection.
 * Real server, real redis-server, every loop bounded.
 */
import t from 'tap';
import { isStoreDown, redisPastFirstSecond, startNode, waitGauge } from './helpers/cluster.js';
import { uniq } from './helpers/protocol.js';
import { redisAvailable, startRedis } from './helpers/redis.js';
import { type HttpResponse, makeAgent, sleep, waitFor } from './helpers/server.js';

const THREADS = 4;
const TRIALS = 5;
/** Requests sent after the first 200 that must all succeed; then the trial ends. */
const AFTER_FIRST_OK = 300;
/** Requests in flight at once, each on its own connection. */
const CLIENTS = 20;
/** How long Redis stays down: long enough for the backoff to reach 1-2 s between attempts. */
const DOWN_MS = 1500;

interface Sent {
  what: string;
  sentAt: number;
  answeredAt: number;
  status: number;
  code?: string;
}

t.test('after Redis returns, every request to a node succeeds from its first 200 (its threads reconnect together)', { timeout: 120_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  const node = await startNode(t, redis.url, THREADS);
  // Fresh connections: no keep-alive, so the kernel picks a thread for each request.
  const agent = makeAgent(false);
  t.teardown(() => agent.destroy());
  const channels = Array.from({ length: 32 }, (_, i) => uniq(`recover${i}`));
  const failures: number[] = [];

  for (let trial = 1; trial <= TRIALS; trial++) {
    await redisPastFirstSecond(redis);
    t.equal(await waitGauge(node, 'comet_redis_up', (v) => v === THREADS, 10000), THREADS, `trial ${trial}: every thread connected`);
    await redis.kill();
    const killedAt = Date.now();
    await waitFor(async () => isStoreDown(await node.call({ method: 'put', channel: channels[0]!, message: 'down' }, { agent })), {
      timeoutMs: 5000,
      what: 'a 503 from the node with Redis down',
    });

    // Clients run across the restart, and stop once AFTER_FIRST_OK requests were sent after the first 200 (bounded in time).
    const log: Sent[] = [];
    let firstOkAt = Infinity;
    let sentAfterOk = 0;
    const deadline = Date.now() + 15000;
    const send = async (what: string, params: Record<string, string | number>): Promise<HttpResponse | undefined> => {
      const sentAt = Date.now();
      if (sentAt > firstOkAt) sentAfterOk++;
      let res: HttpResponse | undefined;
      try {
        res = await node.call(params, { agent, timeoutMs: 10000 });
      } catch {
        // a network error is recorded as status 0
      }
      const answeredAt = Date.now();
      log.push({ what, sentAt, answeredAt, status: res?.status ?? 0, code: res?.json?.code });
      if (res?.status === 200 && answeredAt < firstOkAt) firstOkAt = answeredAt;
      return res;
    };
    const one = async (i: number): Promise<void> => {
      const channel = channels[Math.floor(Math.random() * channels.length)]!;
      if (i % 3 === 0) await send('put', { method: 'put', channel, message: `m${i}` });
      else if (i % 3 === 1) await send('get', { method: 'get', channel, time: 0, timeout: 0 });
      else {
        // A get that waits on the channel (a subscription) until a put, or its 1 s timeout, answers it.
        const sync = await send('sync', { method: 'sync', channel });
        if (sync?.status === 200) await send('waiting get', { method: 'get', channel, time: sync.json.time, timeout: 1 });
      }
    };
    const clients = Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = c; sentAfterOk < AFTER_FIRST_OK && Date.now() < deadline; i += CLIENTS) {
        await one(i);
        if (firstOkAt === Infinity) await sleep(20);
      }
    });
    await sleep(Math.max(0, DOWN_MS - (Date.now() - killedAt)));
    await redis.restart();
    const restartedAt = Date.now();
    await Promise.all(clients);

    const after = log.filter((r) => r.sentAt > firstOkAt);
    const failed = after.filter((r) => r.status !== 200);
    failures.push(failed.length);
    t.comment(
      `trial ${trial}: first 200 ${firstOkAt - restartedAt} ms after the restart; ${after.length} requests sent after it, ${failed.length} failed` +
        (failed.length > 0 ? `, the last ${failed.at(-1)!.answeredAt - firstOkAt} ms after the first 200` : ''),
    );
    t.ok(firstOkAt < Infinity, `trial ${trial}: the node answers 200 again after the restart`);
    t.ok(after.length >= AFTER_FIRST_OK, `trial ${trial}: ${AFTER_FIRST_OK} requests sent after the first 200 (${after.length})`);
    t.strictSame(
      failed.slice(0, 5).map((r) => `${r.what}: ${r.status} ${r.code ?? ''}`),
      [],
      `trial ${trial}: every request sent after the node's first 200 succeeds`,
      { failed: failed.length },
    );
  }
  t.comment(`failed requests after the first 200, per trial: ${failures.join(', ')}`);
});
