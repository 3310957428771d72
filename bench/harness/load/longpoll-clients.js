// Parent side of the subscriber client processes (./longpoll-child.js):
// spawns them, splits the sockets over them and over loopback source
// addresses, and drives them over IPC with bounded waits. The subscribers
// long-poll, or with `transport` hold an event stream or a WebSocket open.
//
//   const clients = await spawnLongPollClients(n);
//   await clients.open({ urls, adapterRef, channel, ownChannels, transport });
//   clients.throwIfEarly('gets');
//   const round = await clients.arm(token);          // every process armed
//   ... publish ...
//   const { ok, bad, closed, firstBad, arrivals } = await round.delivered;
//   await clients.askAgain();                        // every long-poll waits again
//   await clients.close();
//
// Every child is killed if this process exits (./children.js).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../../lib/common.js';
import { pin } from '../cpu.js';
import { forkTracked, nextMessage } from './children.js';

/**
 * @typedef {import('./messages.js').LongPollReport} LongPollReport
 * @typedef {import('./messages.js').LongPollCommand} LongPollCommand
 * @typedef {import('./messages.js').Transport} Transport
 * @typedef {Omit<import('./messages.js').Delivered, 'type' | 'firstBad'> & { firstBad: import('./messages.js').BadAnswer | null | undefined }} RoundOutcome
 */

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'longpoll-child.js');

/** Source addresses the sockets are spread over (each has its own ~28k ephemeral ports). */
export const LOCAL_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9'];
/** Most sockets one client process holds (a process may have at most 20,000 open files). */
export const MAX_PER_CLIENT = 6000;

function spawnChild() {
  const child = forkTracked(childScript);
  /**
   * @template {LongPollReport['type']} T
   * @param {T} type
   * @param {number} ms
   */
  const next = (type, ms) => /** @type {Promise<Extract<LongPollReport, { type: T }>>} */ (nextMessage(child, type, ms, 'long-poll client'));
  /** @param {LongPollCommand} m */
  const send = (m) => child.send(m);
  return { child, next, send };
}

/**
 * Spawns max(minClients, ceil(n / perClient)) client processes for n sockets,
 * pinned to loadCpus when given. Returns the handle described at the top.
 * @param {number} n
 * @param {{ perClient?: number, minClients?: number, loadCpus?: string | null }} [opts]
 */
export async function spawnLongPollClients(n, { perClient = MAX_PER_CLIENT, minClients = 1, loadCpus = null } = {}) {
  if (perClient > MAX_PER_CLIENT) throw new Error(`at most ${MAX_PER_CLIENT} sockets per client process`);
  // never more processes than sockets: a process given none would never report them open
  const k = Math.min(n, Math.max(minClients, Math.ceil(n / perClient)));
  const clients = Array.from({ length: k }, spawnChild);
  /** @type {LongPollReport[]} */
  const early = [];
  for (const c of clients) c.child.on('message', (/** @type {LongPollReport} */ m) => m.type === 'early' && early.push(m));
  const handle = {
    size: k,
    pids: () => clients.map((c) => /** @type {number} */ (c.child.pid)),

    /**
     * Opens the n sockets, each with one get waiting (or its stream open);
     * throws if a connect failed or a stream was refused. concurrency and
     * rate are totals over all processes. Socket g (over all processes) goes
     * to urls[g % urls.length]: a multi-node target's gets are spread evenly
     * over its nodes.
     * @param {{ urls: string[], adapterRef: string, channel: string, ownChannels?: boolean, transport?: Transport, concurrency?: number, rate?: number, timeoutMs?: number }} what
     */
    async open({ urls, adapterRef, channel, ownChannels = false, transport = 'longpoll', concurrency = 384, rate = 6000, timeoutMs = 120_000 }) {
      const per = Math.ceil(n / k);
      let assigned = 0;
      const opened = await Promise.all(
        clients.map((c) => {
          const count = Math.min(per, n - assigned);
          const p = c.next('opened', timeoutMs);
          c.send({
            cmd: 'open',
            urls,
            adapterRef,
            transport,
            count,
            firstIndex: assigned,
            channel,
            ownChannels,
            localAddresses: LOCAL_ADDRESSES,
            concurrency: Math.max(1, Math.floor(concurrency / k)),
            rate: rate > 0 ? Math.max(1, rate / k) : 0,
          });
          assigned += count;
          return p;
        }),
      );
      const failed = opened.reduce((a, m) => a + m.failed, 0);
      if (failed > 0) throw new Error(`${failed} of ${n} ${transport} subscribers failed to open, first: ${opened.find((m) => m.firstError)?.firstError}`);
    },

    /**
     * Throws if any get was answered outside a round (before a publish).
     * @param {string} what
     */
    throwIfEarly(what) {
      if (early.length > 0) throw new Error(`${early.length} ${what} answered before any publish, first: ${JSON.stringify(early[0])}`);
    },

    /**
     * Starts a round: answers containing expect count as deliveries. Resolves
     * once every process is armed, with {delivered}: a promise of the round's outcome
     * {ok, bad, closed, firstBad, arrivals} (arrivals: process.hrtime ms of each good answer).
     * @param {string} expect
     * @returns {Promise<{ delivered: Promise<RoundOutcome> }>}
     */
    async arm(expect, timeoutMs = 60_000) {
      const delivered = clients.map((c) => c.next('delivered', timeoutMs));
      // a failed round must not leave unhandled rejections behind
      for (const d of delivered) d.catch(() => {});
      await Promise.all(clients.map((c) => (c.send({ cmd: 'arm', expect }), c.next('armed', 10_000))));
      const outcome = Promise.all(delivered).then((all) => ({
        ok: all.reduce((a, d) => a + d.ok, 0),
        bad: all.reduce((a, d) => a + d.bad, 0),
        closed: all.reduce((a, d) => a + d.closed, 0),
        firstBad: all.find((d) => d.firstBad)?.firstBad,
        arrivals: all.flatMap((d) => d.arrivals),
      }));
      // a round abandoned before its publish must not leave an unhandled rejection behind
      outcome.catch(() => {});
      return { delivered: outcome };
    },

    /** Every long-poll asks again from the cursor of its last answer (a stream goes on by itself). */
    async askAgain(timeoutMs = 10_000) {
      await Promise.all(clients.map((c) => (c.send({ cmd: 'ask' }), c.next('asked', timeoutMs))));
    },

    /** Closes every socket and waits (bounded) for each process to exit, else kills it. */
    async close(timeoutMs = 10_000) {
      for (const c of clients) if (c.child.connected) c.send({ cmd: 'close' });
      await Promise.all(
        clients.map((c) =>
          withTimeout(
            new Promise((r) => (c.child.exitCode !== null || c.child.signalCode !== null ? r(undefined) : c.child.once('exit', r))),
            timeoutMs,
            'client exit',
          ).catch(() => c.child.kill('SIGKILL')),
        ),
      );
    },
  };
  try {
    await Promise.all(clients.map((c) => c.next('ready', 10_000)));
    if (loadCpus !== null) pin(handle.pids(), loadCpus);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}
