// Parent side of the throughput load: forks one autocannon process per load
// core (./autocannon-child.js), splits the connections over them and over the
// target's URLs (a multi-node target's nodes), warms up, then measures all of
// them together while reading the CPU time of the target's processes and of
// the load processes from /proc.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuOf, cpuOfParts, partFigures, pin } from '../cpu.js';
import { gcMsPer1k } from '../gc.js';
import { Histogram } from '../histogram.js';
import { forkTracked, nextMessage } from './children.js';

/**
 * What a throughput load (this one or ./wrk-load.js) is given.
 * @typedef {object} LoadOptions
 * @property {string[]} urls every node of the target
 * @property {import('../types.js').Request[]} requests replayed in a loop by every connection
 * @property {Chain} [chain] instead of requests, a put and a chained get in turn (wrk only)
 * @property {number} connections over all load processes
 * @property {number} procs load processes (wrk: threads per URL)
 * @property {string | null} loadCpus the cores the load is pinned to
 * @property {number} warmupS
 * @property {number} durationS
 * @property {() => number[]} targetPids the processes whose CPU is the server's
 * @property {() => Record<string, number[]>} [targetParts] parts of them whose CPU is reported on its own as well
 * @property {() => Promise<number | null>} [gcSeconds] the target's GC pause seconds so far, null when it does not count them (../gc.js)
 * @typedef {object} Chain puts and gets in turn, each get from the newest time a get was answered with
 * @property {import('../types.js').Request} put
 * @property {import('../types.js').Request} get its path holds CURSOR_MARK (./wrk-load.js) where the time goes
 * @property {string} cursor the first get's time
 * @property {string} answered a Lua pattern whose capture is the time of a get's answer (not a put's)
 * @typedef {import('./messages.js').AutocannonReport} AutocannonReport
 * @typedef {import('./messages.js').AutocannonCommand} AutocannonCommand
 */

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'autocannon-child.js');
/**
 * Which connections each of procs load processes opens to which of urls: a
 * list per process of {url, connections}. Every URL gets an equal share of
 * the connections (the first ones one more where they do not divide), each
 * share spread evenly over the processes, a URL's leftovers going on where
 * the previous URL's stopped, so that the processes stay within one
 * connection of each other; a process left without any gets one connection,
 * so that no load process idles.
 * @param {number} connections
 * @param {number} procs
 * @param {string[]} urls
 */
export function splitConnections(connections, procs, urls) {
  if (urls.length === 0) throw new Error('no URL to send the load to');
  const plan = Array.from({ length: procs }, () => /** @type {{ url: string, connections: number }[]} */ ([]));
  let start = 0;
  urls.forEach((url, j) => {
    const forUrl = Math.floor(connections / urls.length) + (j < connections % urls.length ? 1 : 0);
    for (let i = 0; i < procs; i++) {
      const rank = (i - start + procs) % procs;
      const n = Math.floor(forUrl / procs) + (rank < forUrl % procs ? 1 : 0);
      if (n > 0) plan[i].push({ url, connections: n });
    }
    start = (start + (forUrl % procs)) % procs;
  });
  plan.forEach((p, i) => p.length === 0 && p.push({ url: urls[i % urls.length], connections: 1 }));
  return plan;
}

/**
 * Runs the requests (replayed in a loop by every connection) against urls,
 * the connections split by splitConnections(). procs load processes
 * share `connections`; loadCpus pins them. targetPids() names the processes
 * whose CPU is the server's, targetParts() ({redis: [pid]}) parts of them whose
 * CPU is reported on its own as well.
 * Resolves {requests, rps, p50Ms, p99Ms, errors, non2xx, timeouts, serverCpuUs,
 * serverCores, loadCores, wallMs, gcMsPer1k, ...partFigures}; serverCpuUs is per
 * request; gcMsPer1k is gcSeconds()'s growth over the measured window per
 * 1,000 requests, in ms (null when the target does not count its GC).
 * @param {LoadOptions} opts
 */
export async function runAutocannon({
  urls,
  requests,
  chain,
  connections,
  procs,
  loadCpus,
  warmupS,
  durationS,
  targetPids,
  targetParts = () => ({}),
  gcSeconds = async () => null,
}) {
  if (chain) throw new Error('a chained get reads every answer for its cursor: it runs on --generator wrk only');
  const children = Array.from({ length: procs }, () => forkTracked(childScript));
  try {
    const pids = children.map((c) => /** @type {number} */ (c.pid));
    if (loadCpus !== null) pin(pids, loadCpus);
    const limit = (warmupS + durationS + 30) * 1000;
    const warm = children.map((c) => nextMessage(c, 'warm', limit, 'autocannon process'));
    const done = children.map((c) => /** @type {Promise<Extract<AutocannonReport, { type: 'done' }>>} */ (nextMessage(c, 'done', limit, 'autocannon process')));
    for (const d of done) d.catch(() => {});
    const plan = splitConnections(connections, procs, urls);
    const instances = plan.reduce((a, p) => a + p.length, 0);
    let k = 0;
    children.forEach((c, i) => {
      // each autocannon instance starts the rotation elsewhere, so that they do not march in step
      const targets = plan[i].map((t) => ({ ...t, offset: Math.floor((k++ * requests.length) / instances) }));
      c.send(/** @type {AutocannonCommand} */ ({ cmd: 'run', targets, requests, warmupS, durationS }));
    });
    await Promise.all(warm);
    const gc0 = await gcSeconds();
    const server0 = cpuOf(targetPids());
    const parts0 = cpuOfParts(targetParts());
    const load0 = cpuOf(pids);
    const t0 = performance.now();
    for (const c of children) c.send({ cmd: 'go' });
    // CPU is read when the last process reports, before any of them exits
    const results = await Promise.all(done);
    const wallMs = performance.now() - t0;
    const serverUs = cpuOf(targetPids()) - server0;
    const parts = cpuOfParts(targetParts());
    const loadUs = cpuOf(pids) - load0;
    const gc1 = await gcSeconds();
    const histogram = new Histogram();
    for (const r of results) histogram.add(r.histogram);
    const total = results.reduce((a, r) => a + r.requests, 0);
    return {
      requests: total,
      rps: results.reduce((a, r) => a + r.requests / r.durationS, 0),
      p50Ms: histogram.quantile(0.5) / 1000,
      p99Ms: histogram.quantile(0.99) / 1000,
      errors: results.reduce((a, r) => a + r.errors, 0),
      non2xx: results.reduce((a, r) => a + r.non2xx, 0),
      timeouts: results.reduce((a, r) => a + r.timeouts, 0),
      serverCpuUs: total > 0 ? serverUs / total : NaN,
      serverCores: serverUs / 1000 / wallMs,
      loadCores: loadUs / 1000 / wallMs,
      wallMs,
      gcMsPer1k: gcMsPer1k(gc0, gc1, total),
      ...partFigures(parts0, parts, total, wallMs),
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}
