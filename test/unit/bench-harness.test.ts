/**
 * The load-test harness's parts that need no server (bench/harness/): the
 * mergeable latency histogram, the raw HTTP/1.1 client's framing, the protocol
 * adapters, CPU lists and pinning, option parsing, the plan of runs and the
 * release gate's verdicts. The harness over real sockets is in
 * test/bench-harness.test.ts.
 */
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BUCKETS, Histogram } from '../../bench/harness/histogram.js';
import { formatRequest, parseResponse } from '../../bench/harness/http1.js';
import { builtInAdapters, loadAdapter, nchan, promSum, simpleComet } from '../../bench/harness/adapters.js';
import { defaultPinning, parseCpuList, processCpuUs } from '../../bench/harness/cpu.js';
import { OPTIONS, parseOptions, settingsFrom } from '../../bench/harness/settings.js';
import { SCENARIOS, plan } from '../../bench/harness/runner.js';
import { describeTarget } from '../../bench/harness/targets.js';
import { mintToken, randomSecret } from '../../bench/harness/token.js';
import { CURSOR_MARK, wrkScript } from '../../bench/harness/load/wrk-load.js';
import { OPCODE, SseReader, WsReader, maskedFrame, sseRequest, wsUpgrade } from '../../bench/harness/load/stream-readers.js';
import { evaluate, gateArguments, loadChecks, pooled } from '../../bench/harness/gate.js';
import { boundBy, createContext, messageWith } from '../../bench/harness/scenarios/context.js';
import { gcMsPer1k, gcSecondsOf } from '../../bench/harness/gc.js';
import type { TargetHandle } from '../../bench/harness/targets.js';
import { quantile as exactQuantile } from '../../bench/harness/scenarios/fanout.js';
import type { Check } from '../../bench/harness/gate.js';
import type { Context } from '../../bench/harness/scenarios/context.js';
import type { Request as Req, Response as Res } from '../../bench/harness/types.js';

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Latencies in µs spread log-uniformly from 64 µs to 1,000 s, like a tail-heavy
 * benchmark (below 64 µs the buckets are 1 µs wide: an absolute, not a relative, error).
 */
function latencies(n: number, seed = 1): number[] {
  const r = random(seed);
  const lo = Math.log10(64);
  return Array.from({ length: n }, () => 10 ** (lo + r() * (9 - lo)));
}

/** The byte string a socket would deliver for text, as the harness reads it (latin1). */
const wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const queryOf = (req: Req): Record<string, string> => Object.fromEntries(new URL(req.path, 'http://x').searchParams);

// ------------------------------------------------------------------ Histogram

t.test('Histogram', async (t) => {
  t.test('quantiles are within the bucket error of the exact values', async (t) => {
    const values = latencies(20_000);
    const h = new Histogram();
    for (const v of values) h.record(v);
    const sorted = [...values].sort((a, b) => a - b);
    t.equal(h.total, values.length);
    for (const q of [0.01, 0.1, 0.5, 0.9, 0.99, 0.999]) {
      const exact = exactQuantile(sorted, q);
      const got = h.quantile(q);
      t.ok(Math.abs(got - exact) / exact <= 0.02, `q=${q}: ${got} within 2 % of ${exact}`);
    }
  });

  t.test('values below 64 µs are exact, values beyond 2^31 µs are bucketed, not lost', async (t) => {
    const h = new Histogram();
    for (let v = 0; v < 64; v++) h.record(v);
    t.equal(h.quantile(0.5), 31);
    t.equal(h.quantile(1 / 64), 0);
    const fine = new Histogram();
    for (const v of [0.4, 1.7, 2.2, 63.9]) fine.record(v);
    t.same(
      [0.25, 0.5, 0.75].map((q) => fine.quantile(q)),
      [0, 1, 2],
      'below 64 µs: 1 µs buckets',
    );
    const big = new Histogram();
    for (const v of [3e9, 5e10, 1e12]) big.record(v);
    for (const [q, v] of [
      [0.2, 3e9],
      [0.5, 5e10],
      [1, 1e12],
    ] as const) {
      t.ok(Math.abs(big.quantile(q) - v) / v <= 0.02, `q=${q}: ${big.quantile(q)} within 2 % of ${v}`);
    }
  });

  t.test('merging toJSON forms equals recording everything in one', async (t) => {
    const values = latencies(9_000, 7);
    const all = new Histogram();
    for (const v of values) all.record(v);
    const parts = [new Histogram(), new Histogram(), new Histogram()];
    values.forEach((v, i) => parts[i % 3].record(v));
    const merged = new Histogram();
    // as the parent gets them from its load processes: over IPC, as JSON
    for (const p of parts) merged.add(JSON.parse(JSON.stringify(p.toJSON())));
    t.equal(merged.total, all.total);
    t.equal(merged.max, all.max);
    t.same(Array.from(merged.counts), Array.from(all.counts));
    for (const q of [0.5, 0.99, 1]) t.equal(merged.quantile(q), all.quantile(q), `q=${q}`);
    const roundTrip = Histogram.fromJSON(all.toJSON());
    t.equal(roundTrip.total, all.total);
    t.equal(roundTrip.quantile(0.9), all.quantile(0.9));
    t.equal(new Histogram().add(parts[0]).total, parts[0].total, 'add takes a Histogram too');
  });

  t.test('empty: NaN quantiles, an empty JSON form', async (t) => {
    const h = new Histogram();
    t.ok(Number.isNaN(h.quantile(0.5)));
    t.ok(Number.isNaN(h.quantile(1)));
    t.same(h.toJSON(), { pairs: [], max: 0 });
    t.ok(Number.isNaN(Histogram.fromJSON({ pairs: [], max: 0 }).quantile(0.99)));
    t.equal(h.counts.length, BUCKETS);
  });

  t.test('the maximum is tracked exactly and caps the top quantile', async (t) => {
    const h = new Histogram();
    for (const v of [5, 100, 1234.5]) h.record(v);
    t.equal(h.max, 1234.5);
    t.ok(h.quantile(1) <= 1234.5, 'no quantile above the largest value');
    t.ok(Math.abs(h.quantile(1) - 1234.5) / 1234.5 <= 0.02);
    const other = new Histogram();
    other.record(99_999.25);
    h.add(other.toJSON());
    t.equal(h.max, 99_999.25, 'merging keeps the larger maximum');
    t.equal(Histogram.fromJSON(h.toJSON()).max, 99_999.25);
  });
});

