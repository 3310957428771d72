/**
 * The client library's streaming transports against the real server, over
 * real sockets: server-sent events (one stream per subscription) and
 * WebSocket (one connection per client for all its subscriptions, puts and
 * syncs). Each is held to what the fetch transport does (client.test.ts):
 * every message once and in order, byte for byte, through connections cut by
 * a TCP proxy, backing off while the server is unreachable, `missed` after an
 * in-memory server restarted, a refusal that ends the subscription, stop and
 * AbortSignal ending all traffic, and tokens with access control on.
 */
import { WebSocket as WsSocket } from 'ws';
import t from 'tap';
import type { Test } from 'tap';
import type { AuthMethod } from '../src/auth/grant.js';
import { mintToken } from '../src/cli/token.js';
import { type ClientOptions, CometNetworkError, CometRequestError, createClient } from '../src/client/index.js';
import {
  alreadyAborted,
  backsOffWhileUnreachable,
  cleanup,
  exactlyOnceInOrder,
  fromAGivenTime,
  missedAfterRestart,
  range,
  type Recorder,
  record,
  recordFetch,
  refusalOf,
  roundTrips,
  severalSubscriptions,
  stoppedWhileBackingOff,
  throughCuts,
  throwingCallback,
  type Transport,
  urlOf,
  watchLeaks,
} from './helpers/client.js';
import { sleep, startServer, stillPending, waitFor, within } from './helpers/server.js';
import { freePort } from './helpers/redis.js';
import { startProxy } from './helpers/tcp-proxy.js';

const leakWarnings = watchLeaks();
const STREAMS = ['events', 'websocket'] as const satisfies readonly Transport[];

/** Every frame a WebSocket of the client sent, through the WebSocket option (the ws package underneath, as on Node.js 20). */
function recordingSocket(): { frames: Array<Record<string, unknown>>; opened: () => number; WebSocket: NonNullable<ClientOptions['WebSocket']> } {
  const frames: Array<Record<string, unknown>> = [];
  let opened = 0;
  class Recording extends WsSocket {
    constructor(url: string) {
      super(url);
      opened++;
    }
    override send(data: string): void {
      frames.push(JSON.parse(data));
      super.send(data);
    }
  }
  return { frames, opened: () => opened, WebSocket: Recording };
}

