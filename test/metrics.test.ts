/** /healthz and /metrics: names, types, and counts aggregated over threads. */
import t from 'tap';
import { sleep, startServer, waitFor, within, type Metrics } from './helpers/server.js';
import { channels, JSON_TYPE } from './helpers/protocol.js';
import { rawGet, rawSend } from './helpers/http.js';

const REQUIRED: Array<[string, 'gauge' | 'counter']> = [
  ['comet_waiting_gets', 'gauge'],
  ['comet_parked_gets', 'gauge'],
  ['comet_connections', 'gauge'],
  ['comet_channels', 'gauge'],
  ['comet_messages_in_total', 'counter'],
  ['comet_messages_out_total', 'counter'],
  ['comet_bytes_in_total', 'counter'],
  ['comet_bytes_out_total', 'counter'],
  ['comet_requests_total', 'counter'],
  ['comet_errors_total', 'counter'],
  ['comet_gc_seconds_total', 'counter'],
];

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    const srv = await startServer({ t, threads });

    t.test('GET /healthz answers 200 JSON', async (t) => {
      const res = await srv.request({ path: '/healthz' });
      t.equal(res.status, 200, 'status 200');
      t.match(String(res.headers['content-type'] ?? ''), JSON_TYPE, 'JSON');
      t.type(res.json, 'object', 'body is a JSON object', { body: res.body });
    });

    t.test('GET /metrics exposes every metric, with one event-loop series per thread', async (t) => {
      const res = await srv.request({ path: '/metrics' });
      t.equal(res.status, 200, 'status 200');
      t.match(String(res.headers['content-type'] ?? ''), /^text\/plain/, 'text/plain');
      const m = await srv.metrics();
      for (const [name, type] of REQUIRED) {
        t.ok(m.has(name) || m.types.has(name), `${name} present`);
        t.equal(m.types.get(name), type, `# TYPE ${name} ${type}`);
      }
      const p99 = m.series('comet_event_loop_delay_seconds', { stat: 'p99' });
      t.strictSame(
        p99.map((s) => s.labels.thread).sort(),
        Array.from({ length: threads }, (_, i) => String(i)),
        'comet_event_loop_delay_seconds{thread="i",stat="p99"} for every thread',
      );
      t.ok(
        p99.every((s) => Number.isFinite(s.value) && s.value >= 0),
        'p99 values are finite seconds',
      );
      t.ok(m.value('comet_connections') >= 1, 'comet_connections counts our connection');
    });

    t.test('counters add up over threads', async (t) => {
      const chs = channels('metrics', 5);
      const before = await srv.metrics();
      const syncs = await Promise.all(chs.map((c) => srv.sync(c)));
      const msgs = chs.map((_, i) => `message-${i}-é`);
      await Promise.all(chs.map((c, i) => srv.put(c, msgs[i]!)));
      await srv.get(chs[0]!, { time: syncs[0], timeout: 0 });
      await srv.get(chs[1]!, { time: syncs[1], timeout: 0 });
      await srv.call({ method: 'bogus', channel: chs[0]! });
      await srv.call({ method: 'bogus', channel: chs[0]! });
      await srv.call({ method: 'sync' });
      const d = (m: Metrics, name: string, labels: Record<string, string> = {}) => m.value(name, labels) - before.value(name, labels);
      const expected = {
        put: 5,
        sync: 5,
        get: 2,
        in: 5,
        out: 2,
        badMethod: 2,
        badChannel: 1,
      };
      let after: Metrics | undefined;
      const ok = await waitFor(
        async () => {
          after = await srv.metrics();
          return (
            d(after, 'comet_requests_total', { method: 'put' }) === expected.put &&
            d(after, 'comet_requests_total', { method: 'get' }) === expected.get &&
            d(after, 'comet_messages_in_total') === expected.in &&
            d(after, 'comet_errors_total', { code: 'COMET_ERR_BAD_METHOD' }) === expected.badMethod &&
            after.value('comet_channels') >= chs.length
          );
        },
        { timeoutMs: 3000 },
      ).catch(() => false);
      t.ok(ok, 'the metrics caught up');
      const a = after!;
      t.equal(d(a, 'comet_requests_total', { method: 'put' }), expected.put, 'comet_requests_total{method="put"} +5');
      t.ok(d(a, 'comet_requests_total', { method: 'sync' }) >= expected.sync, 'comet_requests_total{method="sync"} +5 (or more with the failed one)');
      t.equal(d(a, 'comet_requests_total', { method: 'get' }), expected.get, 'comet_requests_total{method="get"} +2');
      t.equal(d(a, 'comet_messages_in_total'), expected.in, 'comet_messages_in_total +5');
      t.equal(d(a, 'comet_messages_out_total'), expected.out, 'comet_messages_out_total +2');
      t.equal(d(a, 'comet_errors_total', { code: 'COMET_ERR_BAD_METHOD' }), expected.badMethod, 'comet_errors_total{code="COMET_ERR_BAD_METHOD"} +2');
      t.equal(d(a, 'comet_errors_total', { code: 'COMET_ERR_BAD_CHANNEL' }), expected.badChannel, 'comet_errors_total{code="COMET_ERR_BAD_CHANNEL"} +1');
      const msgBytes = msgs.reduce((n, m) => n + Buffer.byteLength(m), 0);
      t.ok(d(a, 'comet_bytes_in_total') >= msgBytes, 'comet_bytes_in_total grew by at least the message bytes', {
        delta: d(a, 'comet_bytes_in_total'),
        msgBytes,
      });
      t.ok(d(a, 'comet_bytes_out_total') > 0, 'comet_bytes_out_total grew');
      t.ok(a.value('comet_channels') >= chs.length, 'comet_channels counts the channels', { channels: a.value('comet_channels') });
    });

    t.test('comet_waiting_gets and comet_parked_gets follow waiting gets', async (t) => {
      const chs = channels('gauge', 3);
      t.ok(await srv.waitWaiting(0, { exact: true }), 'none waiting');
      t.equal(await srv.parked(), 0, 'none parked');
      const gets = chs.map((c) => srv.get(c, { timeout: 10 }));
      t.ok(await srv.waitWaiting(3, { exact: true }), 'three waiting');
      t.ok(await srv.waitParked(3, { exact: true }), 'three parked');
      const timeoutGet = srv.get(chs[0]!, { timeout: 1 });
      t.ok(await srv.waitWaiting(4, { exact: true }), 'four waiting');
      t.ok(await srv.waitParked(4, { exact: true }), 'four parked');
      await within(timeoutGet, 4000, 'timeout get');
      t.ok(await srv.waitWaiting(3, { exact: true }), 'a timeout answer frees its slot');
      t.equal(await srv.parked(), 3, 'and unparks its get');
      await Promise.all(chs.map((c) => srv.put(c, 'x')));
      await within(Promise.all(gets), 3000, 'gets');
      t.ok(await srv.waitWaiting(0, { exact: true }), 'answered gets free their slots');
      t.equal(await srv.parked(), 0, 'and none is parked');
      const dropped = new AbortController();
      const abandoned = srv.get(chs[1]!, { timeout: 10 }, { signal: dropped.signal }).catch(() => 'aborted');
      t.ok(await srv.waitParked(1, { exact: true }), 'parked again');
      dropped.abort();
      await abandoned;
      t.ok(await srv.waitParked(0, { exact: true }), 'a get whose client went away is unparked');
    });
  });
}