// ------------------------------------------------------------------ HTTP/1.1 framing

t.test('http1.parseResponse', async (t) => {
  t.test('Content-Length', async (t) => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Two:  spaced \r\n\r\n{"time":12}';
    const r = parseResponse(text)!;
    t.ok(r);
    t.equal(r.response.status, 200);
    t.equal(r.response.body, '{"time":12}');
    t.equal(r.response.headers['content-type'], 'application/json', 'header names are lower-case');
    t.equal(r.response.headers['x-two'], 'spaced', 'values are trimmed');
    t.equal(r.rest, '');
  });

  t.test('chunked, whole and arriving in pieces', async (t) => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n, chunked!\r\n0\r\n\r\n';
    const r = parseResponse(text)!;
    t.ok(r);
    t.equal(r.response.body, 'hello, chunked!');
    t.equal(r.rest, '');
    // every proper prefix is "need more bytes", never a short body
    const early = [];
    for (let i = 0; i < text.length; i++) if (parseResponse(text.slice(0, i)) !== null) early.push(i);
    t.same(early, [], 'no prefix parses');
    t.equal(parseResponse(text + 'HTTP/1.1 204 No Content\r\n\r\n')!.rest, 'HTTP/1.1 204 No Content\r\n\r\n');
    t.throws(() => parseResponse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n'), /chunk size/);
  });

  t.test('204 and 304 have no body', async (t) => {
    for (const status of [204, 304]) {
      const next = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
      // a 304 may carry a Content-Length of the entity it does not send
      const r = parseResponse(`HTTP/1.1 ${status} X\r\nEtag: "1"\r\nContent-Length: 40\r\n\r\n${next}`)!;
      t.ok(r, `${status}`);
      t.equal(r.response.status, status);
      t.equal(r.response.body, '');
      t.equal(r.rest, next, `${status}: the next response is untouched`);
    }
  });

  t.test('incomplete responses need more bytes', async (t) => {
    t.equal(parseResponse(''), null);
    t.equal(parseResponse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'), null, 'no end of head');
    t.equal(parseResponse('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell'), null, 'short body');
    t.equal(parseResponse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'), null, 'short chunk');
  });

  t.test('two pipelined responses: rest holds the second', async (t) => {
    const first = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none';
    const second = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo';
    const a = parseResponse(first + second);
    t.equal(a!.response.body, 'one');
    t.equal(a!.rest, second);
    const b = parseResponse(a!.rest);
    t.equal(b!.response.status, 404);
    t.equal(b!.response.body, 'two');
    t.equal(b!.rest, '');
  });

  t.test('bodies are decoded as UTF-8 from the latin1 text, lengths count bytes', async (t) => {
    const body = '{"messages":["héllo ✓ 😀"]}';
    const text = wire(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const r = parseResponse(text);
    t.equal(r!.response.body, body);
    t.equal(r!.rest, '');
    // a chunk boundary inside a multi-byte character
    const bytes = Buffer.from('✓😀', 'utf8');
    const chunked = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n${bytes.subarray(0, 2).toString('latin1')}\r\n5\r\n${bytes.subarray(2).toString('latin1')}\r\n0\r\n\r\n`;
    t.equal(parseResponse(chunked)!.response.body, '✓😀');
  });

  t.test('a response without any length throws', async (t) => {
    t.throws(() => parseResponse('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close'), /without a length/);
  });
});

t.test('http1.formatRequest', async (t) => {
  t.equal(formatRequest({ path: '/comet?method=get&channel=a' }, '127.0.0.1:9'), 'GET /comet?method=get&channel=a HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n');
  t.equal(
    formatRequest({ path: '/sub?channel=a', headers: { 'If-None-Match': '0' } }, 'h:1'),
    'GET /sub?channel=a HTTP/1.1\r\nHost: h:1\r\nIf-None-Match: 0\r\n\r\n',
  );
  const body = 'message=héllo ✓';
  const post = formatRequest({ method: 'POST', path: '/pub', headers: { 'Content-Type': 'text/plain' }, body }, 'h:1');
  t.equal(post, `POST /pub HTTP/1.1\r\nHost: h:1\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\n${body}`, 'Content-Length in UTF-8 bytes');
  t.equal(Buffer.byteLength(body), 18);
  t.equal(formatRequest({ method: 'POST', path: '/x' }, 'h:1'), 'POST /x HTTP/1.1\r\nHost: h:1\r\nContent-Length: 0\r\n\r\n', 'a POST without a body says so');
});

// ------------------------------------------------------------------ adapters

t.test('simpleComet adapter', async (t) => {
  const a = simpleComet(new URL('http://127.0.0.1:8080/comet'));
  const put = a.put('ch 1&x', 'mé ssage');
  t.equal(new URL(put.path, 'http://x').pathname, '/comet', 'base path from the URL');
  t.same(queryOf(put), { method: 'put', channel: 'ch 1&x', message: 'mé ssage' });
  t.equal(put.method, undefined, 'GET');
  t.same(queryOf(a.sync('c')), { method: 'sync', channel: 'c' });
  const first = queryOf(a.get('c', null));
  t.notOk('time' in first, 'no cursor: no time');
  t.equal(first.method, 'get');
  t.equal(first.timeout, '60', 'the long-poll asks for its own timeout');
  const next = queryOf(a.get('c', 1700000000000123));
  t.equal(next.time, '1700000000000123');
  t.equal(next.timeout, '60');
  t.equal(new URL(simpleComet(new URL('http://h:1/')).get('c', null).path, 'http://x').pathname, '/');

  const ok = (body: string, status = 200): Res => ({ status, headers: {}, body });
  t.same(a.readPut(ok('{"time":17}')), { ok: true });
  t.same(a.readPut(ok('{"error":"x"}', 400)), { ok: false });
  t.same(a.readGet(ok('{"time":17,"messages":["a","b"]}')), { ok: true, messages: ['a', 'b'], cursor: 17, timedOut: false });
  t.same(a.readGet(ok('{"time":18,"messages":[]}')), { ok: true, messages: [], cursor: 18, timedOut: true });
  t.same(a.readGet(ok('{"error":"bad request"}', 400)), { ok: false, messages: [], cursor: null, timedOut: false });

  // buffered: two puts, then a get from the first one's time that the server answers at once
  const sent: Req[] = [];
  let time = 100;
  const req = await a.buffered('tg', async (r: Req) => (sent.push(r), ok(`{"time":${++time}}`)));
  t.same(
    sent.map((r) => queryOf(r).message),
    ['first', 'second'],
  );
  t.same(queryOf(req), { method: 'get', channel: 'tg', time: '101', timeout: '0' });

  t.equal(a.waiting!.path, '/metrics');
  t.equal(a.waiting!.read('# TYPE comet_waiting_gets gauge\ncomet_waiting_gets{thread="0"} 3\ncomet_waiting_gets{thread="1"} 4\n'), 7);

  // the streaming transports (protocol.md, "Streaming transports")
  const streams = a.streams!;
  t.same(queryOf(streams.sse('c 1')), { method: 'events', channel: 'c 1' });
  t.equal(streams.sseMessage('"a \\"b\\""'), 'a "b"', "an event's data is the message as a JSON string");
  const ws = streams.ws('c');
  t.equal(ws.path, '/comet', 'the upgrade on the base path');
  t.same(JSON.parse(ws.subscribe!), { id: 1, method: 'subscribe', channel: 'c' });
  t.same(streams.wsFrame('{"id":1,"time":17}'), { subscribed: true });
  t.same(streams.wsFrame('{"channel":"c","time":18,"messages":["m1","m2"]}'), { messages: ['m1', 'm2'] });
  t.match(streams.wsFrame('{"id":1,"error":"no","code":"COMET_ERR_BAD_REQUEST"}'), { refused: /COMET_ERR_BAD_REQUEST/ });
  t.equal(streams.waiting!.path, '/metrics');
  t.equal(streams.waiting!.read('comet_waiting_gets 9\ncomet_streams 4\ncomet_websockets 2\n'), 4, 'open streams, not waiting gets or connections');
});

t.test('nchan adapter', async (t) => {
  const a = nchan(new URL('http://127.0.0.1:81/'));
  t.same(a.put('a b', 'héllo'), { method: 'POST', path: '/pub?channel=a%20b', headers: { 'Content-Type': 'text/plain' }, body: 'héllo' });
  t.equal(nchan(new URL('http://h:1/nchan')).put('c', 'm').path, '/nchan/pub?channel=c', 'a base path without its slash');
  t.same(a.sync('c'), { path: '/pub?channel=c', headers: { Accept: 'text/json' } });
  t.same(a.get('c', null), { path: '/sub?channel=c' });
  const cursor = { lastModified: 'Thu, 01 Jan 2026 00:00:00 GMT', etag: '3' };
  t.same(a.get('c', cursor), { path: '/sub?channel=c', headers: { 'If-Modified-Since': cursor.lastModified, 'If-None-Match': '3' } });

  const got = a.readGet({ status: 200, headers: { 'last-modified': cursor.lastModified, etag: '3' }, body: 'msg' });
  t.same(got, { ok: true, messages: ['msg'], cursor, timedOut: false });
  for (const status of [304, 408]) {
    t.same(a.readGet({ status, headers: {}, body: '' }), { ok: true, messages: [], cursor: null, timedOut: true }, `${status} is a timed-out long-poll`);
  }
  t.same(a.readGet({ status: 500, headers: {}, body: 'oops' }), { ok: false, messages: [], cursor: null, timedOut: false });
  t.ok(a.readPut({ status: 201, headers: {}, body: '' }).ok);
  t.ok(a.readPut({ status: 202, headers: {}, body: '' }).ok);
  t.notOk(a.readPut({ status: 403, headers: {}, body: '' }).ok);

  const sent: Req[] = [];
  const req = await a.buffered('tg', async (r: Req) => (sent.push(r), { status: 202, headers: {}, body: '' }));
  t.equal(sent.length, 1);
  t.equal(sent[0].method, 'POST');
  t.equal(req.path, '/sub?channel=tg');
  t.ok(req.headers!['If-Modified-Since'], 'asks from before any message');
  t.equal(a.waiting!.path, '/nchan_status');
  t.equal(a.waiting!.read('total published messages: 9\nstored messages: 1\nsubscribers: 12\n'), 12);

  // EventSource and WebSocket subscribers on the same location, each message as it was published
  const streams = a.streams!;
  t.same(streams.sse('c'), { path: '/sub?channel=c', headers: { Accept: 'text/event-stream' } });
  t.equal(streams.sseMessage('m "1"'), 'm "1"');
  t.same(streams.ws('c'), { path: '/sub?channel=c', subscribe: null }, 'the upgrade alone subscribes');
  t.same(streams.wsFrame('{"not":"parsed"}'), { messages: ['{"not":"parsed"}'] });
  t.equal(streams.waiting, a.waiting, 'Nchan counts streams with the long-polls');
});

t.test('stream-readers: an event stream', async (t) => {
  t.match(
    sseRequest({ path: '/?method=events&channel=c' }, 'h:1'),
    /^GET \/\?method=events&channel=c HTTP\/1\.1\r\nHost: h:1\r\nAccept: text\/event-stream\r\n\r\n$/,
  );

  t.test('chunked (comet-server), cut anywhere', async (t) => {
    const body = ': comet\n\nid: 1\ndata: "h\u00e9"\n\n:\n\nevent: missed\ndata: {"time":0}\n\nid: 2\ndata:"x"\ndata: y\n\n';
    const bytes = Buffer.from(body, 'utf8');
    const chunked = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n'),
      ...[bytes.subarray(0, 13), bytes.subarray(13)].map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')])),
    ]);
    for (const cut of [1, 7, 50, 90, chunked.length - 1]) {
      const r = new SseReader();
      const heads: unknown[] = [];
      const events: unknown[] = [];
      for (const part of [chunked.subarray(0, cut), chunked.subarray(cut)]) {
        t.ok(
          r.read(
            part,
            (status, line) => heads.push([status, line]),
            (event, data) => events.push([event, data]),
          ),
          'still open',
        );
      }
      t.same(heads, [[200, 'HTTP/1.1 200 OK']], `cut at ${cut}: the head once`);
      t.same(
        events,
        [
          ['message', '"hé"'],
          ['missed', '{"time":0}'],
          ['message', '"x"\ny'],
        ],
        `cut at ${cut}: the events, comments left out, UTF-8 decoded`,
      );
    }
    t.notOk(
      new SseReader().read(
        Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
        () => {},
        () => {},
      ),
      'a last chunk ends it',
    );

    // uWebSockets.js writes a chunk's closing line break with the next chunk: the event must not wait for it
    const late = new SseReader();
    const got: string[] = [];
    const read = (text: string) =>
      late.read(
        Buffer.from(text),
        () => {},
        (_e, d) => got.push(d),
      );
    read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n: comet\n\n');
    read('\r\n15\r\nid: 5\ndata: "hello"\n\n');
    t.same(got, ['"hello"'], 'an event read before its chunk is closed');
    read('\r');
    read('\n13\r\nid: 6\ndata: "two"\n\n');
    t.same(got, ['"hello"', '"two"'], 'the line break split over reads');
  });

  t.test('unframed (Nchan), and a refusal', async (t) => {
    const events: string[] = [];
    const r = new SseReader();
    r.read(
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: hi\n\nid: 1:0\ndata: m 1\n'),
      () => {},
      (_e, d) => events.push(d),
    );
    r.read(
      Buffer.from('\nid: 1:1\ndata: m 2\n\n'),
      () => {},
      (_e, d) => events.push(d),
    );
    t.same(events, ['m 1', 'm 2']);
    const heads: number[] = [];
    new SseReader().read(
      Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad'),
      (status) => heads.push(status),
      () => {},
    );
    t.same(heads, [400]);
  });
});

t.test('stream-readers: a WebSocket', async (t) => {
  t.match(
    wsUpgrade('/sub?channel=c', 'h:1'),
    /^GET \/sub\?channel=c HTTP\/1\.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\nSec-WebSocket-Version: 13\r\n\r\n$/,
  );

  /** A server frame: unmasked. */
  const frame = (opcode: number, payload: Buffer, fin = true) => {
    const len = payload.length;
    const head = len < 126 ? Buffer.from([opcode | (fin ? 0x80 : 0), len]) : Buffer.from([opcode | (fin ? 0x80 : 0), 126, len >> 8, len & 255]);
    return Buffer.concat([head, payload]);
  };
  const big = 'x'.repeat(300);
  const stream = Buffer.concat([
    Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'),
    frame(OPCODE.text, Buffer.from('{"id":1,"time":5}')),
    frame(OPCODE.ping, Buffer.from('p')),
    frame(OPCODE.text, Buffer.from('héllo'), false),
    frame(OPCODE.continuation, Buffer.from(' world')),
    frame(OPCODE.text, Buffer.from(big)),
  ]);
  for (const cut of [1, 20, 70, 75, stream.length - 2]) {
    const r = new WsReader();
    const heads: number[] = [];
    const frames: [number, string][] = [];
    for (const part of [stream.subarray(0, cut), stream.subarray(cut)]) {
      r.read(
        part,
        (status) => heads.push(status),
        (opcode, payload) => frames.push([opcode, payload.toString('utf8')]),
      );
    }
    t.same(heads, [101], `cut at ${cut}: the upgrade once`);
    t.same(
      frames,
      [
        [OPCODE.text, '{"id":1,"time":5}'],
        [OPCODE.ping, 'p'],
        [OPCODE.text, 'héllo world'],
        [OPCODE.text, big],
      ],
      `cut at ${cut}: every frame, the fragmented one whole`,
    );
  }
  t.throws(
    () =>
      new WsReader().read(
        Buffer.from('HTTP/1.1 101 S\r\n\r\n\x81\x81abcdx', 'latin1'),
        () => {},
        () => {},
      ),
    /masked frame/,
  );

  // a client frame is masked: unmasking it gives the payload back
  for (const payload of [Buffer.from('{"id":1}'), Buffer.alloc(200, 7), Buffer.alloc(70_000, 3)]) {
    const f = maskedFrame(OPCODE.text, payload);
    t.equal(f[0], 0x81, 'FIN and text');
    t.equal(f[1] & 0x80, 0x80, 'the mask bit');
    const len7 = f[1] & 0x7f;
    const at = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
    const len = len7 < 126 ? len7 : len7 === 126 ? f.readUInt16BE(2) : Number(f.readBigUInt64BE(2));
    t.equal(len, payload.length, `length ${payload.length}`);
    const unmasked = Buffer.from(f.subarray(at + 4).map((b, i) => b ^ f[at + (i & 3)]));
    t.ok(unmasked.equals(payload), `${payload.length} bytes unmasked`);
  }
});

t.test('promSum', async (t) => {
  const text = [
    '# HELP comet_waiting_gets Gets in progress.',
    '# TYPE comet_waiting_gets gauge',
    'comet_waiting_gets_total 1000',
    'comet_waiting_gets{thread="0",x="a}b"} 2',
    'comet_waiting_gets{thread="1"} 5 1700000000000',
    'comet_waiting 77',
    '',
  ].join('\n');
  t.equal(promSum(text, 'comet_waiting_gets'), 7, 'labelled samples summed; _total, HELP/TYPE and shorter names ignored');
  t.equal(promSum('comet_requests_total 12\n', 'comet_requests_total'), 12, 'no labels');
  t.equal(promSum(text, 'comet_waiting'), 77);
  t.ok(Number.isNaN(promSum(text, 'comet_channels')), 'absent: NaN');
  t.ok(Number.isNaN(promSum('comet_waiting_gets_total 3\n', 'comet_waiting_gets')), 'only a longer name: NaN');
});

t.test("gc: GC milliseconds per 1,000 requests from the target's comet_gc_seconds_total", async (t) => {
  const page = '# TYPE comet_gc_seconds_total counter\ncomet_gc_seconds_total{kind="minor"} 0.25\ncomet_gc_seconds_total{kind="major"} 0.5\n';
  t.equal(gcSecondsOf({ status: 200, body: page }), 0.75, 'both kinds summed');
  t.equal(gcSecondsOf({ status: 200, body: 'comet_waiting_gets 3\n' }), null, 'a page without the counter: null');
  t.equal(gcSecondsOf({ status: 404, body: page }), null, 'no /metrics: null');
  t.equal(gcMsPer1k(1.5, 1.75, 50_000), 5, '0.25 s over 50,000 requests: 5 ms per 1,000');
  t.equal(gcMsPer1k(2, 2, 1000), 0, 'no collection in the window: a true 0');
  t.equal(gcMsPer1k(null, 1, 1000), null, 'unknown before: null');
  t.equal(gcMsPer1k(1, null, 1000), null, 'unknown after: null');
  t.equal(gcMsPer1k(1, 2, 0), null, 'no request: null');
});

t.test("context.gcSeconds: summed over the target's nodes, null where one does not count it", async (t) => {
  const http = await import('node:http');
  const serve = (body: string | null) =>
    new Promise<{ url: string; close: () => void }>((resolve) => {
      const server = http.createServer((req, res) => {
        if (req.url === '/metrics' && body !== null) res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
        else res.writeHead(404).end();
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        resolve({ url: `http://127.0.0.1:${port}/`, close: () => server.close() });
      });
    });
  const a = await serve('comet_gc_seconds_total{kind="minor"} 1\ncomet_gc_seconds_total{kind="major"} 0.5\n');
  const b = await serve('comet_gc_seconds_total{kind="minor"} 2\n');
  const none = await serve(null);
  t.teardown(() => [a, b, none].forEach((s) => s.close()));
  const settings = settingsFrom(parseOptions([], 'comet-bench'));
  const gcOf = async (urls: string[]) => {
    const target = { adapterRef: 'simple-comet', url: urls[0], urls } as TargetHandle;
    const ctx = await createContext(target, settings, null);
    try {
      return await ctx.gcSeconds();
    } finally {
      ctx.close();
    }
  };
  t.equal(await gcOf([a.url]), 1.5, 'one node');
  t.equal(await gcOf([a.url, b.url]), 3.5, 'two nodes');
  t.equal(await gcOf([a.url, none.url]), null, 'a node without /metrics');
  t.equal(await gcOf([none.url]), null, 'a target without /metrics (Nchan)');
});

