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
import { RESERVED_CALLBACK_SEGMENTS } from '../../src/protocol/jsonp.js';

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

/**
 * Text made safe for a TAP assertion name or diagnostic: a raw U+2028, U+2029,
 * control character, C1 control or lone surrogate in a generated value breaks
 * the TAP stream, and the reporter then loses the assertion (a failure read as
 * "no tests found" and passed), so each is written as a \\uXXXX escape.
 */
export function tapSafe(text: string): string {
  return text.replace(
    /[\0-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Runs a synchronous property; a failure is one tap failure carrying fast-check's report (seed, path, counterexample). */
export function checkProperty<T>(t: Test, what: string, property: fc.IProperty<T>, opts: PropertyOptions): void {
  const details = fc.check(property, parameters<T>(opts));
  if (details.failed) t.fail(tapSafe(`${what}\n${fc.defaultReportMessage(details) ?? ''}`));
  else t.pass(`${what} (${details.numRuns} runs${details.interrupted ? ', stopped at the time limit' : ''})`);
}

/**
 * The same for an asynchronous property; resolves with the number of runs, or
 * undefined when it failed. Over a server each run is a batch of many values:
 * with endOnFailure the report is the seed, the run's path and the error the
 * property threw (which says which request broke which promise), not the
 * whole batch.
 */
export async function checkAsyncProperty<T>(t: Test, what: string, property: fc.IAsyncProperty<T>, opts: PropertyOptions): Promise<number | undefined> {
  const details = await fc.check(property, parameters<T>(opts));
  if (!details.failed) {
    t.pass(`${what} (${details.numRuns} runs${details.interrupted ? ', stopped at the time limit' : ''})`);
    return details.numRuns;
  }
  const report = opts.endOnFailure
    ? `seed ${details.seed} (COMET_FUZZ_SEED=${FUZZ_SEED}), run ${details.counterexamplePath}: ${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`
    : ((await fc.asyncDefaultReportMessage(details)) ?? '');
  t.fail(tapSafe(`${what}\n${report}`));
  return undefined;
}

// ---------------------------------------------------------------------------
// Arbitraries shared by the property tests

/** The parameters the protocol reads; everything else is ignored. */
export const KNOWN_PARAMS = ['method', 'channel', 'message', 'time', 'timeout', 'callback', 'token'] as const;
export type KnownParam = (typeof KNOWN_PARAMS)[number];

export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
export const percentByte = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([b, lower]) => {
  const hex = `%${b.toString(16).padStart(2, '0')}`;
  return lower ? hex : hex.toUpperCase();
});
/** Pieces that parsing treats specially, so that arbitrary strings hit its branches often. */
export const piece = fc.oneof(
  fc.constantFrom(
    ...KNOWN_PARAMS,
    '=',
    '&',
    '&&',
    '%',
    '+',
    '%2',
    '%zz',
    '%G0',
    '%C3',
    '%C3%A9',
    '%E2%82',
    '%E2%82%AC',
    '%F0%9F%98%80',
    '%F0%9F%98',
    '%FF',
    '%ED%A0%80',
    '%EF%BF%BD',
    '\uFFFD',
    '%00',
    '%26',
    '%3D',
    '%2B',
    'put',
    'get',
    'sync',
    '0',
    '007',
    '9007199254740991',
    '9007199254740992',
    '-1',
    'cb',
    'a.b',
    '__proto__',
    'constructor',
  ),
  percentByte,
  fc.string({ unit: 'binary', maxLength: 4 }),
  fc.string({ unit: 'binary-ascii', maxLength: 4 }),
  loneSurrogate,
);
/** Any string at all, mostly made of the pieces above. */
export const soup = fc.oneof(
  fc.array(piece, { maxLength: 40 }).map((a) => a.join('')),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ maxLength: 60 }),
);