for (const transport of STREAMS) {
  t.test(`${transport}: delivery`, async (t) => {
    const srv = await startServer({ t, args: ['--max-message-bytes', '100000'] });
    const client = createClient({ url: urlOf(srv.port), transport });

    t.test('from a given time: the messages after it, at once, ending at the last', (t) => fromAGivenTime(t, client));

    t.test('from now: what is put once the subscription started, nothing before', async (t) => {
      await srv.put('from-now', 'before');
      const r = cleanup(t, record(client, 'from-now'));
      // When "now" is for the server to say: put until one arrives, then the rest must all follow.
      let probes = 0;
      await waitFor(
        async () => {
          await srv.put('from-now', `probe:${probes++}`);
          return r.messages.length > 0;
        },
        { timeoutMs: 5000, intervalMs: 50, what: 'a probe delivered' },
      );
      const expected = range('n', 50);
      for (const m of expected) await srv.put('from-now', m);
      await waitFor(() => r.messages.length >= expected.length + 1, { timeoutMs: 3000, what: 'the 50 after the probes' }).catch(() => undefined);
      await sleep(100);
      t.notOk(r.messages.includes('before'), 'not the message put before it started');
      const firstProbe = Number(r.messages[0]!.split(':')[1]);
      t.strictSame(r.messages, [...range('probe', probes - firstProbe, firstProbe), ...expected], 'from its first probe on: every message once, in order');
      t.strictSame(r.errors, []);
    });

    t.test('messages round-trip byte for byte, a large one included (a form body)', (t) => roundTrips(t, srv, client));

    t.test('several subscriptions: each gets its own channel, and stopping one leaves the others', (t) =>
      severalSubscriptions(t, srv, client, createClient({ url: urlOf(srv.port), transport })),
    );

    t.test('a refusal (4xx) ends the subscription: onError once, done rejects, no retry', async (t) => {
      const proxy = await startProxy(t, srv.port);
      const c = createClient({ url: urlOf(proxy.port), transport, backoff: { initialMs: 10, maxMs: 20 } });
      const ok = cleanup(t, record(c, 'beside-the-refused', { time: await srv.sync('beside-the-refused') }));
      const r = record(c, 'x'.repeat(300), { time: 1 });
      const err = await refusalOf(r, 3000);
      t.type(err, CometRequestError, 'done rejects with a CometRequestError');
      t.match(err, { status: 400, code: 'COMET_ERR_BAD_CHANNEL', retryable: false });
      t.equal(r.errors.length, 1, 'onError told once');
      t.equal(r.errors[0]?.error, err, 'with the same error');
      const accepted = proxy.accepted;
      await sleep(300);
      t.equal(r.errors.length, 1, 'no retry afterwards');
      t.equal(proxy.accepted, accepted, 'no new connection for it');
      await srv.put('beside-the-refused', 'still here');
      await waitFor(() => ok.messages.length === 1, { timeoutMs: 3000, what: 'the other subscription of the client goes on' });
      t.strictSame(ok.errors, [], 'untouched by the refusal');
    });
  });

  t.test(`${transport}: nothing lost or repeated while a proxy cuts every connection, again and again`, (t) => throughCuts(t, transport, leakWarnings));
  t.test(`${transport}: a server unreachable for a second: the subscription backs off, then resumes without loss`, (t) =>
    backsOffWhileUnreachable(t, transport),
  );
  t.test(`${transport}: after a restart of an in-memory server, missed reaches the application`, (t) => missedAfterRestart(t, transport));

  t.test(`${transport}: stopping a subscription ends its traffic`, async (t) => {
    const srv = await startServer({ t });

    const stopsEverything = async (t: Test, channel: string, stop: (r: ReturnType<typeof record>) => void, signal?: AbortSignal) => {
      const proxy = await startProxy(t, srv.port);
      const client = createClient({ url: urlOf(proxy.port), transport });
      const r = cleanup(t, record(client, channel, { time: await srv.sync(channel), signal }));
      await srv.put(channel, 'one');
      await waitFor(() => r.messages.length === 1, { timeoutMs: 3000, what: 'delivered' });
      const at = performance.now();
      stop(r);
      await t.resolves(within(r.sub.done, 500, 'done'), 'done resolves at once');
      t.ok(performance.now() - at < 500, 'within half a second');
      await waitFor(async () => (await srv.metrics()).value('comet_streams') === 0, { timeoutMs: 1000, what: 'the server closed the stream' });
      // A WebSocket stays open a moment for the client's next request, then closes.
      await waitFor(async () => (await srv.metrics()).value('comet_websockets') === 0, { timeoutMs: 3000, what: 'no WebSocket left' });
      const requests = (await srv.metrics()).value('comet_requests_total');
      await srv.put(channel, 'two');
      await sleep(500);
      t.strictSame(r.messages, ['one'], 'nothing delivered after the stop');
      t.equal((await srv.metrics()).value('comet_requests_total') - requests, 1, 'no request but that put reached the server after the stop');
      t.strictSame(r.errors, [], 'stopping is not an error');
    };

    t.test('stop()', (t) => stopsEverything(t, 'stop', (r) => r.sub.stop()));

    t.test('the AbortSignal given in the options', async (t) => {
      const controller = new AbortController();
      await stopsEverything(t, 'signal', () => controller.abort(), controller.signal);
    });

    t.test('stopped while backing off: no further attempt', (t) => stoppedWhileBackingOff(t, srv, transport));
    t.test('an exception from onMessages ends that subscription, not the others', (t) => throwingCallback(t, srv, transport));
    t.test('a signal already aborted: no connection at all', (t) => alreadyAborted(t, srv, transport));
  });
}

for (const transport of STREAMS) {
  t.test(`${transport}: the server shutting down ends the stream (a WebSocket with 1001); the subscription goes on with the next server`, async (t) => {
    const port = await freePort();
    const first = await startServer({ t, args: ['--port', String(port)] });
    const client = createClient({ url: urlOf(port), transport, backoff: { initialMs: 50, maxMs: 200 } });
    const r = cleanup(t, record(client, 'shutdown', { time: await first.sync('shutdown') }));
    await first.put('shutdown', 'before');
    await waitFor(() => r.messages.length === 1, { timeoutMs: 3000, what: 'the first message' });
    t.equal((await first.stop('SIGTERM')).code, 0, 'the first server shut down');
    await waitFor(() => r.errors.length > 0, { timeoutMs: 3000, what: 'the subscription told of the end' });
    t.ok(r.errors[0]!.error instanceof CometNetworkError && r.errors[0]!.error.retryable, 'a network error, retried', { error: r.errors[0]!.error });
    if (transport === 'websocket') t.match(r.errors[0]!.error.message, /code 1001/, 'the close code said why');
    const second = await startServer({ t, args: ['--port', String(port)] });
    await waitFor(async () => (await second.metrics()).value('comet_streams') === 1, { timeoutMs: 5000, what: 'the subscription back on the new server' });
    await second.put('shutdown', 'after');
    await waitFor(() => r.messages.length === 2, { timeoutMs: 3000, what: 'the message put on the new server' });
    t.strictSame(r.messages, ['before', 'after'], 'each message once, in order');
    t.ok(await stillPending(r.sub.done, 50), 'the subscription goes on');
  });
}

