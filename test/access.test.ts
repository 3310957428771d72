/**
 * Who may read what, over real sockets: the CORS allow-list (--cors-origin),
 * which answers carry which CORS headers, per request, whoever wrote the body.
 */
import t from 'tap';
import type { Test } from 'tap';
import { type CometServer, type HttpResponse, runCli, startServer } from './helpers/server.js';
import { uniq } from './helpers/protocol.js';

const A = 'https://a.example';
const B = 'http://b.example:8443';
const EVIL = 'https://evil.example';
const FIXED_HEADERS = 'Content-Type, Authorization, Last-Event-ID';

function corsHeaders(res: HttpResponse): string[] {
  return Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
}

function noCors(t: Test, res: HttpResponse, what: string): void {
  t.strictSame(corsHeaders(res), [], `${what}: no CORS header`, { headers: res.headers });
}

function echoed(t: Test, res: HttpResponse, origin: string, what: string): void {
  t.equal(res.headers['access-control-allow-origin'], origin, `${what}: Access-Control-Allow-Origin: ${origin}`, { headers: res.headers });
  t.match(String(res.headers.vary ?? ''), /(^|,)\s*Origin\s*(,|$)/i, `${what}: Vary: Origin`);
}

t.test('CORS allow-list', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--cors-origin', `${A}, ${B}`, '--poll-timeout', '5'] });
  const star = await startServer({ t, threads: 1 });

  type Req = (server: CometServer, ch: string, headers: Record<string, string>) => Promise<HttpResponse>;
  const kinds: Array<[string, Req, number]> = [
    ['put', (s, ch, headers) => s.call({ method: 'put', channel: ch, message: 'x' }, { headers }), 200],
    ['put in a form body', (s, ch, headers) => s.post({ method: 'put', channel: ch, message: 'x' }, { headers }), 200],
    ['sync', (s, ch, headers) => s.call({ method: 'sync', channel: ch }, { headers }), 200],
    ['a get answered at once', (s, ch, headers) => s.call({ method: 'get', channel: ch, time: 0, timeout: 0 }, { headers }), 200],
    ['a JSONP get', (s, ch, headers) => s.call({ method: 'get', channel: ch, time: 0, timeout: 0, callback: 'cb' }, { headers }), 200],
    ['a refusal', (s, ch, headers) => s.call({ method: 'nope', channel: ch }, { headers }), 400],
    ['HEAD', (s, ch, headers) => s.request({ method: 'HEAD', query: { method: 'sync', channel: ch }, headers }), 200],
  ];

  t.test('a listed Origin is echoed with Vary: Origin; any other, or none, gets no CORS header', async (t) => {
    for (const [what, req, status] of kinds) {
      for (const origin of [A, B]) {
        const res = await req(srv, uniq('cors'), { Origin: origin });
        t.equal(res.status, status, `${what} from ${origin}: ${status}`);
        echoed(t, res, origin, `${what} from ${origin}`);
      }
      for (const [origin, label] of [
        [EVIL, 'an unlisted Origin'],
        [`${A}.evil.example`, 'a listed Origin as a prefix'],
        [`${A}/`, 'a listed Origin with a slash'],
        ['null', 'Origin null'],
      ] as const) {
        const res = await req(srv, uniq('cors'), { Origin: origin });
        t.equal(res.status, status, `${what}, ${label}: ${status}`);
        noCors(t, res, `${what}, ${label}`);
      }
      const none = await req(srv, uniq('cors'), {});
      noCors(t, none, `${what} without Origin`);
    }
  });

  t.test('gets parked together and answered by one fan-out each carry their own Origin', async (t) => {
    const ch = uniq('fanout');
    const since = await srv.sync(ch);
    const origins = [A, EVIL, B, undefined, A];
    const gets = origins.map((origin, i) =>
      srv.call({ method: 'get', channel: ch, time: since, timeout: 5, ...(i === 4 ? { callback: 'cb' } : {}) }, { headers: origin ? { Origin: origin } : {} }),
    );
    t.ok(await srv.waitWaiting(origins.length, { exact: true, timeoutMs: 5000 }), 'every get parked');
    await srv.put(ch, 'hello');
    const answers = await Promise.all(gets);
    for (const [i, res] of answers.entries()) {
      const origin = origins[i];
      t.equal(res.status, 200, `get ${i}: 200`);
      t.match(res.body, /"messages":\["hello"\]/, `get ${i}: the message`);
      if (origin === A || origin === B) echoed(t, res, origin, `parked get ${i} from ${origin}`);
      else noCors(t, res, `parked get ${i} from ${origin ?? 'no Origin'}`);
    }
    t.equal(answers[0]!.body, answers[2]!.body, 'the same body for both listed origins');
  });

  t.test('the preflight allows the protocol’s headers only, and nothing to an unlisted Origin', async (t) => {
    const preflight = (server: CometServer, origin: string) =>
      server.request({
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'cookie, content-type, x-anything' },
      });
    for (const origin of [A, B]) {
      const res = await preflight(srv, origin);
      t.equal(res.status, 204, `preflight from ${origin}: 204`);
      echoed(t, res, origin, `preflight from ${origin}`);
      t.equal(res.headers['access-control-allow-headers'], FIXED_HEADERS, 'the fixed allowed headers, not what was asked');
      t.notMatch(String(res.headers['access-control-allow-headers']), /cookie|x-anything/i, 'Cookie is not allowed');
    }
    const refused = await preflight(srv, EVIL);
    t.equal(refused.status, 204, 'preflight from an unlisted origin: 204');
    noCors(t, refused, 'preflight from an unlisted origin');
    const any = await preflight(star, EVIL);
    t.equal(any.headers['access-control-allow-origin'], '*', '--cors-origin *: Access-Control-Allow-Origin: *');
    t.equal(any.headers['access-control-allow-headers'], FIXED_HEADERS, '--cors-origin *: the fixed allowed headers');
  });

  t.test('--cors-origin * (the default) answers every Origin, or none, with *', async (t) => {
    for (const [what, req, status] of kinds) {
      for (const headers of [{ Origin: EVIL }, {}] as Record<string, string>[]) {
        const res = await req(star, uniq('star'), headers);
        t.equal(res.status, status, `${what}: ${status}`);
        t.equal(res.headers['access-control-allow-origin'], '*', `${what} ${headers.Origin ? 'from an origin' : 'without Origin'}: *`);
        t.equal(res.headers.vary, undefined, `${what}: no Vary`);
      }
    }
    const ch = uniq('star-fanout');
    const since = await star.sync(ch);
    const get = star.call({ method: 'get', channel: ch, time: since, timeout: 5 }, { headers: { Origin: EVIL } });
    t.ok(await star.waitWaiting(1, { exact: true, timeoutMs: 5000 }), 'the get parked');
    await star.put(ch, 'x');
    t.equal((await get).headers['access-control-allow-origin'], '*', 'a parked get: *');
  });

  t.test('invalid lists are refused at start', async (t) => {
    for (const bad of ['*, https://a.example', 'null', 'https://A.example', 'https://a.example/', 'a.example', 'https://a.example,']) {
      const r = await runCli(['--host', '127.0.0.1', '--threads', '1', '--port', '0', '--cors-origin', bad]);
      t.not(r.code, 0, `${JSON.stringify(bad)}: exits non-zero`);
      t.match(r.stderr + r.stdout, /cors-origin/, `${JSON.stringify(bad)}: names the option`);
    }
  });
});
