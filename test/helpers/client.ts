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
async function subscribedThrough(t: Test, srv: CometServer, proxy: Proxy, client: ThroughClient, channel: string): Promise<Recorder> {
  const r = cleanup(t, record(client, channel, { time: await srv.sync(channel) }));
  if (client.transport === 'fetch') t.ok(await srv.waitWaiting(1, { exact: true }), 'subscribed: a get waiting');
  else await waitFor(() => proxy.connections > 0, { timeoutMs: 3000, what: 'the stream connected' });
  return r;
}

const clientThrough = (proxy: Proxy, transport: Transport, backoff: ClientOptions['backoff']) =>
  Object.assign(createClient({ url: urlOf(proxy.port), pollTimeout: 10, backoff, transport }), { transport });
type ThroughClient = ReturnType<typeof clientThrough>;
type CometClient = ReturnType<typeof createClient>;

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
  // Never back: a gap told on its own (an event stream's `missed` event) continues from the time of the batch before it.
  t.ok(
    r.batches.every((b, i) => i === 0 || b.info.time >= r.batches[i - 1]!.info.time),
    'batch times never go back across the restart',
    { times: r.batches.map((b) => b.info.time) },
  );
}

/**
 * Two subscriptions on one channel of one client, one on another channel,
 * one on the first channel from another client: each gets its channel's
 * messages, and stopping one leaves the others. All from a synced time, so
 * that what is put next is after each one's start whatever its transport.
 */
export async function severalSubscriptions(t: Test, srv: CometServer, client: CometClient, other: CometClient): Promise<void> {
  const fromX = await srv.sync('multi-x');
  const fromY = await srv.sync('multi-y');
  const x1 = cleanup(t, record(client, 'multi-x', { time: fromX }));
  const x2 = cleanup(t, record(client, 'multi-x', { time: fromX }));
  const y = cleanup(t, record(client, 'multi-y', { time: fromY }));
  const x3 = cleanup(t, record(other, 'multi-x', { time: fromX }));
  const xs = range('x', 10);
  const ys = range('y', 10);
  for (let i = 0; i < 10; i++) {
    await client.publish('multi-x', xs[i]!);
    await other.publish('multi-y', ys[i]!);
  }
  await waitFor(() => [x1, x2, x3].every((r) => r.messages.length >= 10) && y.messages.length >= 10, {
    timeoutMs: 3000,
    what: 'every subscription got its 10',
  });
  t.strictSame(x1.messages, xs, 'first subscription on x');
  t.strictSame(x2.messages, xs, 'second subscription on x, same client');
  t.strictSame(x3.messages, xs, 'subscription on x from another client');
  t.strictSame(y.messages, ys, 'subscription on y: only y');

  x1.sub.stop();
  await within(x1.sub.done, 1000, 'the stopped subscription ends');
  await client.publish('multi-x', 'x:10');
  await client.publish('multi-y', 'y:10');
  await waitFor(() => x2.messages.length >= 11 && x3.messages.length >= 11 && y.messages.length >= 11, { timeoutMs: 3000, what: 'the others got the next' });
  await sleep(100);
  t.equal(x1.messages.length, 10, 'the stopped one got nothing more');
  t.strictSame(x2.messages.slice(10), ['x:10'], 'the other one on the same channel and client goes on');
  t.strictSame(x3.messages.slice(10), ['x:10']);
  t.strictSame(y.messages.slice(10), ['y:10']);
  for (const r of [x1, x2, x3, y]) t.strictSame(r.errors, [], 'no errors');
}

/** A subscription stopped while it backs off (the proxy cut) ends at once, and tries nothing more. */
export async function stoppedWhileBackingOff(t: Test, srv: CometServer, transport: Transport): Promise<void> {
  const proxy = await startProxy(t, srv.port);
  const client = clientThrough(proxy, transport, { initialMs: 200, maxMs: 400 });
  const r = await subscribedThrough(t, srv, proxy, client, 'backing-off');
  proxy.cut();
  await waitFor(() => r.errors.length >= 2, { timeoutMs: 3000, what: 'two failures' });
  const at = performance.now();
  r.sub.stop();
  await within(r.sub.done, 500, 'done');
  t.ok(performance.now() - at < 100, 'done resolves without waiting out the backoff');
  // Full jitter can start the next attempt within a millisecond of a failure: one sent before the
  // stop may reach the proxy just after it. Anything later would be an attempt after the stop.
  await sleep(100);
  const accepted = proxy.accepted;
  await sleep(1000);
  t.equal(proxy.accepted - accepted, 0, 'no connection attempt after the stop');
}

