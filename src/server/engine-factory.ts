/**
 * The channel store of one worker thread: in memory (the default), or in
 * Redis for cluster mode, from the options and what the main thread probed.
 */
import type { Config } from '../config/options.js';
import type { Engine } from '../engine/engine.js';
import { MemoryEngine } from '../engine/memory-engine.js';
import { type RedisTarget, redactUrls } from '../engine/redis/connect.js';
import { RedisEngine } from '../engine/redis/redis-engine.js';
import type { Logger } from '../log.js';
import { redisReadyCell } from '../metrics/counters.js';

export interface EngineSite {
  config: Config;
  /** Wall-clock microseconds at which the server started. */
  startTime: number;
  /** Cluster mode: the Redis probed by the main thread; absent for the in-memory engine. */
  redis?: RedisTarget;
  /** The node's shared metrics buffer; cluster mode keeps the threads' common Redis ready count in it. */
  metricsBuffer: SharedArrayBuffer;
  log: Logger;
}

export function createEngine({ config, startTime, redis, metricsBuffer, log }: EngineSite): Engine {
  if (redis) return redisEngine(config, redis, redisReadyCell(metricsBuffer), log);
  return new MemoryEngine({
    bufferSize: config.bufferSize,
    bufferBytes: config.bufferBytes,
    channelTtlMs: config.channelTtl * 1000,
    // Each thread owns its shard of the channels and its share of the memory.
    memoryBudget: Math.floor(config.maxMemory / config.threads),
    startTime,
  });
}

function redisEngine(config: Config, target: RedisTarget, readyCell: Int32Array, log: Logger): RedisEngine {
  let up: boolean | undefined;
  return new RedisEngine({
    target,
    prefix: config.redisPrefix,
    bufferSize: config.bufferSize,
    bufferBytes: config.bufferBytes,
    channelTtlMs: config.channelTtl * 1000,
    timeoutMs: config.redisTimeout,
    maxPending: config.redisMaxPending,
    readyCell,
    // One line per change of state, not one per failed reconnection attempt.
    onConnection(nowUp, where, err) {
      if (nowUp === up) return;
      up = nowUp;
      if (nowUp) log.info({ redis: redactUrls(where) }, 'Redis connection ready');
      else log.warn({ redis: redactUrls(where), err: err?.message }, 'Redis connection lost; reconnecting');
    },
  });
}
