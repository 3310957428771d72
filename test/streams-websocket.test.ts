/**
 * The protocol over a WebSocket (protocol.md, "Streaming transports"),
 * black-box over real sockets: every rule of the section, and the defences
 * around it (tokens, per-client limits, slow consumers, Origin).
 */
import t, { type Test } from 'tap';
import { uniq } from './helpers/protocol.js';
import { startServer, waitFor } from './helpers/server.js';
import { SocketClient } from './helpers/streams.js';
import { hs256 } from './helpers/tokens.js';

t.test('one thread', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-subscriptions', '5'] });
  const open = async (t: Test): Promise<SocketClient> => {
    const ws = await SocketClient.open(srv);
    t.teardown(() => ws.close());
    return ws;
  };

  t.test('subscribe answers the time it starts after; deliveries carry the channel, the last time and the messages', async (t) => {
    const ws = await open(t);
    const ch = uniq('ws');
    const from = await srv.sync(ch);
    t.same(await ws.request({ id: 1, method: 'subscribe', channel: ch, time: from }), { id: 1, time: from });
    const t1 = await srv.put(ch, 'one');
    await ws.waitMessages(ch, 1);
    t.same(ws.deliveries[0], { channel: ch, time: t1, messages: ['one'] });
  });

  t.test('without time it starts at the channel time now; with one it catches up first', async (t) => {
    const ws = await open(t);
    const ch = uniq('ws-now');
    const t0 = await srv.put(ch, 'before');
    const answer = await ws.request({ method: 'subscribe', channel: ch });
    t.equal(answer.time, t0, 'the channel time now');
    await srv.put(ch, 'after');
    t.same(await ws.waitMessages(ch, 1), ['after']);
    const other = uniq('ws-catch-up');
    const times = [await srv.put(other, 'a'), await srv.put(other, 'b'), await srv.put(other, 'c')];
    t.same(await ws.request({ method: 'subscribe', channel: other, time: times[0] }), { id: (answer.id as number) + 1, time: times[0] });
    t.same(await ws.waitMessages(other, 2), ['b', 'c']);
    t.equal(ws.deliveries.at(-1)!.time, times[2]);
  });

  t.test('many channels on one connection, each in order; unsubscribe stops one', async (t) => {
    const ws = await open(t);
    const names = [uniq('ws-many'), uniq('ws-many'), uniq('ws-many')];
    for (const ch of names) await ws.request({ method: 'subscribe', channel: ch, time: await srv.sync(ch) });
    for (let i = 0; i < 5; i++) for (const ch of names) await srv.put(ch, `${ch}#${i}`);
    for (const ch of names)
      t.same(
        await ws.waitMessages(ch, 5),
        [0, 1, 2, 3, 4].map((i) => `${ch}#${i}`),
      );
    t.same(await ws.request({ id: 'u', method: 'unsubscribe', channel: names[0] }), { id: 'u' });
    await srv.put(names[0]!, 'unheard');
    await srv.put(names[1]!, 'heard');
    await ws.waitMessages(names[1]!, 6);
    t.notOk(ws.messages(names[0]!).includes('unheard'));
  });

  t.test('put and sync frames answer as over HTTP; messages are exact', async (t) => {
    const ws = await open(t);
    const ch = uniq('ws-put');
    const from = await srv.sync(ch);
    await ws.request({ method: 'subscribe', channel: ch, time: from });
    const messages = ['a\nb', 'line\u2028sep', '"q" \\', '😀', ''];
    const times: number[] = [];
    for (const message of messages) times.push((await ws.request({ method: 'put', channel: ch, message })).time!);
    t.ok(
      times.every((time, i) => i === 0 || time > times[i - 1]!),
      'increasing times',
    );
    t.same((await ws.request({ method: 'sync', channel: ch })).time, times.at(-1));
    t.same(await ws.waitMessages(ch, messages.length), messages);
    t.same((await srv.get(ch, { time: from, timeout: 0 })).messages, messages, 'stored as an HTTP put would be');
  });

  t.test('missed, under the rule of get', async (t) => {
    const ws = await open(t);
    const ch = uniq('ws-missed');
    const t1 = await srv.put(ch, 'held');
    t.same(await ws.request({ id: 1, method: 'subscribe', channel: ch, time: 1 }), { id: 1, time: 1 });
    await ws.waitMessages(ch, 1);
    t.same(ws.deliveries[0], { channel: ch, time: t1, messages: ['held'], missed: true });
  });

  t.test('refusals carry the id and the HTTP code; the connection stays', async (t) => {
    const ws = await open(t);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ id: 1, method: 'fetch', channel: 'c' }, 'COMET_ERR_BAD_METHOD'],
      [{ id: 2, channel: 'c' }, 'COMET_ERR_BAD_METHOD'],
      [{ id: 3, method: 'subscribe' }, 'COMET_ERR_BAD_CHANNEL'],
      [{ id: 4, method: 'subscribe', channel: '' }, 'COMET_ERR_BAD_CHANNEL'],
      [{ id: 5, method: 'subscribe', channel: 'x'.repeat(5000) }, 'COMET_ERR_BAD_CHANNEL'],
      [{ id: 6, method: 'subscribe', channel: 'c', time: -1 }, 'COMET_ERR_BAD_TIME'],
      [{ id: 7, method: 'subscribe', channel: 'c', time: 1.5 }, 'COMET_ERR_BAD_TIME'],
      [{ id: 8, method: 'subscribe', channel: 'c', time: '12' }, 'COMET_ERR_BAD_TIME'],
      [{ id: 9, method: 'subscribe', channel: 'c', time: 2 ** 53 }, 'COMET_ERR_BAD_TIME'],
      [{ id: 10, method: 'put', channel: 'c' }, 'COMET_ERR_MISSING_MESSAGE'],
      [{ id: 11, method: 'put', channel: 'c', message: 7 }, 'COMET_ERR_MISSING_MESSAGE'],
      [{ id: 12, method: 'put', channel: 'c', message: 'x'.repeat(70_000) }, 'COMET_ERR_MESSAGE_TOO_LARGE'],
      [{ id: 'str', method: 'put', channel: 'c', message: 'lone \ud800' }, 'COMET_ERR_BAD_ENCODING'],
    ];
    for (const [frame, code] of cases) {
      const answer = await ws.request(frame);
      t.equal(answer.code, code, JSON.stringify(frame).slice(0, 80));
      t.equal(answer.id, frame.id, 'the id is repeated');
      t.type(answer.error, 'string');
    }
    for (const raw of ['not json', '[1,2]', '{"method":"sync","channel":"c"}', '{"id":{},"method":"sync","channel":"c"}', 'null']) {
      ws.sendRaw(raw);
      await waitFor(() => ws.frames.some((f) => f.id === null && f.code === 'COMET_ERR_BAD_FRAME' && f === ws.frames.at(-1)), { what: `a refusal of ${raw}` });
      ws.frames.length = 0;
    }
    ws.sendRaw(Buffer.from('{"id":1}'), true);
    await waitFor(() => ws.frames.some((f) => f.id === null && f.code === 'COMET_ERR_BAD_FRAME'), { what: 'a refusal of a binary frame' });
    t.equal(ws.closed, undefined, 'the connection stays open');
    t.same((await ws.request({ method: 'put', channel: 'c', message: 'still here' })).code, undefined);
    t.equal((await srv.get('c', { time: 0, timeout: 0 })).messages.length, 1, 'no refused put stored anything');
  });

  t.test('--max-subscriptions per connection; resubscribing a channel replaces its subscription', async (t) => {
    const ws = await open(t);
    for (let i = 0; i < 5; i++) t.notOk((await ws.request({ method: 'subscribe', channel: `cap-${i}` })).code);
    t.notOk((await ws.request({ method: 'subscribe', channel: 'cap-0' })).code, 'the same channel again is no more');
    const refused = await ws.request({ method: 'subscribe', channel: 'cap-5' });
    t.equal(refused.code, 'COMET_ERR_TOO_MANY_WAITING');
    t.equal((await srv.metrics()).value('comet_streams'), 5);
  });

  t.test('a connection that goes away frees every slot at once', async (t) => {
    // The earlier tests closed their connections as they ended: their slots are freed as the server reads the closes.
    await waitFor(async () => (await srv.waiting()) === 0, { what: 'the earlier connections gone' });
    const before = 0;
    const ws = await SocketClient.open(srv);
    for (let i = 0; i < 5; i++) await ws.request({ method: 'subscribe', channel: uniq('ws-gone') });
    t.equal(await srv.waiting(), before + 5);
    ws.close();
    await waitFor(async () => (await srv.waiting()) === before, { what: 'slots freed' });
    t.equal((await srv.metrics()).value('comet_websockets'), 0);
  });
});

