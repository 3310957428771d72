/**
 * The one retry loop of every transport: a subscription's chained gets, an
 * event stream, a channel subscribed over a WebSocket. Retries back off
 * exponentially with full jitter, so that thousands of clients cut off
 * together do not come back together.
 */
import { CometClientError } from './errors.js';

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/**
 * Runs `attempt` until it returns, telling `onError` of every failure and
 * sleeping after each retryable one; a non-retryable one is thrown, and once
 * the signal fired the result is undefined. An attempt that got through (a
 * stream opened, a subscription answered) calls `progress`: its own later
 * failure is then the first of a new series, so a stream dropped after an hour
 * comes back within the initial delay instead of the longest one.
 */
export async function retrying<T>(
  attempt: (progress: () => void) => Promise<T>,
  signal: AbortSignal,
  backoff: Backoff,
  onError?: (err: CometClientError) => void,
): Promise<T | undefined> {
  let failures = 0;
  const progress = (): void => {
    failures = 0;
  };
  while (!signal.aborted) {
    try {
      return await attempt(progress);
    } catch (err) {
      if (signal.aborted) return undefined;
      const error = err instanceof CometClientError ? err : new CometClientError(String(err), 'COMET_CLIENT_UNKNOWN', 0, true);
      onError?.(error);
      if (!error.retryable) throw error;
      await sleep(fullJitter(failures++, backoff), signal);
    }
  }
  return undefined;
}

/** Full jitter: uniform in [0, min(max, initial * 2^failures)). */
function fullJitter(failures: number, { initialMs, maxMs }: Backoff): number {
  return Math.random() * Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
}

/** Resolves after `ms`, or at once when the signal fires. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
