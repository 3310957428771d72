// The servers under test, each started and stopped by the harness in the same
// run, behind one handle:
//   comet-N   this project (dist/cli/main.js) with --threads N
//   comet-N-auth  the same with --auth all and a random HS256 secret of its own
//             (in its environment); the handle carries a token signed with it
//   comet-N-limits  the same with the per-client limits on, set never to
//             refuse (LIMITS_ENV)
//   ceiling   bench/targets/raw-uws.js: bare uWebSockets.js with fixed answers
//   nchan-N   nginx + Nchan with N worker processes (bench/targets/nchan/)
//   redis-N   cluster mode on one node: comet-server --threads N --redis, with
//             a redis-server of its own (../lib/redis.js)
//   cluster-N N nodes of comet-server --threads 1 on one redis-server of their
//             own (cluster-NxT: T threads each)
//   external  a server the user runs, given by --url (and --adapter, --pid)
//
// handle: { id, label, kind, threads, nodes, url, urls, adapterRef, pids(), parts(), stop(), kill(), log(), token? }
//   urls     every node's URL (url is the first: the harness's own requests
//            and publishes go there); one URL for single-process targets
//   pids()   every process of the target, Redis included: its CPU and memory
//   parts()  named subsets of pids() whose CPU is also reported on its own
//            ({ redis: [pid] }), or {}
//   token    comet-N-auth: a token its secret signed, every method on every channel
//
// cluster-N runs one thread per node by default: a node's second thread only
// adds cross-thread hops (compare comet-2 with comet-1 in BENCHMARKS.md), and
// one thread per node makes cluster-2 against comet-1 and redis-1 a comparison
// of Redis and of a second node alone, with no thread count in between.

import fs from 'node:fs';
import { openFileLimit } from '../lib/common.js';
import { findBinary, startRedisServer } from '../lib/redis.js';
import { startTarget as startNodeTarget } from '../lib/server.js';
import { findNchanModule, findNginx, startNchan } from '../targets/nchan/start.js';
import { pin } from './cpu.js';
import { mintToken, randomSecret } from './token.js';

/**
 * @typedef {import('./types.js').TargetInfo & { adapterRef: string }} TargetDescription
 * @typedef {{ url?: string, adapter?: string, pid?: string | number, label?: string }} External the --url server
 * @typedef {object} TargetHandle a running target (see the top of this file)
 * @property {string} id
 * @property {TargetDescription['kind']} kind
 * @property {string} label
 * @property {number | null} threads
 * @property {number} nodes
 * @property {string} adapterRef
 * @property {string} url
 * @property {string[]} urls
 * @property {() => number[]} pids
 * @property {() => Record<string, number[]>} parts
 * @property {() => Promise<void>} stop
 * @property {() => void} kill
 * @property {() => string} log
 * @property {string} [token] comet-N-auth: a token the target accepts for every method and channel
 */

/**
 * Parses a target id into its kind and thread (worker) count.
 * @param {string} id
 * @param {External} [external]
 * @returns {TargetDescription}
 */
export function describeTarget(id, external = {}) {
  let m;
  if ((m = /^comet-(\d+)(-auth|-limits)?$/.exec(id))) {
    const threads = Number(m[1]);
    const extra = m[2] === '-auth' ? ' --auth all' : m[2] === '-limits' ? ` ${LIMITS_LABEL}` : '';
    return { id, kind: 'comet', threads, label: `comet-server --threads ${threads}${extra}`, adapterRef: 'simple-comet' };
  }
  if (id === 'ceiling') return { id, kind: 'ceiling', threads: 1, label: 'raw uWebSockets.js (fixed answers)', adapterRef: 'simple-comet' };
  if ((m = /^nchan-(\d+)$/.exec(id))) {
    const threads = Number(m[1]);
    return { id, kind: 'nchan', threads, label: `nginx + Nchan, ${threads} worker${threads > 1 ? 's' : ''}`, adapterRef: 'nchan' };
  }
  if ((m = /^redis-(\d+)$/.exec(id))) {
    const threads = Number(m[1]);
    return { id, kind: 'redis', threads, nodes: 1, label: `comet-server --threads ${threads} --redis (one node + Redis)`, adapterRef: 'simple-comet' };
  }
  if ((m = /^cluster-(\d+)(?:x(\d+))?$/.exec(id))) {
    const nodes = Number(m[1]);
    const threads = Number(m[2] ?? 1);
    if (nodes < 1 || threads < 1) throw new Error(`target ${id}: nodes and threads must be at least 1`);
    return {
      id,
      kind: 'cluster',
      threads,
      nodes,
      label: `${nodes} × comet-server --threads ${threads} --redis (${nodes} nodes + Redis)`,
      adapterRef: 'simple-comet',
    };
  }
  if (id === 'external') {
    if (!external.url) throw new Error('the external target needs --url');
    return { id, kind: 'external', threads: null, label: external.label || external.url, adapterRef: external.adapter || 'simple-comet' };
  }
  throw new Error(`unknown target ${id}: comet-N, comet-N-auth, comet-N-limits, ceiling, nchan-N, redis-N, cluster-N[xT] or external (with --url)`);
}

