// Parent side of the throughput load: forks one autocannon process per load
// core (./autocannon-child.js), splits the connections over them, warms up,
// then measures all of them together while reading the CPU time of the
// target's processes and of the load processes from /proc.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuOf, pin } from '../cpu.js';
import { Histogram } from '../histogram.js';
import { forkTracked, nextMessage } from './children.js';

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'autocannon-child.js');
/**
 * Runs the requests (replayed in a loop by every connection) against url.
 * procs load processes share `connections`; loadCpus pins them. targetPids()
 * names the processes whose CPU is the server's.
 * Resolves {requests, rps, p50Ms, p99Ms, errors, non2xx, timeouts, serverCpuUs,
 * serverCores, loadCores, wallMs}; serverCpuUs is per request.
 */
export async function runAutocannon({ url, requests, connections, procs, loadCpus, warmupS, durationS, targetPids }) {
  const children = Array.from({ length: procs }, () => forkTracked(childScript));
  try {
    if (loadCpus !== null) pin(children.map((c) => c.pid), loadCpus);
    const limit = (warmupS + durationS + 30) * 1000;
    const warm = children.map((c) => nextMessage(c, 'warm', limit, 'autocannon process'));
    const done = children.map((c) => nextMessage(c, 'done', limit, 'autocannon process'));
    for (const d of done) d.catch(() => {});
    children.forEach((c, i) => {
      const share = Math.floor(connections / procs) + (i < connections % procs ? 1 : 0);
      // each process starts the rotation elsewhere, so that they do not march in step
      const offset = Math.floor((i * requests.length) / procs);
      c.send({ cmd: 'run', url, requests: [...requests.slice(offset), ...requests.slice(0, offset)], connections: Math.max(1, share), warmupS, durationS });
    });
    await Promise.all(warm);
    const pids = children.map((c) => c.pid);
    const server0 = cpuOf(targetPids());
    const load0 = cpuOf(pids);
    const t0 = performance.now();
    for (const c of children) c.send({ cmd: 'go' });
    // CPU is read when the last process reports, before any of them exits
    const results = await Promise.all(done);
    const wallMs = performance.now() - t0;
    const serverUs = cpuOf(targetPids()) - server0;
    const loadUs = cpuOf(pids) - load0;
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
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}
