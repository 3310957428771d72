// Scenario 3, many channels: W gets each wait on a channel of their own, then
// one publish to each channel, sent over settings.publishers keep-alive
// connections as fast as the target answers. Deliveries per second = W / the
// time from the first publish to the last answer; the target's CPU per
// delivery includes its publish. A first, unmeasured round on the same
// channels warms the target up (channels created, code compiled), so the
// figures are those of subscribers that keep polling their channels.

import { Connection } from '../connection.js';
import { cpuOf, cpuOfParts, partFigures } from '../cpu.js';
import { spawnLongPollClients } from '../load/longpoll-clients.js';
import { boundBy, freshToken, messageWith, nowMs, untilLast, untilWaiting } from './context.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {Awaited<ReturnType<typeof spawnLongPollClients>>} LongPollClients
 */

/**
 * One message to each of the waiters' channels; resolves {t0, arrivals} once every waiter has it.
 * @param {Context} ctx
 * @param {LongPollClients} clients
 * @param {Connection[]} publishers
 * @param {string} prefix
 * @param {number} waiters
 */
async function publishToEach(ctx, clients, publishers, prefix, waiters) {
  const token = freshToken('d');
  const msg = messageWith(token, ctx.settings.messageBytes);
  const { delivered } = await clients.arm(token, ctx.settings.roundTimeoutMs);
  const t0 = nowMs();
  /** @type {string | null} */
  let failed = null;
  await Promise.all(
    publishers.map(async (p, k) => {
      for (let g = k; g < waiters; g += publishers.length) {
        const res = await p.request(ctx.adapter.put(`${prefix}-${g}`, msg));
        if (!ctx.adapter.readPut(res).ok) failed ??= `${res.status} ${res.body.slice(0, 200)}`;
      }
    }),
  );
  const { ok, bad, closed, firstBad, arrivals } = await delivered;
  if (failed) throw new Error(`a publish was refused: ${failed}`);
  if (ok !== waiters) throw new Error(`${ok} of ${waiters} waiters got their message (bad ${bad}, closed ${closed}, first bad ${JSON.stringify(firstBad)})`);
  return { t0, arrivals };
}

/**
 * @param {Context} ctx
 * @param {number} waiters
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, waiters) {
  const s = ctx.settings;
  const prefix = freshToken('ch-');
  const { hostname, port } = new URL(ctx.target.url);
  const clients = await spawnLongPollClients(waiters, { loadCpus: ctx.loadCpus, minClients: Math.min(ctx.loadCapacity, Math.ceil(waiters / 500)) });
  const publishers = Array.from({ length: Math.min(s.publishers, waiters) }, () => new Connection({ host: hostname, port: Number(port) }));
  try {
    await clients.open({ urls: ctx.target.urls ?? [ctx.target.url], adapterRef: ctx.target.adapterRef, channel: prefix, ownChannels: true });
    await untilWaiting(ctx, waiters, 60_000 + waiters * 2);
    clients.throwIfEarly('gets');
    // the publishers' connections are open before the clock starts
    await Promise.all(publishers.map((p) => p.request(ctx.adapter.put(`${prefix}-warm`, 'w'))));
    await publishToEach(ctx, clients, publishers, prefix, waiters);
    await clients.askAgain();
    await untilWaiting(ctx, waiters, 30_000 + waiters);
    const pids = [process.pid, ...clients.pids()];
    const load0 = cpuOf(pids);
    const server0 = cpuOf(ctx.target.pids());
    const parts0 = cpuOfParts(ctx.target.parts?.());
    const { t0, arrivals } = await publishToEach(ctx, clients, publishers, prefix, waiters);
    const serverUs = cpuOf(ctx.target.pids()) - server0;
    const parts = cpuOfParts(ctx.target.parts?.());
    const loadUs = cpuOf(pids) - load0;
    const elapsedMs = untilLast(arrivals, t0);
    const serverCores = serverUs / 1000 / elapsedMs;
    const loadCores = loadUs / 1000 / elapsedMs;
    return {
      deliveriesPerSec: waiters / (elapsedMs / 1000),
      serverCpuUs: serverUs / waiters,
      delivered: arrivals.length,
      expected: waiters,
      elapsedMs,
      serverCores,
      loadCores,
      bound: boundBy(ctx, serverCores, loadCores),
      ...partFigures(parts0, parts, waiters, elapsedMs),
    };
  } finally {
    for (const p of publishers) p.close();
    await clients.close();
  }
}