t.test('websocket: a subscriber too slow to keep up is closed with 1013, and resumes after its last message', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connection-buffer', '65536'] });
  const sockets: WsSocket[] = [];
  class Stallable extends WsSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  /** The TCP socket under a ws WebSocket: paused, the client reads nothing and the server's sends back up. */
  const tcp = (ws: WsSocket) => (ws as unknown as { _socket: import('node:net').Socket })._socket;
  const client = createClient({ url: urlOf(srv.port), transport: 'websocket', WebSocket: Stallable, backoff: { initialMs: 20, maxMs: 100 } });
  const r = cleanup(t, record(client, 'too-slow', { time: await srv.sync('too-slow') }));
  await waitFor(async () => (await srv.metrics()).value('comet_streams') === 1, { timeoutMs: 3000, what: 'subscribed' });
  tcp(sockets[0]!).pause();
  const body = 'x'.repeat(60_000);
  let puts = 0;
  for (; puts < 400 && (await srv.metrics()).value('comet_slow_readers_closed_total') === 0; puts++) await srv.put('too-slow', `${puts}:${body}`);
  t.ok(puts < 400, `closed as too slow after ${puts} puts of 60 KB`);
  tcp(sockets[0]!).resume();
  // The client reads what was sent before the close, then the close, and subscribes again after its last message.
  await waitFor(async () => (await srv.metrics()).value('comet_streams') === 1, { timeoutMs: 10_000, what: 'subscribed again' });
  const total = puts + 3;
  for (; puts < total; puts++) await srv.put('too-slow', `${puts}:${body}`);
  await waitFor(() => r.messages.length >= total, { timeoutMs: 15_000, what: `all ${total} messages` });
  t.strictSame(
    r.messages.map((m) => Number(m.slice(0, m.indexOf(':')))),
    Array.from({ length: total }, (_, i) => i),
    'every message once, in order, across the close',
  );
  t.equal(r.errors.length, 1, 'one failure told');
  t.match(r.errors[0]!.error.message, /code 1013/, 'the close code said why');
  t.ok(r.errors[0]!.error instanceof CometNetworkError && r.errors[0]!.error.retryable, 'a network error, retried');
  t.equal(sockets.length, 2, 'one new connection');
});

t.test('events: a stream silent for twice the heartbeat is dead, and reopened where it was', async (t) => {
  t.test('the server heartbeats every 2 s: a client expecting that keeps its stream', async (t) => {
    const srv = await startServer({ t, args: ['--stream-heartbeat', '2'] });
    const proxy = await startProxy(t, srv.port);
    const client = createClient({ url: urlOf(proxy.port), transport: 'events', streamHeartbeat: 2 });
    const r = cleanup(t, record(client, 'beating', { time: await srv.sync('beating') }));
    await sleep(6000);
    t.strictSame(r.errors, [], 'no failure over 6 s of silence but heartbeats');
    t.equal(proxy.accepted, 1, 'one stream all along');
  });

  t.test('a client expecting a heartbeat every 0.2 s takes the stream for dead, and loses nothing', async (t) => {
    const srv = await startServer({ t });
    const client = createClient({ url: urlOf(srv.port), transport: 'events', streamHeartbeat: 0.2, backoff: { initialMs: 10, maxMs: 50 } });
    const r = cleanup(t, record(client, 'silent', { time: await srv.sync('silent') }));
    // Puts 0.6 s apart: the stream is silent longer than 0.4 s between them.
    const expected = range('s', 6);
    for (const m of expected) {
      await srv.put('silent', m);
      await sleep(600);
    }
    await waitFor(() => r.messages.length >= expected.length, { timeoutMs: 3000, what: 'every message' }).catch(() => undefined);
    t.ok(r.errors.length >= 2, `reopened after silences (${r.errors.length})`);
    t.ok(
      r.errors.every((e) => e.error instanceof CometNetworkError && e.error.code === 'COMET_CLIENT_TIMEOUT'),
      'each a timeout',
      { errors: r.errors.map((e) => e.error.message) },
    );
    exactlyOnceInOrder(t, r, expected, 'across the reopenings');
  });
});