t.test('comet_connections follows connections as the main thread counts them', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--connections-interval', '1'] });
  const count = async () => (await srv.metrics()).value('comet_connections');
  const baseline = await count();
  const sockets = await Promise.all(Array.from({ length: 40 }, () => rawSend(srv, rawGet('/healthz'))));
  let seen = NaN;
  t.ok(
    await waitFor(async () => (seen = await count()) >= baseline + 40, { timeoutMs: 5000 }).catch(() => false),
    '40 more connections counted within a few intervals',
    { baseline, seen },
  );
  for (const s of sockets) s.destroy();
  t.ok(await waitFor(async () => (seen = await count()) <= baseline + 2, { timeoutMs: 5000 }).catch(() => false), 'and forgotten once closed', {
    baseline,
    seen,
  });
});

t.test('--connections-interval 0 leaves comet_connections out', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--connections-interval', '0'] });
  const m = await srv.metrics();
  t.notOk(m.has('comet_connections') || m.types.has('comet_connections'), 'no comet_connections');
  t.ok(m.has('comet_waiting_gets'), 'the rest is there');
});

t.test('comet_gc_seconds_total rises as requests make the threads collect garbage', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const gc = async () => (await srv.metrics()).value('comet_gc_seconds_total');
  const first = await srv.metrics();
  t.strictSame(
    first
      .series('comet_gc_seconds_total')
      .map((s) => s.labels.kind)
      .sort(),
    ['major', 'minor'],
    'one series per kind',
  );
  const before = await gc();
  // 4 KB puts over many channels: every round allocates megabytes of strings and buffers in the threads' young generations
  const message = 'g'.repeat(4096);
  let after = before;
  let rounds = 0;
  for (; rounds < 40 && after <= before; rounds++) {
    await Promise.all(Array.from({ length: 200 }, (_, i) => srv.put(`gc-${i % 50}`, message)));
    after = await gc();
  }
  t.ok(after > before, 'the pauses were counted', { before, after, rounds });
  t.ok(after < 60, 'in seconds, not milliseconds', { after });
});

t.test('--max-young-generation bounds what comet_heap_young_generation_bytes shows a thread committing', async (t) => {
  const MiB = 1024 * 1024;
  const young = async (args: string[]) => {
    const srv = await startServer({ t, threads: 1, args });
    const m = await srv.metrics();
    t.equal(m.series('comet_heap_young_generation_bytes').length, 1, 'one series per thread');
    // 3,000 puts of 4 KB, 100 at a time: enough garbage that V8's own limit grows the young generation past 3 MiB.
    const message = 'y'.repeat(4096);
    for (let round = 0; round < 30; round++) await Promise.all(Array.from({ length: 100 }, (_, i) => srv.put(`young-${i}`, message)));
    // The upkeep reads it once a second.
    await sleep(1500);
    return (await srv.metrics()).value('comet_heap_young_generation_bytes');
  };
  const bounded = await young([]);
  t.ok(bounded > 0 && bounded <= 3 * MiB, `the default (3 MiB) holds it: ${bounded} bytes`);
  const grown = await young(['--max-young-generation', String(64 * MiB)]);
  t.ok(grown > 3 * MiB, `with 64 MiB the same load grows it past 3 MiB: ${grown} bytes`);
});
