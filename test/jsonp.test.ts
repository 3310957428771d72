/**
 * JSONP: callback validation, script-safe bodies, and the script evaluating to
 * the same object as the JSON answer (run in node:vm).
 */
import vm from 'node:vm';
import t from 'tap';
import type { Test } from 'tap';
import { RESERVED_CALLBACK_SEGMENTS } from '../src/protocol/jsonp.js';
import { runCli, startServer, stillPending, within, type CometServer, type HttpResponse } from './helpers/server.js';
import { checkError, checkMessages, isTime, JS_TYPE, uniq } from './helpers/protocol.js';

const VALID = [
  'cb',
  'jQuery123_456',
  'app.onComet',
  'A.B.C.D',
  '$',
  '_',
  'a.b.c',
  '$.x_1',
  'A'.repeat(128),
  // The client library's own names, and names that only contain a reserved one.
  '__comet_jsonp_m1x2_0',
  '__jp0',
  'app.windowed',
  'documentReady',
  'onOpen',
  // Case variants are other bindings: Document and Window are interfaces that throw when called.
  'Document',
  'Window',
  'Location',
  'app.Top',
  'EVAL',
];
const INVALID = ['alert(1)', 'a..b', '1abc', 'a-b', '<script>', 'A'.repeat(129), '', 'a.', '.a', 'a b', 'a[0]', 'a;b', 'a.1b', 'é', 'cb//', 'a\u2028b'];

