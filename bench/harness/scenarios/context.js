// What every scenario run gets: the started target, its adapter, one
// keep-alive connection for the harness's own requests (to the target's first
// node), the settings and the core split between target and load generator.

import { sleep } from '../../lib/common.js';
import { loadAdapter } from '../adapters.js';
import { Connection } from '../connection.js';
import { parseCpuList } from '../cpu.js';
import { gcSecondsOf } from '../gc.js';

/**
 * @typedef {import('../types.js').Request} Request
 * @typedef {import('../types.js').Bound} Bound
 * @typedef {Awaited<ReturnType<typeof createContext>>} Context
 * @typedef {import('../load/messages.js').Transport} Transport
 */

/** @param {Transport} transport */
const what = (transport) => (transport === 'longpoll' ? 'gets' : `${transport} streams`);

/**
 * @param {import('../targets.js').TargetHandle} target
 * @param {import('../settings.js').Settings} settings
 * @param {{ server: string, load: string } | null | undefined} pinning core lists, or null (nothing pinned)
 */
export async function createContext(target, settings, pinning) {
  const adapter = await loadAdapter(target.adapterRef, target.url);
  /** @param {string} url */
  const connect = (url) => {
    const { hostname, port } = new URL(url);
    return new Connection({ host: hostname, port: Number(port) });
  };
  const conn = connect(target.url);
  // one per node: a multi-node target's waiting gets are the sum of its nodes'
  const probes = (target.urls ?? [target.url]).map(connect);
  const ctx = {
    target,
    adapter,
    settings,
    pinning,
    conn,
    /**
     * Sends a request on the harness's connection.
     * @param {Request} req
     */
    call: (req) => conn.request(req),
    /** Cores the target may use: its pinned cores, else its threads (or every core). */
    serverCapacity: pinning ? parseCpuList(pinning.server).length : (target.threads ?? settings.cores),
    loadCpus: pinning ? pinning.load : null,
    loadCapacity: pinning ? parseCpuList(pinning.load).length : settings.cores,
    /**
     * Waiting gets (or with a streaming transport, open streams) as the
     * target counts them, or null when it cannot tell (no counter in its
     * adapter, or the counter's page is not there).
     * @param {Transport} [transport]
     * @returns {Promise<number | null>}
     */
    async waiting(transport = 'longpoll') {
      const counter = transport === 'longpoll' ? adapter.waiting : adapter.streams?.waiting;
      if (!counter) return null;
      let sum = 0;
      for (const probe of probes) {
        const res = await probe.request({ path: counter.path });
        const count = res.status === 200 ? counter.read(res.body) : NaN;
        if (!Number.isFinite(count)) return null;
        sum += count;
      }
      return sum;
    },
    /**
     * GC pause seconds so far as the target counts them (comet_gc_seconds_total
     * in its /metrics, summed over its nodes), or null when it does not.
     * @returns {Promise<number | null>}
     */
    async gcSeconds() {
      let sum = 0;
      for (const probe of probes) {
        let s = null;
        try {
          s = gcSecondsOf(await probe.request({ path: '/metrics' }));
        } catch {
          // a target without /metrics may close the connection rather than answer 404
        }
        if (s === null) return null;
        sum += s;
      }
      return sum;
    },
    /** Set by close(): the run is over (or was abandoned after its time ran out). */
    closed: false,
    close() {
      ctx.closed = true;
      conn.close();
      for (const probe of probes) probe.close();
    },
  };
  return ctx;
}

/**
 * Resolves once the target counts n waiting gets, or n open streams of a
 * streaming transport (at most maxMs). A target that cannot count them gets
 * a fixed grace of 1 s + 0.1 ms per get instead.
 * @param {Context} ctx
 * @param {number} n
 * @param {number} maxMs
 * @param {Transport} [transport]
 */
export async function untilWaiting(ctx, n, maxMs, transport = 'longpoll') {
  const deadline = Date.now() + maxMs;
  let w = await ctx.waiting(transport);
  if (w === null) return sleep(1000 + n / 10);
  while (w !== n) {
    if (Date.now() > deadline) throw new Error(`${ctx.target.label}: ${w} ${what(transport)} waiting, expected ${n} after ${maxMs} ms`);
    await sleep(w !== null && w > n * 0.99 ? 20 : 100);
    // a run abandoned after --run-timeout stops here (and its scenario closes its client processes)
    if (ctx.closed) throw new Error(`${ctx.target.label}: run closed while ${w} of ${n} ${what(transport)} were waiting`);
    w = await ctx.waiting(transport);
  }
}

/**
 * Which side ran out of CPU: 'server', 'load', 'both' or 'neither' (90 % of its cores).
 * @param {Context} ctx
 * @param {number} serverCores
 * @param {number} loadCores
 * @returns {Bound}
 */
export function boundBy(ctx, serverCores, loadCores) {
  const s = serverCores >= 0.9 * ctx.serverCapacity;
  const l = loadCores >= 0.9 * ctx.loadCapacity;
  return s && l ? 'both' : s ? 'server' : l ? 'load' : 'neither';
}

/**
 * A message of settings.messageBytes bytes that carries token, so a delivery can be recognised.
 * @param {string} token
 * @param {number} bytes
 */
export function messageWith(token, bytes) {
  return token.length >= bytes ? token : token + '.'.repeat(bytes - token.length);
}

let tokens = 0;
/**
 * A token no earlier round used (channels and messages are told apart by it).
 * @param {string} prefix
 */
export function freshToken(prefix) {
  return `${prefix}${Date.now().toString(36)}x${(tokens++).toString(36)}`;
}

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Milliseconds from t0 to the last of the arrivals (0 when there are none).
 * @param {number[]} arrivals
 * @param {number} t0
 */
export const untilLast = (arrivals, t0) => arrivals.reduce((a, b) => (a > b ? a : b), t0) - t0;
