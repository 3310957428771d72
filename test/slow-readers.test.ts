/**
 * Clients that do not read what they asked for (protocol/slow-readers.ts),
 * against a real server: pipelined gets with large answers from clients that
 * never read hold the server's memory to about one answer per connection
 * (uWS's end() buffered every answer: 3.6 GB from 1.4 MB of requests); a
 * client that reads slowly still gets every byte, a fan-out's stalled
 * readers included; --max-connection-buffer closes a connection at once, and
 * one that reads nothing is closed after uWS's 10 s write timeout.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { type CometServer, startServer, waitFor } from './helpers/server.js';

const MESSAGE = 'x'.repeat(8 * 1024);
/** Messages in the channel: a time=0 get answers all of them, about 256 KiB. */
const MESSAGES = 32;
const CONNECTIONS = 60;
/** Answers larger than what loopback's kernel buffers take from a client that does not read (a few MiB). */
const LARGE_MESSAGES = ['--max-message-bytes', String(8 * 2 ** 20), '--max-body-bytes', String(16 * 2 ** 20), '--max-answer-bytes', String(32 * 2 ** 20)];
const LARGE = 'z'.repeat(2 * 2 ** 20);
const PIPELINED = 100;

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

async function gauge(srv: CometServer, name: string): Promise<number> {
  return (await srv.metrics()).value(name);
}

async function fill(srv: CometServer, channel: string, count = MESSAGES, message = MESSAGE): Promise<void> {
  for (let i = 0; i < count; i++) await srv.put(channel, message);
}

function getRequest(srv: CometServer, query: string): string {
  return `GET /?method=get&${query} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`;
}

/** A raw connection that sends `data` and reads nothing until told to. */
function nonReader(srv: CometServer, data: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: srv.port, host: '127.0.0.1' }, () => {
      socket.pause();
      socket.write(data);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.readableEnded) return resolve();
    socket.once('close', () => resolve());
    // A paused socket sees no 'end': read the rest away so that 'close' comes.
    socket.resume();
  });
}

/** Reads one HTTP answer with a Content-Length body, `chunkDelayMs` between reads of the socket. */
async function readAnswer(socket: net.Socket, chunkDelayMs: number): Promise<{ head: string; body: string }> {
  let buffered = Buffer.alloc(0);
  socket.pause();
  for (;;) {
    const chunk: Buffer | null = socket.read();
    if (chunk === null) {
      if (socket.readableEnded || socket.destroyed) throw new Error('connection closed before the whole answer');
      await new Promise((resolve) => setTimeout(resolve, chunkDelayMs));
      continue;
    }
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf('\r\n\r\n');
    if (end === -1) continue;
    const head = buffered.subarray(0, end).toString();
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
    if (buffered.length >= end + 4 + length) return { head, body: buffered.subarray(end + 4, end + 4 + length).toString() };
  }
}

t.test('pipelined gets that are never read hold about one answer per connection, not all of them', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  await fill(srv, 'big');
  const pid = srv.proc.pid!;
  const before = rssBytes(pid);
  const requests = getRequest(srv, 'channel=big&time=0').repeat(PIPELINED);
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => nonReader(srv, requests)));
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  // Let the server do all it will with what it read.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const health = await srv.request({ path: '/healthz', timeoutMs: 3000 });
  t.equal(health.status, 200, '/healthz answers during the attack');
  const grown = rssBytes(pid) - before;
  const answer = MESSAGES * MESSAGE.length;
  // Buffering every answer would be CONNECTIONS * PIPELINED * answer (1.5 GB).
  t.ok(
    grown < 250 * 1024 * 1024,
    `RSS grew ${Math.round(grown / 2 ** 20)} MiB (buffering all answers: ${Math.round((CONNECTIONS * PIPELINED * answer) / 2 ** 20)} MiB)`,
  );
  t.ok((await gauge(srv, 'comet_unread_answers')) <= CONNECTIONS, 'at most one unread answer per connection');
  // uWS closes each connection at the request pipelined behind its unread answer.
  await waitFor(async () => (await gauge(srv, 'comet_unread_answers')) === 0, { timeoutMs: 5000, intervalMs: 200, what: 'unread answers dropped' });
  t.equal(await gauge(srv, 'comet_unread_bytes'), 0, 'their bytes are released');
  t.equal(await gauge(srv, 'comet_waiting_gets'), 0, 'no get slot is held');
});

