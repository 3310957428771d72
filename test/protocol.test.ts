/**
 * The wire contract (shared/protocol.md), rule by rule, against a server with
 * one and with three threads. Channels are many and distinct so that several
 * owner threads answer.
 */
import t from 'tap';
import { encodeForm, parseRawResponse, rawExchange, startServer, stillPending, within } from './helpers/server.js';
import { chain, channels, checkJsonHeaders, checkMessages, isTime, JSON_TYPE, putAll, strictlyIncreasing, uniq } from './helpers/protocol.js';

const ORIGIN = 'https://app.example';
const AT_ONCE_MS = 1000;

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    const srv = await startServer({ t, threads });
    // Same server with options changed, for the rules that depend on them.
    const custom = await startServer({
      t,
      threads,
      args: ['--poll-timeout', '2', '--buffer-size', '5', '--cors-origin', ORIGIN, '--max-message-bytes', '200000', '--max-body-bytes', '1000000'],
    });

    t.test('put answers at once with {"time":T}, T in wall-clock microseconds', async (t) => {
      for (const ch of channels('put', 8)) {
        const before = Date.now() * 1000;
        const res = await srv.call({ method: 'put', channel: ch, message: 'hello' });
        t.equal(res.status, 200, 'status 200');
        checkJsonHeaders(t, res);
        t.strictSame(Object.keys(res.json ?? {}), ['time'], 'body is {"time":T}', { body: res.body });
        t.ok(isTime(res.json?.time), 'time is an integer <= 2^53-1', { time: res.json?.time });
        t.ok(res.json?.time >= before - 60e6 && res.json?.time <= Date.now() * 1000 + 60e6, 'time is close to the wall clock in microseconds', {
          time: res.json?.time,
          nowMicros: Date.now() * 1000,
        });
        t.ok(res.ms < AT_ONCE_MS, 'answered at once', { ms: res.ms });
      }
    });

    t.test('sync answers at once; every stored time <= T < every later put (rule 2)', async (t) => {
      for (const ch of channels('sync', 6)) {
        const fresh = await srv.call({ method: 'sync', channel: ch });
        t.equal(fresh.status, 200, 'sync on a fresh channel: 200');
        checkJsonHeaders(t, fresh);
        t.strictSame(Object.keys(fresh.json ?? {}), ['time'], 'body is {"time":T}', { body: fresh.body });
        t.ok(isTime(fresh.json?.time), 'time is an integer');
        t.ok(fresh.ms < AT_ONCE_MS, 'answered at once');
        const [ta, tb] = await putAll(srv, ch, ['a', 'b']);
        t.ok(ta! > fresh.json.time, 'a put after sync gets a larger time');
        t.ok(tb! > ta!, 'put times increase');
        const s = await srv.sync(ch);
        t.ok(s >= tb!, 'sync >= time of every stored message', { s, tb });
        const tc = await srv.put(ch, 'c');
        t.ok(tc > s, 'a put after sync answered gets a time > sync', { s, tc });
        const a = await srv.get(ch, { time: s, timeout: 0 });
        checkMessages(t, a, ['c'], 'get from the sync time');
        t.equal(a.time, tc, 'answer time = time of the last message');
        const b = await srv.get(ch, { time: ta, timeout: 0 });
        checkMessages(t, b, ['b', 'c'], 'get from the first put time');
        t.equal(b.time, tc);
        t.ok((await srv.sync(ch)) >= tc, 'sync after the last put >= its time');
      }
    });

    t.test('times strictly increase per channel, for sequential and concurrent puts', async (t) => {
      const ch = uniq('incr');
      const s = await srv.sync(ch);
      const seq = Array.from({ length: 30 }, (_, i) => `s${i}`);
      const seqTimes = await putAll(srv, ch, seq);
      t.ok(strictlyIncreasing(seqTimes), 'sequential put times strictly increase');
      const conc = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const concTimes = await Promise.all(conc.map((m) => srv.put(ch, m)));
      t.equal(new Set(concTimes).size, conc.length, 'concurrent puts get distinct times');
      t.ok(Math.min(...concTimes) > seqTimes.at(-1)!, 'later puts get larger times');
      t.ok([...seqTimes, ...concTimes].every(isTime), 'all times are safe integers');
      const byTime = conc.map((m, i) => ({ m, time: concTimes[i]! })).sort((x, y) => x.time - y.time);
      const got = await chain(srv, ch, s, seq.length + conc.length);
      t.notOk(got.missed, 'no missed');
      t.strictSame(got.messages, [...seq, ...byTime.map((x) => x.m)], 'messages come back in time order');
      t.equal(got.answers.at(-1)?.time, byTime.at(-1)?.time, 'last answer time = last message time');
    });

    t.test('get with time answers at once with the newer messages, oldest first', async (t) => {
      for (const ch of channels('newer', 6)) {
        const [t1, t2, t3] = await putAll(srv, ch, ['m1', 'm2', 'm3']);
        const a = await srv.get(ch, { time: t1, timeout: 10 });
        checkMessages(t, a, ['m2', 'm3'], 'get time=t1');
        checkJsonHeaders(t, a.res);
        t.equal(a.time, t3, 'answer time = time of the last message');
        t.ok(a.res.ms < AT_ONCE_MS, 'answered at once', { ms: a.res.ms });
        const b = await srv.get(ch, { time: t2, timeout: 10 });
        checkMessages(t, b, ['m3'], 'get time=t2');
        t.equal(b.time, t3);
        t.ok(b.res.ms < AT_ONCE_MS, 'answered at once');
      }
    });

    t.test('get without time waits for the next put and answers with it only', async (t) => {
      const chs = channels('wait', 4);
      for (const ch of chs) await srv.put(ch, 'old');
      const pending = chs.map((ch) => srv.get(ch, { timeout: 10 }));
      t.ok(await srv.waitParked(chs.length), 'every get is parked');
      const stillWaiting = await Promise.all(pending.map((p) => stillPending(p, 150)));
      t.strictSame(
        stillWaiting,
        chs.map(() => true),
        'no get answers before a put',
      );
      for (const [i, ch] of chs.entries()) {
        const tp = await srv.put(ch, `new-${i}`);
        const a = await within(pending[i]!, 3000, `get on ${ch}`);
        checkMessages(t, a, [`new-${i}`], `get on channel ${i}`);
        t.equal(a.time, tp, 'answer time = time of the put');
        checkJsonHeaders(t, a.res);
      }
    });

    t.test('get with time waits when nothing is newer, then answers with the next put', async (t) => {
      for (const ch of channels('waitt', 3)) {
        const t1 = await srv.put(ch, 'm1');
        const p = srv.get(ch, { time: t1, timeout: 10 });
        await srv.waitWaiting(1);
        t.ok(await stillPending(p, 150), 'the get waits');
        const t2 = await srv.put(ch, 'm2');
        const a = await within(p, 3000, 'waiting get');
        checkMessages(t, a, ['m2'], 'get time=t1');
        t.equal(a.time, t2);
      }
    });

    t.test('timeout=0 answers at once', async (t) => {
      const fresh = uniq('t0fresh');
      const a = await srv.get(fresh, { timeout: 0 });
      checkMessages(t, a, [], 'fresh channel, no time');
      checkJsonHeaders(t, a.res);
      t.ok(a.res.ms < AT_ONCE_MS, 'at once', { ms: a.res.ms });
      const ch = uniq('t0');
      const t1 = await srv.put(ch, 'x');
      const b = await srv.get(ch, { time: t1, timeout: 0 });
      checkMessages(t, b, [], 'nothing newer than t1');
      t.ok(b.time >= t1, 'time >= the time sent', { time: b.time, t1 });
      t.ok(b.time <= (await srv.sync(ch)), 'time <= the channel time');
      t.ok(b.res.ms < AT_ONCE_MS, 'at once');
      const c = await srv.get(ch, { timeout: 0 });
      checkMessages(t, c, [], 'no time: nothing put after arrival');
    });

    t.test('timeout=N ends the wait with {"time":channel time,"messages":[]}, never less than the time sent', async (t) => {
      const ch = uniq('tmo');
      const fresh = uniq('tmofresh');
      const fut = uniq('future');
      const t1 = await srv.put(ch, 'x');
      const tf = await srv.put(fut, 'x');
      const future = tf + 10_000_000;
      // The slow (1 s) gets run side by side.
      const [a, f, b] = await Promise.all([srv.get(ch, { time: t1, timeout: 1 }), srv.get(fresh, { timeout: 1 }), srv.get(fut, { time: future, timeout: 1 })]);
      checkMessages(t, a, [], 'timeout answer');
      checkJsonHeaders(t, a.res);
      t.ok(a.res.ms >= 800 && a.res.ms < 3000, 'answered after about 1 s', { ms: a.res.ms });
      t.ok(a.time >= t1, 'time >= the time sent');
      t.ok(a.time <= (await srv.sync(ch)), 'time <= the channel time');
      checkMessages(t, f, [], 'timeout answer without time');
      t.ok(f.res.ms >= 800 && f.res.ms < 3000, 'answered after about 1 s', { ms: f.res.ms });
      // The timeout answer's time is a valid chaining point.
      const t2 = await srv.put(ch, 'y');
      t.ok(t2 > a.time, 'a later put has a larger time than the timeout answer');
      checkMessages(t, await srv.get(ch, { time: a.time, timeout: 0 }), ['y'], 'chaining from the timeout answer');
      const t3 = await srv.put(fresh, 'z');
      t.ok(t3 > f.time, 'fresh channel: a later put has a larger time than the timeout answer');
      checkMessages(t, await srv.get(fresh, { time: f.time, timeout: 0 }), ['z'], 'fresh channel: chaining from it');

      // A time ahead of the channel's: the answer's time is still >= it.
      checkMessages(t, b, [], 'T0 in the future, timeout=1');
      t.ok(b.time >= future, 'timeout=1: time >= T0', { time: b.time, future });
      const c = await srv.get(fut, { time: future, timeout: 0 });
      checkMessages(t, c, [], 'T0 in the future, timeout=0');
      t.ok(c.time >= future, 'timeout=0: time >= T0', { time: c.time, future });
      const fresh2 = uniq('futurefresh');
      const s = await srv.sync(fresh2);
      const d = await srv.get(fresh2, { time: s + 5_000_000, timeout: 0 });
      t.ok(d.time >= s + 5_000_000, 'fresh channel: time >= T0');
    });

    t.test('timeout never extends the server maximum (--poll-timeout 2)', async (t) => {
      const [ch1, ch2, ch3] = channels('clamp', 3);
      const t3 = await custom.put(ch3!, 'x');
      const [a, b, c] = await Promise.all([
        custom.get(ch1!, { timeout: 60 }, { timeoutMs: 10000 }),
        custom.get(ch2!, {}, { timeoutMs: 10000 }),
        custom.get(ch3!, { time: t3, timeout: 1 }, { timeoutMs: 10000 }),
      ]);
      checkMessages(t, a, [], 'timeout=60');
      t.ok(a.res.ms >= 1500 && a.res.ms < 4500, 'timeout=60 clamped to about 2 s', { ms: a.res.ms });
      checkMessages(t, b, [], 'no timeout');
      t.ok(b.res.ms >= 1500 && b.res.ms < 4500, 'no timeout: the server maximum, about 2 s', { ms: b.res.ms });
      checkMessages(t, c, [], 'timeout=1');
      t.ok(c.res.ms >= 800 && c.res.ms < 1900, 'a shorter timeout is honoured', { ms: c.res.ms });
    });

    t.test('messages come back as the exact strings put', async (t) => {
      const ch = uniq('exact');
      const msgs = [
        '',
        '123',
        'true',
        'null',
        '{"a":1}',
        '[1,2]',
        'émoji 😀 ünï 中文',
        'quotes " \' backslash \\ slash /',
        'line\nbreak\ttab\rcr',
        'ctrl \u0001\u001f\u007f',
        '</script><script>alert(1)</script>',
        'a+b c&d=e%20f?g#h',
        'sep \u2028 \u2029',
      ];
      const s = await srv.sync(ch);
      await putAll(srv, ch, msgs);
      const got = await chain(srv, ch, s, msgs.length);
      t.notOk(got.missed, 'no missed');
      t.strictSame(got.messages, msgs, 'same strings, same order');
      t.ok(
        got.messages.every((m) => typeof m === 'string'),
        'messages are JSON strings',
      );
    });

    t.test('channels are isolated; names are arbitrary UTF-8 up to the limit', async (t) => {
      const id = uniq('');
      const names = [
        `ünï${id}`,
        `a b/c?d&e=f#g+h${id}`,
        `😀${id}`,
        `Case${id}`,
        `case${id}`,
        'é'.repeat(128), // exactly 256 bytes of UTF-8
      ];
      const syncs = await Promise.all(names.map((n) => srv.sync(n)));
      await Promise.all(names.map((n, i) => srv.put(n, `msg-${i}`)));
      for (const [i, n] of names.entries()) {
        checkMessages(t, await srv.get(n, { time: syncs[i], timeout: 0 }), [`msg-${i}`], `channel ${JSON.stringify(n.slice(0, 20))}`);
      }
    });

    t.test('unknown parameters are ignored (e.g. a cache-busting _=...)', async (t) => {
      const ch = uniq('extra');
      const s = await srv.sync(ch);
      const res = await srv.call({ method: 'put', channel: ch, message: 'x', _: Date.now(), foo: 'bar' });
      t.equal(res.status, 200, 'put with extra params: 200');
      const a = await srv.get(ch, { time: s, timeout: 0, _: Date.now() });
      checkMessages(t, a, ['x'], 'get with extra params');
    });

    t.test('POST with an application/x-www-form-urlencoded body', async (t) => {
      t.test('put, sync and get in the body', async (t) => {
        const ch = uniq('post');
        const s = await srv.sync(ch);
        const msg = 'a b+c&d=e ü 😀 %41';
        const res = await srv.post({ method: 'put', channel: ch, message: msg });
        t.equal(res.status, 200, 'put: 200');
        checkJsonHeaders(t, res);
        t.ok(isTime(res.json?.time), 'put: {"time":T}');
        const sres = await srv.post({ method: 'sync', channel: ch });
        t.equal(sres.status, 200, 'sync: 200');
        t.ok(sres.json?.time >= res.json?.time, 'sync time >= put time');
        const g = await srv.post({ method: 'get', channel: ch, time: s, timeout: 0 });
        t.equal(g.status, 200, 'get: 200');
        checkJsonHeaders(t, g);
        t.strictSame(g.json?.messages, [msg], 'form-decoded message (+ is a space, %2B a plus)');
      });

      t.test('Content-Type with a charset parameter', async (t) => {
        const ch = uniq('postcs');
        const s = await srv.sync(ch);
        const res = await srv.request({
          method: 'POST',
          body: encodeForm({ method: 'put', channel: ch, message: 'charset ok' }),
          headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8' },
        });
        t.equal(res.status, 200, 'put: 200', { body: res.body });
        checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), ['charset ok'], 'stored');
      });

      t.test('query and body both carry parameters: body values win', async (t) => {
        const [chQ, chB, chM] = channels('postmix', 3);
        const [sQ, sB, sM] = await Promise.all([srv.sync(chQ!), srv.sync(chB!), srv.sync(chM!)]);
        const res = await srv.request({
          method: 'POST',
          query: { method: 'put', channel: chQ!, message: 'from-query' },
          form: { channel: chB!, message: 'from-body' },
        });
        t.equal(res.status, 200, 'put: 200', { body: res.body });
        checkMessages(t, await srv.get(chB!, { time: sB, timeout: 0 }), ['from-body'], 'body channel and message used');
        checkMessages(t, await srv.get(chQ!, { time: sQ, timeout: 0 }), [], 'query channel untouched');
        const res2 = await srv.request({
          method: 'POST',
          query: { method: 'sync', channel: chM! },
          form: { method: 'put', message: 'body method' },
        });
        t.equal(res2.status, 200, 'query method=sync, body method=put: 200');
        checkMessages(t, await srv.get(chM!, { time: sM, timeout: 0 }), ['body method'], 'body method=put used');
      });

      t.test('a get in a POST body long-polls', async (t) => {
        const ch = uniq('postget');
        const t1 = await srv.put(ch, 'before');
        const p = srv.post({ method: 'get', channel: ch, time: t1, timeout: 10 });
        await srv.waitWaiting(1);
        t.ok(await stillPending(p, 150), 'waits');
        const t2 = await srv.put(ch, 'after');
        const res = await within(p, 3000, 'POST get');
        t.equal(res.status, 200);
        t.strictSame(res.json, { time: t2, messages: ['after'] }, 'answer');
      });

      t.test('a 100 KB message (with --max-message-bytes raised)', async (t) => {
        const ch = uniq('big');
        const unit = 'abcdefghij é 😀 & = + % \n';
        const msg = unit.repeat(Math.ceil(102400 / Buffer.byteLength(unit))).slice(0, 100 * 1024);
        const s = await custom.sync(ch);
        const res = await custom.post({ method: 'put', channel: ch, message: msg });
        t.equal(res.status, 200, 'put: 200', { body: res.body.slice(0, 300) });
        const a = await custom.get(ch, { time: s, timeout: 0 });
        t.equal(a.messages.length, 1, 'one message');
        t.ok(a.messages[0] === msg, 'identical 100 KB message', { length: a.messages[0]?.length, expected: msg.length });
      });
    });

    t.test('missed', async (t) => {
      t.test('a time older than the server start answers at once with missed:true', async (t) => {
        for (const T0 of [0, srv.spawnedAtMicros - 1]) {
          const ch = uniq('missedfresh');
          const a = await srv.get(ch, { time: T0, timeout: 5 });
          t.equal(a.missed, true, `time=${T0}: missed:true`, { body: a.res.body });
          t.strictSame(a.messages, [], 'nothing held');
          t.ok(isTime(a.time), 'time is an integer');
          t.ok(a.res.ms < AT_ONCE_MS, 'answered at once', { ms: a.res.ms });
          const tp = await srv.put(ch, 'after');
          t.ok(tp > a.time, 'a later put has a larger time than the missed answer');
          checkMessages(t, await srv.get(ch, { time: a.time, timeout: 0 }), ['after'], 'chaining from the missed answer');
        }
      });

      t.test('missed:true comes with the messages still held', async (t) => {
        for (const T0 of [0, srv.spawnedAtMicros - 1]) {
          const ch = uniq('missedheld');
          const [, t2] = await putAll(srv, ch, ['x', 'y']);
          const a = await srv.get(ch, { time: T0, timeout: 5 });
          t.equal(a.missed, true, `time=${T0}: missed:true`, { body: a.res.body });
          t.strictSame(a.messages, ['x', 'y'], 'every message held');
          t.equal(a.time, t2, 'time = last message time');
          t.ok(a.res.ms < AT_ONCE_MS, 'answered at once');
        }
      });

      t.test('a client chaining from sync never sees missed', async (t) => {
        for (const ch of channels('nomiss', 4)) {
          const s = await srv.sync(ch);
          checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), [], 'from sync, nothing yet');
          const tp = await srv.put(ch, 'm');
          const a = await srv.get(ch, { time: s, timeout: 5 });
          checkMessages(t, a, ['m'], 'from sync');
          t.equal(a.time, tp);
        }
      });

      t.test('buffer overflow (--buffer-size 5): missed:true and the last 5 messages', async (t) => {
        const ch = uniq('overflow');
        const s = await custom.sync(ch);
        const msgs = Array.from({ length: 10 }, (_, i) => `m${i}`);
        const times = await putAll(custom, ch, msgs);
        const a = await custom.get(ch, { time: s, timeout: 5 });
        t.equal(a.missed, true, 'from the sync before the puts: missed:true', { body: a.res.body });
        t.strictSame(a.messages, msgs.slice(5), 'the last 5 messages');
        t.equal(a.time, times[9], 'time = last message time');
        t.ok(a.res.ms < AT_ONCE_MS, 'answered at once');
        const b = await custom.get(ch, { time: times[3], timeout: 5 });
        t.equal(b.missed, true, 'from m3: m4 was dropped, missed:true');
        t.strictSame(b.messages, msgs.slice(5), 'the last 5 messages');
        const c = await custom.get(ch, { time: times[4], timeout: 5 });
        checkMessages(t, c, msgs.slice(5), 'from m4 (nothing newer was dropped)');
        const d = await custom.get(ch, { time: times[6], timeout: 5 });
        checkMessages(t, d, msgs.slice(7), 'from m6');
      });
    });

    t.test('HEAD answers like GET, without a body, refused or not', async (t) => {
      // Over raw sockets: a body after a HEAD answer would corrupt a keep-alive connection.
      for (const [path, status] of [
        [`/?method=sync&channel=${encodeURIComponent(uniq('head'))}`, 200],
        ['/healthz', 200],
        ['/?method=bogus&channel=x', 400],
      ] as const) {
        const r = await rawExchange(srv, [`HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`], { timeoutMs: 2000, idleMs: 300 });
        const res = parseRawResponse(r.text);
        t.equal(res.status, status, `HEAD ${path}: ${status}`, { text: r.text.slice(0, 300) });
        t.equal(res.rest, '', `HEAD ${path}: no body bytes after the headers`, { rest: res.rest.slice(0, 100) });
        t.match(res.headers['content-type'] ?? '', JSON_TYPE, `HEAD ${path}: JSON Content-Type`);
        if (path !== '/healthz') {
          t.match(res.headers['cache-control'] ?? '', /no-store/i, 'Cache-Control: no-store');
          t.equal(res.headers['access-control-allow-origin'], '*', 'Access-Control-Allow-Origin: *');
        }
      }
    });

    t.test('OPTIONS answers a CORS preflight and stores nothing', async (t) => {
      for (const [server, origin] of [
        [srv, '*'],
        [custom, ORIGIN],
      ] as const) {
        const ch = uniq('options');
        const s = await server.sync(ch);
        const res = await server.request({
          method: 'OPTIONS',
          query: { method: 'put', channel: ch, message: 'nope' },
          headers: {
            Origin: ORIGIN,
            'Access-Control-Request-Method': 'POST',
            'Access-Control-Request-Headers': 'content-type',
          },
        });
        t.equal(res.status, 204, 'status 204');
        t.equal(res.body, '', 'no body');
        t.equal(res.headers['access-control-allow-origin'], origin, `Access-Control-Allow-Origin: ${origin}`);
        const methods = String(res.headers['access-control-allow-methods'] ?? '')
          .split(',')
          .map((m) => m.trim().toUpperCase());
        t.ok(methods.includes('GET') && methods.includes('POST'), 'Access-Control-Allow-Methods lists GET and POST', {
          header: res.headers['access-control-allow-methods'],
        });
        t.equal(res.headers['access-control-allow-headers'], 'Content-Type, Authorization, Last-Event-ID', 'the headers the protocol reads');
        checkMessages(t, await server.get(ch, { time: s, timeout: 0 }), [], 'nothing stored');
      }
    });

    t.test('--cors-origin sets Access-Control-Allow-Origin on every answer to its origin', async (t) => {
      const ch = uniq('cors');
      const opts = { headers: { Origin: ORIGIN } };
      const put = await custom.call({ method: 'put', channel: ch, message: 'x' }, opts);
      t.equal(put.status, 200);
      checkJsonHeaders(t, put, ORIGIN);
      const sync = await custom.call({ method: 'sync', channel: ch }, opts);
      checkJsonHeaders(t, sync, ORIGIN);
      const get = await custom.call({ method: 'get', channel: ch, time: 0, timeout: 0 }, opts);
      checkJsonHeaders(t, get, ORIGIN);
      const err = await custom.call({ method: 'nope', channel: ch }, opts);
      t.equal(err.headers['access-control-allow-origin'], ORIGIN, 'error answers too');
      const dflt = await srv.call({ method: 'nope', channel: ch });
      t.equal(dflt.headers['access-control-allow-origin'], '*', 'default server: * on error answers');
    });
  });
}
