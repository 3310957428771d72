/**
 * Seeds and runners for the property-based and fuzz tests (issue 13 item 6).
 *
 * Every generated case derives from one seed, printed by each test that uses
 * it, so that a failure reproduces: `COMET_FUZZ_SEED=<seed> npx tap <file>`.
 * Without the variable the seed is a constant (CI runs the same cases every
 * time); `COMET_FUZZ_SEED=random` draws a new one, printed the same way.
 */
import fc from 'fast-check';
import type { Test } from 'tap';

/** The seed used when COMET_FUZZ_SEED is not set. */
export const DEFAULT_FUZZ_SEED = 20261204;

/** The seed of this run: COMET_FUZZ_SEED (an integer, or `random`), else DEFAULT_FUZZ_SEED. */
export const FUZZ_SEED: number = (() => {
  const env = process.env.COMET_FUZZ_SEED;
  if (env === undefined || env === '') return DEFAULT_FUZZ_SEED;
  if (env === 'random') return (Math.random() * 0x7fffffff) | 0;
  const n = Number(env);
  if (!Number.isSafeInteger(n)) throw new Error(`COMET_FUZZ_SEED must be an integer or "random", not ${JSON.stringify(env)}`);
  return n | 0;
})();

/** Says the seed in the TAP output, with how to replay it. */
export function announceSeed(t: Test): void {
  t.comment(`fuzz seed ${FUZZ_SEED} (replay: COMET_FUZZ_SEED=${FUZZ_SEED})`);
}

export interface PropertyOptions {
  numRuns: number;
  /** Stop generating new cases after this long (the runs done so far still count). */
  timeLimitMs?: number;
  /** Skip shrinking (for properties over a server, where each run is slow): report the first failure as found. */
  endOnFailure?: boolean;
  /** Offset added to the seed, so that two properties of one file do not draw the same sequence. */
  salt?: number;
}

function parameters<T>(opts: PropertyOptions): fc.Parameters<T> {
  return {
    seed: (FUZZ_SEED + (opts.salt ?? 0)) | 0,
    numRuns: opts.numRuns,
    endOnFailure: opts.endOnFailure ?? false,
    ...(opts.timeLimitMs === undefined ? {} : { interruptAfterTimeLimit: opts.timeLimitMs, markInterruptAsFailure: false }),
  };
}

/** Runs a synchronous property; a failure is one tap failure carrying fast-check's report (seed, path, counterexample). */
export function checkProperty<T>(t: Test, what: string, property: fc.IProperty<T>, opts: PropertyOptions): void {
  const details = fc.check(property, parameters<T>(opts));
  if (details.failed) t.fail(`${what}\n${fc.defaultReportMessage(details) ?? ''}`);
  else t.pass(`${what} (${details.numRuns} runs${details.interrupted ? ', stopped at the time limit' : ''})`);
}

/** The same for an asynchronous property. */
export async function checkAsyncProperty<T>(t: Test, what: string, property: fc.IAsyncProperty<T>, opts: PropertyOptions): Promise<number> {
  const details = await fc.check(property, parameters<T>(opts));
  if (details.failed) t.fail(`${what}\n${(await fc.asyncDefaultReportMessage(details)) ?? ''}`);
  else t.pass(`${what} (${details.numRuns} runs${details.interrupted ? ', stopped at the time limit' : ''})`);
  return details.numRuns;
}

/**
 * A small seeded generator (mulberry32) for the raw-socket fuzz, whose
 * mutations are plain loops over bytes rather than fast-check arbitraries.
 */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}
