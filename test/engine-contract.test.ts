/**
 * The Engine contract suite (helpers/engine-contract.ts), run unchanged
 * against the memory engine, one Redis and a three-master Redis Cluster (its
 * sharded pub/sub and slot routing are a different path through the Redis
 * engine). One file, since every test file pays the TypeScript loader's
 * start-up. The Redis runs are skipped without redis-server (failed under CI).
 */
import t, { type Test } from 'tap';
import type { Engine } from '../src/engine/engine.js';
import { nowMicros } from '../src/engine/clock.js';
import { MemoryEngine } from '../src/engine/memory-engine.js';
import type { RedisTarget } from '../src/engine/redis/connect.js';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { redisPastFirstSecond } from './helpers/cluster.js';
import { engineContract, type EngineFixture, type EngineLimits } from './helpers/engine-contract.js';
import { redisAvailable, type RedisServer, startRedis, startRedisCluster } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

t.test('MemoryEngine', async (t) => {
  engineContract(t, {
    keeps: 'thread',
    async open(t: Test, limits: EngineLimits): Promise<Engine> {
      const e = new MemoryEngine({ ...limits, memoryBudget: 1 << 30, startTime: nowMicros() });
      t.teardown(() => e.close());
      return e;
    },
  });
});

/**
 * Engines on the Redis servers given. The suite starts once they are past
 * their first second, in which times run up to a second ahead of the clock
 * (scripts.ts, "Known since") and so may be one apart however far apart
 * appends are.
 */
async function redisFixture(target: RedisTarget, servers: RedisServer[]): Promise<EngineFixture> {
  await redisPastFirstSecond(...servers);
  return {
    keeps: 'store',
    async open(t: Test, limits: EngineLimits): Promise<Engine> {
      const e = new RedisEngine({ ...limits, target, prefix: 'contract:', timeoutMs: 1000, maxPending: 10_000, onConnection() {} });
      t.teardown(() => e.close());
      await waitFor(() => e.stats().up, { timeoutMs: 5000, what: 'the Redis connection is ready' });
      return e;
    },
  };
}

if (redisAvailable(t)) {
  t.test('RedisEngine on one Redis', async (t) => {
    const redis = await startRedis(t);
    engineContract(t, await redisFixture({ urls: [redis.url], cluster: false }, [redis]));
  });

  t.test('RedisEngine on a Redis Cluster', async (t) => {
    const cluster = await startRedisCluster(t);
    engineContract(t, await redisFixture({ urls: cluster.urls, cluster: true }, cluster.nodes));
  });
}
