/**
 * Helpers for the cluster-mode tests (--redis): nodes on one Redis, gauges,
 * publishers and chaining readers that keep going through store outages,
 * and the checks every reader's result must pass. Every loop and wait is
 * bounded in count and time.
 */
import type { Test } from 'tap';
import type { HttpResponse, Params } from './http.js';
import { strictlyIncreasing } from './protocol.js';
import type { RedisServer } from './redis.js';
import { startServer, type CometServer } from './server.js';
import { sleep, waitFor } from './wait.js';

/** Starts one node (a comet-server process) on the given Redis URL(s). */
export function startNode(t: Test, redisUrl: string, threads: number, args: string[] = []): Promise<CometServer> {
  return startServer({ t, threads, args: ['--redis', redisUrl, ...args] });
}

/**
 * Waits (bounded) until every Redis has been up for a whole second. Redis
 * knows its start only to the second, so the scripts (scripts.ts, "Known
 * since") vouch for times increasing across a restart, and for a loss being
 * reported, only when the Redis server restarted had lived at least that
 * second: tests that kill Redis start after it.
 */
export async function redisPastFirstSecond(...servers: RedisServer[]): Promise<void> {
  await waitFor(
    async () => {
      const infos = await Promise.all(servers.map((r) => r.cli('info', 'server')));
      return infos.every((i) => Number(/uptime_in_seconds:(\d+)/.exec(i)?.[1] ?? 0) >= 1);
    },
    { timeoutMs: 3000, intervalMs: 50, what: 'Redis uptime_in_seconds >= 1' },
  );
}

/** A gauge or counter summed over the node's threads. */
export async function gauge(srv: CometServer, name: string): Promise<number> {
  return (await srv.metrics()).value(name);
}

/**
 * Waits (bounded) until `name` satisfies `ok` on the node (the Redis gauges are
 * sampled once a second); resolves with the last value seen, whether or not it
 * got there, so the caller asserts on it.
 */
export async function waitGauge(srv: CometServer, name: string, ok: (v: number) => boolean, timeoutMs = 5000): Promise<number> {
  let last = NaN;
  try {
    await waitFor(
      async () => {
        last = await gauge(srv, name);
        return ok(last);
      },
      { timeoutMs, intervalMs: 100, what: name },
    );
  } catch {
    // the caller asserts on `last`
  }
  return last;
}

/** `PUBSUB <sub> names...` (NUMSUB or SHARDNUMSUB): subscriber count per name. */
export async function numsub(redis: RedisServer, names: string[], sub: 'numsub' | 'shardnumsub' = 'numsub'): Promise<Map<string, number>> {
  const out = await redis.cli('pubsub', sub, ...names);
  const lines = out === '' ? [] : out.split('\n');
  const counts = new Map<string, number>();
  for (let i = 0; i + 1 < lines.length; i += 2) counts.set(lines[i]!, Number(lines[i + 1]));
  return counts;
}

/** Waits (bounded) until `check` holds for the counts; resolves with the last counts seen. */
export async function waitNumsub(
  redis: RedisServer,
  names: string[],
  check: (counts: number[]) => boolean,
  { sub = 'numsub' as 'numsub' | 'shardnumsub', timeoutMs = 6000 } = {},
): Promise<number[]> {
  let last: number[] = [];
  try {
    await waitFor(
      async () => {
        const m = await numsub(redis, names, sub);
        last = names.map((n) => m.get(n) ?? -1);
        return check(last);
      },
      { timeoutMs, intervalMs: 100, what: `PUBSUB ${sub}` },
    );
  } catch {
    // the caller asserts on `last`
  }
  return last;
}

export const STORE_UNAVAILABLE = 'COMET_ERR_STORE_UNAVAILABLE';

/** Whether an answer is the 503 of an unreachable store. */
export function isStoreDown(res: HttpResponse): boolean {
  return res.status === 503 && res.json?.code === STORE_UNAVAILABLE;
}

export interface PublisherResult {
  name: string;
  /** Acknowledged messages (200) in the order sent, with their times. */
  acked: Array<{ message: string; time: number }>;
  /** Messages answered 503 COMET_ERR_STORE_UNAVAILABLE (they may or may not have been stored). */
  unavailable: string[];
  /** The first 503 answer, to check its shape. */
  first503?: HttpResponse;
  /** Anything else: other statuses, network errors. */
  errors: string[];
  /** Every message sent, in order (the ones still in flight at a crash included). */
  attempted: string[];
  /** When (Date.now()) each acknowledgement arrived, by message. */
  ackedAt: Map<string, number>;
}

