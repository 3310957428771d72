/**
 * comet-server behind the real nginx and HAProxy, each run from the file users
 * copy (deploy/nginx.conf, deploy/haproxy.cfg; see test/helpers/proxy.ts for
 * the few rewrites), over real loopback sockets: the protocol works through
 * them, a get is held past nginx's default 60 s read timeout, answers are
 * neither held back nor spooled to disk, connections to the server are
 * reused, HAProxy's health check passes, and the one line nginx cannot do
 * without (proxy_http_version 1.1) is shown to matter.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import t from 'tap';
import type { Test } from 'tap';
import { outliving, stillRunning } from './helpers/bench.js';
import { checkError, checkJsonHeaders, checkMessages, isTime, JS_TYPE, uniq } from './helpers/protocol.js';
import {
  checkConfig,
  connectionsTo,
  HAPROXY,
  HAPROXY_CFG,
  haproxyServerStat,
  NGINX,
  proxiesAvailable,
  replaceOnce,
  startHaproxy,
  startedProxies,
  startNginx,
  type RunningProxy,
} from './helpers/proxy.js';
import { EventStreamClient, SocketClient } from './helpers/streams.js';
import {
  encodeQuery,
  parseRawResponse,
  rawGet,
  rawSend,
  sleep,
  startServer,
  stillPending,
  waitFor,
  within,
  type CometServer,
  type HttpResponse,
} from './helpers/server.js';

// Above nginx's default proxy_read_timeout (60 s): a get held this long proves
// that the shipped timeouts, not the defaults, are in force.
const POLL_TIMEOUT = 65;
// comet-server's --max-body-bytes default, which nginx's client_max_body_size matches.
const MAX_BODY = 262144;
// 64,000-byte messages in one get answer: 8 MB, more than loopback socket
// buffers take from nginx before a client that does not read blocks them.
const LARGE_ANSWER_MESSAGES = 128;

interface Stack {
  name: 'nginx' | 'haproxy';
  proxy: RunningProxy;
  srv: CometServer;
}

interface Hold {
  channel: string;
  /** The channel's time when the get was sent: nothing is put on it, so the timeout answer carries it. */
  floor: number;
  /** How the get ended, and when (ms after it was sent). */
  done: Promise<{ res?: HttpResponse; err?: unknown; ms: number }>;
}

/** A get with no timeout parameter, so it waits the server's whole --poll-timeout, through the proxy. */
async function startHold(s: Stack): Promise<Hold> {
  const channel = uniq(`hold-${s.name}`);
  const floor = await s.proxy.sync(channel);
  const waitingBefore = await s.srv.waiting();
  const sent = performance.now();
  const done = s.proxy.call({ method: 'get', channel }, { timeoutMs: (POLL_TIMEOUT + 25) * 1000 }).then(
    (res) => ({ res, ms: performance.now() - sent }),
    (err: unknown) => ({ err, ms: performance.now() - sent }),
  );
  // Arrived and waiting in the server, so every later count of waiting gets starts from here.
  await s.srv.waitWaiting(waitingBefore + 1, { timeoutMs: 5000 });
  return { channel, floor, done };
}

/** A form body of exactly `bytes` bytes carrying a small put (the server ignores the pad parameter). */
function formOfSize(channel: string, bytes: number): string {
  const head = `${encodeQuery({ method: 'put', channel, message: 'sized' })}&pad=`;
  return head + 'x'.repeat(bytes - head.length);
}

