/**
 * Per-client limits on a real server over real sockets: --rate-limit and
 * --rate-burst as one budget over both worker threads, the 429 answer,
 * --max-connections-per-ip with loopback source addresses (127.0.0.2,
 * 127.0.0.3) standing for different clients, X-Forwarded-For from trusted
 * and untrusted peers, option validation, and nothing changed with the
 * defaults.
 */
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { checkError } from './helpers/protocol.js';
import { type CometServer, encodeQuery, type HttpResponse, parseRawResponse, rawExchange, runCli, startServer, waitFor } from './helpers/server.js';

interface ClientOptions {
  /** Source address of the connection: a loopback address other than 127.0.0.1 is another client. */
  from?: string;
  headers?: Record<string, string | string[]>;
  method?: string;
  body?: string;
  /** A keep-alive agent, to send several requests on one connection (default: a connection of its own). */
  agent?: http.Agent;
}

/** One request on a connection of its own, from `from`. */
function request(srv: CometServer, query: Record<string, string>, opts: ClientOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port: srv.port,
        path: `/?${encodeQuery(query)}`,
        method: opts.method ?? 'GET',
        localAddress: opts.from ?? '127.0.0.1',
        agent: opts.agent ?? false,
        headers: opts.headers,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const body = raw.toString('utf8');
          let json: any;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, raw, json, ms: performance.now() - started });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const sync = (channel = 'limits') => ({ method: 'sync', channel });
const statuses = (answers: HttpResponse[]) => answers.map((a) => a.status);
const count = (answers: HttpResponse[], status: number) => answers.filter((a) => a.status === status).length;

t.test('--rate-limit: one budget over both threads; 429 with its code and Retry-After', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--rate-limit', '1', '--rate-burst', '20'] });
  // 60 connections at once, each with one request: the kernel spreads them over the two
  // threads' listen sockets by their source ports (all on one thread: a chance of 2^-59).
  // With a budget per thread, about 40 would pass.
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: 60 }, () => request(srv, sync())));
  // At 1/s, a token more for every second the 60 took (a loaded machine, or coverage, slows them).
  const refills = Math.ceil((performance.now() - started) / 1000);
  const ok = count(answers, 200);
  t.ok(ok >= 20 && ok <= 20 + refills, `20 allowed (up to ${refills} more, one per second taken), got ${ok}`, { statuses: statuses(answers) });
  t.equal(count(answers, 429), 60 - ok, 'the rest are 429');
  const refused = answers.find((a) => a.status === 429)!;
  checkError(t, refused, 429, 'COMET_ERR_RATE_LIMITED', 'rate-limited');
  t.equal(refused.headers['retry-after'], '1', 'Retry-After: the next token comes within a second at 1/s');
  t.match(refused.json.error, /too many requests/);
  t.equal(refused.headers.connection, undefined, 'a refused GET keeps its connection');

  const other = await request(srv, sync(), { from: '127.0.0.2' });
  t.equal(other.status, 200, 'another address has its own budget');

  // A refused POST's body is read and thrown away (--max-discard-bytes), and its connection closes after the answer.
  const body = 'method=put&channel=c&message=m';
  const post = await rawExchange(srv, [
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  ]);
  t.equal(post.status, 429, 'a POST is limited too');
  t.ok(post.closed, 'a refused POST closes its connection');
  t.equal(post.text.match(/HTTP\/1\.1/g)?.length, 1, 'one answer only');
  const head = await request(srv, sync(), { method: 'HEAD' });
  t.equal(head.status, 429, 'HEAD too');
  t.equal(head.body, '', 'without a body');

  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await request(srv, sync())).status, 200, 'a second later a token is back');

  const metrics = await srv.metrics();
  t.equal(metrics.value('comet_errors_total', { code: 'COMET_ERR_RATE_LIMITED' }), 60 - ok + 2, 'every 429 is counted');
  t.equal(metrics.value('comet_limit_untracked_total'), 0);
});

t.test('--rate-limit counts puts, gets and syncs alike, and a refused put stores nothing', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--rate-limit', '1', '--rate-burst', '3'] });
  const channel = 'stored';
  t.equal((await request(srv, { method: 'put', channel, message: 'one' })).status, 200);
  t.equal((await request(srv, { method: 'get', channel, time: '0' })).status, 200);
  t.equal((await request(srv, sync(channel))).status, 200);
  const refused = await request(srv, { method: 'put', channel, message: 'two' });
  checkError(t, refused, 429, 'COMET_ERR_RATE_LIMITED', 'the fourth request');
  const answer = await request(srv, { method: 'get', channel, time: '0' }, { from: '127.0.0.9' });
  t.same(answer.json.messages, ['one'], 'the refused put stored nothing');
});