/** A printable name for a callback (TAP test names must stay on one line, so U+2028 is escaped). */
function show(s: string): string {
  return JSON.stringify(s).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** Runs a JSONP body as script with `callback` defined; returns what it was called with. */
function evalJsonp(body: string, callback: string): unknown {
  const calls: unknown[] = [];
  const fn = (arg: unknown) => calls.push(arg);
  const parts = callback.split('.');
  const sandbox: Record<string, any> = {};
  let node = sandbox;
  for (const p of parts.slice(0, -1)) node = node[p] = {};
  node[parts.at(-1)!] = fn;
  vm.runInNewContext(body, sandbox, { timeout: 1000 });
  if (calls.length !== 1) throw new Error(`callback called ${calls.length} times`);
  // Objects from the vm realm: normalise to plain values of this realm.
  return JSON.parse(JSON.stringify(calls[0]));
}

function checkJsonp(t: Test, res: HttpResponse, callback: string): unknown {
  t.equal(res.status, 200, `callback ${callback.slice(0, 20)}: 200`, { body: res.body.slice(0, 200) });
  t.match(String(res.headers['content-type'] ?? ''), JS_TYPE, 'Content-Type: application/javascript; charset=utf-8');
  t.equal(res.headers['x-content-type-options'], 'nosniff', 'X-Content-Type-Options: nosniff');
  t.match(String(res.headers['cache-control'] ?? ''), /no-store/i, 'Cache-Control: no-store');
  t.equal(res.headers['access-control-allow-origin'], '*', 'Access-Control-Allow-Origin: *');
  const esc = callback.replace(/[.$]/g, '\\$&');
  t.match(res.body, new RegExp(`^(/\\*\\*/)?\\s*${esc}\\(.*\\);?\\s*$`, 's'), 'body is [/**/]F(<json>);');
  let value: unknown;
  t.doesNotThrow(() => {
    value = evalJsonp(res.body, callback);
  }, 'body runs as script and calls the callback once');
  return value;
}

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    const srv = await startServer({ t, threads });

    t.test('valid callbacks wrap put, sync and get answers', async (t) => {
      for (const cb of VALID) {
        const ch = uniq('jsonp');
        const s = await srv.sync(ch);
        const put = checkJsonp(t, await srv.call({ method: 'put', channel: ch, message: 'hi', callback: cb }), cb) as any;
        t.ok(isTime(put?.time), 'put: {"time":T}', { put });
        t.strictSame(Object.keys(put ?? {}), ['time']);
        const sync = checkJsonp(t, await srv.call({ method: 'sync', channel: ch, callback: cb }), cb) as any;
        t.ok(isTime(sync?.time) && sync.time >= put.time, 'sync: {"time":T} with T >= put time', { sync });
        const res = await srv.call({ method: 'get', channel: ch, time: s, timeout: 0, callback: cb });
        const viaJsonp = checkJsonp(t, res, cb);
        const viaJson = (await srv.call({ method: 'get', channel: ch, time: s, timeout: 0 })).json;
        t.strictSame(viaJsonp, viaJson, 'get: the script yields the JSON answer');
        t.strictSame(viaJson, { time: put.time, messages: ['hi'] }, 'get: the message');
      }
    });

    t.test('U+2028 and U+2029 are escaped in JSON and JSONP bodies', async (t) => {
      const ch = uniq('sep');
      const msgs = ['line\u2028sep', 'para\u2029sep', '\u2028\u2029', '</script><!--'];
      const s = await srv.sync(ch);
      for (const m of msgs) await srv.put(ch, m);
      const json = await srv.call({ method: 'get', channel: ch, time: s, timeout: 0 });
      t.equal(json.status, 200);
      t.notOk(/[\u2028\u2029]/.test(json.body), 'JSON body holds no raw U+2028/U+2029');
      t.ok(json.body.includes('\\u2028') && json.body.includes('\\u2029'), 'JSON body holds \\u2028 and \\u2029 escapes', {
        body: json.body,
      });
      t.strictSame(json.json?.messages, msgs, 'JSON decodes to the original messages');
      const res = await srv.call({ method: 'get', channel: ch, time: s, timeout: 0, callback: 'app.onComet' });
      t.notOk(/[\u2028\u2029]/.test(res.body), 'JSONP body holds no raw U+2028/U+2029');
      t.ok(res.body.includes('\\u2028') && res.body.includes('\\u2029'), 'JSONP body holds the escapes');
      const value = checkJsonp(t, res, 'app.onComet');
      t.strictSame(value, json.json, 'the script yields the JSON answer');
    });

    t.test('a waiting get and a timeout answer are wrapped too', async (t) => {
      const ch = uniq('jsonpwait');
      const t1 = await srv.put(ch, 'a');
      const p = srv.call({ method: 'get', channel: ch, time: t1, timeout: 10, callback: 'cb' });
      await srv.waitWaiting(1);
      t.ok(await stillPending(p, 100), 'waits');
      const t2 = await srv.put(ch, 'b');
      t.strictSame(checkJsonp(t, await within(p, 3000, 'JSONP get'), 'cb'), { time: t2, messages: ['b'] }, 'waiting get');
      const timeout = checkJsonp(t, await srv.call({ method: 'get', channel: ch, time: t2, timeout: 0, callback: 'cb' }), 'cb') as any;
      t.strictSame(timeout?.messages, [], 'timeout answer: no messages');
      t.ok(timeout?.time >= t2, 'timeout answer time >= T0');
    });

    t.test('invalid callbacks are refused with 400 and store nothing', async (t) => {
      for (const cb of INVALID) {
        const ch = uniq('badcb');
        const s = await srv.sync(ch);
        const label = `callback ${show(cb.slice(0, 20))}`;
        const put = await srv.call({ method: 'put', channel: ch, message: 'x', callback: cb });
        checkError(t, put, 400, 'COMET_ERR_BAD_CALLBACK', `put, ${label}`);
        const get = await srv.call({ method: 'get', channel: ch, time: s, timeout: 5, callback: cb });
        checkError(t, get, 400, 'COMET_ERR_BAD_CALLBACK', `get, ${label}`);
        t.ok(get.ms < 1000, 'refused at once, without waiting');
        const sync = await srv.call({ method: 'sync', channel: ch, callback: cb });
        checkError(t, sync, 400, 'COMET_ERR_BAD_CALLBACK', `sync, ${label}`);
        checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), [], `${label}: nothing stored`);
      }
    });
  });
}

t.test('--max-callback-length bounds the callback', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-callback-length', '10'] });
  const ok = await srv.call({ method: 'sync', channel: uniq('len'), callback: 'abcdefghij' });
  checkJsonp(t, ok, 'abcdefghij');
  const long = await srv.call({ method: 'sync', channel: uniq('len'), callback: 'abcdefghijk' });
  checkError(t, long, 400, 'COMET_ERR_BAD_CALLBACK', '11 characters');
  const dotted = await srv.call({ method: 'sync', channel: uniq('len'), callback: 'abcde.fghij' });
  checkError(t, dotted, 400, 'COMET_ERR_BAD_CALLBACK', '11 characters with a dot');
});

/** The attack callbacks of issue 12, then every reserved name as the whole callback and as each kind of segment. */
function reservedCallbacks(): string[] {
  const out = ['__proto__', 'constructor.constructor', 'document.write', 'location.assign', 'opener.document.body.firstElementChild.click'];
  for (const name of RESERVED_CALLBACK_SEGMENTS) out.push(name, `${name}.x`, `app.${name}`, `app.${name}.x`);
  return out;
}