t.test('a client that reads slowly gets its whole answer, and so does every stalled reader of a fan-out', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--max-connection-buffer', String(64 * 2 ** 20), ...LARGE_MESSAGES] });
  await fill(srv, 'slow');
  const expected = JSON.stringify(Array.from({ length: MESSAGES }, () => MESSAGE));

  const slow = await nonReader(srv, getRequest(srv, 'channel=slow&time=0'));
  t.teardown(() => slow.destroy());
  await new Promise((resolve) => setTimeout(resolve, 300));
  const answer = await readAnswer(slow, 20);
  t.match(answer.head, /^HTTP\/1.1 200/);
  t.equal(JSON.stringify(JSON.parse(answer.body).messages), expected, 'every byte, in order');

  // Twenty gets wait on a channel; one put of a large message answers them all with one body.
  const big = LARGE.repeat(3);
  const time = await srv.sync('fan');
  const readers = await Promise.all(Array.from({ length: 20 }, () => nonReader(srv, getRequest(srv, `channel=fan&time=${time}&timeout=30`))));
  t.teardown(() => readers.forEach((s) => s.destroy()));
  await srv.waitWaiting(20);
  await srv.put('fan', big);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.ok((await gauge(srv, 'comet_unread_answers')) > 0, 'some answers wait for their readers');
  const answers = await Promise.all(readers.map((s) => readAnswer(s, 5)));
  for (const a of answers) t.same(JSON.parse(a.body).messages, [big]);
  await waitFor(async () => (await gauge(srv, 'comet_unread_answers')) === 0, { timeoutMs: 5000, what: 'all answers read' });
  t.equal(await gauge(srv, 'comet_unread_bytes'), 0);
  t.equal(await gauge(srv, 'comet_waiting_gets'), 0);
});

t.test('--max-connection-buffer closes a connection whose answer it cannot hold, and counts it', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connection-buffer', '1024', ...LARGE_MESSAGES] });
  await fill(srv, 'huge', 6, LARGE);
  const socket = await nonReader(srv, getRequest(srv, 'channel=huge&time=0'));
  t.teardown(() => socket.destroy());
  await waitFor(async () => (await gauge(srv, 'comet_slow_readers_closed_total')) === 1, { timeoutMs: 5000, what: 'the close counted' });
  await closed(socket);
  t.equal(await gauge(srv, 'comet_unread_answers'), 0);
  t.equal(await gauge(srv, 'comet_waiting_gets'), 0);
  t.ok((await srv.sync('huge')) > 0, 'answers the socket takes whole are untouched by it');
});

t.test('a connection that reads nothing of its answer is closed after 10 s, and its answer released', async (t) => {
  const srv = await startServer({ t, threads: 1, args: ['--max-connection-buffer', String(64 * 2 ** 20), ...LARGE_MESSAGES] });
  await fill(srv, 'stuck', 6, LARGE);
  const socket = await nonReader(srv, getRequest(srv, 'channel=stuck&time=0'));
  t.teardown(() => socket.destroy());
  await waitFor(async () => (await gauge(srv, 'comet_unread_answers')) === 1, { timeoutMs: 3000, what: 'the answer waits' });
  t.ok((await gauge(srv, 'comet_unread_bytes')) > 0);
  const started = Date.now();
  await waitFor(async () => (await gauge(srv, 'comet_unread_answers')) === 0, { timeoutMs: 20_000, intervalMs: 500, what: 'the answer dropped' });
  t.ok(Date.now() - started > 5000, 'not before the write timeout');
  t.equal(await gauge(srv, 'comet_unread_bytes'), 0);
  await closed(socket);
});
