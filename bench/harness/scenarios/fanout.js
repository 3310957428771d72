// Scenario 2, fan-out: W gets wait on one channel, one publish per round, and
// the time from sending the publish to each waiter's answer. Between rounds
// the waiters chain (ask again from their answer's cursor). Latencies are
// p50/p99/max over all deliveries of all rounds; the target's CPU per delivery
// covers the publish and the W answers (the gets asked again come after the
// round's last answer, outside its window). Their CPU is measured too, from
// asking again until the target counts all W waiting: a long-poll is ready
// for the next message only then, so the two together are what a delivery
// costs a subscriber that stays subscribed. A multi-node target's waiters
// are spread evenly over its nodes; the publishes go to its first node.
// The streams scenario (./streams.js) runs it with streaming subscribers
// instead: each holds an event stream or a WebSocket open through every
// round, with nothing to ask again, and is ready again at its delivery.

import { median, sleep } from '../../lib/common.js';
import { cpuOf, cpuOfParts, partFigures } from '../cpu.js';
import { spawnLongPollClients } from '../load/longpoll-clients.js';
import { boundBy, freshToken, messageWith, nowMs, untilLast, untilWaiting } from './context.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {Awaited<ReturnType<typeof spawnLongPollClients>>} LongPollClients
 */

/**
 * The value below which a fraction q of the sorted list lies (nearest rank).
 * @param {number[]} sorted
 * @param {number} q
 */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * One publish to a channel with `clients` armed for it. Resolves
 * {t0, putMs, outcome, serverUs, partsUs, loadUs, clientUs, windowMs}:
 * outcome is the clients' round; serverUs and loadUs the CPU of the target
 * and of the clients (with this process) from just before the publish until
 * the last delivery, windowMs later, clientUs that of the client processes
 * alone; partsUs the target's parts' ({redis: µs}).
 * @param {Context} ctx
 * @param {LongPollClients} clients
 * @param {string} channel
 * @param {string} token
 */
export async function publishRound(ctx, clients, channel, token) {
  const { delivered } = await clients.arm(token, ctx.settings.roundTimeoutMs);
  const loadPids = [process.pid, ...clients.pids()];
  const load0 = cpuOf(loadPids);
  const client0 = cpuOf(clients.pids());
  const server0 = cpuOf(ctx.target.pids());
  const parts0 = cpuOfParts(ctx.target.parts?.());
  const t0 = nowMs();
  const res = await ctx.call(ctx.adapter.put(channel, messageWith(token, ctx.settings.messageBytes)));
  const putMs = nowMs() - t0;
  if (!ctx.adapter.readPut(res).ok) throw new Error(`publish answered ${res.status}: ${res.body.slice(0, 200)}`);
  const outcome = await delivered;
  const serverUs = cpuOf(ctx.target.pids()) - server0;
  const parts = cpuOfParts(ctx.target.parts?.());
  const partsUs = Object.fromEntries(Object.entries(parts).map(([k, us]) => [k, us - parts0[k]]));
  const loadUs = cpuOf(loadPids) - load0;
  const clientUs = cpuOf(clients.pids()) - client0;
  const windowMs = untilLast(outcome.arrivals, t0);
  return { t0, putMs, outcome, serverUs, partsUs, loadUs, clientUs, windowMs };
}

/**
 * @param {Context} ctx
 * @param {number} waiters
 * @param {import('../load/messages.js').Transport} [transport]
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, waiters, transport = 'longpoll') {
  const s = ctx.settings;
  const channel = freshToken('fan-');
  const clients = await spawnLongPollClients(waiters, { loadCpus: ctx.loadCpus, minClients: Math.min(ctx.loadCapacity, Math.ceil(waiters / 500)) });
  try {
    await clients.open({ urls: ctx.target.urls ?? [ctx.target.url], adapterRef: ctx.target.adapterRef, channel, transport });
    await untilWaiting(ctx, waiters, 60_000 + waiters * 2, transport);
    clients.throwIfEarly(transport === 'longpoll' ? 'gets' : 'streams');
    /** @type {number[]} */
    const latencies = [];
    /** @type {number[]} */
    const putMs = [];
    let serverUs = 0;
    /** @type {Record<string, number>} */
    const partsUs = {};
    let loadUs = 0;
    let clientUs = 0;
    let windowMs = 0;
    let rearmUs = 0;
    let delivered = 0;
    for (let round = 0; round < s.rounds; round++) {
      const token = freshToken('r');
      const r = await publishRound(ctx, clients, channel, token);
      const { ok, bad, closed, firstBad, arrivals } = r.outcome;
      if (ok !== waiters)
        throw new Error(
          `round ${round + 1}: ${ok} of ${waiters} waiters got the message (bad ${bad}, closed ${closed}, first bad ${JSON.stringify(firstBad)})`,
        );
      for (const at of arrivals) latencies.push(at - r.t0);
      putMs.push(r.putMs);
      serverUs += r.serverUs;
      for (const [k, us] of Object.entries(r.partsUs)) partsUs[k] = (partsUs[k] ?? 0) + us;
      loadUs += r.loadUs;
      clientUs += r.clientUs;
      windowMs += r.windowMs;
      delivered += ok;
      if (transport === 'longpoll') {
        // the target's counter is read a few times meanwhile: a few requests against W gets
        const before = cpuOf(ctx.target.pids());
        await clients.askAgain();
        await untilWaiting(ctx, waiters, 30_000 + waiters);
        rearmUs += cpuOf(ctx.target.pids()) - before;
      }
      await sleep(s.roundPauseMs);
    }
    latencies.sort((a, b) => a - b);
    const serverCores = serverUs / 1000 / windowMs;
    const loadCores = loadUs / 1000 / windowMs;
    return {
      p50Ms: quantile(latencies, 0.5),
      p99Ms: quantile(latencies, 0.99),
      maxMs: latencies[latencies.length - 1],
      serverCpuUs: serverUs / delivered,
      ...(transport === 'longpoll' ? { rearmCpuUs: rearmUs / delivered } : {}),
      cycleCpuUs: (serverUs + rearmUs) / delivered,
      // what reading a delivery costs a subscriber process (this one's publishing and waiting left out):
      // on a machine of few cores it can rival the server's, and then the clients set the latencies
      clientCpuUs: clientUs / delivered,
      delivered,
      expected: waiters * s.rounds,
      putMs: median(putMs),
      rounds: s.rounds,
      serverCores,
      loadCores,
      bound: boundBy(ctx, serverCores, loadCores),
      ...partFigures({}, partsUs, delivered, windowMs),
    };
  } finally {
    await clients.close();
  }
}
