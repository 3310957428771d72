/**
 * The open-file limit (--max-connections, server/accept-gate.ts), against a
 * real server whose limit is lowered with prlimit while it runs: more
 * clients than it may hold connect at once, and the server neither spins
 * nor stops answering its admin listener, counts the pause, and accepts
 * again once they leave.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { freePort } from './helpers/redis.js';
import { needs } from './helpers/bench.js';
import { CometEndpoint, type CometServer, startServer, waitFor } from './helpers/server.js';

const PRLIMIT = '/usr/bin/prlimit';
const LIMIT = 300;
const CLIENTS = 400;

/** The CPU seconds a process has used (utime + stime, in clock ticks of 1/100 s on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function gauge(admin: CometEndpoint, name: string): Promise<number> {
  const res = await admin.request({ path: '/metrics', timeoutMs: 3000 });
  const line = res.body.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

t.test('at the open-file limit the threads stop accepting instead of spinning, and recover', async (t) => {
  if (!needs(t, existsSync(PRLIMIT), 'prlimit not found: install util-linux (apt-get install util-linux)')) return;
  const adminPort = await freePort();
  const srv: CometServer = await startServer({ t, threads: 2, args: ['--admin-port', String(adminPort), '--admin-host', '127.0.0.1'] });
  const admin = new CometEndpoint('127.0.0.1', adminPort);
  const pid = srv.proc.pid!;
  t.match(
    srv.logs().find((l) => l.msg === 'open files'),
    { openFileLimit: { soft: Number, hard: Number }, maxConnections: Number },
    'the limit and the ceiling are logged',
  );
  execFileSync(PRLIMIT, ['--pid', String(pid), `--nofile=${LIMIT}:${LIMIT}`]);
  await waitFor(async () => (await gauge(admin, 'comet_max_connections')) === Math.floor(LIMIT * 0.9) - 32, {
    timeoutMs: 5000,
    intervalMs: 200,
    what: 'the ceiling follows the lowered limit',
  });

  const sockets: net.Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < CLIENTS; i++) {
    const socket = net.connect(srv.port, '127.0.0.1');
    socket.on('error', () => {});
    sockets.push(socket);
  }
  await waitFor(async () => (await gauge(admin, 'comet_accepting')) === 0, { timeoutMs: 5000, intervalMs: 200, what: 'accepting paused' });
  t.ok((await gauge(admin, 'comet_accept_pauses_total')) >= 1, 'the pause is counted');
  const before = cpuSeconds(pid);
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const cores = (cpuSeconds(pid) - before) / ((Date.now() - started) / 1000);
  // Spinning on a failing accept() cost about half a core with two threads here (uSockets 20.51); paused, about 0.01.
  t.ok(cores < 0.2, `the server idles while at the limit (${cores.toFixed(2)} cores)`);
  t.equal((await admin.request({ path: '/healthz', timeoutMs: 3000 })).status, 200, '/healthz answers on the admin listener meanwhile');

  for (const socket of sockets) socket.destroy();
  await waitFor(async () => (await gauge(admin, 'comet_accepting')) === 1, { timeoutMs: 5000, intervalMs: 200, what: 'accepting again' });
  const fresh = new CometEndpoint('127.0.0.1', srv.port);
  const res = await fresh.call({ method: 'put', channel: 'after', message: 'x' });
  t.equal(res.status, 200, 'a new connection is served');
  t.ok(
    srv.logs().some((l) => l.msg === 'accepting connections again'),
    'the recovery is logged',
  );
});

t.test('--max-connections sets the ceiling itself', async (t) => {
  const adminPort = await freePort();
  await startServer({ t, args: ['--max-connections', '12345', '--admin-port', String(adminPort), '--admin-host', '127.0.0.1'] });
  t.equal(await gauge(new CometEndpoint('127.0.0.1', adminPort), 'comet_max_connections'), 12345);
});
