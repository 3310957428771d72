/** Shared assertions and client-side protocol helpers. */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { HttpResponse } from './http.js';
import type { CometServer, GetAnswer } from './server.js';

export const JSON_TYPE = /^application\/json;\s*charset=utf-8$/i;
export const JS_TYPE = /^application\/javascript;\s*charset=utf-8$/i;
export const MAX_TIME = Number.MAX_SAFE_INTEGER;

let counter = 0;
const runId = randomBytes(3).toString('hex');

/** A channel name no other test uses. */
export function uniq(prefix = 'ch'): string {
  return `${prefix}-${runId}-${++counter}`;
}

/** n distinct channel names (spread over the owner threads by their hashes). */
export function channels(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => uniq(`${prefix}${i}`));
}

export function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TIME;
}

function header(res: HttpResponse, name: string): string {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/** The headers every JSON protocol answer carries. */
export function checkJsonHeaders(t: Test, res: HttpResponse, origin = '*'): void {
  t.match(header(res, 'content-type'), JSON_TYPE, 'Content-Type: application/json; charset=utf-8');
  t.match(header(res, 'cache-control'), /(^|,)\s*no-store\s*(,|$)/i, 'Cache-Control: no-store');
  t.equal(header(res, 'access-control-allow-origin'), origin, `Access-Control-Allow-Origin: ${origin}`);
}

/** An error answer: status, JSON body {"error":"...","code":"COMET_ERR_..."}. */
export function checkError(t: Test, res: HttpResponse, status: number, code?: string | RegExp, what = ''): void {
  const label = what ? `${what}: ` : '';
  t.equal(res.status, status, `${label}status ${status}`, { body: res.body.slice(0, 300) });
  t.match(header(res, 'content-type'), JSON_TYPE, `${label}error body is JSON`);
  t.type(res.json, 'object', `${label}body parses as JSON`, { body: res.body.slice(0, 300) });
  t.type(res.json?.error, 'string', `${label}has an "error" string`);
  t.ok(String(res.json?.error ?? '').length > 0, `${label}"error" is not empty`);
  if (status === 503 || status === 429) t.match(header(res, 'retry-after'), /^\d+$/, `${label}a ${status} says when to try again (Retry-After)`);
  if (code === undefined) t.match(res.json?.code, /^COMET_ERR_[A-Z_]+$/, `${label}code COMET_ERR_*`);
  else if (typeof code === 'string') t.equal(res.json?.code, code, `${label}code ${code}`);
  else t.match(res.json?.code, code, `${label}code ${code}`);
}

/** A successful get answer with exactly these messages and no missed flag. */
export function checkMessages(t: Test, a: GetAnswer, messages: string[], what = 'get'): void {
  t.equal(a.res.status, 200, `${what}: 200`);
  t.strictSame(a.messages, messages, `${what}: messages`);
  t.not(a.missed, true, `${what}: not missed`);
  t.ok(isTime(a.time), `${what}: time is a safe non-negative integer`, { time: a.time });
}

export interface ChainResult {
  messages: string[];
  /** put time of each message as seen in the answers (the answer time for the last of each answer). */
  answers: Array<{ time: number; count: number; missed?: boolean }>;
  missed: boolean;
  timedOut: boolean;
}

/**
 * A chaining subscriber: asks `get` with time = previous answer's time,
 * starting at `from`, until `count` messages arrived or `deadlineMs` passed.
 */
export async function chain(
  srv: CometServer,
  channel: string,
  from: number,
  count: number,
  { deadlineMs = 20000, pollTimeout = 5, pauseMs = () => 0 }: { deadlineMs?: number; pollTimeout?: number; pauseMs?: () => number } = {},
): Promise<ChainResult> {
  const deadline = Date.now() + deadlineMs;
  const out: ChainResult = { messages: [], answers: [], missed: false, timedOut: false };
  let time = from;
  while (out.messages.length < count) {
    if (Date.now() > deadline) {
      out.timedOut = true;
      break;
    }
    const a = await srv.get(channel, { time, timeout: pollTimeout });
    if (a.missed === true) out.missed = true;
    out.answers.push({ time: a.time, count: a.messages.length, missed: a.missed });
    out.messages.push(...a.messages);
    time = a.time;
    const p = pauseMs();
    if (p > 0) await new Promise((r) => setTimeout(r, p));
  }
  return out;
}

/** Puts messages one after the other; returns their times. */
export async function putAll(srv: CometServer, channel: string, messages: string[]): Promise<number[]> {
  const times: number[] = [];
  for (const m of messages) times.push(await srv.put(channel, m));
  return times;
}

/** True when every element is strictly greater than the one before. */
export function strictlyIncreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x > xs[i - 1]!);
}
