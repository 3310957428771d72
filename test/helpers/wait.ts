/**
 * Bounded waiting: every wait in the suite has a deadline, so a server that
 * misbehaves makes a test fail with a clear message instead of hanging.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';

export { sleep };

export interface WaitOptions {
  /** Give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
  /** Pause between attempts (default 25 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
}

/**
 * Calls `fn` until it returns a truthy value (which is returned) or the
 * deadline passes (throws, naming the last value or error seen).
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}; ` +
          `last value: ${inspect(last)}${lastErr ? `; last error: ${String(lastErr)}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** Rejects with a clear message when `p` does not settle within `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves true when `p` is still pending after `ms` milliseconds. */
export async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol('pending');
  const settled = p.then(
    () => undefined,
    () => undefined,
  );
  const winner = await Promise.race([settled, sleep(ms, marker)]);
  return winner === marker;
}

/** Milliseconds elapsed since `start` (from performance.now()). */
export function since(start: number): number {
  return performance.now() - start;
}