t.test('loadAdapter', async (t) => {
  t.same(builtInAdapters, ['simple-comet', 'nchan']);
  const a = await loadAdapter('simple-comet', 'http://127.0.0.1:1/comet');
  t.equal(new URL(a.put('c', 'm').path, 'http://x').pathname, '/comet');
  t.equal((await loadAdapter('nchan', 'http://127.0.0.1:1/')).put('c', 'm').method, 'POST');

  const dir = t.testdir({
    'partial.js': 'export default () => ({ put: () => ({ path: "/" }), get: () => ({ path: "/" }) });\n',
    'not-a-factory.js': 'export default { put() {} };\n',
    'ok.js': 'export default (url) => ({ put: () => ({ path: url.pathname }), sync() {}, get() {}, readPut() {}, readGet() {} });\n',
  });
  const missing = path.join(dir, 'no-such-adapter.js');
  await t.rejects(loadAdapter(missing, 'http://h:1/'), { message: /no-such-adapter\.js/ }, 'a bad path names the path');
  await t.rejects(loadAdapter(path.join(dir, 'partial.js'), 'http://h:1/'), { message: /partial\.js: sync is missing/ });
  await t.rejects(loadAdapter(path.join(dir, 'not-a-factory.js'), 'http://h:1/'), { message: /default export must be a function/ });
  const ok = await loadAdapter(path.relative(process.cwd(), path.join(dir, 'ok.js')), 'http://h:1/base');
  t.equal(ok.put('c', 'm').path, '/base', 'a relative module path works and the factory gets the URL');
});