/** A subscription given a signal already aborted sends nothing at all. */
export async function alreadyAborted(t: Test, srv: CometServer, transport: Transport): Promise<void> {
  const proxy = await startProxy(t, srv.port);
  const r = cleanup(t, record(clientThrough(proxy, transport, undefined), 'aborted', { signal: AbortSignal.abort() }));
  await t.resolves(within(r.sub.done, 500, 'done'), 'done resolves');
  await sleep(300);
  t.equal(proxy.accepted, 0, 'nothing reached the server');
  t.strictSame(r.errors, []);
}

/** What the subscription's done rejected with (undefined when it resolved), within `ms`. */
export function refusalOf(rec: Recorder, ms: number): Promise<unknown> {
  return within(
    rec.sub.done.then(
      () => undefined,
      (e: unknown) => e,
    ),
    ms,
    'done settles',
  );
}

export interface SentRequest {
  url: string;
  authorization: string | null;
}

/** Every request fetch made while the test ran: its URL and Authorization header. */
export function recordFetch(t: Test): SentRequest[] {
  const sent: SentRequest[] = [];
  const original = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    sent.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
    return original(input, init);
  };
  t.teardown(() => {
    globalThis.fetch = original;
  });
  return sent;
}

/** Subscribed from the time of a message put earlier: the messages after it, at once, ending at the last one's time. */
export async function fromAGivenTime(t: Test, client: CometClient): Promise<void> {
  const from = await client.publish('from-time', 'z:0');
  await client.publish('from-time', 'z:1');
  const last = await client.publish('from-time', 'z:2');
  const r = cleanup(t, record(client, 'from-time', { time: from }));
  await waitFor(() => r.messages.length >= 2, { timeoutMs: 3000, what: 'the two messages after the time' });
  t.strictSame(r.messages, ['z:1', 'z:2']);
  t.equal(r.batches.at(-1)!.info.time, last, "the last batch's time is the last message's");
  t.ok(
    r.batches.every((b) => !b.info.missed),
    'nothing missed',
  );
  t.strictSame(r.errors, []);
}

/**
 * Messages come back byte for byte: URL and form syntax, line ends of every
 * kind, what an event stream's own syntax looks like, characters JSON and
 * script text escape, and one large enough for a form body.
 */
export async function roundTrips(t: Test, srv: CometServer, client: CometClient): Promise<void> {
  const r = cleanup(t, record(client, 'payloads', { time: await srv.sync('payloads') }));
  const payloads = [
    '',
    'a&b=c?d+e%20f#g',
    'line\nbreak\r\ncrlf\rcr\ttab "quotes" \\',
    'é中😀 \u2028\u2029',
    'data: x\n\nid: 1',
    ': comment',
    '{"json":[1,2]}',
    'L'.repeat(90_000),
  ];
  for (const p of payloads) await client.publish('payloads', p);
  await waitFor(() => r.messages.length >= payloads.length, { timeoutMs: 3000, what: 'every payload' });
  t.equal(r.messages.length, payloads.length);
  t.ok(
    r.messages.every((m, i) => m === payloads[i]),
    'each identical',
    { got: r.messages.map((m) => m.slice(0, 40)) },
  );
}

/**
 * An exception from onMessages ends that subscription, done rejecting with
 * it; another subscription of the same client to the same channel goes on.
 */
export async function throwingCallback(t: Test, srv: CometServer, transport: Transport): Promise<void> {
  const client = createClient({ url: urlOf(srv.port), transport });
  const from = await srv.sync('throws');
  const thrown = new Error('the application failed');
  let calls = 0;
  const sub = client.subscribe(
    'throws',
    () => {
      calls++;
      throw thrown;
    },
    { time: from },
  );
  const other = cleanup(t, record(client, 'throws', { time: from }));
  await srv.put('throws', 'one');
  t.equal(await refusalOf({ sub } as Recorder, 3000), thrown, 'done rejects with what onMessages threw');
  await srv.put('throws', 'two');
  await waitFor(() => other.messages.length >= 2, { timeoutMs: 3000, what: 'the other subscription got both' });
  t.equal(calls, 1, 'the throwing callback was not called again');
  t.strictSame(other.messages, ['one', 'two']);
  t.strictSame(other.errors, [], 'the other subscription saw no error');
}