/** Each callback refused 400 COMET_ERR_BAD_CALLBACK on put, get and sync, at once, and no put stored anything. */
async function checkRefused(t: Test, srv: CometServer, callbacks: string[], message: RegExp): Promise<void> {
  const ch = uniq('refused');
  const s = await srv.sync(ch);
  for (const [i, cb] of callbacks.entries()) {
    // put for every callback (nothing may be stored); get and sync in turn, to bound the run.
    const put = await srv.call({ method: 'put', channel: ch, message: `m${i}`, callback: cb });
    checkError(t, put, 400, 'COMET_ERR_BAD_CALLBACK', `put, callback ${cb}`);
    t.match(put.json?.error, message, `put, callback ${cb}: says why`);
    const other =
      i % 2 === 0
        ? await srv.call({ method: 'get', channel: ch, time: s, timeout: 5, callback: cb })
        : await srv.call({ method: 'sync', channel: ch, callback: cb });
    checkError(t, other, 400, 'COMET_ERR_BAD_CALLBACK', `${i % 2 === 0 ? 'get' : 'sync'}, callback ${cb}`);
    t.ok(other.ms < 1000, 'refused at once, without waiting');
  }
  checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), [], 'no refused put stored its message');
  t.equal(await srv.sync(ch), s, 'the channel time did not move');
}

t.test('reserved names are refused as the whole callback and as any segment', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  await checkRefused(t, srv, reservedCallbacks(), /must not name/);
});

t.test('--jsonp-callback: an allow pattern matched against the whole callback', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--jsonp-callback', 'cb_[0-9]+|app\\.onComet'] });
  for (const cb of ['cb_1', 'cb_123456', 'app.onComet']) checkJsonp(t, await srv.call({ method: 'sync', channel: uniq('pat'), callback: cb }), cb);
  await checkRefused(t, srv, ['cb_x', 'xcb_1', 'cb_1x', 'cb_1.x', 'app.onCometX', 'jQuery123_456', 'app'], /allowed callback names/);
  // The grammar still applies before the pattern.
  checkError(t, await srv.call({ method: 'sync', channel: uniq('pat'), callback: 'cb_1(' }), 400, 'COMET_ERR_BAD_CALLBACK', 'cb_1( is not an identifier path');
});

t.test('the reserved list applies whatever the allow pattern admits', async (t) => {
  const srv = await startServer({ t, threads: 1, env: { COMET_JSONP_CALLBACK: '[\\w$.]+' } });
  checkJsonp(t, await srv.call({ method: 'sync', channel: uniq('pat'), callback: 'app.onComet' }), 'app.onComet');
  await checkRefused(t, srv, reservedCallbacks(), /must not name/);
});

t.test('--jsonp off refuses every callback, and serves JSON as before', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--jsonp', 'off'] });
  await checkRefused(t, srv, ['cb', 'jQuery123_456', 'app.onComet'], /JSONP is disabled/);
  const ch = uniq('nojsonp');
  const s = await srv.sync(ch);
  const t1 = await srv.put(ch, 'plain');
  checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), ['plain'], 'a put and a get without callback work');
  t.ok(t1 > s, 'the put without callback got a later time');
});

t.test('COMET_JSONP=off does the same from the environment', async (t) => {
  const srv = await startServer({ t, threads: 1, env: { COMET_JSONP: 'off' } });
  await checkRefused(t, srv, ['cb'], /JSONP is disabled/);
});

t.test('an invalid --jsonp-callback pattern is a configuration error: exit 2 naming the option', async (t) => {
  for (const bad of ['(', 'a)|(b', '[z-a]', 'a\nb']) {
    const r = await runCli(['--port', '0', '--threads', '1', '--jsonp-callback', bad], { timeoutMs: 5000 });
    t.equal(r.code, 2, `--jsonp-callback ${JSON.stringify(bad)}: exit 2`, { stderr: r.stderr.slice(0, 300), timedOut: r.timedOut });
    t.match(r.stderr, /--jsonp-callback/, 'the message names the option');
    t.notOk(r.listened, 'never listened');
  }
  const env = await runCli(['--port', '0', '--threads', '1'], { env: { COMET_JSONP_CALLBACK: '*cb' }, timeoutMs: 5000 });
  t.equal(env.code, 2, 'a bad COMET_JSONP_CALLBACK: exit 2');
  t.match(env.stderr, /COMET_JSONP_CALLBACK/, 'the message names the variable');
});
