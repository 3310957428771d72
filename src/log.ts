/**
 * Structured logs (pino), one JSON line each, written synchronously to fd 1
 * from whichever thread logs: a worker thread has no process.stdout of its own
 * worth the name (it is proxied through the main thread), and a synchronous
 * write cannot be lost when a thread dies right after logging its fatal error.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, bindings: Record<string, unknown>): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination({ dest: 1, sync: true }));
}
