/**
 * The error table, that errors store nothing, and malformed HTTP over raw
 * sockets: the server answers 4xx or closes, and keeps serving afterwards.
 */
import t from 'tap';
import type { Test } from 'tap';
import { encodeForm, rawExchange, startServer, stillPending, within, type CometServer, type RequestOptions } from './helpers/server.js';
import { checkError, checkMessages, uniq } from './helpers/protocol.js';

interface Case {
  name: string;
  /** Builds the request for channel `ch` (the channel whose content must stay unchanged). */
  req: (ch: string) => RequestOptions;
  status: number;
  code: string | RegExp;
}

const BAD_NUMBERS = ['-1', '1.5', 'abc', '', '12abc', 'NaN', 'Infinity', '-0.5'];
const BAD_ENCODINGS = ['%zz', '%C3%28', 'abc%', '%E2%82', '%C0%AF', '%ED%A0%80', '%FF'];

const q = (query: string): RequestOptions => ({ query });

function table(): Case[] {
  const cases: Case[] = [
    { name: 'method missing', req: (ch) => ({ query: { channel: ch, message: 'x' } }), status: 400, code: 'COMET_ERR_BAD_METHOD' },
    { name: 'method empty', req: (ch) => ({ query: { method: '', channel: ch, message: 'x' } }), status: 400, code: 'COMET_ERR_BAD_METHOD' },
    { name: 'method unknown', req: (ch) => ({ query: { method: 'publish', channel: ch, message: 'x' } }), status: 400, code: 'COMET_ERR_BAD_METHOD' },
    {
      name: 'method not a protocol method',
      req: (ch) => ({ query: { method: 'toString', channel: ch, message: 'x' } }),
      status: 400,
      code: 'COMET_ERR_BAD_METHOD',
    },
    { name: 'put with message missing', req: (ch) => ({ query: { method: 'put', channel: ch } }), status: 400, code: 'COMET_ERR_MISSING_MESSAGE' },
    {
      name: 'put with a channel one byte over 256',
      req: () => ({ query: { method: 'put', channel: 'c'.repeat(257), message: 'x' } }),
      status: 400,
      code: 'COMET_ERR_BAD_CHANNEL',
    },
    {
      name: 'put with a channel of 129 two-byte characters (258 bytes)',
      req: () => ({ query: { method: 'put', channel: 'é'.repeat(129), message: 'x' } }),
      status: 400,
      code: 'COMET_ERR_BAD_CHANNEL',
    },
    {
      name: 'put with a message of 65537 bytes',
      req: (ch) => ({ form: { method: 'put', channel: ch, message: 'm'.repeat(65537) } }),
      status: 413,
      // The body is a few bytes over 65536 too: either limit may speak first.
      code: /^COMET_ERR_(MESSAGE|BODY)_TOO_LARGE$/,
    },
    {
      name: 'put with a bad callback',
      req: (ch) => ({ query: { method: 'put', channel: ch, message: 'x', callback: 'alert(1)' } }),
      status: 400,
      code: 'COMET_ERR_BAD_CALLBACK',
    },
    { name: 'HTTP PUT', req: (ch) => ({ method: 'PUT', query: { method: 'put', channel: ch, message: 'x' } }), status: 405, code: 'COMET_ERR_HTTP_METHOD' },
    {
      name: 'HTTP DELETE',
      req: (ch) => ({ method: 'DELETE', query: { method: 'put', channel: ch, message: 'x' } }),
      status: 405,
      code: 'COMET_ERR_HTTP_METHOD',
    },
    {
      name: 'HTTP PATCH with a form body',
      req: (ch) => ({ method: 'PATCH', form: { method: 'put', channel: ch, message: 'x' } }),
      status: 405,
      code: 'COMET_ERR_HTTP_METHOD',
    },
    { name: 'unknown path', req: (ch) => ({ path: '/nope', query: { method: 'put', channel: ch, message: 'x' } }), status: 404, code: 'COMET_ERR_NOT_FOUND' },
    {
      name: 'unknown path (POST)',
      req: (ch) => ({ path: '/index.html', form: { method: 'put', channel: ch, message: 'x' } }),
      status: 404,
      code: 'COMET_ERR_NOT_FOUND',
    },
    {
      name: 'POST with a JSON body',
      req: (ch) => ({
        method: 'POST',
        body: JSON.stringify({ method: 'put', channel: ch, message: 'x' }),
        headers: { 'Content-Type': 'application/json' },
      }),
      status: 415,
      code: /^COMET_ERR_/,
    },
  ];
  for (const method of ['put', 'get', 'sync']) {
    cases.push(
      { name: `${method} with channel missing`, req: () => ({ query: { method, message: 'x', timeout: 0 } }), status: 400, code: 'COMET_ERR_BAD_CHANNEL' },
      {
        name: `${method} with channel empty`,
        req: () => ({ query: { method, channel: '', message: 'x', timeout: 0 } }),
        status: 400,
        code: 'COMET_ERR_BAD_CHANNEL',
      },
    );
  }
  for (const v of BAD_NUMBERS) {
    cases.push(
      {
        name: `get with time=${JSON.stringify(v)}`,
        req: (ch) => ({ query: { method: 'get', channel: ch, time: v, timeout: 0 } }),
        status: 400,
        code: 'COMET_ERR_BAD_TIME',
      },
      {
        name: `get with timeout=${JSON.stringify(v)}`,
        req: (ch) => ({ query: { method: 'get', channel: ch, timeout: v } }),
        status: 400,
        code: 'COMET_ERR_BAD_TIMEOUT',
      },
    );
  }
  for (const enc of BAD_ENCODINGS) {
    cases.push(
      {
        name: `message ${enc} in the query`,
        req: (ch) => q(`method=put&channel=${encodeURIComponent(ch)}&message=${enc}`),
        status: 400,
        code: 'COMET_ERR_BAD_ENCODING',
      },
      { name: `channel ${enc} in the query`, req: () => q(`method=put&channel=${enc}&message=x`), status: 400, code: 'COMET_ERR_BAD_ENCODING' },
      {
        name: `message ${enc} in a form body`,
        req: (ch) => ({
          method: 'POST',
          body: `method=put&channel=${encodeURIComponent(ch)}&message=${enc}`,
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        }),
        status: 400,
        code: 'COMET_ERR_BAD_ENCODING',
      },
    );
  }
  return cases;
}

