/**
 * Real Redis servers for the tests, started by the harness's launcher
 * (bench/lib/redis.js: our own process on a free loopback port, never 6379,
 * in a fresh temporary directory). Here they are also SIGKILLed and their
 * directory removed at the end of the tap test that started them, whatever
 * happened; and a missing redis-server skips the test, or fails it under CI.
 */
import type { Test } from 'tap';
import { describeRun, findBinary, REDIS_MISSING, RedisServer, runCommand, type RedisOptions } from '../../bench/lib/redis.js';
import { waitFor } from './wait.js';

export { freePort } from '../../bench/lib/common.js';
export { REDIS_MISSING, type RedisOptions, type RedisServer };

/** Redis Cluster's number of hash slots. */
export const CLUSTER_SLOTS = 16384;

/** Paths of redis-server and redis-cli, or undefined when either is missing. */
export function redisBinaries(): { server: string; cli: string } | undefined {
  const server = findBinary('redis-server');
  const cli = findBinary('redis-cli');
  return server && cli ? { server, cli } : undefined;
}

/**
 * Whether redis-server and redis-cli are installed. When they are not, the
 * test fails under CI (CI=true, where .ci/run installs them) and is skipped
 * elsewhere; the caller then returns.
 */
export function redisAvailable(t: Test): boolean {
  if (redisBinaries()) return true;
  if (process.env.CI === 'true') t.fail(REDIS_MISSING);
  else t.skip(REDIS_MISSING, () => {});
  return false;
}

function binaries(): { server: string; cli: string } {
  const b = redisBinaries();
  if (!b) throw new Error(REDIS_MISSING);
  return b;
}

/**
 * Starts one redis-server on 127.0.0.1 and a free port, in a new directory,
 * with `--save "" --appendonly no` (or yes), and resolves once it answers
 * PING. Killed and its directory removed at the end of `t`.
 */
export async function startRedis(t: Test, opts: RedisOptions = {}): Promise<RedisServer> {
  const redis = new RedisServer(opts, binaries());
  t.teardown(() => redis.destroy());
  await redis.startOnFreePort();
  return redis;
}

export interface ClusterOptions extends Omit<RedisOptions, 'cluster'> {
  /** Number of masters, no replicas (default 3, the fewest redis-cli --cluster create accepts). */
  masters?: number;
  /** Deadline for `redis-cli --cluster create` (default 30000 ms). */
  createTimeoutMs?: number;
  /** Deadline for cluster_state:ok on every node (default 20000 ms). */
  okTimeoutMs?: number;
}

export interface RedisCluster {
  nodes: RedisServer[];
  /** Every node's redis://127.0.0.1:PORT */
  urls: string[];
  /** The first node's URL. */
  url: string;
  /**
   * Waits (bounded, default 20000 ms) until every node's CLUSTER INFO shows
   * cluster_state:ok, all 16384 slots assigned and every node known; e.g.
   * after restarting a node.
   */
  waitOk(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled redis-servers (each on a free port P with
 * its bus on P + 10000, in its own directory), joins them with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and
 * resolves once every node reports cluster_state:ok with all slots assigned.
 * Torn down at the end of `t`.
 */
export async function startRedisCluster(t: Test, opts: ClusterOptions = {}): Promise<RedisCluster> {
  const { masters = 3, createTimeoutMs = 30000, okTimeoutMs = 20000, ...nodeOpts } = opts;
  if (!Number.isInteger(masters) || masters < 3) throw new Error(`a Redis cluster needs at least 3 masters (got ${masters})`);
  const bins = binaries();
  const nodes = await Promise.all(Array.from({ length: masters }, () => startRedis(t, { ...nodeOpts, cluster: true })));
  const createArgs = ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'];
  const r = await runCommand(bins.cli, createArgs, createTimeoutMs);
  if (r.code !== 0 || r.timedOut) {
    throw new Error(`${describeRun(`redis-cli ${createArgs.join(' ')}`, r, createTimeoutMs)}\n${nodes.map((n) => n.logTail(1000)).join('\n')}`);
  }
  const waitOk = async (timeoutMs = okTimeoutMs): Promise<void> => {
    const bad = new Map<number, string>();
    try {
      await waitFor(
        async () => {
          const infos = await Promise.all(nodes.map((n) => n.cli('cluster', 'info').catch((err) => `error: ${String(err).split('\n')[0]}`)));
          bad.clear();
          infos.forEach((info, i) => {
            const ok =
              /^cluster_state:ok$/m.test(info) &&
              new RegExp(`^cluster_slots_assigned:${CLUSTER_SLOTS}$`, 'm').test(info) &&
              new RegExp(`^cluster_known_nodes:${nodes.length}$`, 'm').test(info);
            if (!ok) bad.set(nodes[i].port, info);
          });
          return bad.size === 0;
        },
        { timeoutMs, intervalMs: 100, what: `cluster_state:ok on all ${nodes.length} nodes` },
      );
    } catch (err) {
      const detail = [...bad].map(([port, info]) => `--- CLUSTER INFO of 127.0.0.1:${port} ---\n${info}`).join('\n');
      throw new Error(`${String(err)}\n${detail}`);
    }
  };
  await waitOk();
  const urls = nodes.map((n) => n.url);
  return { nodes, urls, url: urls[0], waitOk };
}
