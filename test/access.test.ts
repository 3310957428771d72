/**
 * Who may read what, over real sockets: the admin listener (--admin-host,
 * --admin-port) that takes /metrics and /healthz off the public port, and
 * the CORS allow-list (--cors-origin): which answers carry which CORS
 * headers, per request, whoever wrote the body.
 */
import net from 'node:net';
import t from 'tap';
import { freePort } from './helpers/redis.js';
import type { Test } from 'tap';
import { CometEndpoint, type CometServer, connectionRefused, type HttpResponse, runCli, startServer } from './helpers/server.js';
import { checkError, uniq } from './helpers/protocol.js';

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

async function withAdmin(t: Test, threads = 2): Promise<{ srv: CometServer; admin: CometEndpoint }> {
  const port = await freePort();
  const srv = await startServer({ t, threads, args: ['--admin-port', String(port), '--admin-host', '127.0.0.1'] });
  return { srv, admin: new CometEndpoint('127.0.0.1', port) };
}

t.test('admin listener', async (t) => {
  t.test('serves /metrics and /healthz, without CORS headers; the public port answers them 404', async (t) => {
    const { srv, admin } = await withAdmin(t);
    const listening = srv.logs().find((l) => l.msg === 'listening');
    t.equal(listening?.adminPort, admin.port, 'the listening line names the admin port');
    t.equal(listening?.adminHost, '127.0.0.1', 'and the admin host');
    const ch = uniq('admin');
    await srv.put(ch, 'x');
    const headers = { Origin: A };
    for (let i = 0; i < 4; i++) {
      // Several connections: every thread listens on the admin port.
      const fresh = new CometEndpoint('127.0.0.1', admin.port);
      const health = await fresh.request({ path: '/healthz', headers });
      t.equal(health.status, 200, 'admin /healthz: 200');
      t.equal(health.json?.status, 'ok');
      noCors(t, health, 'admin /healthz');
      fresh.agent.destroy();
    }
    const metrics = await admin.request({ path: '/metrics', headers });
    t.equal(metrics.status, 200, 'admin /metrics: 200');
    t.match(metrics.body, /comet_requests_total\{method="put"\} [1-9]/, 'the metrics count the public port’s put');
    noCors(t, metrics, 'admin /metrics');
    const head = await admin.request({ method: 'HEAD', path: '/healthz', headers });
    t.equal(head.status, 200, 'admin HEAD /healthz: 200');
    noCors(t, head, 'admin HEAD /healthz');
    const other = await admin.request({ query: { method: 'sync', channel: ch }, headers });
    checkError(t, other, 404, 'COMET_ERR_NOT_FOUND', 'the protocol on the admin port');
    noCors(t, other, 'admin 404');
    for (const path of ['/healthz', '/metrics']) {
      const res = await srv.request({ path, headers });
      checkError(t, res, 404, 'COMET_ERR_NOT_FOUND', `public ${path}`);
      t.equal(res.headers['access-control-allow-origin'], '*', `public ${path}: a 404 like any unknown path (CORS as configured)`);
    }
    t.equal((await srv.call({ method: 'sync', channel: ch })).status, 200, 'the protocol still on the public port');
  });

  t.test('default: no admin listener, both on the public port, without CORS headers', async (t) => {
    const srv = await startServer({ t, threads: 1 });
    t.notOk('adminPort' in (srv.logs().find((l) => l.msg === 'listening') ?? {}), 'no admin address in the listening line');
    for (const path of ['/healthz', '/metrics']) {
      const res = await srv.request({ path, headers: { Origin: A } });
      t.equal(res.status, 200, `${path}: 200`);
      noCors(t, res, path);
    }
  });

  t.test('the admin port must differ from the public port', async (t) => {
    const port = await freePort();
    const r = await runCli(['--host', '127.0.0.1', '--threads', '1', '--port', String(port), '--admin-port', String(port)]);
    t.not(r.code, 0, 'exits non-zero');
    t.match(r.stderr + r.stdout, /admin port must differ/);
  });

  t.test('during a graceful shutdown /healthz answers 503 on the admin port, which then closes', async (t) => {
    // The window between a thread's drain and its exit is a message or two
    // between threads: a connection kept full of pipelined /healthz requests
    // is read inside it about half the time, so the shutdown is tried up to
    // eight times, and one 503 must be seen. Without the 503 none ever is.
    const seen: number[][] = [];
    for (let attempt = 0; attempt < 8 && !seen.some((s) => s.at(-1) === 503); attempt++) {
      const { srv, admin } = await withAdmin(t, 4);
      const statuses = await healthzThroughShutdown(srv, admin);
      seen.push(statuses);
      // 200 until the shutdown, then 503 (several when pipelined in one read) until the connection closes.
      const first503 = statuses.indexOf(503);
      const until = first503 < 0 ? statuses.length : first503;
      t.ok(until > 3 && statuses.slice(0, until).every((s) => s === 200), 'answered 200 until the shutdown', { statuses: statuses.slice(-5) });
      t.ok(
        statuses.slice(until).every((s) => s === 503),
        'then only 503',
        { statuses: statuses.slice(-5) },
      );
      t.equal((await srv.waitExit(10000))?.code, 0, 'exit 0');
      t.ok(await connectionRefused(admin), 'the admin port is closed after the shutdown');
    }
    t.ok(
      seen.some((s) => s.at(-1) === 503),
      'a /healthz asked on the admin port while shutting down is answered 503',
      { last: seen.map((s) => s.at(-1)) },
    );
  });
});

/**
 * Keeps one keep-alive connection to the admin port full of pipelined
 * /healthz requests, sends SIGTERM after a few answers, and returns every
 * status answered until the connection closed.
 */
async function healthzThroughShutdown(srv: CometServer, admin: CometEndpoint): Promise<number[]> {
  const sock = net.connect({ host: admin.host, port: admin.port });
  await new Promise((resolve) => sock.once('connect', resolve));
  let text = '';
  let killed = false;
  const burst = () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(8), () => undefined);
  const closed = new Promise<void>((resolve) => {
    sock.on('close', () => resolve());
    sock.on('error', () => undefined);
  });
  sock.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    if (!killed && text.split('HTTP/1.1 ').length > 4) {
      killed = true;
      srv.proc.kill('SIGTERM');
    }
    if (!sock.destroyed) burst();
  });
  burst();
  await closed;
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
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
