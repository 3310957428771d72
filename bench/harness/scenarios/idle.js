// Scenario 4, idle capacity: N idle gets wait on one channel (spread over
// client processes and loopback source addresses), and the target's resident
// memory per waiting get is (ΣRSS after − ΣRSS before) / N over all of its
// processes (nginx: master and workers). Then one publish must reach every one
// of them, and the time to the last answer is reported. The streams scenario
// (./streams.js) runs it with N open event streams or WebSockets instead.

import fs from 'node:fs';
import { sleep } from '../../lib/common.js';
import { steadyRss } from '../../lib/server.js';
import { spawnLongPollClients } from '../load/longpoll-clients.js';
import { publishRound } from './fanout.js';
import { freshToken, untilWaiting } from './context.js';

/**
 * @typedef {import('./context.js').Context} Context
 * @typedef {import('../load/messages.js').Transport} Transport
 */

/**
 * Proportional set size (shared pages split among their users) in bytes, NaN where unknown.
 * @param {number} pid
 */
function readPss(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** @param {number[]} pids @param {(pid: number) => number} f */
const sum = (pids, f) => pids.reduce((a, p) => a + f(p), 0);

/**
 * A few rounds of subscribers (of the transport measured) and publishes, so
 * that one-time costs land before the baseline.
 * @param {Context} ctx
 * @param {Transport} transport
 */
async function warmUp(ctx, transport) {
  const count = ctx.settings.warmupWaiters;
  const channel = freshToken('warm-');
  const clients = await spawnLongPollClients(count);
  try {
    await clients.open({ urls: ctx.target.urls ?? [ctx.target.url], adapterRef: ctx.target.adapterRef, channel, transport });
    for (let round = 0; round < 3; round++) {
      await untilWaiting(ctx, count, 20_000, transport);
      const { outcome } = await publishRound(ctx, clients, channel, freshToken('w'));
      if (outcome.ok !== count) throw new Error(`warm-up: ${outcome.ok} of ${count} gets got the message`);
      await clients.askAgain();
    }
  } finally {
    await clients.close();
  }
  for (let i = 0; i < 50; i++) await ctx.call(ctx.adapter.put(`${channel}-${i}`, 'w'));
}

/**
 * @param {Context} ctx
 * @param {number} waiters
 * @param {Transport} [transport]
 * @returns {Promise<import('../types.js').Run>}
 */
export async function run(ctx, waiters, transport = 'longpoll') {
  const pids = ctx.target.pids;
  if (pids().length === 0) throw new Error("idle capacity reads the target's memory: give the external target's process ids with --pid");
  // client processes first, so that pages they share with the target are shared alike at both readings
  const clients = await spawnLongPollClients(waiters, { loadCpus: ctx.loadCpus, minClients: 2 });
  try {
    await warmUp(ctx, transport);
    await untilWaiting(ctx, 0, 20_000, transport);
    const rssBefore = await steadyRss(pids);
    const pssBefore = sum(pids(), readPss);
    const channel = freshToken('idle-');
    await clients.open({ urls: ctx.target.urls ?? [ctx.target.url], adapterRef: ctx.target.adapterRef, channel, transport });
    await untilWaiting(ctx, waiters, 60_000 + waiters * 2, transport);
    await sleep(ctx.settings.settleMs);
    clients.throwIfEarly(transport === 'longpoll' ? 'idle gets' : 'idle streams');
    const rssAfter = await steadyRss(pids);
    const pssAfter = sum(pids(), readPss);
    const token = freshToken('i');
    const { outcome, windowMs } = await publishRound(ctx, clients, channel, token);
    return {
      bytesPerWaiter: (rssAfter - rssBefore) / waiters,
      bytesPerWaiterPss: (pssAfter - pssBefore) / waiters,
      rssBefore,
      rssAfter,
      processes: pids().length,
      delivered: outcome.ok,
      expected: waiters,
      deliverMs: windowMs,
    };
  } finally {
    await clients.close();
  }
}
