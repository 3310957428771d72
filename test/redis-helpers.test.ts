/**
 * The Redis helpers (test/helpers/redis.ts) against real redis-servers: one
 * server killed and restarted on its port, with and without an append-only
 * file, and a 3-master cluster. Skipped without redis-server (failed under CI).
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { CLUSTER_SLOTS, redisAvailable, startRedis, startRedisCluster } from './helpers/redis.js';

/** Whether something accepts connections on 127.0.0.1:port (bounded). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), 1000);
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

t.test('one server: SET/GET, kill, restart on the same port without persistence', { timeout: 20_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  let port = 0;
  let dir = '';
  await t.test('the server', async (t) => {
    const redis = await startRedis(t);
    ({ port, dir } = redis);
    t.not(redis.port, 6379, 'not the system Redis port');
    t.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
    t.equal(await redis.cli('config', 'get', 'appendonly'), 'appendonly\nno');
    t.equal(await redis.cli('config', 'get', 'save'), 'save', 'no RDB save points');
    t.equal(await redis.cli('set', 'k', 'v'), 'OK');
    t.equal(await redis.cli('get', 'k'), 'v');

    await redis.kill();
    t.notOk(redis.alive, 'not alive after kill()');
    await t.rejects(redis.cli('ping'), /Connection refused|Could not connect/, 'PING fails once killed');
    await redis.kill(); // a second kill is a no-op

    await redis.restart();
    t.equal(redis.port, port, 'same port after restart');
    t.equal(await redis.cli('ping'), 'PONG');
    t.equal(await redis.cli('exists', 'k'), '0', 'data gone: nothing persisted');
    await t.rejects(redis.restart(), /still running/, 'restart() of a running server is refused');

    await redis.stop();
    t.notOk(redis.alive, 'not alive after stop()');
    await t.rejects(redis.cli('ping'), /Could not connect/, 'PING fails once stopped');
  });
  t.notOk(existsSync(dir), 'its directory is removed by the teardown');
  t.notOk(await listening(port), 'nothing listens on its port after the teardown');
});

t.test('appendonly: the data survives kill and restart', { timeout: 20_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t, { appendonly: true });
  t.equal(await redis.cli('config', 'get', 'appendonly'), 'appendonly\nyes');
  t.equal(await redis.cli('rpush', 'list', 'a', 'b'), '2');
  await redis.kill();
  await redis.restart();
  t.equal(await redis.cli('lrange', 'list', '0', '-1'), 'a\nb', 'data back after SIGKILL + restart');
  t.equal(await redis.cli('set', 'k', 'v'), 'OK');
  await redis.stop();
  await redis.restart();
  t.equal(await redis.cli('get', 'k'), 'v', 'data back after SIGTERM + restart');
});

t.test('a 3-master cluster', { timeout: 40_000 }, async (t) => {
  if (!redisAvailable(t)) return;
  const started = performance.now();
  const cluster = await startRedisCluster(t, { masters: 3 });
  t.comment(`cluster up in ${Math.round(performance.now() - started)} ms`);
  t.equal(cluster.nodes.length, 3);
  t.same(
    cluster.urls,
    cluster.nodes.map((n) => `redis://127.0.0.1:${n.port}`),
  );
  t.equal(cluster.url, cluster.urls[0]);
  t.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3, 'distinct ports');
  t.notOk(
    cluster.nodes.some((n) => n.port === 6379),
    'none on the system Redis port',
  );

  for (const node of cluster.nodes) {
    const info = await node.cli('-c', 'cluster', 'info');
    t.match(info, /^cluster_state:ok$/m, `cluster_state:ok on ${node.port}`);
    t.match(info, new RegExp(`^cluster_slots_assigned:${CLUSTER_SLOTS}$`, 'm'), `all slots assigned on ${node.port}`);
    t.match(info, /^cluster_known_nodes:3$/m, `3 nodes known to ${node.port}`);
  }
  const [a, b, c] = cluster.nodes;
  t.equal(await a.cli('-c', 'set', '{a}x', '1'), 'OK', 'SET {a}x via redis-cli -c');
  t.equal(await b.cli('-c', 'get', '{a}x'), '1', 'GET {a}x from another node, following MOVED');
  t.equal(await c.cli('-c', 'get', '{a}x'), '1');
  // exactly one node owns the key's slot and holds the key
  const counts = await Promise.all(cluster.nodes.map((n) => n.cli('dbsize')));
  t.same(counts.map(Number).sort(), [0, 0, 1], 'the key lives on one node');
});