/**
 * Why a target cannot run on this machine, or null.
 * @param {string} id
 */
export function missingFor(id) {
  if (/^nchan-/.test(id) && (!findNginx() || !findNchanModule())) return 'nginx with Nchan is not installed (apt-get install -y nginx libnginx-mod-nchan)';
  if (/^(redis|cluster)-/.test(id) && !findBinary('redis-server')) return 'redis-server is not installed (apt-get install -y redis-server)';
  return null;
}

// the server caps a get's wait at --poll-timeout (30 s by default): let the harness's 60 s stand
/**
 * --max-connections: the open-file limit less a few files of the server's own, as Nchan's
 * worker_connections is that limit; the server's default (90% of it, less 32) stops
 * accepting before the idle scenario's 18,000 waiters are in.
 */
const fdLimit = Number(openFileLimit());
const MAX_CONNECTIONS = Number.isFinite(fdLimit) ? ['--max-connections', String(fdLimit - 64)] : [];
const SERVER_OPTIONS = { maxWaiting: 200_000, extraArgs: ['--poll-timeout', '120', ...MAX_CONNECTIONS] };
/** comet-N-limits: every per-client limit on, high enough never to refuse the harness's one address; --trust-proxy off. */
const LIMITS_ENV = { COMET_RATE_LIMIT: '1000000', COMET_RATE_BURST: '1000000', COMET_MAX_CONNECTIONS_PER_IP: '100000' };
const LIMITS_LABEL = '--rate-limit 1000000 --rate-burst 1000000 --max-connections-per-ip 100000';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5000;

/**
 * Resolves once the node at url answers a sync with 200: a node says
 * "listening" before its threads have connected to Redis, and answers 503
 * until they have.
 * @param {string} url
 */
async function untilServing(url, maxMs = 15_000) {
  const deadline = Date.now() + maxMs;
  let last = '';
  for (;;) {
    try {
      const res = await fetch(`${url}?method=sync&channel=bench-ready`, { signal: AbortSignal.timeout(2000) });
      last = `${res.status} ${(await res.text()).slice(0, 200)}`;
      if (res.status === 200) return;
    } catch (err) {
      last = /** @type {Error} */ (err).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not serve within ${maxMs} ms (last answer: ${last})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A cluster-mode target: a redis-server, then `nodes` comet-server nodes with
 * --redis on it, started together. Stopping stops the nodes first (so that
 * none logs a lost Redis), then kills Redis.
 * @param {TargetDescription} d
 * @returns {Promise<Omit<TargetHandle, 'nodes'> & { nodes?: number }>}
 */
async function startClusterTarget(d) {
  const redis = await startRedisServer();
  /** @type {import('../lib/server.js').ServerProcess[]} */
  const servers = [];
  /** @type {Promise<number>[]} */
  const ready = [];
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop('SIGTERM', STOP_TIMEOUT_MS)));
    await redis.destroy();
  };
  try {
    for (let i = 0; i < /** @type {number} */ (d.nodes); i++) {
      const s = startNodeTarget({
        target: 'server',
        threads: /** @type {number} */ (d.threads),
        ...SERVER_OPTIONS,
        extraArgs: [...SERVER_OPTIONS.extraArgs, '--redis', redis.url],
      });
      servers.push(s);
      ready.push(s.waitListening(START_TIMEOUT_MS));
    }
    const ports = await Promise.all(ready);
    const urls = ports.map((p) => `http://127.0.0.1:${p}/`);
    await Promise.all(urls.map((u) => untilServing(u)));
    return {
      ...d,
      url: urls[0],
      urls,
      pids: () => /** @type {number[]} */ ([...servers.map((s) => s.pid), redis.pid]),
      parts: () => ({ redis: /** @type {number[]} */ ([redis.pid]) }),
      stop: stopAll,
      kill: () => {
        for (const s of servers) s.proc.kill('SIGKILL');
        // kill() is synchronous for every target; a redis-server still there 5 s after its
        // SIGKILL is said, not left as an unhandled rejection that would end the harness
        redis.destroy().catch((err) => process.stderr.write(`${err.message}\n`));
      },
      log: () => [...servers.map((s, i) => `[node ${i + 1}]\n${s.logTail()}`), `[redis-server]\n${redis.logTail()}`].join('\n'),
    };
  } catch (err) {
    await Promise.all(ready.map((r) => r.catch(() => {})));
    await stopAll();
    throw err;
  }
}

