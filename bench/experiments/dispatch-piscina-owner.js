// Piscina task module for bench/experiments/dispatch.js variant (c): one task = one put on a
// channel this worker owns (the pool's loadBalancer routes by channel owner).
// Same store as the 'owner' role in dispatch-worker.js.

import { workerData } from 'piscina';

const cap = workerData?.bufferCap ?? 100;
const channels = new Map();

export default function put({ c, m }) {
  let ch = channels.get(c);
  if (ch === undefined) channels.set(c, (ch = { last: 0, messages: [] }));
  const now = Date.now() * 1000;
  ch.last = now > ch.last ? now : ch.last + 1;
  ch.messages.push(m);
  if (ch.messages.length > cap) ch.messages.shift();
  return ch.last;
}