t.test('a consumer too slow to keep up is closed with 1013, never buffered without bound', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connection-buffer', '65536'] });
  const ch = uniq('ws-slow');
  const ws = await SocketClient.open(srv);
  t.teardown(() => ws.close());
  await ws.request({ method: 'subscribe', channel: ch, time: await srv.sync(ch) });
  (ws.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
  const message = 'x'.repeat(60_000);
  let puts = 0;
  for (; puts < 400 && (await srv.metrics()).value('comet_websockets') === 1; puts++) await srv.post({ method: 'put', channel: ch, message });
  const metrics = await srv.metrics();
  t.equal(metrics.value('comet_websockets'), 0, `closed after ${puts} puts of 60 KB`);
  t.equal(metrics.value('comet_streams'), 0);
  t.ok(metrics.value('comet_slow_readers_closed_total') >= 1);
  (ws.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
  t.equal((await ws.waitClosed()).code, 1013);
});

t.test('access control: a token per frame, or one at the upgrade', async (t) => {
  const secret = 'ws-secret-0123456789abcdef0123456789';
  const srv = await startServer({ t, threads: 1, args: ['--auth', 'put', '--auth-secret', secret] });
  const exp = Math.floor(Date.now() / 1000) + 600;
  const writer = hs256(secret, { exp, channels: ['room:*'], methods: ['put'] });
  const ws = await SocketClient.open(srv);
  t.teardown(() => ws.close());
  t.notOk((await ws.request({ method: 'subscribe', channel: 'room:1' })).code, '--auth put leaves subscribe open');
  const none = await ws.request({ method: 'put', channel: 'room:1', message: 'm' });
  t.equal(none.code, 'COMET_ERR_UNAUTHORIZED');
  const elsewhere = await ws.request({ method: 'put', channel: 'hall', message: 'm', token: writer });
  t.equal(elsewhere.code, 'COMET_ERR_FORBIDDEN');
  t.type((await ws.request({ method: 'put', channel: 'room:1', message: 'm', token: writer })).time, 'number');
  t.same(await ws.waitMessages('room:1', 1), ['m'], 'only the put with a token was stored');
  const atUpgrade = await SocketClient.open(srv, { query: `token=${writer}` });
  t.teardown(() => atUpgrade.close());
  t.type((await atUpgrade.request({ method: 'put', channel: 'room:2', message: 'm' })).time, 'number');
  const bad = await atUpgrade.request({ method: 'put', channel: 'room:2', message: 'm', token: 'x.y.z' });
  t.equal(bad.code, 'COMET_ERR_UNAUTHORIZED', "a frame's own token wins");

  const all = await startServer({ t, threads: 1, args: ['--auth', 'all', '--auth-secret', secret] });
  const reader = hs256(secret, { exp, channels: ['room:1'], methods: ['get'] });
  const ws2 = await SocketClient.open(all);
  t.teardown(() => ws2.close());
  t.equal((await ws2.request({ method: 'subscribe', channel: 'room:1' })).code, 'COMET_ERR_UNAUTHORIZED');
  t.equal((await ws2.request({ method: 'subscribe', channel: 'room:2', token: reader })).code, 'COMET_ERR_FORBIDDEN');
  t.equal((await ws2.request({ method: 'sync', channel: 'room:1', token: reader })).code, 'COMET_ERR_FORBIDDEN');
  t.notOk((await ws2.request({ method: 'subscribe', channel: 'room:1', token: reader })).code);
  t.equal((await all.metrics()).value('comet_streams'), 1, 'refused subscribes hold nothing');
});

t.test('per-client limits: --rate-limit per frame, and at the upgrade', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--rate-limit', '1', '--rate-burst', '4'] });
  const ws = await SocketClient.open(srv);
  t.teardown(() => ws.close());
  const answers = [];
  for (let i = 0; i < 8; i++) answers.push(await ws.request({ method: 'sync', channel: 'c' }));
  const limited = answers.filter((a) => a.code === 'COMET_ERR_RATE_LIMITED').length;
  t.ok(limited >= 3, `frames past the burst are refused (${limited} of 8)`);
  await t.rejects(SocketClient.open(srv), { status: 429 } as unknown as Error, 'an upgrade past the limit is refused');
});

