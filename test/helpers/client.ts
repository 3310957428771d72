/**
 * Recording a client library subscription for the client tests, whatever its
 * transport: every batch and every error with when it arrived, a teardown that
 * stops it, and the exactly-once-in-order check against what was published.
 * Then the faults every transport must come through the same way, run by
 * client.test.ts (fetch) and client-streams.test.ts (events, websocket): a
 * TCP proxy between the client and the server cutting every connection again
 * and again, the server unreachable for a second (backoff), and an in-memory
 * server restarted (missed). Publishers talk to the server directly, so only
 * the subscription sees the faults.
 */
import type { Test } from 'tap';
import {
  type BatchInfo,
  type ClientOptions,
  type CometClientError,
  CometNetworkError,
  createClient,
  type SubscribeOptions,
  type Subscription,
} from '../../src/client/index.js';
import { freePort } from './redis.js';
import { type CometServer, sleep, startServer, waitFor, within } from './server.js';
import { type Proxy, startProxy } from './tcp-proxy.js';

export const urlOf = (port: number): string => `http://127.0.0.1:${port}/`;

export interface Recorder {
  messages: string[];
  batches: Array<{ messages: string[]; info: BatchInfo; at: number }>;
  errors: Array<{ error: CometClientError; at: number }>;
  sub: Subscription;
}

/** Subscribes and records every batch and every error, with when they arrived (performance.now()). */
export function record(client: Pick<ReturnType<typeof createClient>, 'subscribe'>, channel: string, opts: SubscribeOptions = {}): Recorder {
  const rec = { messages: [], batches: [], errors: [] } as unknown as Recorder;
  rec.sub = client.subscribe(
    channel,
    (messages, info) => {
      rec.messages.push(...messages);
      rec.batches.push({ messages, info, at: performance.now() });
    },
    { ...opts, onError: (error) => rec.errors.push({ error, at: performance.now() }) },
  );
  return rec;
}

/** Stops a subscription at the end of `t` whatever happened (a failed assertion must not leave it polling). */
export function cleanup(t: Test, rec: Recorder): Recorder {
  t.teardown(() => {
    rec.sub.stop();
    return rec.sub.done.catch(() => undefined);
  });
  return rec;
}