// ------------------------------------------------------------------ CPU lists and pinning

t.test('cpu', async (t) => {
  t.same(parseCpuList('0-2,5'), [0, 1, 2, 5]);
  t.same(parseCpuList('3'), [3]);
  t.same(parseCpuList('0'), [0]);
  t.same(parseCpuList('8-15'), [8, 9, 10, 11, 12, 13, 14, 15]);
  t.equal(defaultPinning(1), null, 'one core: nothing to split');
  t.same(defaultPinning(2), { server: '0', load: '1' });
  t.same(defaultPinning(3), { server: '0', load: '1-2' });
  t.same(defaultPinning(4), { server: '0-1', load: '2-3' });
  t.same(defaultPinning(16), { server: '0-7', load: '8-15' });
  for (const n of [2, 3, 4, 5, 16, 64]) {
    const p = defaultPinning(n)!;
    const all = [...parseCpuList(p.server), ...parseCpuList(p.load)].sort((a, b) => a - b);
    t.same(
      all,
      Array.from({ length: n }, (_, i) => i),
      `${n} cores: disjoint halves covering every core`,
    );
  }
  t.ok(processCpuUs(process.pid) > 0, 'this process has used CPU');
  t.equal(processCpuUs(2 ** 22 + 12345), 0, 'a missing process has used none');
});

