/**
 * The client library (src/client) against the real server, over real sockets,
 * with the fetch transport (JSONP runs in the browser test). Faults come from
 * a TCP proxy between the client and the server (test/helpers/tcp-proxy.ts
 * startProxy: cut() drops every connection and refuses new ones until heal())
 * and from restarting the server; publishers talk to the server directly, so
 * only the subscription sees the faults. Every wait is bounded.
 */
import t from 'tap';
import type { Test } from 'tap';
import { CometClientError, CometNetworkError, CometRequestError, CometServerError, createClient, type SubscribeOptions } from '../src/client/index.js';
import {
  alreadyAborted,
  backsOffWhileUnreachable,
  cleanup,
  fromAGivenTime,
  missedAfterRestart,
  type Recorder,
  record,
  refusalOf,
  roundTrips,
  severalSubscriptions,
  stoppedWhileBackingOff,
  throughCuts,
  throwingCallback,
  urlOf,
  watchLeaks,
} from './helpers/client.js';
import { freePort } from './helpers/redis.js';
import { sleep, startServer, stillPending, waitFor, within, type CometServer } from './helpers/server.js';

const leakWarnings = watchLeaks();

async function requestsTotal(srv: CometServer): Promise<number> {
  const m = await srv.metrics();
  return (
    m.value('comet_requests_total', { method: 'get' }) +
    m.value('comet_requests_total', { method: 'sync' }) +
    m.value('comet_requests_total', { method: 'put' })
  );
}

async function errorsTotal(srv: CometServer, code: string): Promise<number> {
  return (await srv.metrics()).value('comet_errors_total', { code });
}