t.test('websocket: one connection carries all of a client’s subscriptions, puts and syncs', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const proxy = await startProxy(t, srv.port);
  const socket = recordingSocket();
  const client = createClient({ url: urlOf(proxy.port), transport: 'websocket', WebSocket: socket.WebSocket, backoff: { initialMs: 20, maxMs: 200 } });
  const channels = range('shared', 20);
  const recs: Recorder[] = [];
  for (const channel of channels) recs.push(cleanup(t, record(client, channel, { time: await srv.sync(channel) })));
  const expected = range('m', 10);
  for (const m of expected.slice(0, 5)) {
    for (const channel of channels) await client.publish(channel, `${channel}/${m}`);
  }
  t.ok((await client.sync(channels[0]!)) > 0, 'sync answers over the socket');
  await waitFor(() => recs.every((r) => r.messages.length >= 5), { timeoutMs: 5000, what: 'five on every channel' });
  t.equal(proxy.accepted, 1, 'one connection for 20 subscriptions, 100 puts and a sync');
  t.equal(proxy.connections, 1);
  t.equal(socket.opened(), 1, 'one WebSocket made');
  t.ok(
    socket.frames.every((f) => typeof f.id === 'number'),
    'every frame a request with an id',
  );
  t.strictSame([...new Set(socket.frames.map((f) => f.method))].sort(), ['put', 'subscribe', 'sync'], 'subscribes, puts and the sync all went over it');

  proxy.cut();
  proxy.heal();
  for (const m of expected.slice(5)) {
    for (const channel of channels) await srv.put(channel, `${channel}/${m}`);
  }
  await waitFor(() => recs.every((r) => r.messages.length >= 10), { timeoutMs: 5000, what: 'the rest on every channel' }).catch(() => undefined);
  await sleep(100);
  recs.forEach((r, i) => {
    exactlyOnceInOrder(
      t,
      r,
      expected.map((m) => `${channels[i]}/${m}`),
      channels[i]!,
    );
  });
  t.equal(proxy.connections, 1, 'after the cut, again one connection for all');
  const resubscribed = socket.frames.filter((f) => f.method === 'subscribe').slice(channels.length);
  t.strictSame(resubscribed.map((f) => f.channel).sort(), [...channels].sort(), 'each channel subscribed again, once');
  t.ok(
    resubscribed.every((f) => typeof f.time === 'number'),
    'from its last time',
  );

  for (const r of recs) r.sub.stop();
  await waitFor(() => proxy.connections === 0, { timeoutMs: 3000, what: 'the connection closed once nothing uses it' });
  t.strictSame(
    socket.frames
      .filter((f) => f.method === 'unsubscribe')
      .map((f) => f.channel)
      .sort(),
    [...channels].sort(),
    'each channel unsubscribed before',
  );
});

t.test('websocket: a handshake that does not complete is given up after 10 s, not waited on forever', async (t) => {
  const srv = await startServer({ t });
  // A network that holds every new connection 12 s before it reaches the server.
  const proxy = await startProxy(t, srv.port, { delayMs: 12_000 });
  const client = createClient({ url: urlOf(proxy.port), transport: 'websocket' });
  const at = performance.now();
  const err = await within(
    client.sync('slow').then(
      () => undefined,
      (e: unknown) => e,
    ),
    14_000,
    'the sync settles',
  );
  const took = performance.now() - at;
  t.ok(err instanceof CometNetworkError, 'a network error', { err });
  t.match(err, { code: 'COMET_CLIENT_TIMEOUT', message: /did not connect within 10000 ms/ });
  t.ok(took >= 9_900 && took < 12_000, `given up after ${Math.round(took)} ms, before the request's own 15 s deadline`);
});

const SECRET = 'client-streams-secret';
const token = (channels: string[], { methods, ttl = 3600, secret = SECRET }: { methods?: AuthMethod[]; ttl?: number; secret?: string } = {}) =>
  mintToken({ secret, channels, methods, ttl });