/** A raw connection from `from` that sends one sync and reads its answer, then stays open; `answered` false when the server closed it first. */
function connection(srv: CometServer, from: string): Promise<{ socket: net.Socket; answered: boolean; status?: number }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: from });
    let data = '';
    let done = false;
    const finish = (answered: boolean) => {
      if (done) return;
      done = true;
      resolve({ socket, answered, status: parseRawResponse(data).status });
    };
    socket.on('connect', () => socket.write(`GET /?${encodeQuery(sync())} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (data.includes('\r\n\r\n') && data.endsWith('}')) finish(true);
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    setTimeout(() => finish(false), 5000);
  });
}

t.test('--max-connections-per-ip: over all threads, per source address, freed when connections close', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--max-connections-per-ip', '3'] });
  const open: net.Socket[] = [];
  t.teardown(() => {
    for (const s of open) s.destroy();
  });
  const first = await Promise.all([connection(srv, '127.0.0.2'), connection(srv, '127.0.0.2'), connection(srv, '127.0.0.2')]);
  for (const c of first) open.push(c.socket);
  t.same(
    first.map((c) => c.status),
    [200, 200, 200],
    'three connections from 127.0.0.2 are served',
  );
  const fourth = await connection(srv, '127.0.0.2');
  t.equal(fourth.answered, false, 'a fourth from 127.0.0.2 is closed before any answer');
  const others = await Promise.all([connection(srv, '127.0.0.3'), connection(srv, '127.0.0.3'), connection(srv, '127.0.0.1')]);
  for (const c of others) open.push(c.socket);
  t.same(
    others.map((c) => c.status),
    [200, 200, 200],
    'other addresses are not limited by 127.0.0.2',
  );
  let metrics = await srv.metrics();
  t.equal(metrics.value('comet_ip_connections_refused_total'), 1, 'the refusal is counted');

  // Several at once from one address, spread over both threads: never more than the limit open.
  const burst = await Promise.all(Array.from({ length: 10 }, () => connection(srv, '127.0.0.4')));
  for (const c of burst) open.push(c.socket);
  t.equal(burst.filter((c) => c.answered).length, 3, 'of 10 connections at once from 127.0.0.4, 3 are served');

  first[0]!.socket.destroy();
  // The main thread counts closed connections out within a second (sooner after a refusal).
  await waitFor(async () => (await connection(srv, '127.0.0.2').then((c) => (open.push(c.socket), c.answered))) === true, {
    timeoutMs: 5000,
    intervalMs: 300,
    what: 'a new connection from 127.0.0.2 once one of its three closed',
  });
  metrics = await srv.metrics();
  t.ok(metrics.value('comet_ip_connections_refused_total') >= 8, 'every refusal is counted');
  const again = await connection(srv, '127.0.0.2');
  t.equal(again.answered, false, 'and then it is at its limit again');
  open.push(again.socket);
});

t.test('on a dual-stack listener (--host ::), an IPv4 client is its IPv4 address: limited, and counted out from /proc/net/tcp6', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--host', '::', '--max-connections-per-ip', '2', '--rate-limit', '1', '--rate-burst', '2'] });
  const open = await Promise.all([connection(srv, '127.0.0.2'), connection(srv, '127.0.0.2')]);
  t.teardown(() => {
    for (const c of open) c.socket.destroy();
  });
  t.same(
    open.map((c) => c.status),
    [200, 200],
    'two connections from 127.0.0.2 are served',
  );
  t.equal((await connection(srv, '127.0.0.2')).answered, false, 'a third is closed');
  // One connection (127.0.0.3 may open only two, and closed ones are counted out a second later).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const from3 = { from: '127.0.0.3', agent };
  t.equal((await request(srv, sync(), { ...from3, headers: { 'x-forwarded-for': '192.0.2.1' } })).status, 200);
  t.equal((await request(srv, sync(), from3)).status, 200);
  t.equal((await request(srv, sync(), from3)).status, 429, 'the rate limit holds over IPv4-mapped addresses');
  open[0]!.socket.destroy();
  await waitFor(async () => (await connection(srv, '127.0.0.2').then((c) => (open.push(c), c.answered))) === true, {
    timeoutMs: 5000,
    intervalMs: 300,
    what: 'a new connection from 127.0.0.2 once one of its two closed',
  });
});

t.test('--trust-proxy: X-Forwarded-For is the client from a trusted peer only, and a spoofed left-most entry does not evade the limit', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--rate-limit', '1', '--rate-burst', '2', '--trust-proxy', '127.0.0.1,10.0.0.0/8'] });
  const via = (xff: string | string[], from = '127.0.0.1') => request(srv, sync(), { from, headers: { 'x-forwarded-for': xff } });

  t.same(statuses([await via('203.0.113.5'), await via('203.0.113.5')]), [200, 200], 'client 203.0.113.5 behind the proxy: its burst');
  checkError(t, await via('203.0.113.5'), 429, 'COMET_ERR_RATE_LIMITED', 'its third');
  t.equal((await via('203.0.113.6')).status, 200, 'another client behind the same proxy is not limited by it');
  t.equal((await via('198.51.100.1, 203.0.113.5')).status, 429, 'a client that prepends a spoofed address is still itself');
  t.equal((await via('203.0.113.5, 10.1.2.3')).status, 429, 'a chain of trusted proxies is skipped from the right');
  t.equal((await via(['198.51.100.1', '203.0.113.5'])).status, 429, 'a spoofed header line before the proxy\u2019s own is not read alone');
  t.same(statuses([await via('198.51.100.7'), await via('198.51.100.7')]), [200, 200], 'a new client: its own burst');

  // From an untrusted peer the header is ignored: every request counts for the peer.
  t.same(statuses([await via('192.0.2.1', '127.0.0.2'), await via('192.0.2.2', '127.0.0.2')]), [200, 200], '127.0.0.2: its burst');
  checkError(t, await via('192.0.2.3', '127.0.0.2'), 429, 'COMET_ERR_RATE_LIMITED', 'an untrusted peer cannot pick its address');

  // A malformed header from a trusted peer: the peer's own budget (127.0.0.1's, fresh so far).
  t.same(statuses([await via('not-an-address'), await via('')]), [200, 200], 'malformed or empty: the proxy\u2019s own budget');
  t.equal((await via('203.0.113.5, bogus')).status, 429, 'the proxy\u2019s budget is spent');
  t.equal((await request(srv, sync())).status, 429, 'no header from the proxy: its own budget, spent');
});

t.test('--trust-proxy: the proxy\u2019s own connections are not limited by --max-connections-per-ip', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connections-per-ip', '1', '--trust-proxy', '127.0.0.1'] });
  const open = await Promise.all([connection(srv, '127.0.0.1'), connection(srv, '127.0.0.1'), connection(srv, '127.0.0.2'), connection(srv, '127.0.0.2')]);
  t.teardown(() => {
    for (const c of open) c.socket.destroy();
  });
  t.same(
    open.map((c) => c.answered),
    [true, true, true, false],
    'the trusted proxy opens two; 127.0.0.2 one of two',
  );
});

t.test('bad options stop the server with exit 2', async (t) => {
  for (const [args, what] of [
    [['--trust-proxy', '10.0.0.0/33'], /--trust-proxy: "10\.0\.0\.0\/33" is not an IPv4 or IPv6 address or CIDR/],
    [['--trust-proxy', '10.0.0.0/8,proxy.example'], /--trust-proxy: "proxy\.example"/],
    [['--rate-limit', '1.5'], /--rate-limit must be a whole number/],
    [['--rate-burst=-1'], /--rate-burst must be a whole number/],
    [['--max-connections-per-ip', 'lots'], /--max-connections-per-ip must be a whole number/],
    [['--limit-table-size', '10'], /--limit-table-size must be between 64/],
  ] as const) {
    const res = await runCli(['--port', '0', '--host', '127.0.0.1', '--threads', '1', ...args]);
    t.equal(res.code, 2, `${args.join(' ')}: exit 2`, { stderr: res.stderr });
    t.match(res.stderr, what, `${args.join(' ')}: says why`);
    t.notOk(res.listened, 'never listened');
  }
});

t.test('with the defaults nothing is limited', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const answers = await Promise.all(
    Array.from({ length: 150 }, () => request(srv, sync(), { from: '127.0.0.2', headers: { 'x-forwarded-for': '192.0.2.1' } })),
  );
  t.equal(count(answers, 200), 150, '150 requests at once from one address, each on its own connection: all served');
  const open = await Promise.all(Array.from({ length: 50 }, () => connection(srv, '127.0.0.3')));
  t.teardown(() => {
    for (const c of open) c.socket.destroy();
  });
  t.equal(open.filter((c) => c.answered).length, 50, '50 connections open at once from one address: all served');
  const metrics = await srv.metrics();
  t.equal(metrics.value('comet_errors_total', { code: 'COMET_ERR_RATE_LIMITED' }), 0);
  t.equal(metrics.value('comet_ip_connections_refused_total'), 0);
});
