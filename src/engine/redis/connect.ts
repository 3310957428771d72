/**
 * Connections to Redis: the client options every connection shares, the
 * reconnection backoff, and the probe that tells a single Redis from a Redis
 * Cluster before the worker threads start.
 *
 * Client: ioredis. Measured against node-redis 6 running the append script
 * with 200 calls in flight (`npm run bench:redis-clients`): 4.0 µs of client
 * CPU per call against 8.6 µs, and 1.4x the calls per second. ioredis also
 * routes scripts by key slot in a Cluster without extra code.
 *
 * Failure policy: nothing is queued while a connection is down
 * (enableOfflineQueue off) and nothing is sent twice after a reconnection
 * (autoResendUnfulfilledCommands off; maxRetriesPerRequest 0 fails the
 * commands in flight as soon as the connection drops). A put whose reply was
 * lost is answered 503: it may or may not have been stored, and is never
 * stored twice by the server itself.
 */
import type { EventEmitter } from 'node:events';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

export interface RedisTarget {
  /** Seed URLs: one for a single Redis, one or more nodes of a Redis Cluster. */
  urls: string[];
  cluster: boolean;
}

const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 2000;
/**
 * How often a Cluster client reads the slot map unprompted. ioredis 5 turned
 * this off by default (its documentation still says 5000): the command
 * client then learns of a moved slot only from a MOVED reply, and a node
 * whose gets on a channel are all parked sends that slot no command, so its
 * subscription would not follow the slot (see Subscriber.rehome). The
 * subscriber connections' own signal usually comes first; this bounds the
 * delay when it is missed. Cost: one CLUSTER SLOTS, on a short-lived
 * connection, per thread every 5 s.
 */
const SLOTS_REFRESH_MS = 5000;

/** Delay before reconnection attempt `attempt` (1, 2, ...): doubling up to 2 s, with jitter so that nodes do not reconnect in step. */
export function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt - 1, 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** The Redis reached cannot serve cluster mode: retrying will not help. */
export class UnsuitableRedisError extends Error {}

/** Redis URLs (or "host:port" node keys) for the log, without their passwords. */
export function redactUrls(urls: string | string[]): string {
  return (typeof urls === 'string' ? [urls] : urls).map((u) => u.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')).join(',');
}

export function parseRedisUrls(value: string): string[] {
  return value
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

/**
 * Until a connection is first ready, what is sent on it waits for it (at most
 * `timeoutMs`): a node that has just started listening must not answer 503
 * while its connections are still being made. Once it was ready, or that
 * long passed, nothing waits: a lost connection fails commands at once.
 */
export class FirstConnection {
  /** Awaited before a command while set; undefined afterwards, so that the hot path pays one property read. */
  pending: Promise<void> | undefined;
  constructor(conn: EventEmitter, timeoutMs: number) {
    this.pending = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      conn.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    }).then(() => {
      this.pending = undefined;
    });
  }
}

/** Options of every connection to one Redis server; `timeoutMs` bounds a command and a connection attempt. */
export function connectionOptions(timeoutMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    retryStrategy: backoff,
  };
}

/** Options for a connection to a node of a Cluster: the credentials and TLS of the seed URL, at the node's address. */
export function nodeOptions(seedUrl: string, timeoutMs: number): RedisOptions {
  const url = new URL(seedUrl);
  return {
    ...connectionOptions(timeoutMs),
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: url.protocol === 'rediss:' ? {} : undefined,
  };
}

/** The command connection: a client of one Redis, or of a whole Cluster (routing each script by its keys' slot). */
export function commandClient(target: RedisTarget, timeoutMs: number): Redis | Cluster {
  if (!target.cluster) return new Redis(target.urls[0]!, connectionOptions(timeoutMs));
  const { retryStrategy: _perNode, enableOfflineQueue: _offline, ...redisOptions } = nodeOptions(target.urls[0]!, timeoutMs);
  const options: ClusterOptions = {
    enableOfflineQueue: false,
    clusterRetryStrategy: backoff,
    scaleReads: 'master',
    slotsRefreshInterval: SLOTS_REFRESH_MS,
    redisOptions,
  };
  return new Cluster(
    target.urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    }),
    options,
  );
}

/**
 * Connects to the first URL that answers (any seed of a Cluster will do) and
 * reads whether it is a Cluster node and whether its version has what the
 * scripts use (exclusive stream ranges: 6.2; sharded pub/sub in a Cluster: 7).
 * Rejects when none can be reached within `timeoutMs` each.
 */
export async function probeRedis(urls: string[], timeoutMs: number): Promise<RedisTarget> {
  let unreachable: unknown;
  for (const url of urls) {
    let info: string;
    try {
      info = await readInfo(url, timeoutMs);
    } catch (err) {
      unreachable = err;
      continue;
    }
    const cluster = /cluster_enabled:1/.test(info);
    const [, major = '0', minor = '0'] = /redis_version:(\d+)\.(\d+)/.exec(info) ?? [];
    const version = Number(major) * 1000 + Number(minor);
    if (version < 6002) throw new UnsuitableRedisError(`Redis ${major}.${minor} is too old: cluster mode needs Redis 6.2 or later`);
    if (cluster && version < 7000) throw new UnsuitableRedisError(`Redis Cluster ${major}.${minor} has no sharded pub/sub: it needs Redis 7 or later`);
    // The one that answered first: a single Redis is reached at it, a Cluster from every seed.
    return { urls: [url, ...urls.filter((u) => u !== url)], cluster };
  }
  throw unreachable;
}

async function readInfo(url: string, timeoutMs: number): Promise<string> {
  const client = new Redis(url, { ...connectionOptions(timeoutMs), retryStrategy: () => null, lazyConnect: true });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.info();
  } finally {
    client.disconnect();
  }
}