t.test('basics, independent subscriptions, typed errors', async (t) => {
  const srv = await startServer({ t, args: ['--max-message-bytes', '100000'] });
  const client = createClient({ url: urlOf(srv.port), pollTimeout: 10 });

  t.test('the package exports the client as comet-server/client', async (t) => {
    const exported = await import('comet-server/client');
    t.equal(typeof exported.createClient, 'function');
    t.equal(typeof exported.CometRequestError, 'function');
  });

  t.test('publish and sync answer times', async (t) => {
    const t0 = await client.sync('c1');
    t.ok(Number.isSafeInteger(t0), 'sync: an integer time');
    const t1 = await client.publish('c1', 'hello');
    t.ok(Number.isSafeInteger(t1) && t1 > t0, 'publish: a time after the sync');
    const t2 = await client.publish('c1', 'again');
    t.ok(t2 > t1, 'a later publish has a later time');
    t.ok((await client.sync('c1')) >= t2, 'sync after them: at least the last put');
  });

  t.test('several subscriptions: each gets its own channel, and stopping one leaves the others', (t) =>
    severalSubscriptions(t, srv, client, createClient({ url: urlOf(srv.port), pollTimeout: 10 })),
  );

  t.test('subscribe from a given time: the messages after it, at once', (t) => fromAGivenTime(t, client));

  t.test('messages round-trip byte for byte, a large one included (a form body)', (t) => roundTrips(t, srv, client));

  t.test('a 400 or 413 is a CometRequestError with the server code, not retryable', async (t) => {
    const check = async (p: Promise<unknown>, status: number, code: string, what: string) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      t.type(err, CometRequestError, `${what}: CometRequestError`);
      t.type(err, CometClientError, `${what}: a CometClientError`);
      t.notOk(err instanceof CometServerError || err instanceof CometNetworkError, `${what}: no other kind`);
      const e = err as CometRequestError;
      t.match({ status: e.status, code: e.code, retryable: e.retryable }, { status, code, retryable: false }, what);
      t.ok(typeof e.message === 'string' && e.message.length > 0, `${what}: the server's message`);
    };
    await check(client.publish('', 'x'), 400, 'COMET_ERR_BAD_CHANNEL', 'publish on an empty channel');
    await check(client.sync(''), 400, 'COMET_ERR_BAD_CHANNEL', 'sync on an empty channel');
    await check(client.publish('big', 'x'.repeat(100_001)), 413, 'COMET_ERR_MESSAGE_TOO_LARGE', 'a message over --max-message-bytes');
  });

  t.test('a 503 is a CometServerError, retryable, and the subscription retries until it gets in', async (t) => {
    const small = await startServer({ t, args: ['--max-waiting', '1'] });
    const c = createClient({ url: urlOf(small.port), pollTimeout: 10, backoff: { initialMs: 50, maxMs: 100 } });
    const first = cleanup(t, record(c, 'w'));
    t.ok(await small.waitWaiting(1, { exact: true }), 'the first subscription holds the only slot');
    const second = cleanup(t, record(c, 'w'));
    await waitFor(() => second.errors.length >= 2, { timeoutMs: 3000, what: 'the second subscription refused twice' });
    const e = second.errors[0]!.error;
    t.type(e, CometServerError, 'CometServerError');
    t.match({ status: e.status, code: e.code, retryable: e.retryable }, { status: 503, code: 'COMET_ERR_TOO_MANY_WAITING', retryable: true });
    t.ok(await stillPending(second.sub.done, 50), 'a 503 does not end the subscription');
    first.sub.stop();
    await within(first.sub.done, 1000, 'first stopped');
    t.ok(await small.waitWaiting(1, { exact: true }), 'the second subscription got the slot');
    await c.publish('w', 'w:0');
    await waitFor(() => second.messages.length >= 1, { timeoutMs: 3000, what: 'the second subscription delivers' });
    t.strictSame(second.messages, ['w:0']);
    t.ok(
      second.errors.every((x) => x.error instanceof CometServerError),
      'only 503s on the way',
    );
    second.sub.stop();
    await t.resolves(within(second.sub.done, 1000, 'second stopped'), 'done resolves after retries');
  });

  t.test('a 429 (--rate-limit) is a retryable CometRequestError: the subscription backs off and goes on', async (t) => {
    const limited = await startServer({ t, args: ['--rate-limit', '2', '--rate-burst', '2'] });
    const c = createClient({ url: urlOf(limited.port), pollTimeout: 5, backoff: { initialMs: 50, maxMs: 200 } });
    // This address's budget spent: the subscription's sync is refused.
    for (let i = 0; i < 2; i++) await limited.sync('r');
    const sub = cleanup(t, record(c, 'r'));
    await waitFor(() => sub.errors.length >= 1, { timeoutMs: 5000, what: 'a 429 for the subscription' });
    const e = sub.errors[0]!.error;
    t.type(e, CometRequestError, 'CometRequestError');
    t.match({ status: e.status, code: e.code, retryable: e.retryable }, { status: 429, code: 'COMET_ERR_RATE_LIMITED', retryable: true });
    t.ok(await stillPending(sub.sub.done, 50), 'a 429 does not end the subscription');
    await waitFor(async () => (await limited.waiting()) === 1, { timeoutMs: 5000, what: 'the subscription waiting again' });
    await waitFor(async () => (await limited.call({ method: 'put', channel: 'r', message: 'after' })).status === 200, { timeoutMs: 5000, intervalMs: 600 });
    await waitFor(() => sub.messages.includes('after'), { timeoutMs: 5000, what: 'the subscription delivers after its 429s' });
    sub.sub.stop();
  });

  t.test('connection refused is a CometNetworkError, retryable', async (t) => {
    const c = createClient({ url: urlOf(await freePort()), backoff: { initialMs: 20, maxMs: 50 } });
    for (const [what, call] of [
      ['publish', () => c.publish('c', 'x')],
      ['sync', () => c.sync('c')],
    ] as const) {
      const err = (await call().then(
        () => undefined,
        (e: unknown) => e,
      )) as CometNetworkError;
      t.type(err, CometNetworkError, `${what}: CometNetworkError`);
      t.match({ status: err.status, code: err.code, retryable: err.retryable }, { status: 0, code: 'COMET_CLIENT_NETWORK', retryable: true }, what);
      t.match(err.message, /ECONNREFUSED/, `${what}: the message says what failed`);
    }
    const r = cleanup(t, record(c, 'c'));
    await waitFor(() => r.errors.length >= 3, { timeoutMs: 3000, what: 'the subscription retrying' });
    t.ok(
      r.errors.every((x) => x.error instanceof CometNetworkError),
      'network errors, retried',
    );
    r.sub.stop();
    await t.resolves(within(r.sub.done, 1000, 'stopped'), 'done resolves');
  });
});

