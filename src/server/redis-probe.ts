/**
 * Cluster mode's start: finds out, before any thread starts, whether --redis
 * is a single Redis or a Cluster. A Redis that cannot be reached yet (started
 * after us, say) is waited for with backoff, one warning per attempt; one
 * that can never serve (too old) fails the start.
 */
import type { Config } from '../config/options.js';
import { backoff, parseRedisUrls, probeRedis, type RedisTarget, redactUrls, UnsuitableRedisError } from '../engine/redis/connect.js';
import type { Logger } from '../log.js';

export async function reachRedis(config: Config, log: Logger): Promise<RedisTarget> {
  const urls = parseRedisUrls(config.redis);
  for (let attempt = 1; ; attempt++) {
    try {
      const target = await probeRedis(urls, config.redisTimeout);
      log.info({ redis: redactUrls(urls), cluster: target.cluster }, 'cluster mode: channels are kept in Redis');
      return target;
    } catch (err) {
      if (err instanceof UnsuitableRedisError) throw err;
      const delay = backoff(attempt);
      log.warn({ redis: redactUrls(urls), err: (err as Error).message, retryInMs: delay }, 'cannot reach Redis yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