/** Runs every case, then checks that no channel got a message. */
async function runTable(t: Test, srv: CometServer): Promise<void> {
  const cases = table();
  const chans = cases.map(() => uniq('err'));
  const syncs = await Promise.all(chans.map((c) => srv.sync(c)));
  for (const [i, c] of cases.entries()) {
    const res = await srv.request({ timeoutMs: 5000, ...c.req(chans[i]!) });
    checkError(t, res, c.status, c.code, c.name);
    t.ok(res.ms < 1000, `${c.name}: answered at once`, { ms: res.ms });
  }
  // Errors never store anything (nor half a message).
  for (const [i, c] of chans.entries()) {
    const a = await srv.get(c, { time: syncs[i], timeout: 0 });
    t.strictSame(a.messages, [], `after "${cases[i]!.name}": channel unchanged`);
  }
  // Same channels named by the rejected requests, where they were not the per-case one.
  for (const name of ['c'.repeat(256), 'é'.repeat(128)]) {
    const a = await srv.get(name, { time: await srv.sync(name), timeout: 0 });
    t.strictSame(a.messages, [], `channel ${name.slice(0, 8)}...: still empty`);
  }
}

async function healthy(t: Test, srv: CometServer, what: string): Promise<void> {
  const h = await srv.request({ path: '/healthz', timeoutMs: 3000 }).catch((e: Error) => e);
  t.equal(h instanceof Error ? h.message : h.status, 200, `healthy after ${what}`);
}

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    const srv = await startServer({ t, threads });

    t.test('the error table', async (t) => {
      await runTable(t, srv);
      await healthy(t, srv, 'the error table');
    });

    t.test('limits are inclusive: the largest valid values are accepted', async (t) => {
      const ch256 = 'é'.repeat(127) + 'ab'; // 256 bytes
      const s = await srv.sync(ch256);
      t.equal(Buffer.byteLength(ch256), 256);
      await srv.put(ch256, '');
      checkMessages(t, await srv.get(ch256, { time: s, timeout: 0 }), [''], 'a 256-byte channel and an empty message');
      const ch = uniq('max');
      const s2 = await srv.sync(ch);
      const big = 'm'.repeat(65536);
      const res = await srv.post({ method: 'put', channel: ch, message: big });
      // The default body limit must let a maximal message through.
      t.equal(res.status, 200, 'a 65536-byte message in a form body is accepted', { body: res.body.slice(0, 200) });
      const a = await srv.get(ch, { time: s2, timeout: 0 });
      t.ok(a.messages.length === 1 && a.messages[0] === big, 'and delivered intact');
      const ok = await srv.call({ method: 'get', channel: ch, time: '0', timeout: '0' });
      t.equal(ok.status, 200, 'time=0 and timeout=0 are valid');
    });

    t.test('the message limit counts UTF-8 bytes (--max-message-bytes 100)', async (t) => {
      const small = await startServer({ t, threads, args: ['--max-message-bytes', '100', '--max-body-bytes', '2000'] });
      const ch = uniq('utf8');
      const s = await small.sync(ch);
      const ok = await small.call({ method: 'put', channel: ch, message: 'é'.repeat(50) });
      t.equal(ok.status, 200, '100 bytes (50 characters): accepted');
      const tooBig = await small.call({ method: 'put', channel: ch, message: 'é'.repeat(51) });
      checkError(t, tooBig, 413, 'COMET_ERR_MESSAGE_TOO_LARGE', '102 bytes (51 characters)');
      const viaPost = await small.post({ method: 'put', channel: ch, message: 'x'.repeat(101) });
      checkError(t, viaPost, 413, 'COMET_ERR_MESSAGE_TOO_LARGE', '101 bytes in a form body');
      checkMessages(t, await small.get(ch, { time: s, timeout: 0 }), ['é'.repeat(50)], 'only the valid message stored');

      // --max-body-bytes 2000: a small message in a large body.
      const body = encodeForm({ method: 'put', channel: ch, message: 'x', pad: 'p'.repeat(5000) });
      const big = await small.request({ method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }).catch((e: Error) => e);
      if (big instanceof Error) t.fail(`body over --max-body-bytes: ${big.message}`);
      else checkError(t, big, 413, 'COMET_ERR_BODY_TOO_LARGE', 'body over --max-body-bytes');

      // A declared Content-Length over --max-discard-bytes (1 MiB) is refused without waiting for the body.
      const raw = await rawExchange(
        small,
        [
          `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\nmethod=put&channel=${encodeURIComponent(ch)}&message=x`,
        ],
        { timeoutMs: 3000 },
      );
      t.equal(raw.status, 413, 'Content-Length: 10000000 refused with 413 before the body arrives', { text: raw.text.slice(0, 300) });
      checkMessages(t, await small.get(ch, { time: s, timeout: 0 }), ['é'.repeat(50)], 'nothing more stored');
      await healthy(t, small, 'oversized bodies');
    });

    t.test('--path /comet/v1: the protocol is there, for each of its methods, and only there', async (t) => {
      const moved = await startServer({ t, threads, args: ['--path', '/comet/v1'] });
      const path = '/comet/v1';
      const ch = uniq('path');
      const since = await moved.request({ path, query: { method: 'sync', channel: ch } });
      t.equal(since.status, 200, 'GET');
      const time = JSON.parse(since.body).time;
      t.equal((await moved.request({ path, form: { method: 'put', channel: ch, message: 'p' } })).status, 200, 'POST');
      const head = await moved.request({ path, method: 'HEAD', query: { method: 'sync', channel: ch } });
      t.same([head.status, head.body], [200, ''], 'HEAD');
      t.equal((await moved.request({ path, method: 'OPTIONS' })).status, 204, 'OPTIONS');
      checkError(t, await moved.request({ path, method: 'DELETE', query: { method: 'sync', channel: ch } }), 405, 'COMET_ERR_HTTP_METHOD', 'DELETE there');
      for (const other of ['/', '/comet', '/comet/v1/', '/comet/v1x', '/comet/v1/x', '/COMET/v1']) {
        checkError(t, await moved.request({ path: other, query: { method: 'sync', channel: ch } }), 404, 'COMET_ERR_NOT_FOUND', `GET ${other}`);
        checkError(t, await moved.request({ path: other, form: { method: 'put', channel: ch, message: 'x' } }), 404, 'COMET_ERR_NOT_FOUND', `POST ${other}`);
      }
      const read = await moved.request({ path, query: { method: 'get', channel: ch, time, timeout: 0 } });
      t.same(JSON.parse(read.body).messages, ['p'], 'only the put to the path was stored');
    });

    t.test('405 answers name the allowed methods', async (t) => {
      const res = await srv.request({ method: 'DELETE', query: { method: 'sync', channel: 'x' } });
      checkError(t, res, 405, 'COMET_ERR_HTTP_METHOD', 'DELETE');
      const allow = String(res.headers.allow ?? '').toUpperCase();
      t.ok(
        ['GET', 'POST', 'HEAD', 'OPTIONS'].every((m) => allow.includes(m)),
        'Allow: GET, POST, HEAD, OPTIONS',
        { allow },
      );
    });

    t.test('more waiting gets than --max-waiting: 503, the others still served', async (t) => {
      const limited = await startServer({ t, threads, args: ['--max-waiting', '5'] });
      const chs = Array.from({ length: 5 }, () => uniq('maxw'));
      const gets = chs.map((ch) => limited.get(ch, { timeout: 20 }));
      t.ok(await limited.waitWaiting(5, { timeoutMs: 5000 }), 'five gets waiting');
      const sixth = await limited.call({ method: 'get', channel: uniq('maxw'), timeout: 20 }, { timeoutMs: 5000 });
      checkError(t, sixth, 503, 'COMET_ERR_TOO_MANY_WAITING', 'the sixth waiting get');
      t.ok(sixth.ms < 1000, 'refused at once', { ms: sixth.ms });
      const times = await Promise.all(chs.map((ch, i) => limited.put(ch, `m${i}`)));
      const answers = await within(Promise.all(gets), 5000, 'the five waiting gets');
      answers.forEach((a, i) => {
        checkMessages(t, a, [`m${i}`], `waiting get ${i}`);
        t.equal(a.time, times[i]);
      });
      t.ok(await limited.waitWaiting(0, { exact: true }), 'no get waiting any more');
      const again = limited.get(chs[0]!, { timeout: 5 });
      t.ok(await limited.waitWaiting(1), 'a new get may wait again');
      t.ok(await stillPending(again, 100), 'and waits');
      await limited.put(chs[0]!, 'again');
      checkMessages(t, await within(again, 3000, 'new get'), ['again'], 'and is answered');
    });

    t.test('malformed HTTP does not hurt the server', async (t) => {
      const trunc = uniq('trunc');
      const huge = uniq('huge');
      const sTrunc = await srv.sync(trunc);
      const rawBytes = uniq('rawbytes');
      const sRawBytes = await srv.sync(rawBytes);
      const sHuge = await srv.sync(huge);
      const garbage = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) % 256));
      // 'reject': must never be answered with a success (4xx, 505 for what is not HTTP/1.1, a close, or silence
      // until the idle timeout are fine);
      // 'any': the server may accept it or not, but must not fail with a 5xx;
      // 'encoding': invalid percent-encoding is a 400.
      type Expect = 'reject' | 'any' | 'encoding';
      const cases: Array<{ name: string; chunks: Array<string | Buffer>; end?: boolean; chunkDelayMs?: number; expect: Expect }> = [
        { name: 'garbage bytes', chunks: [garbage, '\r\n\r\n'], expect: 'reject' },
        { name: 'NUL bytes', chunks: [Buffer.alloc(2048)], expect: 'reject' },
        { name: 'request line without method', chunks: [' / HTTP/1.1\r\nHost: x\r\n\r\n'], expect: 'reject' },
        { name: 'request line with the method only', chunks: ['GET\r\n\r\n'], expect: 'reject' },
        { name: 'not HTTP', chunks: ['HELLO WORLD\r\n\r\n'], expect: 'reject' },
        { name: 'unknown HTTP version', chunks: ['GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n'], expect: 'any' },
        { name: 'space in the target', chunks: ['GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n'], expect: 'any' },
        { name: 'header line without a colon', chunks: ['GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n'], expect: 'reject' },
        { name: 'a 100 KB header', chunks: [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`], expect: 'any' },
        {
          name: '5000 headers',
          chunks: [`GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 5000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
          expect: 'any',
        },
        {
          name: 'a 200 KB URL carrying a put',
          chunks: [`GET /?method=put&channel=${encodeURIComponent(huge)}&message=${'a'.repeat(200_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
          expect: 'reject',
        },
        {
          name: 'truncated body then half-close',
          chunks: [
            `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nmethod=put&channel=${encodeURIComponent(trunc)}&message=half`,
          ],
          end: true,
          expect: 'reject',
        },
        {
          name: 'truncated body then reset',
          chunks: [
            `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nmethod=put&channel=${encodeURIComponent(trunc)}&message=half`,
          ],
          expect: 'reject',
        },
        { name: 'Content-Length not a number', chunks: ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nmethod=sync&channel=x'], expect: 'reject' },
        { name: 'negative Content-Length', chunks: ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nmethod=sync&channel=x'], expect: 'reject' },
        {
          name: 'Content-Length and Transfer-Encoding together',
          chunks: ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
          expect: 'any',
        },
        { name: 'bare LF line endings', chunks: ['GET /healthz HTTP/1.1\nHost: x\n\n'], expect: 'any' },
        { name: 'request split in 1-byte writes', chunks: [...'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'], chunkDelayMs: 1, expect: 'any' },
        { name: 'half a request then close', chunks: ['GET /?method=get&chan'], end: true, expect: 'reject' },
        {
          name: 'invalid percent-encoding in the raw target',
          chunks: ['GET /?method=put&channel=%zz&message=%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n'],
          expect: 'encoding',
        },
        {
          name: 'regression: raw invalid UTF-8 bytes in the query were stored as U+FFFD',
          chunks: [
            Buffer.concat([
              Buffer.from(`GET /?method=put&channel=${encodeURIComponent(rawBytes)}&message=`),
              Buffer.from([0xff, 0xfe, 0xed, 0xa0, 0x80]),
              Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
            ]),
          ],
          expect: 'encoding',
        },
      ];
      for (const c of cases) {
        const r = await rawExchange(srv, c.chunks, { end: c.end, chunkDelayMs: c.chunkDelayMs, timeoutMs: 500, idleMs: 150 });
        const summary = { status: r.status, closed: r.closed, error: r.error, head: r.text.slice(0, 120) };
        if (c.expect === 'encoding') t.equal(r.status, 400, `${c.name}: 400`, summary);
        else if (c.expect === 'reject')
          t.ok(r.status === undefined || (r.status >= 400 && r.status < 500) || r.status === 505, `${c.name}: never a success`, summary);
        else t.ok(r.status === undefined || r.status < 500 || r.status === 505, `${c.name}: no server error`, summary);
        await healthy(t, srv, c.name);
      }
      checkMessages(t, await srv.get(trunc, { time: sTrunc, timeout: 0 }), [], 'a truncated body stored nothing');
      checkMessages(t, await srv.get(rawBytes, { time: sRawBytes, timeout: 0 }), [], 'raw invalid UTF-8 stored nothing');
      checkMessages(t, await srv.get(huge, { time: sHuge, timeout: 0 }), [], 'a refused huge URL stored nothing');
      // Still fully working.
      const ch = uniq('after');
      const p = srv.get(ch, { timeout: 10 });
      t.ok(await srv.waitParked(1), 'the get is parked');
      const tp = await srv.put(ch, 'still alive');
      const a = await within(p, 3000, 'get after malformed input');
      checkMessages(t, a, ['still alive'], 'put and get still work');
      t.equal(a.time, tp);
    });
  });
}