// ------------------------------------------------------------------ options

t.test('settings.parseOptions', async (t) => {
  t.test('defaults', async (t) => {
    const o = parseOptions([], 'comet-bench');
    t.same(o.scenario, SCENARIOS);
    t.same(o.target, ['comet-1', 'comet-2', 'ceiling', 'nchan-1', 'nchan-2']);
    t.same(o.case, ['put-one', 'put-many', 'sync', 'get-buffered']);
    t.equal(o.runs, 3);
    t.equal(o.duration, 5);
    t.equal(o.warmup, 1);
    t.same(o.waiters, [1000, 10000]);
    t.same(o.idle, [1000, 10000, 18000]);
    t.equal(o.pin, true);
    t.equal(o.url, '');
    t.equal(o.json, 'bench/results/latest.json');
    t.equal(o.quick, false);
    t.equal(OPTIONS.length, Object.keys(o).length, 'one option per table row');
    const s = settingsFrom(o);
    t.equal(s.roundPauseMs, 200);
    t.equal(s.settleMs, 2000);
    t.equal(s.runTimeoutS, 300);
  });

  t.test('--quick takes the quick defaults, explicit options still win', async (t) => {
    const q = parseOptions(['--quick'], 'x');
    t.equal(q.runs, 1);
    t.equal(q.duration, 2);
    t.equal(q.warmup, 0.5);
    t.same(q.waiters, [1000]);
    t.same(q.idle, [1000]);
    t.equal(q.rounds, 3);
    t.equal(settingsFrom(q).settleMs, 500);
    const q2 = parseOptions(['--quick', '--runs', '2', '--waiters', '5,6'], 'x');
    t.equal(q2.runs, 2);
    t.same(q2.waiters, [5, 6]);
  });

  t.test('--url implies the external target unless --target is given', async (t) => {
    t.same(parseOptions(['--url', 'http://h:1/comet'], 'x').target, ['external']);
    t.same(parseOptions(['--url', 'http://h:1/', '--target', 'comet-1,external'], 'x').target, ['comet-1', 'external']);
    t.same(parseOptions(['--target=ceiling', '--url', 'http://h:1/'], 'x').target, ['ceiling']);
  });

  t.test('kebab-case options, flags and numbers', async (t) => {
    const o = parseOptions(['--run-timeout', '20', '--message-bytes=64', '--pin=false', '--channels', '1_000'], 'x');
    t.equal(o.runTimeout, 20);
    t.equal(o.messageBytes, 64);
    t.equal(o.pin, false);
    t.equal(o.channels, 1000);
    t.equal(settingsFrom(o).pinning, null, '--pin=false: nothing pinned');
  });

  t.test('validation', async (t) => {
    t.throws(() => parseOptions(['--runs', '0'], 'x'), /--runs must be within 1\.\.20/);
    t.throws(() => parseOptions(['--duration', '0.1'], 'x'), /--duration must be within/);
    t.throws(() => parseOptions(['--round-pause', '-1'], 'x'), /--round-pause must be within 0\.\.10000/);
    t.equal(settingsFrom(parseOptions(['--round-pause', '0'], 'x')).roundPauseMs, 0, 'no pause at all is a pause');
    t.throws(() => parseOptions(['--waiters', '70000'], 'x'), /waiter counts must be 1\.\.60000, got 70000/);
    t.throws(() => parseOptions(['--idle', '0'], 'x'), /waiter counts/);
    t.throws(() => parseOptions(['--waiters', '1.5'], 'x'), /waiter counts/);
    t.throws(() => parseOptions(['--runs', 'three'], 'x'), /--runs wants a number/);
    t.throws(() => parseOptions(['--bogus'], 'x'), /unknown option --bogus/);
    t.throws(() => parseOptions(['--runs'], 'x'), /--runs needs a value/);
  });
});

