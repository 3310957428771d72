/**
 * Server-sent events (protocol.md, "Streaming transports"), black-box over
 * real sockets: every rule of the section, and the defences around it.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { checkError, uniq } from './helpers/protocol.js';
import { startServer, waitFor } from './helpers/server.js';
import { EventStreamClient } from './helpers/streams.js';
import { hs256 } from './helpers/tokens.js';

t.test('one thread', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--stream-heartbeat', '2'] });

  t.test('headers, the opening comment, and an event per message with its time as id', async (t) => {
    const ch = uniq('sse');
    const from = await srv.sync(ch);
    const es = await EventStreamClient.open(srv, { channel: ch, time: from });
    t.teardown(() => es.close());
    t.equal(es.status, 200);
    t.equal(es.res.headers['content-type'], 'text/event-stream');
    t.equal(es.res.headers['cache-control'], 'no-store');
    t.equal(es.res.headers['access-control-allow-origin'], '*');
    await waitFor(() => es.comments >= 1, { what: 'the opening comment' });
    const t1 = await srv.put(ch, 'one');
    const t2 = await srv.put(ch, 'two');
    const events = await es.waitEvents(2);
    t.same(events, [
      { id: String(t1), event: undefined, data: '"one"' },
      { id: String(t2), event: undefined, data: '"two"' },
    ]);
  });

  t.test('data is the message as one JSON string: newlines, U+2028, quotes, backslashes, emoji, empty', async (t) => {
    const ch = uniq('sse-json');
    const from = await srv.sync(ch);
    const es = await EventStreamClient.open(srv, { channel: ch, time: from });
    t.teardown(() => es.close());
    const messages = ['a\nb\r\nc', 'line\u2028sep\u2029para', '"quoted" \\ back', '😀 ü €', '', 'data: fake\n\nid: 1'];
    for (const m of messages) await srv.put(ch, m);
    await es.waitEvents(messages.length);
    t.same(es.messages, messages);
    t.notMatch(es.text, /\u2028|\u2029/, 'U+2028 and U+2029 travel escaped');
    for (const e of es.events) t.notOk(e.data.includes('\n'), 'each data is one line');
  });

  t.test('it starts after time, and Last-Event-ID wins over time', async (t) => {
    const ch = uniq('sse-resume');
    const times: number[] = [];
    for (const m of ['m1', 'm2', 'm3', 'm4']) times.push(await srv.put(ch, m));
    const byTime = await EventStreamClient.open(srv, { channel: ch, time: times[1] });
    t.teardown(() => byTime.close());
    await byTime.waitEvents(2);
    t.same(byTime.messages, ['m3', 'm4']);
    const byId = await EventStreamClient.open(srv, { channel: ch, time: times[0] }, { 'Last-Event-ID': String(times[2]) });
    t.teardown(() => byId.close());
    await byId.waitEvents(1);
    t.same(byId.messages, ['m4']);
    t.equal(byId.events[0]!.id, String(times[3]));
  });

  t.test('without time or Last-Event-ID it starts at the channel time when it arrived', async (t) => {
    const ch = uniq('sse-now');
    await srv.put(ch, 'before');
    const es = await EventStreamClient.open(srv, { channel: ch });
    t.teardown(() => es.close());
    await waitFor(() => es.comments >= 1, { what: 'the opening comment' });
    await srv.put(ch, 'after');
    await es.waitEvents(1);
    t.same(es.messages, ['after']);
  });

  t.test('missed: an event before the messages when the start cannot be vouched for', async (t) => {
    const ch = uniq('sse-missed');
    await srv.put(ch, 'held');
    // Time 1 is before this server started: what came then is not known.
    const es = await EventStreamClient.open(srv, { channel: ch, time: 1 });
    t.teardown(() => es.close());
    await es.waitEvents(2);
    t.same(es.events[0], { id: undefined, event: 'missed', data: '{"time":1}' });
    t.same(es.messages, ['held']);
  });

  t.test('heartbeat comments while nothing else is sent', async (t) => {
    const es = await EventStreamClient.open(srv, { channel: uniq('sse-quiet') });
    t.teardown(() => es.close());
    await waitFor(() => es.comments >= 3, { timeoutMs: 7000, what: 'two heartbeats after the opening comment (--stream-heartbeat 2)' });
    t.equal(es.events.length, 0);
  });

  t.test('comet_bytes_out_total counts the message bytes of a stream, read or fanned out', async (t) => {
    const ch = uniq('sse-bytes');
    const first = await srv.put(ch, 'ü€');
    const before = (await srv.metrics()).value('comet_bytes_out_total');
    const es = await EventStreamClient.open(srv, { channel: ch, time: first - 1 });
    t.teardown(() => es.close());
    await es.waitEvents(1);
    await srv.put(ch, 'x');
    await es.waitEvents(2);
    t.same(es.messages, ['ü€', 'x']);
    // "ü€" is 7 bytes of UTF-8 (the read), "x" 3 (the fan-out).
    t.equal((await srv.metrics()).value('comet_bytes_out_total') - before, 10);
  });

  t.test('comet_messages_out_total and comet_bytes_out_total count a fan-out once per stream', async (t) => {
    const ch = uniq('sse-fan-bytes');
    const now = await srv.sync(ch);
    const streams = await Promise.all([0, 1, 2].map(() => EventStreamClient.open(srv, { channel: ch, time: now })));
    t.teardown(() => streams.forEach((es) => es.close()));
    const before = await srv.metrics();
    await srv.put(ch, 'ü€');
    await Promise.all(streams.map((es) => es.waitEvents(1)));
    const after = await srv.metrics();
    t.equal(after.value('comet_messages_out_total') - before.value('comet_messages_out_total'), 3, 'one message to each of 3 streams');
    // "ü€" is 7 bytes of UTF-8, to each stream.
    t.equal(after.value('comet_bytes_out_total') - before.value('comet_bytes_out_total'), 21);
  });

  t.test('bad parameters get the answers of get, before any stream', async (t) => {
    for (const [params, headers, status, code] of [
      [{ time: 'x' }, {}, 400, 'COMET_ERR_BAD_TIME'],
      [{ time: '-1' }, {}, 400, 'COMET_ERR_BAD_TIME'],
      [{ timeout: 'soon' }, {}, 400, 'COMET_ERR_BAD_TIMEOUT'],
      [{}, { 'Last-Event-ID': 'abc' }, 400, 'COMET_ERR_BAD_TIME'],
      [{ channel: '' }, {}, 400, 'COMET_ERR_BAD_CHANNEL'],
      [{ channel: 'x'.repeat(5000) }, {}, 400, 'COMET_ERR_BAD_CHANNEL'],
      [{ callback: 'alert(1)' }, {}, 400, 'COMET_ERR_BAD_CALLBACK'],
    ] as const) {
      const es = await EventStreamClient.open(srv, { channel: uniq('sse-bad'), ...params }, headers);
      t.equal(es.status, status, JSON.stringify(params));
      t.match(es.res.headers['content-type'], /^application\/json/);
      t.equal((await es.refusal()).code, code);
    }
    checkError(t, await srv.call({ method: 'event' }), 400, 'COMET_ERR_BAD_METHOD');
    const head = await srv.request({ method: 'HEAD', path: `/?method=events&channel=${uniq('sse-head')}` });
    t.same([head.status, head.headers['content-type'], head.body], [200, 'text/event-stream', ''], 'HEAD: the headers a stream would carry, nothing opened');
    t.equal(await srv.waiting(), 0, 'no slot is held by a refused stream');
  });

  t.test('a client that goes away frees its slot at once', async (t) => {
    // The earlier tests closed their streams as they ended: their slots are freed as the server sees the closes.
    await waitFor(async () => (await srv.waiting()) === 0, { what: 'the earlier streams gone' });
    const before = 0;
    const streams = await Promise.all(Array.from({ length: 20 }, () => EventStreamClient.open(srv, { channel: uniq('sse-gone') })));
    await waitFor(async () => (await srv.waiting()) === before + 20, { what: '20 slots held' });
    for (const es of streams) es.close();
    await waitFor(async () => (await srv.waiting()) === before, { what: 'every slot freed' });
    t.equal((await srv.metrics()).value('comet_streams'), 0);
  });
});

t.test('a reader too slow to keep up is disconnected, never buffered without bound', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connection-buffer', '65536', '--max-message-bytes', '65536'] });
  const ch = uniq('sse-slow');
  const from = await srv.sync(ch);
  // A raw socket that asks for the stream and then reads nothing.
  const socket = net.connect(srv.port, srv.host);
  t.teardown(() => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`GET /?method=events&channel=${ch}&time=${from} HTTP/1.1\r\nHost: x\r\n\r\n`);
  socket.pause();
  await waitFor(async () => (await srv.metrics()).value('comet_streams') === 1, { what: 'the stream open' });
  const message = 'x'.repeat(60_000);
  // Far more than the kernel's socket buffers hold: the server's writes must back up.
  let puts = 0;
  for (; puts < 400 && (await srv.metrics()).value('comet_streams') === 1; puts++) await srv.post({ method: 'put', channel: ch, message });
  const metrics = await srv.metrics();
  t.equal(metrics.value('comet_streams'), 0, 'the stream was closed');
  t.ok(metrics.value('comet_slow_readers_closed_total') >= 1, 'counted as a slow reader');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))![1]) * 1024;
  t.ok(rss < 400e6, `the server did not hold what the reader did not take (RSS ${Math.round(rss / 1e6)} MB after ${puts} puts of 60 KB)`);
  t.equal(await srv.waiting(), 0, 'its slot is free');
  const other = await EventStreamClient.open(srv, { channel: ch, time: from });
  t.teardown(() => other.close());
  await other.waitEvents(1);
  t.equal(other.messages[0], message, 'the channel still serves a reader that reads');
});

t.test('access control: tokens as for get', async (t) => {
  const secret = 'sse-secret-0123456789abcdef0123456789';
  const srv = await startServer({ t, threads: 1, args: ['--auth', 'all', '--auth-secret', secret] });
  const exp = Math.floor(Date.now() / 1000) + 600;
  const none = await EventStreamClient.open(srv, { channel: 'room:1' });
  t.equal(none.status, 401);
  t.equal(none.res.headers['www-authenticate'], 'Bearer');
  const elsewhere = await EventStreamClient.open(srv, { channel: 'room:1', token: hs256(secret, { exp, channels: ['room:2'] }) });
  t.equal(elsewhere.status, 403);
  const putOnly = await EventStreamClient.open(srv, { channel: 'room:1', token: hs256(secret, { exp, channels: ['room:*'], methods: ['put'] }) });
  t.equal(putOnly.status, 403);
  const ok = await EventStreamClient.open(
    srv,
    { channel: 'room:1' },
    { Authorization: `Bearer ${hs256(secret, { exp, channels: ['room:*'], methods: ['get'] })}` },
  );
  t.teardown(() => ok.close());
  t.equal(ok.status, 200);
});

t.test('--max-waiting bounds streams with gets', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-waiting', '3'] });
  const open = await Promise.all([1, 2, 3].map(() => EventStreamClient.open(srv, { channel: uniq('sse-cap') })));
  t.teardown(() => open.forEach((es) => es.close()));
  const refused = await EventStreamClient.open(srv, { channel: uniq('sse-cap') });
  t.equal(refused.status, 503);
  t.equal((await refused.refusal()).code, 'COMET_ERR_TOO_MANY_WAITING');
});

t.test('three threads: exactly once, in order, under concurrent publishers, across a reconnect with Last-Event-ID', async (t) => {
  const srv = await startServer({ t, threads: 3 });
  const ch = uniq('sse-order');
  const from = await srv.sync(ch);
  const first = await EventStreamClient.open(srv, { channel: ch, time: from });
  t.teardown(() => first.close());
  await waitFor(() => first.comments >= 1, { what: 'the opening comment' });
  const PUBLISHERS = 4;
  const EACH = 60;
  const publishing = Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, p) => {
      const times: number[] = [];
      for (let i = 0; i < EACH; i++) times.push(await srv.put(ch, `p${p}-${i}`));
      return times;
    }),
  );
  // Cut the first stream part-way and resume where it stopped, as an EventSource would.
  await first.waitEvents(40, 10_000);
  first.close();
  const lastId = first.events.at(-1)!.id!;
  const second = await EventStreamClient.open(srv, { channel: ch, time: from }, { 'Last-Event-ID': lastId });
  t.teardown(() => second.close());
  const all = (await publishing).flat().sort((a, b) => a - b);
  await second.waitEvents(all.length - first.events.length, 10_000);
  const ids = [...first.events, ...second.events].map((e) => Number(e.id));
  t.same(ids, all, 'every message once, in time order');
  const seen = [...first.messages, ...second.messages];
  for (let p = 0; p < PUBLISHERS; p++) {
    const own = seen.filter((m) => m.startsWith(`p${p}-`));
    t.same(
      own,
      Array.from({ length: EACH }, (_, i) => `p${p}-${i}`),
      `publisher ${p}'s messages in its order`,
    );
  }
});

t.test('a publish costs one notice per thread with streams, however many streams there are', async (t) => {
  const srv = await startServer({ t, threads: 3 });
  const ch = uniq('sse-news');
  const from = await srv.sync(ch);
  const streams = await Promise.all(Array.from({ length: 60 }, () => EventStreamClient.open(srv, { channel: ch, time: from })));
  t.teardown(() => streams.forEach((es) => es.close()));
  await waitFor(() => streams.every((es) => es.comments >= 1), { what: 'every stream open' });
  const before = (await srv.metrics()).value('comet_news_sent_total');
  const time = await srv.put(ch, 'to all');
  for (const es of streams) t.same((await es.waitEvents(1))[0], { id: String(time), event: undefined, data: '"to all"' });
  const notices = (await srv.metrics()).value('comet_news_sent_total') - before;
  t.ok(notices >= 1 && notices <= 3, `${notices} notices for 60 streams on 3 threads`);
});

t.test('graceful shutdown ends every stream cleanly', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const streams = await Promise.all([1, 2, 3, 4].map(() => EventStreamClient.open(srv, { channel: uniq('sse-stop') })));
  await waitFor(() => streams.every((es) => es.comments >= 1), { what: 'the streams open' });
  const stopping = srv.stop('SIGTERM');
  for (const es of streams) t.same(await es.waitEnd(), { clean: true }, 'the chunked body ends');
  t.equal((await stopping).code, 0);
});