export interface PublisherControl {
  /** Stop after the message in flight. */
  stop(): void;
  readonly result: PublisherResult;
  readonly done: Promise<PublisherResult>;
}

/**
 * A publisher: puts `${name}:${i}` for i = 0, 1, ... on `channel`, one at a
 * time, until `count` were sent or stop() was called; never retries a 503
 * (the next message is a new one). Optionally puts a final `${name}:end`,
 * retried on 503 until acknowledged (bounded by `endDeadlineMs`).
 */
export function publisher(
  srv: CometServer,
  channel: string,
  name: string,
  { count = Infinity, pauseMs = 0, end = false, endDeadlineMs = 10000, maxMs = 30000 } = {},
): PublisherControl {
  const result: PublisherResult = { name, acked: [], unavailable: [], errors: [], attempted: [], ackedAt: new Map() };
  let stopped = false;
  const started = Date.now();
  const putOnce = async (message: string): Promise<'ok' | 'down' | 'error'> => {
    let res: HttpResponse;
    try {
      res = await srv.call({ method: 'put', channel, message }, { timeoutMs: 10000 });
    } catch (err) {
      result.errors.push(`${message}: ${String(err)}`);
      return 'error';
    }
    if (res.status === 200 && Number.isSafeInteger(res.json?.time)) {
      result.acked.push({ message, time: res.json.time });
      result.ackedAt.set(message, Date.now());
      return 'ok';
    }
    if (isStoreDown(res)) {
      result.first503 ??= res;
      result.unavailable.push(message);
      return 'down';
    }
    result.errors.push(`${message}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    return 'error';
  };
  const done = (async () => {
    for (let i = 0; i < count && !stopped && Date.now() - started < maxMs; i++) {
      const message = `${name}:${i}`;
      result.attempted.push(message);
      await putOnce(message);
      if (pauseMs > 0) await sleep(pauseMs);
    }
    if (end) {
      const deadline = Date.now() + endDeadlineMs;
      const message = `${name}:end`;
      result.attempted.push(message);
      while (Date.now() < deadline) {
        const r = await putOnce(message);
        if (r !== 'down') break;
        await sleep(50);
      }
    }
    return result;
  })();
  return { stop: () => (stopped = true), result, done };
}

export interface ReaderResult {
  name: string;
  messages: string[];
  /** One entry per answer with messages: its time and how many it carried. */
  answers: Array<{ time: number; count: number }>;
  missed: number;
  /** Gets answered 503 COMET_ERR_STORE_UNAVAILABLE (retried with the same cursor). */
  unavailable: number;
  errors: string[];
  timedOut: boolean;
  /** When (Date.now()) each message arrived. */
  arrivedAt: Map<string, number>;
}

export interface ReaderControl {
  stop(): void;
  readonly result: ReaderResult;
  readonly done: Promise<ReaderResult>;
}

/**
 * A chaining reader: gets from `from`, each next get with the previous
 * answer's time, until `until(result)` holds, stop() is called, or
 * `deadlineMs` passed. A 503 from an unreachable store is retried after
 * `retryMs` with the same cursor; any other failure is recorded and, after
 * `maxErrors` of them, ends the reader.
 */
export function reader(
  srv: CometServer,
  channel: string,
  name: string,
  from: number,
  {
    until = (_r: ReaderResult) => false,
    deadlineMs = 20000,
    pollTimeout = 10,
    retryMs = 100,
    pauseMs = () => 0,
    maxErrors = 5,
  }: { until?: (r: ReaderResult) => boolean; deadlineMs?: number; pollTimeout?: number; retryMs?: number; pauseMs?: () => number; maxErrors?: number } = {},
): ReaderControl {
  const result: ReaderResult = { name, messages: [], answers: [], missed: 0, unavailable: 0, errors: [], timedOut: false, arrivedAt: new Map() };
  let stopped = false;
  const deadline = Date.now() + deadlineMs;
  const done = (async () => {
    let time = from;
    while (!stopped && !until(result)) {
      if (Date.now() > deadline) {
        result.timedOut = true;
        break;
      }
      const params: Params = { method: 'get', channel, time, timeout: pollTimeout };
      let res: HttpResponse;
      try {
        res = await srv.call(params, { timeoutMs: pollTimeout * 1000 + 10000 });
      } catch (err) {
        result.errors.push(String(err));
        if (result.errors.length >= maxErrors) break;
        await sleep(retryMs);
        continue;
      }
      if (isStoreDown(res)) {
        result.unavailable++;
        await sleep(retryMs);
        continue;
      }
      const j = res.json;
      if (res.status !== 200 || !j || !Number.isSafeInteger(j.time) || !Array.isArray(j.messages)) {
        result.errors.push(`HTTP ${res.status} ${res.body.slice(0, 200)}`);
        if (result.errors.length >= maxErrors) break;
        await sleep(retryMs);
        continue;
      }
      if (j.missed === true) result.missed++;
      if (j.messages.length > 0) {
        result.answers.push({ time: j.time, count: j.messages.length });
        const now = Date.now();
        for (const m of j.messages as string[]) {
          result.messages.push(m);
          if (!result.arrivedAt.has(m)) result.arrivedAt.set(m, now);
        }
      }
      time = j.time;
      const p = pauseMs();
      if (p > 0) await sleep(p);
    }
    return result;
  })();
  return { stop: () => (stopped = true), result, done };
}

/** Index of the message within its publisher's sequence (`name:i`), `end` as Infinity. */
function seq(message: string): number {
  const tail = message.slice(message.lastIndexOf(':') + 1);
  return tail === 'end' ? Infinity : Number(tail);
}

function publisherOf(message: string): string {
  return message.slice(0, message.lastIndexOf(':'));
}

/**
 * The checks every chaining reader must pass against the publishers' records:
 * every acknowledged message seen exactly once; nothing seen that was not
 * sent; each publisher's messages in its order; messages in the order of their
 * put times; each answer's time the time of its last message; no `missed`.
 * `mayHaveStored`: unacknowledged messages a reader may also see (a 503 or a
 * crash can leave a message stored without its acknowledgement).
 */
export function checkReader(t: Test, r: ReaderResult, pubs: PublisherResult[], { allowMissed = false } = {}): void {
  const label = r.name;
  const acked = new Map<string, number>();
  const sent = new Set<string>();
  for (const p of pubs) {
    for (const a of p.acked) acked.set(a.message, a.time);
    for (const m of p.attempted) sent.add(m);
  }
  t.notOk(r.timedOut, `${label}: done before its deadline`, { seen: r.messages.length, acked: acked.size });
  t.strictSame(r.errors, [], `${label}: no errors`);
  if (!allowMissed) t.equal(r.missed, 0, `${label}: never missed`);
  const seen = new Set(r.messages);
  t.equal(seen.size, r.messages.length, `${label}: no duplicates`, { dups: r.messages.filter((m, i) => r.messages.indexOf(m) !== i).slice(0, 10) });
  const unseen = [...acked.keys()].filter((m) => !seen.has(m));
  t.strictSame(unseen.slice(0, 20), [], `${label}: every acknowledged message seen (${acked.size})`, { unseen: unseen.length });
  const strange = r.messages.filter((m) => !sent.has(m));
  t.strictSame(strange.slice(0, 20), [], `${label}: nothing seen that was not sent`);
  const outOfOrder: string[] = [];
  for (const p of pubs) {
    const mine = r.messages.filter((m) => publisherOf(m) === p.name).map(seq);
    if (!strictlyIncreasing(mine)) outOfOrder.push(p.name);
  }
  t.strictSame(outOfOrder, [], `${label}: each publisher's messages in its order`);
  const times = r.messages.filter((m) => acked.has(m)).map((m) => acked.get(m)!);
  t.ok(strictlyIncreasing(times), `${label}: messages in the order of their put times`);
  let at = 0;
  let badAnswerTimes = 0;
  for (const a of r.answers) {
    at += a.count;
    const last = r.messages[at - 1]!;
    if (acked.has(last) && acked.get(last) !== a.time) badAnswerTimes++;
  }
  t.equal(badAnswerTimes, 0, `${label}: each answer's time is its last message's put time`);
}

/** Every publisher sent only 200s (no 503, no other error). */
export function checkCleanPublisher(t: Test, p: PublisherResult): void {
  t.equal(p.unavailable.length, 0, `${p.name}: no 503`);
  t.strictSame(p.errors, [], `${p.name}: no errors`);
  t.equal(p.acked.length, p.attempted.length, `${p.name}: every put acknowledged (${p.acked.length})`);
  t.ok(strictlyIncreasing(p.acked.map((a) => a.time)), `${p.name}: its own times increase`);
}