// ------------------------------------------------------------------ the plan

t.test('runner.plan', async (t) => {
  const settingsFor = (argv: string[]) => settingsFrom(parseOptions(argv, 'x'));
  const s = settingsFor(['--case', 'put-one,sync,get-buffered', '--waiters', '10,20', '--idle', '5', '--threads', '1,2,4']);

  const count = (scenario: string, targets: string[]) => plan({ scenarios: [scenario], targets, settings: s }).length;
  t.equal(count('throughput', ['comet-1', 'ceiling']), 6, 'cases × targets');
  t.equal(count('fanout', ['comet-1', 'ceiling', 'nchan-1']), 6, 'waiter counts × targets');
  t.equal(count('channels', ['comet-1']), 2);
  t.equal(count('idle', ['comet-1', 'ceiling']), 2);

  const units = plan({ scenarios: ['throughput', 'fanout', 'channels', 'idle'], targets: ['comet-1', 'ceiling'], settings: s });
  t.equal(units.length, 6 + 4 + 4 + 2);
  type Unit = { scenario: string; case?: string; waiters?: number; threads?: number; target: string };
  const what = (u: Unit) => [u.scenario, u.case, u.waiters, u.threads, u.target].join('/');
  t.equal(new Set(units.map(what)).size, units.length, 'each unit measures something no other does');
  t.ok(units.every((u: { run: unknown }) => typeof u.run === 'function'));
  t.same([...new Set(units.map((u: { scenario: string }) => u.scenario))], ['throughput', 'fanout', 'channels', 'idle'], 'in the order asked');
  t.same(
    units.filter((u: { scenario: string }) => u.scenario === 'fanout').map((u: Unit) => `${u.waiters} ${u.target}`),
    ['10 comet-1', '10 ceiling', '20 comet-1', '20 ceiling'],
  );
  t.same(units[0].pin, s.pinning);

  const scaling = plan({ scenarios: ['scaling'], targets: ['comet-1', 'ceiling', 'nchan-2'], settings: s });
  t.equal(scaling.length, 3 * 2 * 2, 'threads × {comet, nchan} × {put-many, fanout}');
  t.same(
    [...new Set(scaling.map((u: { target: string }) => u.target))].sort(),
    ['comet-1', 'comet-2', 'comet-4', 'nchan-1', 'nchan-2', 'nchan-4'],
    'comet-N and nchan-N at each thread count, no ceiling',
  );
  for (const u of scaling) {
    t.equal(u.target.endsWith(`-${u.threads}`), true, `${what(u)}: target matches its thread count`);
    t.ok(u.case === 'put-many' || (u.case === 'fanout' && u.waiters === s.scalingWaiters), what(u));
  }
  t.equal(plan({ scenarios: ['scaling'], targets: ['ceiling'], settings: s }).length, 0, 'nothing to scale');
  t.same(
    plan({ scenarios: ['auth'], targets: ['ceiling'], settings: s }).map((u: Unit) => `${u.case} ${u.target}`),
    ['put comet-1', 'put comet-1-auth', 'get-chain comet-1', 'get-chain comet-1-auth'],
    'auth: each case without and with auth, side by side, whatever --target says',
  );
  t.same(
    plan({ scenarios: ['limits'], targets: ['ceiling'], settings: s }).map((u: Unit) => `${u.case} ${u.target}`),
    ['put comet-1', 'put comet-1-limits', 'get-chain comet-1', 'get-chain comet-1-limits'],
    'limits: each case without and with the per-client limits, side by side, whatever --target says',
  );
  t.throws(() => plan({ scenarios: ['bogus'], targets: ['comet-1'], settings: s }), /unknown scenario bogus/);

  const st = settingsFor(['--stream-waiters', '10,20', '--stream-idle', '30']);
  const streams = (scenario: string, transport?: string) =>
    plan({ scenarios: [scenario], targets: ['comet-1', 'ceiling', 'nchan-1'], settings: transport ? settingsFor(['--transport', transport]) : st }).map(
      (u: Unit) => `${u.scenario} ${u.case} ${u.waiters} ${u.target}`,
    );
  t.same(
    streams('streams'),
    [
      'stream-fanout sse 10 comet-1',
      'stream-fanout sse 10 nchan-1',
      'stream-fanout sse 20 comet-1',
      'stream-fanout sse 20 nchan-1',
      'stream-fanout ws 10 comet-1',
      'stream-fanout ws 10 nchan-1',
      'stream-fanout ws 20 comet-1',
      'stream-fanout ws 20 nchan-1',
      'stream-fanout longpoll 10 comet-1',
      'stream-fanout longpoll 20 comet-1',
      'stream-idle sse 30 comet-1',
      'stream-idle sse 30 nchan-1',
      'stream-idle ws 30 comet-1',
      'stream-idle ws 30 nchan-1',
      'stream-idle longpoll 30 comet-1',
    ],
    'streams: both transports on comet-server and Nchan, long-poll on comet-server alone, never the ceiling',
  );
  t.same(
    streams('stream-idle'),
    streams('streams').filter((u: string) => u.startsWith('stream-idle')),
    'one part alone',
  );
  t.same(streams('stream-idle', 'ws'), ['stream-idle ws 10000 comet-1', 'stream-idle ws 10000 nchan-1'], '--transport picks transports');
  t.throws(() => parseOptions(['--transport', 'sse,smoke'], 'x'), /--transport must be of sse, ws, longpoll, got smoke/);
});