/**
 * Starts a target; pinCpus ("0" or "0-3") pins all its threads there.
 * external: { url, adapter, pid, label } for the external target.
 * @param {string} id
 * @param {{ pinCpus?: string | null, external?: External }} [opts]
 * @returns {Promise<TargetHandle>}
 */
export async function startTarget(id, { pinCpus = null, external = {} } = {}) {
  const d = describeTarget(id, external);
  /** @type {Omit<TargetHandle, 'nodes' | 'urls' | 'parts'> & Partial<TargetHandle>} */
  let handle;
  if (d.kind === 'nchan') {
    const n = await startNchan({ workers: /** @type {number} */ (d.threads) });
    handle = { ...d, url: `http://127.0.0.1:${n.port}/`, pids: n.pids, stop: n.stop, kill: () => killAll(n.pids()), log: n.errorLog };
  } else if (d.kind === 'redis' || d.kind === 'cluster') {
    handle = await startClusterTarget(d);
  } else if (d.kind === 'external') {
    const pids = external.pid ? String(external.pid).split(',').map(Number) : [];
    for (const p of pids) if (!fs.existsSync(`/proc/${p}`)) throw new Error(`--pid ${p}: no such process`);
    handle = { ...d, url: /** @type {string} */ (external.url), pids: () => pids, stop: async () => {}, kill: () => {}, log: () => '' };
  } else {
    // --auth all: the secret goes in the environment, where the server's help says to keep it
    const secret = id.endsWith('-auth') ? randomSecret() : null;
    const s = startNodeTarget(
      d.kind === 'ceiling'
        ? { target: 'raw' }
        : {
            target: 'server',
            threads: /** @type {number} */ (d.threads),
            ...SERVER_OPTIONS,
            ...(secret ? { env: { ...process.env, COMET_AUTH: 'all', COMET_AUTH_SECRET: secret } } : {}),
            ...(id.endsWith('-limits') ? { env: { ...process.env, ...LIMITS_ENV } } : {}),
          },
    );
    const port = await s.waitListening(START_TIMEOUT_MS);
    handle = {
      ...d,
      ...(secret ? { token: mintToken(secret) } : {}),
      url: `http://127.0.0.1:${port}/`,
      pids: () => [/** @type {number} */ (s.pid)],
      stop: async () => void (await s.stop('SIGTERM', STOP_TIMEOUT_MS)),
      kill: () => s.proc.kill('SIGKILL'),
      log: () => s.logTail(),
    };
  }
  const started = { ...handle, urls: handle.urls ?? [handle.url], parts: handle.parts ?? (() => ({})), nodes: handle.nodes ?? 1 };
  // a server the user runs is theirs to place: only the harness's own targets are pinned
  if (pinCpus !== null && d.kind !== 'external') {
    try {
      pin(started.pids(), pinCpus);
    } catch (err) {
      await started.stop();
      throw err;
    }
  }
  return started;
}

/** @param {number[]} pids */
function killAll(pids) {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