export const range = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}:${from + i}`);

/** Checks a subscription's record against what was published: every message once, in order, never missed. */
export function exactlyOnceInOrder(t: Test, rec: Recorder, expected: string[], label: string): void {
  const dups = rec.messages.filter((m, i) => rec.messages.indexOf(m) !== i);
  t.strictSame(dups.slice(0, 10), [], `${label}: no message twice`, { dups: dups.length });
  const seen = new Set(rec.messages);
  const lost = expected.filter((m) => !seen.has(m));
  t.strictSame(lost.slice(0, 10), [], `${label}: no message lost`, { lost: lost.length });
  t.ok(rec.messages.length === expected.length && rec.messages.every((m, i) => m === expected[i]), `${label}: all ${expected.length} delivered, in order`, {
    got: rec.messages.length,
  });
  t.equal(rec.batches.filter((b) => b.info.missed).length, 0, `${label}: missed never reported`);
}

/** Warnings the process emitted: a listener left behind per request shows up as MaxListenersExceededWarning. */
export function watchLeaks(): () => string[] {
  const warnings: Error[] = [];
  process.on('warning', (w) => warnings.push(w));
  return () => warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message);
}

export type Transport = NonNullable<ClientOptions['transport']>;

/**
 * Subscribes through `proxy` from the channel's time now and waits until the
 * subscription reached the server: its get waits (fetch), or its stream is
 * connected (events, websocket; the time makes the rest of the start
 * harmless: anything put after it is delivered).
 */
async function subscribedThrough(t: Test, srv: CometServer, proxy: Proxy, client: CometClient, channel: string): Promise<Recorder> {
  const r = cleanup(t, record(client, channel, { time: await srv.sync(channel) }));
  if (client.transport === 'fetch') t.ok(await srv.waitWaiting(1, { exact: true }), 'subscribed: a get waiting');
  else await waitFor(() => proxy.connections > 0, { timeoutMs: 3000, what: 'the stream connected' });
  return r;
}

const clientThrough = (proxy: Proxy, transport: Transport, backoff: ClientOptions['backoff']) =>
  Object.assign(createClient({ url: urlOf(proxy.port), pollTimeout: 10, backoff, transport }), { transport });
type CometClient = ReturnType<typeof clientThrough>;

export async function throughCuts(t: Test, transport: Transport, leakWarnings: () => string[]): Promise<void> {
  const srv = await startServer({ t });
  const proxy = await startProxy(t, srv.port);
  const client = clientThrough(proxy, transport, { initialMs: 20, maxMs: 200 });
  const N = 300;
  const expected = range('m', N);
  const r = await subscribedThrough(t, srv, proxy, client, 'cuts');

  let publishing = true;
  const published = (async () => {
    for (let i = 0; i < N; i++) {
      await srv.put('cuts', expected[i]!);
      if (i % 2 === 0) await sleep(5);
    }
    publishing = false;
  })();
  let cuts = 0;
  let cutsWithTraffic = 0;
  for (let k = 0; publishing && k < 40; k++) {
    await sleep(100);
    if (proxy.connections > 0) cutsWithTraffic++;
    proxy.cut();
    cuts++;
    // Half the cuts also refuse new connections for a moment.
    if (k % 2 === 1) await sleep(40);
    proxy.heal();
  }
  await within(published, 10_000, 'publisher');
  await waitFor(() => r.messages.length >= N, { timeoutMs: 5000, what: `${N} messages` }).catch(() => undefined);
  await sleep(200); // anything repeated late would arrive now
  r.sub.stop();
  await within(r.sub.done, 1000, 'stopped');

  t.ok(cuts >= 4 && cutsWithTraffic >= 3, `cut ${cuts} times, ${cutsWithTraffic} with connections open`);
  t.ok(r.errors.length >= 3, `the cuts hit the subscription (${r.errors.length} failures)`);
  t.ok(
    r.errors.every((e) => e.error instanceof CometNetworkError && e.error.retryable),
    'the failures are network errors',
    { errors: r.errors.map((e) => e.error.message) },
  );
  exactlyOnceInOrder(t, r, expected, 'through the cuts');
  t.ok(r.batches.length > 1, `delivered over ${r.batches.length} batches`);
  t.strictSame(leakWarnings(), [], 'no listener left behind per request (MaxListenersExceededWarning)');
}

export async function backsOffWhileUnreachable(t: Test, transport: Transport): Promise<void> {
  const srv = await startServer({ t });
  const proxy = await startProxy(t, srv.port);
  const backoff = { initialMs: 100, maxMs: 1000 };
  const client = clientThrough(proxy, transport, backoff);
  const r = await subscribedThrough(t, srv, proxy, client, 'down');

  const expected = range('d', 100);
  const published = (async () => {
    for (const m of expected) {
      await srv.put('down', m);
      await sleep(20);
    }
  })();
  await sleep(300);
  const acceptedBefore = proxy.accepted;
  const errorsBefore = r.errors.length;
  proxy.cut();
  await sleep(1000);
  const attempts = proxy.accepted - acceptedBefore;
  const failures = r.errors.slice(errorsBefore);
  const healedAt = performance.now();
  proxy.heal();
  await within(published, 10_000, 'publisher');
  await waitFor(() => r.messages.length >= expected.length, { timeoutMs: 5000, what: 'every message' }).catch(() => undefined);
  await sleep(100);
  r.sub.stop();
  await within(r.sub.done, 1000, 'stopped');

  // Full jitter from 100 ms doubling to 1 s: the attempts after the cut come
  // within at most 0.1, 0.3 and 0.7 s (so at least 3 in the second), and
  // a dozen would take 7+ draws summing under 1 s (p < 0.001); a loop
  // without the sleep makes hundreds.
  t.ok(attempts >= 3 && attempts <= 12, `connection attempts while refused: ${attempts} in 1 s (3..12)`);
  t.ok(failures.length >= 3 && failures.length <= 13, `failures told to onError: ${failures.length}`);
  t.ok(
    failures.every((f) => f.error instanceof CometNetworkError),
    'network errors',
  );
  // The k-th wait after the cut is drawn below min(maxMs, initialMs * 2^k);
  // the slack is the refused attempt's own round trip.
  const gaps = failures.slice(1).map((f, i) => Math.round(f.at - failures[i]!.at));
  const caps = gaps.map((_, k) => Math.min(backoff.maxMs, backoff.initialMs * 2 ** k) + 100);
  t.ok(
    gaps.every((g, k) => g <= caps[k]!),
    `each wait within its exponential bound: ${gaps.join(', ')} ms`,
    { caps },
  );
  const firstAfter = r.batches.find((b) => b.at > healedAt);
  t.ok(firstAfter && firstAfter.at - healedAt < backoff.maxMs + 1000, `resumed ${firstAfter ? Math.round(firstAfter.at - healedAt) : '-'} ms after the heal`);
  exactlyOnceInOrder(t, r, expected, 'across the outage');
}

export async function missedAfterRestart(t: Test, transport: Transport): Promise<void> {
  const port = await freePort();
  const first = await startServer({ t, args: ['--port', String(port)] });
  const proxy = await startProxy(t, port);
  const client = clientThrough(proxy, transport, { initialMs: 50, maxMs: 200 });
  const r = await subscribedThrough(t, first, proxy, client, 'restart');
  for (const m of range('before', 3)) await first.put('restart', m);
  await waitFor(() => r.messages.length >= 3, { timeoutMs: 3000, what: 'the first three' });

  // The client is cut off while more are put: only the old server ever holds them.
  proxy.cut();
  for (const m of range('lost', 5)) await first.put('restart', m);
  const stopped = await first.stop('SIGTERM');
  t.equal(stopped.code, 0, 'the first server stopped');
  const second = await startServer({ t, args: ['--port', String(port)] });
  t.equal(second.port, port, 'the new server on the same port');
  const batchesBefore = r.batches.length;
  proxy.heal();
  await waitFor(() => r.batches.some((b) => b.info.missed), { timeoutMs: 3000, what: 'a batch with missed' }).catch(() => undefined);
  for (const m of range('after', 3)) await second.put('restart', m);
  await waitFor(() => r.messages.length >= 6, { timeoutMs: 3000, what: 'the messages after the restart' }).catch(() => undefined);
  await sleep(100);
  r.sub.stop();
  await within(r.sub.done, 1000, 'stopped');

  const missed = r.batches.filter((b) => b.info.missed);
  t.equal(missed.length, 1, 'missed reported once');
  t.equal(r.batches.indexOf(missed[0]!), batchesBefore, "it is the first batch after the restart (the server's first answer)");
  t.strictSame(r.messages, [...range('before', 3), ...range('after', 3)], 'the lost messages are gone; the rest arrived once, in order');
  t.ok(
    r.batches.every((b, i) => i === 0 || b.info.time > r.batches[i - 1]!.info.time),
    'batch times increase across the restart',
  );
}