t.test('targets.describeTarget', async (t) => {
  t.match(describeTarget('comet-3'), { kind: 'comet', threads: 3, adapterRef: 'simple-comet' });
  t.match(describeTarget('ceiling'), { kind: 'ceiling', adapterRef: 'simple-comet' });
  t.match(describeTarget('nchan-2'), { kind: 'nchan', threads: 2, adapterRef: 'nchan', label: 'nginx + Nchan, 2 workers' });
  t.match(describeTarget('external', { url: 'http://h:1/', adapter: './a.js' }), { kind: 'external', label: 'http://h:1/', adapterRef: './a.js' });
  t.throws(() => describeTarget('external'), /needs --url/);
  t.match(describeTarget('comet-1-auth'), { id: 'comet-1-auth', kind: 'comet', threads: 1, label: 'comet-server --threads 1 --auth all' });
  t.match(describeTarget('comet-2-limits'), {
    id: 'comet-2-limits',
    kind: 'comet',
    threads: 2,
    label: 'comet-server --threads 2 --rate-limit 1000000 --rate-burst 1000000 --max-connections-per-ip 100000',
  });
  t.throws(() => describeTarget('comet'), /unknown target comet/);
});

t.test('scenario helpers', async (t) => {
  // boundBy reads only the capacities
  const ctx = { serverCapacity: 1, loadCapacity: 2 } as Context;
  t.equal(boundBy(ctx, 0.95, 1.0), 'server');
  t.equal(boundBy(ctx, 0.5, 1.9), 'load');
  t.equal(boundBy(ctx, 0.9, 1.8), 'both');
  t.equal(boundBy(ctx, 0.2, 0.2), 'neither');
  t.equal(messageWith('tok', 8), 'tok.....');
  t.equal(messageWith('long-token', 4), 'long-token', 'never cuts the token');
  t.equal(exactQuantile([1, 2, 3, 4], 0.5), 2);
  t.equal(exactQuantile([1, 2, 3, 4], 1), 4);
  t.ok(Number.isNaN(exactQuantile([], 0.5)));
});