t.test('Origin: a list in --cors-origin admits only its pages', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--cors-origin', 'https://app.example'] });
  await t.rejects(SocketClient.open(srv, { headers: { Origin: 'https://evil.example' } }), { status: 403 } as unknown as Error);
  const ok = await SocketClient.open(srv, { headers: { Origin: 'https://app.example' } });
  ok.close();
  const tool = await SocketClient.open(srv);
  tool.close();
});

t.test('--websocket off refuses upgrades', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--websocket', 'off'] });
  await t.rejects(SocketClient.open(srv), { status: 400 } as unknown as Error, 'answered as the GET it also is: no method');
  t.equal((await srv.call({ method: 'sync', channel: 'c' })).status, 200, 'long-polling is unchanged');
});

t.test('three threads: exactly once, in order, under concurrent publishers over HTTP and WebSocket', async (t) => {
  const srv = await startServer({ t, threads: 3 });
  const channelsUsed = [uniq('ws-order'), uniq('ws-order')];
  const subscriber = await SocketClient.open(srv);
  t.teardown(() => subscriber.close());
  for (const ch of channelsUsed) await subscriber.request({ method: 'subscribe', channel: ch, time: await srv.sync(ch) });
  const publishers = await Promise.all([1, 2].map(() => SocketClient.open(srv)));
  t.teardown(() => publishers.forEach((p) => p.close()));
  const EACH = 50;
  const times = await Promise.all(
    channelsUsed.flatMap((ch) => [
      ...publishers.map(async (p, n) => {
        const own: number[] = [];
        for (let i = 0; i < EACH; i++) own.push((await p.request({ method: 'put', channel: ch, message: `ws${n}-${i}` })).time!);
        return [ch, own] as const;
      }),
      (async () => {
        const own: number[] = [];
        for (let i = 0; i < EACH; i++) own.push(await srv.put(ch, `http-${i}`));
        return [ch, own] as const;
      })(),
    ]),
  );
  for (const ch of channelsUsed) {
    const expected = times
      .filter(([c]) => c === ch)
      .flatMap(([, own]) => own)
      .sort((a, b) => a - b);
    await subscriber.waitMessages(ch, expected.length, 10_000);
    const deliveries = subscriber.deliveries.filter((d) => d.channel === ch);
    t.equal(subscriber.messages(ch).length, expected.length, `${ch}: every message once`);
    t.equal(deliveries.at(-1)!.time, expected.at(-1), `${ch}: the last delivery's time is the last put's`);
    for (const source of ['ws0-', 'ws1-', 'http-']) {
      const own = subscriber.messages(ch).filter((m) => m.startsWith(source));
      t.same(
        own,
        Array.from({ length: EACH }, (_, i) => `${source}${i}`),
        `${ch}: ${source} in order`,
      );
    }
  }
});

t.test('graceful shutdown closes every connection with 1001', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const sockets = await Promise.all([1, 2, 3].map(() => SocketClient.open(srv)));
  for (const ws of sockets) await ws.request({ method: 'subscribe', channel: uniq('ws-stop') });
  const stopping = srv.stop('SIGTERM');
  for (const ws of sockets) t.equal((await ws.waitClosed()).code, 1001);
  t.equal((await stopping).code, 0);
});
