export { startServer, type ServerHandle } from './server/supervisor.js';
export { parseCommandLine, helpText, ConfigError } from './config/parse.js';
export { OPTIONS, type Config } from './config/options.js';
export { CometError, ERROR_CODES, type ErrorCode } from './protocol/errors.js';
export type { Engine, ReadResult, ReadLimits, EngineStats, MessageListener, GapListener, StoreFailureKind } from './engine/engine.js';
export { StoreFailure } from './engine/engine.js';
export { MemoryEngine } from './engine/memory-engine.js';
export { RedisEngine, type RedisEngineOptions } from './engine/redis/redis-engine.js';