t.test('token.mintToken: an HS256 JWT the secret verifies, every channel, an hour', async (t) => {
  const token = mintToken('s'.repeat(32));
  const [header, claims, signature] = token.split('.');
  t.same(JSON.parse(Buffer.from(header, 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });
  const { exp, channels } = JSON.parse(Buffer.from(claims, 'base64url').toString());
  t.same(channels, ['*']);
  t.ok(Math.abs(exp - (Date.now() / 1000 + 3600)) < 5, 'exp an hour from now, in seconds');
  t.equal(signature, createHmac('sha256', 's'.repeat(32)).update(`${header}.${claims}`).digest('base64url'));
  t.equal(randomSecret().length, 64, '32 random bytes');
});

t.test('wrkScript with a chain: put and get in turn, the get from the newest get answer', async (t) => {
  const put = { path: '/?method=put&channel=c&message=m', headers: { Authorization: 'Bearer T' } };
  const get = { path: `/?method=get&channel=c&time=${CURSOR_MARK}&timeout=60`, headers: { Authorization: 'Bearer T' } };
  const lua = wrkScript([put], [], { put, get, cursor: '41', answered: '^{"time":(%d+),"messages"' });
  t.match(lua, 'local cursor = [==[41]==]');
  t.match(
    lua,
    'wrk.format([==[GET]==], [==[/?method=get&channel=c&time=]==] .. cursor .. [==[&timeout=60]==], {[ [==[Authorization]==] ] = [==[Bearer T]==]}, nil)',
  );
  t.match(lua, /response = function\(status, headers, body\)/);
  t.match(lua, 'tonumber(t) > newest', 'an answer older than the newest never moves the cursor back');
  t.throws(() => wrkScript([put], [], { put, get: put, cursor: '1', answered: 'x' }), /must hold CURSOR once/);
});

// ------------------------------------------------------------------ the release gate

t.test('harness/gate.js evaluate', async (t) => {
  const entry = (scenario: string, target: string, runs: Array<Record<string, number>>, extra: Record<string, unknown> = {}) => ({
    scenario,
    target,
    runs,
    ...extra,
  });
  const results = {
    meta: {},
    targets: [],
    failures: [],
    entries: [
      entry(
        'throughput',
        'comet-1',
        [
          { serverCpuUs: 10, rps: 80 },
          { serverCpuUs: 12, rps: 90 },
          { serverCpuUs: 11, rps: 70 },
        ],
        { case: 'put-many' },
      ),
      entry('throughput', 'ceiling', [{ serverCpuUs: 5.5, rps: 100 }], { case: 'put-many' }),
      entry('throughput', 'comet-1', [{ serverCpuUs: 99 }], { case: 'sync' }),
      entry('fanout', 'comet-1', [{ p99Ms: 40 }], { waiters: 1000 }),
      entry('fanout', 'ceiling', [{ p99Ms: 20 }], { waiters: 1000 }),
      entry('fanout', 'comet-1', [{ p99Ms: 400 }], { waiters: 10000 }),
      entry('fanout', 'ceiling', [], { waiters: 10000 }),
    ],
  };
  const check = (c: Omit<Check, 'name'>): Check => ({ name: 'c', ...c });
  const [cpu, cpuStrict, rps, p99, sync, noRuns, noFigure] = evaluate(results, [
    check({ scenario: 'throughput', case: 'put-many', figure: 'serverCpuUs', lowerIsBetter: true, minRatio: 0.5 }),
    check({ scenario: 'throughput', case: 'put-many', figure: 'serverCpuUs', lowerIsBetter: true, minRatio: 0.51 }),
    check({ scenario: 'throughput', case: 'put-many', figure: 'rps', minRatio: 0.8 }),
    check({ scenario: 'fanout', waiters: 1000, figure: 'p99Ms', lowerIsBetter: true, minRatio: 0.4 }),
    check({ scenario: 'throughput', case: 'sync', figure: 'serverCpuUs', lowerIsBetter: true, minRatio: 0.01 }),
    check({ scenario: 'fanout', waiters: 10000, figure: 'p99Ms', lowerIsBetter: true, minRatio: 0.01 }),
    check({ scenario: 'fanout', waiters: 1000, figure: 'rps', minRatio: 0 }),
  ]);
  t.match(cpu, { comet: 11, ceiling: 5.5, ratio: 0.5, pass: true }, 'lower is better: ceiling / comet over the median');
  t.match(cpuStrict, { ratio: 0.5, pass: false });
  t.match(rps, { comet: 80, ceiling: 100, ratio: 0.8, pass: true }, 'higher is better: comet / ceiling');
  t.match(p99, { comet: 40, ceiling: 20, ratio: 0.5, pass: true }, "the entry of the check's waiter count");
  t.equal(sync.pass, false, 'no ceiling entry: fails');
  t.ok(Number.isNaN(sync.ceiling));
  t.equal(noRuns.pass, false, 'an entry without runs: fails');
  t.equal(noFigure.pass, false, 'a figure the runs lack: fails');
  t.same(
    evaluate({ meta: {}, targets: [], entries: [], failures: [] }, [check({ scenario: 'fanout', figure: 'p99Ms', minRatio: 0 })]).map(
      (v: { pass: boolean }) => v.pass,
    ),
    [false],
    'nothing measured: fails even at 0',
  );

  const again = {
    meta: {},
    targets: [],
    failures: [{ what: 'x', message: 'm' }],
    entries: [
      entry('throughput', 'comet-1', [{ serverCpuUs: 30 }, { serverCpuUs: 40 }], { case: 'put-many' }),
      entry('throughput', 'ceiling', [{ serverCpuUs: 20 }, { serverCpuUs: 20 }], { case: 'put-many' }),
      entry('throughput', 'ceiling', [{ serverCpuUs: 7 }], { case: 'sync' }),
      entry('fanout', 'ceiling', [{ p99Ms: 20 }], { waiters: 10000 }),
    ],
  };
  const both = pooled(results, again);
  t.same(
    both.entries.map((e: { target: string; case?: string; waiters?: number; runs: unknown[] }) => [e.target, e.case ?? e.waiters, e.runs.length]),
    [
      ['comet-1', 'put-many', 5],
      ['ceiling', 'put-many', 3],
      ['comet-1', 'sync', 1],
      ['comet-1', 1000, 1],
      ['ceiling', 1000, 1],
      ['comet-1', 10000, 1],
      ['ceiling', 10000, 1],
      ['ceiling', 'sync', 1],
    ],
    'runs join the entry of the same scenario, target, case and waiters; a new entry is added',
  );
  t.same(both.failures, [{ what: 'x', message: 'm' }], 'failures of either measurement are kept');
  t.equal(results.entries[0].runs.length, 3, 'the first results are not changed');
  const [pooledCpu, pooledSync] = evaluate(both, [
    check({ scenario: 'throughput', case: 'put-many', figure: 'serverCpuUs', lowerIsBetter: true, minRatio: 0.5 }),
    check({ scenario: 'throughput', case: 'sync', figure: 'serverCpuUs', lowerIsBetter: true, minRatio: 0.01 }),
  ]);
  t.match(pooledCpu, { comet: 12, ceiling: 20, pass: true }, 'judged on the median of all the runs');
  t.match(pooledSync, { comet: 99, ceiling: 7, pass: true }, 'a figure only the second measurement had');

  t.same(
    gateArguments([check({ scenario: 'throughput', case: 'sync', figure: 'serverCpuUs', minRatio: 1 })], true),
    ['--scenario', 'throughput', '--target', 'comet-1,ceiling', '--case', 'sync', '--runs', '3', '--duration', '2', '--rounds', '10'],
    'only what the checks name: a re-measurement of one check measures its case alone',
  );
  t.same(
    gateArguments(
      [
        check({ scenario: 'fanout', waiters: 1000, figure: 'p99Ms', minRatio: 1 }),
        check({ scenario: 'throughput', case: 'put-many', figure: 'p99Ms', minRatio: 1 }),
      ],
      false,
    ).slice(0, 8),
    ['--scenario', 'fanout,throughput', '--target', 'comet-1,ceiling', '--case', 'put-many', '--waiters', '1000'],
  );

  const checks = loadChecks();
  t.ok(checks.length > 0, 'bench/gate.json has checks');
  for (const c of checks) {
    t.match(c, { name: String, scenario: /^(throughput|fanout)$/, figure: String, minRatio: Number }, c.name);
    t.ok(c.minRatio > 0 && c.minRatio <= 1, `${c.name}: a ratio threshold`);
  }
  const file = path.join(t.testdir({ 'checks.json': JSON.stringify({ checks: [{ name: 'only' }] }) }), 'checks.json');
  t.same(loadChecks(file), [{ name: 'only' }], 'another checks file');
  t.ok(fs.existsSync(file));
});