t.test('nothing lost or repeated while a proxy cuts every connection, again and again', (t) => throughCuts(t, 'fetch', leakWarnings));
t.test('a server unreachable for a second: the subscription backs off, then resumes without loss', (t) => backsOffWhileUnreachable(t, 'fetch'));
t.test('after a restart of an in-memory server, missed reaches the application', (t) => missedAfterRestart(t, 'fetch'));

t.test('stopping a subscription stops all traffic', async (t) => {
  const srv = await startServer({ t });
  const url = urlOf(srv.port);

  const stopsEverything = async (t: Test, channel: string, stop: (rec: Recorder) => void, opts: SubscribeOptions = {}) => {
    const client = createClient({ url, pollTimeout: 10 });
    const r = cleanup(t, record(client, channel, opts));
    t.ok(await srv.waitWaiting(1, { exact: true }), 'a get waiting');
    await client.publish(channel, 'one');
    await waitFor(() => r.messages.length === 1, { timeoutMs: 2000, what: 'delivered' });
    t.ok(await srv.waitWaiting(1, { exact: true }), 'the next get waiting');
    const before = await requestsTotal(srv);
    const at = performance.now();
    stop(r);
    await t.resolves(within(r.sub.done, 500, 'done'), 'done resolves at once');
    t.ok(performance.now() - at < 500, 'within half a second');
    t.ok(await srv.waitWaiting(0, { exact: true, timeoutMs: 1000 }), 'the get in flight was aborted: its socket closed, no get waiting');
    await sleep(1000);
    t.equal((await requestsTotal(srv)) - before, 0, 'no request reached the server after the stop');
    t.equal(await srv.waiting(), 0, 'still no get waiting');
    t.strictSame(r.errors, [], 'stopping is not an error');
  };

  t.test('stop()', (t) => stopsEverything(t, 'stop', (r) => r.sub.stop()));

  t.test('the AbortSignal given in the options', async (t) => {
    const controller = new AbortController();
    await stopsEverything(t, 'signal', () => controller.abort(), { signal: controller.signal });
  });

  t.test('stopped while backing off: no further attempt', (t) => stoppedWhileBackingOff(t, srv, 'fetch'));
  t.test('an exception from onMessages ends that subscription, not the others', (t) => throwingCallback(t, srv, 'fetch'));
  t.test('a signal already aborted: no request at all', (t) => alreadyAborted(t, srv, 'fetch'));
});

t.test('a refusal ends the subscription: onError, then done rejects, no retry', async (t) => {
  const srv = await startServer({ t });
  const client = createClient({ url: urlOf(srv.port), backoff: { initialMs: 10, maxMs: 20 } });

  const refused = async (t: Test, channel: string, opts: SubscribeOptions, firstRequest: string) => {
    const before = await errorsTotal(srv, 'COMET_ERR_BAD_CHANNEL');
    const r = record(client, channel, opts);
    const err = await refusalOf(r, 2000);
    t.type(err, CometRequestError, `done rejects with a CometRequestError (${firstRequest})`);
    t.equal(r.errors.length, 1, 'onError told once');
    t.equal(r.errors[0]?.error, err, 'with the same error');
    t.match(err, { status: 400, code: 'COMET_ERR_BAD_CHANNEL', retryable: false });
    await sleep(300);
    t.equal(r.errors.length, 1, 'no retry afterwards');
    t.equal((await errorsTotal(srv, 'COMET_ERR_BAD_CHANNEL')) - before, 1, 'the server saw one request');
    t.strictSame(r.messages, []);
  };

  t.test('a channel over the limit (refused at the sync)', (t) => refused(t, 'x'.repeat(300), {}, 'sync'));
  t.test('an empty channel from a given time (refused at the get)', (t) => refused(t, '', { time: 1 }, 'get'));

  t.test('an application that never looks at done is not crashed by the refusal (it heard of it in onError)', async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    t.teardown(() => void process.off('unhandledRejection', onUnhandled));
    const errors: CometClientError[] = [];
    client.subscribe('', () => undefined, { time: 1, onError: (e) => errors.push(e) });
    await waitFor(() => errors.length === 1, { timeoutMs: 2000, what: 'onError' });
    await sleep(100);
    t.strictSame(unhandled, [], 'no unhandled rejection');
  });
});

t.test('no listener leak over the whole file', async (t) => {
  t.strictSame(leakWarnings(), [], 'no MaxListenersExceededWarning');
});