function protocolChecks(t: Test, s: Stack): void {
  const { proxy, srv } = s;

  t.test('put, sync and get', async (t) => {
    const ch = uniq(`${s.name}-basic`);
    const s0 = await proxy.sync(ch);
    const tp = await proxy.put(ch, 'hello');
    const ts = await proxy.sync(ch);
    t.ok(tp > s0 && ts >= tp, 'put time above the first sync, second sync at or above the put', { s0, tp, ts });
    const a = await proxy.get(ch, { time: s0, timeout: 0 });
    checkMessages(t, a, ['hello']);
    t.equal(a.time, tp, "the answer's time is the put's");
    checkJsonHeaders(t, a.res);
  });

  t.test('a waiting get is answered by a put at once', async (t) => {
    const ch = uniq(`${s.name}-wake`);
    const s0 = await proxy.sync(ch);
    const base = await srv.waiting();
    const g = proxy.get(ch, { time: s0, timeout: 20 }, { timeoutMs: 25000 });
    t.ok(await srv.waitWaiting(base + 1, { timeoutMs: 5000 }), 'the get waits in the server');
    t.ok(await stillPending(g, 200), 'and has no answer yet');
    const putAt = performance.now();
    const tp = await proxy.put(ch, 'wake');
    const a = await within(g, 5000, 'the waiting get');
    const ms = performance.now() - putAt;
    checkMessages(t, a, ['wake']);
    t.equal(a.time, tp, "the answer's time is the put's");
    // Buffering in the proxy would show here as an answer held back.
    t.ok(ms < 2000, `answered ${Math.round(ms)} ms after the put was sent`);
  });

  t.test('JSONP', async (t) => {
    const ch = uniq(`${s.name}-jsonp`);
    const s0 = await proxy.sync(ch);
    const cb = 'app.onComet';
    const unwrap = (res: HttpResponse, what: string): any => {
      t.equal(res.status, 200, `${what}: 200`, { body: res.body.slice(0, 200) });
      t.match(String(res.headers['content-type'] ?? ''), JS_TYPE, `${what}: Content-Type application/javascript`);
      t.equal(res.headers['x-content-type-options'], 'nosniff', `${what}: X-Content-Type-Options survives the proxy`);
      const m = /^(?:\/\*\*\/)?\s*app\.onComet\((.*)\);?\s*$/s.exec(res.body);
      t.ok(m, `${what}: body is [/**/]${cb}(<json>);`, { body: res.body.slice(0, 200) });
      return m ? JSON.parse(m[1]!) : undefined;
    };
    const put = unwrap(await proxy.call({ method: 'put', channel: ch, message: 'hi', callback: cb }), 'put');
    t.ok(isTime(put?.time), 'put: {"time":T}', { put });
    const got = unwrap(await proxy.call({ method: 'get', channel: ch, time: s0, timeout: 0, callback: cb }), 'get');
    t.strictSame(got, { time: put?.time, messages: ['hi'] }, 'get: the message, with the put time');
  });

  t.test('fan-out: 20 waiting gets, one put', async (t) => {
    const n = 20;
    const ch = uniq(`${s.name}-fan`);
    const s0 = await proxy.sync(ch);
    const base = await srv.waiting();
    // The proxy's agent opens a client connection per concurrent request, as 20 browsers would.
    const gets = Array.from({ length: n }, () => proxy.get(ch, { time: s0, timeout: 20 }, { timeoutMs: 25000 }));
    t.ok(await srv.waitWaiting(base + n, { timeoutMs: 10000 }), `${n} gets wait in the server`, { waiting: await srv.waiting() });
    const tp = await proxy.put(ch, 'to all');
    const results = await within(Promise.allSettled(gets), 10000, 'fan-out answers');
    const bad = results.filter((r) => r.status !== 'fulfilled' || r.value.time !== tp || JSON.stringify(r.value.messages) !== '["to all"]');
    t.equal(bad.length, 0, `all ${n} got {"time":${tp},"messages":["to all"]}`, { firstBad: bad.slice(0, 3).map(String) });
  });

  t.test('an event stream and a WebSocket through the proxy: events as they come, not buffered', async (t) => {
    const ch = uniq(`${s.name}-streams`);
    const s0 = await proxy.sync(ch);
    const es = await EventStreamClient.open(proxy, { channel: ch, time: s0 });
    t.teardown(() => es.close());
    t.equal(es.status, 200);
    t.equal(es.res.headers['content-type'], 'text/event-stream');
    await waitFor(() => es.comments >= 1, { what: 'the opening comment, through the proxy' });
    const ws = await SocketClient.open(proxy);
    t.teardown(() => ws.close());
    t.same(await ws.request({ id: 1, method: 'subscribe', channel: ch, time: s0 }), { id: 1, time: s0 });
    for (const message of ['one', 'two']) {
      const putAt = performance.now();
      const time = (await ws.request({ method: 'put', channel: ch, message })).time;
      const events = await es.waitEvents(message === 'one' ? 1 : 2, 5000);
      t.equal(events.at(-1)!.id, String(time), `${message}: the event, with its time`);
      await ws.waitMessages(ch, message === 'one' ? 1 : 2);
      // Buffering in the proxy would hold the event back.
      t.ok(performance.now() - putAt < 2000, `${message}: delivered on both within ${Math.round(performance.now() - putAt)} ms`);
    }
    t.same(es.messages, ['one', 'two']);
    t.same(ws.messages(ch), ['one', 'two']);
  });

  t.test('a form POST put, and the body limit', async (t) => {
    const ch = uniq(`${s.name}-form`);
    const s0 = await proxy.sync(ch);
    // Over nginx's default client_body_buffer_size (16k), under the shipped one.
    const message = `a b&c=d+e%f\n€ ${'x'.repeat(40000)}`;
    const res = await proxy.post({ method: 'put', channel: ch, message });
    t.equal(res.status, 200, 'form put: 200', { body: res.body.slice(0, 300) });
    t.ok(isTime(res.json?.time), 'form put: {"time":T}');
    checkMessages(t, await proxy.get(ch, { time: s0, timeout: 0 }), [message], 'the message, byte for byte');

    // --max-body-bytes' default, exactly, gets through.
    const atLimit = await proxy.request({ method: 'POST', body: formOfSize(ch, MAX_BODY), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    t.equal(atLimit.status, 200, `a ${MAX_BODY}-byte body is served`, { body: atLimit.body.slice(0, 300) });
    const over = await proxy.request({ method: 'POST', body: formOfSize(ch, MAX_BODY + 1), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    if (s.name === 'nginx') {
      // client_max_body_size refuses it before reading it, with nginx's own page.
      t.equal(over.status, 413, `a ${MAX_BODY + 1}-byte body: 413 from nginx`);
      t.match(String(over.headers['content-type'] ?? ''), /^text\/html/, "nginx's own 413 page, the body never reached the server", {
        body: over.body.slice(0, 200),
      });
    } else {
      checkError(t, over, 413, 'COMET_ERR_BODY_TOO_LARGE', `a ${MAX_BODY + 1}-byte body`);
    }
  });

  if (s.name === 'nginx') {
    t.test('a large answer to a slow client is passed through, not spooled to disk (proxy_buffering off)', async (t) => {
      const ch = uniq('nginx-large');
      const s0 = await proxy.sync(ch);
      const message = 'm'.repeat(64000);
      const refused: string[] = [];
      for (let i = 0; i < LARGE_ANSWER_MESSAGES; i++) {
        const res = await proxy.post({ method: 'put', channel: ch, message });
        if (res.status !== 200) refused.push(`put ${i}: ${res.status} ${res.body.slice(0, 100)}`);
      }
      t.strictSame(refused, [], `${LARGE_ANSWER_MESSAGES} form puts of 64,000 bytes: 200`);
      // A client that does not read: Node stops taking data from the kernel
      // while the socket has no reader, so what nginx does with the rest of
      // the answer is up to its buffering.
      const sock = await rawSend(proxy, rawGet(`/?${encodeQuery({ method: 'get', channel: ch, time: s0, timeout: 0 })}`, 'Connection: close\r\n'));
      t.teardown(() => sock.destroy());
      // What is checked is that nothing happens (no spooling), which no
      // condition can be awaited for: nginx with buffering on spools the
      // answer within milliseconds on loopback.
      await sleep(1000);
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      await within(new Promise((resolve) => sock.once('close', resolve)), 15000, 'the whole large answer');
      const { status, rest } = parseRawResponse(Buffer.concat(chunks).toString('latin1'));
      t.equal(status, 200, 'the large get: 200');
      let body: any;
      t.doesNotThrow(() => (body = JSON.parse(rest)), `the whole answer arrived (${rest.length} bytes)`);
      t.equal(body?.messages?.length, LARGE_ANSWER_MESSAGES, `all ${LARGE_ANSWER_MESSAGES} messages`);
      t.notMatch(proxy.file('error.log'), /upstream response is buffered to a temporary file/, 'error.log: no answer spooled to disk');
      // client_body_buffer_size: the 64 KB puts above stayed in memory.
      t.notMatch(proxy.file('error.log'), /client request body is buffered to a temporary file/, 'error.log: no put body written to disk');
    });
  }

  t.test('connections to the server are reused (upstream keep-alive)', async (t) => {
    const n = 60;
    // One client connection, as a browser tab keeps one to the site.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const ch = uniq(`${s.name}-reuse`);
    const before = connectionsTo(srv.port);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const res =
        i % 3 === 0
          ? await proxy.call({ method: 'put', channel: ch, message: String(i) }, { agent })
          : await proxy.call(i % 3 === 1 ? { method: 'sync', channel: ch } : { method: 'get', channel: ch, time: 0, timeout: 0 }, { agent });
      if (res.status === 200) ok++;
    }
    const opened = [...connectionsTo(srv.port)].filter((p) => !before.has(p));
    t.equal(ok, n, `${n} sequential requests answered 200`);
    // One is expected; HAProxy's health checks (one every 2 s) may add one more.
    t.ok(opened.length <= 3, `${n} requests opened ${opened.length} connection(s) to the server`, { opened });

    if (s.name === 'nginx') {
      // nginx shares its idle upstream connections between clients: one per worker at most.
      const fresh = new http.Agent({ keepAlive: false });
      t.teardown(() => fresh.destroy());
      const workers = proxy.noteWorkers().length;
      // Several times the bound, however many workers `worker_processes auto` started.
      const n2 = Math.max(n, 4 * (workers + 1));
      const before2 = connectionsTo(srv.port);
      for (let i = 0; i < n2; i++) await proxy.call({ method: 'sync', channel: ch }, { agent: fresh });
      const opened2 = [...connectionsTo(srv.port)].filter((p) => !before2.has(p));
      t.ok(opened2.length <= workers + 1, `${n2} requests on ${n2} client connections opened ${opened2.length} to the server (${workers} workers)`, {
        opened2,
      });
    }
  });
}

t.test('comet-server behind nginx and HAProxy', async (t) => {
  if (!proxiesAvailable(t)) return;
  const args = ['--poll-timeout', String(POLL_TIMEOUT), '--max-answer-bytes', String(LARGE_ANSWER_MESSAGES * 65536)];
  // One server per proxy: connection counts and waiting gets of one do not mix with the other's.
  const [ngSrv, hxSrv] = await Promise.all([startServer({ t, args }), startServer({ t, args })]);
  const stacks: Stack[] = [
    { name: 'nginx', proxy: await startNginx(t, { upstreamPort: ngSrv.port }), srv: ngSrv },
    { name: 'haproxy', proxy: await startHaproxy(t, { upstreamPort: hxSrv.port }), srv: hxSrv },
  ];

  // Sent first and checked last: both holds run while everything else is
  // tested, so the file takes about POLL_TIMEOUT seconds, not twice that.
  const holds = await Promise.all(stacks.map(startHold));

  t.test('the configurations pass nginx -t and haproxy -c', async (t) => {
    const ng = await checkConfig(NGINX, ['-t', '-c', stacks[0]!.proxy.configPath, '-p', `${stacks[0]!.proxy.dir}/`, '-e', `${stacks[0]!.proxy.dir}/error.log`]);
    t.equal(ng.code, 0, 'nginx -t accepts deploy/nginx.conf (as run here)', { output: ng.output });
    const hx = await checkConfig(HAPROXY, ['-c', '-f', HAPROXY_CFG]);
    t.equal(hx.code, 0, 'haproxy -c accepts deploy/haproxy.cfg as shipped', { output: hx.output });
  });

  t.test("HAProxy's health check sees the server up", async (t) => {
    // A check that comet-server refuses (HTTP/1.0: 505) marks it DOWN at the first failure.
    const stat = await waitFor(
      async () => {
        const st = await haproxyServerStat(stacks[1]!.proxy, 'comet', 'comet1');
        return st && st.check_status !== '' && !st.check_status.includes('INI') ? st : undefined;
      },
      { timeoutMs: 10000, intervalMs: 100, what: 'a completed health check' },
    );
    t.equal(stat.status, 'UP', 'server comet1 UP');
    t.match(stat.check_status, /L7OK$/, 'check_status L7OK: /healthz answered 200', { check_code: stat.check_code });
  });

  for (const s of stacks) t.test(`through ${s.name}`, async (t) => protocolChecks(t, s));

  t.test('nginx without proxy_http_version 1.1: a 505 at once for every request', async (t) => {
    const srv = stacks[0]!.srv;
    const http10 = await startNginx(t, {
      upstreamPort: srv.port,
      edit: (conf) => replaceOnce(conf, 'proxy_http_version 1.1;', '', 'deploy/nginx.conf'),
    });
    const syncsBefore = (await srv.metrics()).value('comet_requests_total', { method: 'sync' });
    const res = await http10.call({ method: 'sync', channel: uniq('http10') }, { timeoutMs: 30000 });
    t.equal(res.status, 505, "the server's 505 HTTP Version Not Supported, passed on", { body: res.body.slice(0, 200) });
    t.ok(res.ms < 2000, 'at once, not at an idle timeout', { ms: res.ms });
    const syncsAfter = (await srv.metrics()).value('comet_requests_total', { method: 'sync' });
    t.equal(syncsAfter, syncsBefore, 'the server never served the HTTP/1.0 request');
  });

  t.test(`a get held ${POLL_TIMEOUT} s, past nginx's default 60 s, ends with its timeout answer`, async (t) => {
    for (const [i, s] of stacks.entries()) {
      const h = holds[i]!;
      const { res, err, ms } = await within(h.done, (POLL_TIMEOUT + 30) * 1000, `the held get through ${s.name}`);
      t.notOk(err, `${s.name}: the get did not fail`, { err: String(err) });
      if (!res) continue;
      t.equal(res.status, 200, `${s.name}: 200 after ${(ms / 1000).toFixed(1)} s`, { body: res.body.slice(0, 300), diag: s.proxy.diagnostics() });
      t.strictSame(res.json, { time: h.floor, messages: [] }, `${s.name}: {"time":T,"messages":[]} with the channel's time`);
      t.ok(ms >= (POLL_TIMEOUT - 1) * 1000 && ms < (POLL_TIMEOUT + 10) * 1000, `${s.name}: answered after the server's ${POLL_TIMEOUT} s, not cut short`, {
        ms,
      });
      checkJsonHeaders(t, res);
    }
  });
});

// After the test above and its teardowns, which stop every proxy it started.
t.test('no proxy process or temp dir outlives its test', async (t) => {
  const processes = new Map(startedProxies.flatMap((p) => [...p.seen]));
  const alive = await outliving(() => stillRunning(processes), 5000);
  t.strictSame(alive, [], `none of the ${processes.size} nginx and haproxy processes is still running`);
  const dirs = startedProxies.map((p) => p.dir).filter((d) => existsSync(d));
  t.strictSame(dirs, [], 'their temp dirs are removed');
});