t.test('with access control on (--auth all): tokens over both streams', async (t) => {
  const srv = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET] });
  const url = urlOf(srv.port);
  const reader = token(['*']);
  const timeOf = async (channel: string) => (await srv.get(channel, { timeout: 0, token: reader })).time;

  t.test('events: the token goes as Authorization: Bearer, never in the URL', async (t) => {
    const sent = recordFetch(t);
    const tok = token(['tok-events']);
    const c = createClient({ url, transport: 'events', token: tok });
    const r = cleanup(t, record(c, 'tok-events'));
    await waitFor(() => sent.some((s) => new URL(s.url).searchParams.get('method') === 'events'), { timeoutMs: 3000, what: 'the stream requested' });
    await c.publish('tok-events', 'one');
    await waitFor(() => r.messages.length >= 1, { timeoutMs: 3000, what: 'delivered' }).catch(() => undefined);
    t.strictSame(r.messages, ['one']);
    t.strictSame(r.errors, []);
    t.ok(
      sent.every((s) => s.authorization === `Bearer ${tok}` && !new URL(s.url).searchParams.has('token')),
      'every request (sync, events, put) carried it as a bearer token',
      { sent },
    );
  });

  t.test('websocket: every request frame carries the token', async (t) => {
    const socket = recordingSocket();
    const tok = token(['tok-ws']);
    const c = createClient({ url, transport: 'websocket', token: tok, WebSocket: socket.WebSocket });
    const r = cleanup(t, record(c, 'tok-ws', { time: await timeOf('tok-ws') }));
    await c.publish('tok-ws', 'one');
    await c.sync('tok-ws');
    await waitFor(() => r.messages.length >= 1, { timeoutMs: 3000, what: 'delivered' }).catch(() => undefined);
    t.strictSame(r.messages, ['one']);
    t.strictSame(r.errors, []);
    t.ok(socket.frames.length >= 3, `frames sent: ${socket.frames.length}`);
    t.ok(
      socket.frames.every((f) => f.token === tok),
      'each with "token"',
    );
  });

  for (const transport of STREAMS) {
    t.test(`${transport}: no token, a bad one, or one not covering the channel: refused, the subscription ends`, async (t) => {
      for (const [what, tok, status, code] of [
        ['no token', undefined, 401, 'COMET_ERR_UNAUTHORIZED'],
        ['an expired token', token(['*'], { ttl: -10 }), 401, 'COMET_ERR_UNAUTHORIZED'],
        ['a token for other channels', token(['other:*']), 403, 'COMET_ERR_FORBIDDEN'],
      ] as const) {
        const c = createClient({ url, transport, token: tok });
        const r = record(c, 'tok-refused', { time: 1 });
        const err = await refusalOf(r, 3000);
        t.ok(err instanceof CometRequestError, `${what}: a CometRequestError`, { err });
        t.match(err, { status, code, retryable: false }, `${what}: ${status} ${code}`);
        t.equal(r.errors.length, 1, `${what}: told once`);
      }
    });

    t.test(`${transport}: a token function refreshed after a 401, the subscription going on`, async (t) => {
      let calls = 0;
      const c = createClient({ url, transport, token: async () => (calls++ === 0 ? token(['*'], { ttl: -10 }) : token(['tok-fn:*'])) });
      const channel = `tok-fn:${transport}`;
      const r = cleanup(t, record(c, channel, { time: await timeOf(channel) }));
      const expected = range('f', 5);
      for (const m of expected) await srv.put(channel, m, { token: reader });
      await waitFor(() => r.messages.length >= expected.length, { timeoutMs: 3000, what: 'delivered' }).catch(() => undefined);
      exactlyOnceInOrder(t, r, expected, 'after the refresh');
      t.equal(calls, 2, 'the function was called again after the 401');
      t.strictSame(r.errors, [], 'the refresh is not an error the application sees');
      t.ok(await stillPending(r.sub.done, 50), 'the subscription goes on');
    });
  }
});

t.test('an unknown transport is a TypeError when the client is created', async (t) => {
  t.throws(() => createClient({ url: 'http://127.0.0.1:1/', transport: 'sse' as Transport }), TypeError);
});

t.test('no listener leak over the whole file', async (t) => {
  t.strictSame(leakWarnings(), [], 'no MaxListenersExceededWarning');
});