/** Well-formed Unicode of every plane: the values a client may mean to send. */
export const unicode = (maxLength: number) =>
  fc.oneof(fc.string({ unit: 'binary', maxLength }), fc.string({ unit: 'grapheme', maxLength }), fc.string({ maxLength }));

export type Encoding = 'uri' | 'uri-lower' | 'form' | 'mixed';
export const encodingArb = fc.constantFrom<Encoding>('uri', 'uri-lower', 'form', 'mixed');

export function percentEncodeChar(ch: string): string {
  return [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
}

/**
 * Encodes one name or value as a client may: encodeURIComponent, the same
 * with lower-case hex, a form as URLSearchParams writes it (a space is '+'),
 * or a mix that sends each character raw where it is safe and percent-encoded
 * at random otherwise (letters included: `chan%6Eel` is `channel`).
 * `inRequestLine`: what would end or break an HTTP request line (spaces,
 * controls, '#') is always percent-encoded.
 */
export function encode(text: string, how: Encoding, mixSeed: number, isName: boolean, inRequestLine = false): string {
  switch (how) {
    case 'uri':
      return encodeURIComponent(text);
    case 'uri-lower':
      return encodeURIComponent(text).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
    case 'form':
      return new URLSearchParams([['x', text]]).toString().slice(2);
    case 'mixed': {
      const rng = new Rng(mixSeed);
      let out = '';
      for (const ch of text) {
        const unsafe = ch === '%' || ch === '&' || ch === '+' || ch === '\uFFFD' || (isName && ch === '=') || (inRequestLine && /[\0-\x20\x7f#]/.test(ch));
        if (ch === ' ' && rng.chance(0.5)) out += '+';
        else if (unsafe || rng.chance(0.3)) out += percentEncodeChar(ch);
        else out += ch;
      }
      return out;
    }
  }
}

export const identifier = fc
  .tuple(fc.constantFrom(...'abcxyzABCXYZ_$'), fc.string({ unit: fc.constantFrom(...'abcdefXYZ0189_$'), maxLength: 10 }))
  .map(([a, b]) => a + b)
  .filter((s) => !RESERVED_CALLBACK_SEGMENTS.has(s));
export const callbackArb = fc.array(identifier, { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));

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

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 answers, for the tests that write their own bytes

export interface RawAnswer {
  status: number;
  /** Lower-cased names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Splits what a server sent on one connection into its answers, in order
 * (interim 1xx answers included). `complete` is false when the bytes end
 * inside an answer, or hold something that is not an answer. `heads` holds
 * the indexes (among final answers) of answers to HEAD requests, which have
 * no body whatever their Content-Length says.
 */
export function parseAnswers(data: Buffer, heads: ReadonlySet<number> = new Set()): { answers: RawAnswer[]; complete: boolean } {
  const answers: RawAnswer[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at, 'latin1');
    if (end < 0) return { answers, complete: false };
    const lines = data.toString('latin1', at, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) return { answers, complete: false };
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    at = end + 4;
    if (status < 200) {
      answers.push({ status, headers, body: Buffer.alloc(0) });
      continue;
    }
    if (heads.has(answers.filter((a) => a.status >= 200).length)) {
      answers.push({ status, headers, body: Buffer.alloc(0) });
      continue;
    }
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      const chunks: Buffer[] = [];
      for (;;) {
        const eol = data.indexOf('\r\n', at, 'latin1');
        if (eol < 0) return { answers, complete: false };
        const size = Number.parseInt(data.toString('latin1', at, eol), 16);
        if (!Number.isFinite(size) || eol + 2 + size + 2 > data.length) return { answers, complete: false };
        chunks.push(data.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
        if (size === 0) break;
      }
      answers.push({ status, headers, body: Buffer.concat(chunks) });
      continue;
    }
    const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
    if (at + length > data.length) return { answers, complete: false };
    answers.push({ status, headers, body: data.subarray(at, at + length) });
    at += length;
  }
  return { answers, complete: true };
}
