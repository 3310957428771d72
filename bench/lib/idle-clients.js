// Parent side of the idle long-poll clients (bench/lib/idle-client.js), shared by
// bench/idle-memory.js and bench/nchan-compare.js: spawns the client child
// processes, splits N sockets over them, and drives them over IPC
// (open / arm / close), waiting for their typed messages with timeouts.
//
//   const clients = await spawnIdleClients(n, { perClient: 6000, minClients: 2 });
//   await clients.open({ port, channel, pathTemplate, expect, concurrency, rate });
//   clients.throwIfEarly('gets');          // any answered before the publish?
//   await clients.arm();
//   const deliveredP = clients.delivered(60_000);
//   ... publish ...
//   const { ok, bad, closed, firstBad, lastArrived } = await deliveredP;
//   await clients.close();
//
// Every child is killed if this process exits; every wait is bounded.

import { fork } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { withTimeout } from './common.js';

const clientScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'idle-client.js');

/** Source addresses the sockets are spread over (each has its own ~28k ephemeral ports). */
export const LOCAL_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9'];
/** Most sockets one client process holds. */
export const MAX_PER_CLIENT = 6000;

const liveChildren = new Set();
process.on('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});

function spawnClient() {
  const child = fork(clientScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  const listeners = new Set();
  child.on('message', (m) => {
    for (const l of listeners) l(m);
  });
  /** The next message of this type (rejects on 'fatal' or after ms). */
  const nextMessage = (type, ms) =>
    withTimeout(
      new Promise((resolve, reject) => {
        const l = (m) => {
          if (m.type === type) {
            listeners.delete(l);
            resolve(m);
          } else if (m.type === 'fatal') {
            listeners.delete(l);
            reject(new Error(`client failed: ${m.message}`));
          }
        };
        listeners.add(l);
      }),
      ms,
      `client message ${type}`,
    );
  return { child, nextMessage, listeners, count: 0 };
}

/**
 * Spawns max(minClients, ceil(n / perClient)) client processes for n sockets and
 * waits until each is ready. Returns a handle; see the top of this file.
 */
export async function spawnIdleClients(n, { perClient = MAX_PER_CLIENT, minClients = 2 } = {}) {
  if (perClient > MAX_PER_CLIENT) throw new Error(`at most ${MAX_PER_CLIENT} sockets per client process`);
  const k = Math.max(minClients, Math.ceil(n / perClient));
  const clients = [];
  /** 'early' messages: sockets answered before arm() */
  const early = [];
  const handle = {
    clients,
    early,
    size: k,
    pids: () => clients.map((c) => c.child.pid),

    /**
     * Opens n sockets split over the clients and waits until every connect has
     * succeeded or failed; throws if any failed. concurrency and rate are per
     * client process (rate: connects started per second, 0 = no limit).
     * Resolves {openMs}.
     */
    async open({ host = '127.0.0.1', port, channel, channels = 1, pathTemplate, expect, concurrency, rate = 0, localAddresses = LOCAL_ADDRESSES, timeoutMs = 120_000 }) {
      const per = Math.ceil(n / k);
      const t0 = performance.now();
      const openedP = [];
      let assigned = 0;
      for (const c of clients) {
        const count = Math.min(per, n - assigned);
        openedP.push(c.nextMessage('opened', timeoutMs));
        c.child.send({ cmd: 'open', host, port, count, firstIndex: assigned, channel, channels, pathTemplate, localAddresses, concurrency, rate, expect });
        c.count = count;
        assigned += count;
      }
      const opened = await Promise.all(openedP);
      const failed = opened.reduce((a, m) => a + m.failed, 0);
      if (failed > 0) throw new Error(`${failed} connects failed, first: ${opened.find((m) => m.firstError)?.firstError}`);
      return { openMs: performance.now() - t0 };
    },

    /** Throws if any socket was answered before arm(): "N <what> answered before any <publish>, first: ...". */
    throwIfEarly(what, publish = 'publish') {
      if (early.length > 0) throw new Error(`${early.length} ${what} answered before any ${publish}, first: ${JSON.stringify(early[0])}`);
    },

    /** Tells every client that a publish is coming; resolves once all have acknowledged. */
    arm(timeoutMs = 10_000) {
      return Promise.all(clients.map((c) => (c.child.send({ cmd: 'arm' }), c.nextMessage('armed', timeoutMs))));
    },

    /**
     * Resolves once every client has reported all its sockets answered:
     * {ok, bad, closed, firstBad, lastArrived} (lastArrived: performance.now()
     * when the last report reached this process). Call after arm(), before publishing.
     */
    async delivered(timeoutMs = 60_000) {
      const all = await Promise.all(clients.map((c) => c.nextMessage('delivered', timeoutMs).then((m) => ({ ...m, arrived: performance.now() }))));
      return {
        ok: all.reduce((a, d) => a + d.ok, 0),
        bad: all.reduce((a, d) => a + d.bad, 0),
        closed: all.reduce((a, d) => a + d.closed, 0),
        firstBad: all.find((d) => d.firstBad)?.firstBad,
        lastArrived: Math.max(...all.map((d) => d.arrived)),
      };
    },

    /** Closes every client's sockets and waits (bounded) for it to exit, else kills it. */
    async close(timeoutMs = 10_000) {
      for (const c of clients) if (c.child.connected) c.child.send({ cmd: 'close' });
      await Promise.all(
        clients.map((c) =>
          withTimeout(new Promise((r) => (c.child.exitCode !== null ? r() : c.child.once('exit', r))), timeoutMs, 'client exit').catch(() =>
            c.child.kill('SIGKILL'),
          ),
        ),
      );
    },
  };
  for (let i = 0; i < k; i++) clients.push(spawnClient());
  for (const c of clients) c.listeners.add((m) => m.type === 'early' && early.push(m));
  try {
    await Promise.all(clients.map((c) => c.nextMessage('ready', 10_000)));
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}
