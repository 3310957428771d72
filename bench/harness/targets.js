// The servers under test, each started and stopped by the harness in the same
// run, behind one handle:
//   comet-N   this project (dist/cli/main.js) with --threads N
//   ceiling   bench/targets/raw-uws.js: bare uWebSockets.js with fixed answers
//   nchan-N   nginx + Nchan with N worker processes (bench/targets/nchan/)
//   external  a server the user runs, given by --url (and --adapter, --pid)
//
// handle: { id, label, kind, threads, url, adapterRef, pids(), stop(), kill(), log() }

import fs from 'node:fs';
import { startTarget as startNodeTarget } from '../lib/server.js';
import { findNchanModule, findNginx, startNchan } from '../targets/nchan/start.js';
import { pin } from './cpu.js';

/** Parses a target id into its kind and thread (worker) count. */
export function describeTarget(id, external = {}) {
  let m;
  if ((m = /^comet-(\d+)$/.exec(id))) {
    const threads = Number(m[1]);
    return { id, kind: 'comet', threads, label: `comet-server --threads ${threads}`, adapterRef: 'simple-comet' };
  }
  if (id === 'ceiling') return { id, kind: 'ceiling', threads: 1, label: 'raw uWebSockets.js (fixed answers)', adapterRef: 'simple-comet' };
  if ((m = /^nchan-(\d+)$/.exec(id))) {
    const threads = Number(m[1]);
    return { id, kind: 'nchan', threads, label: `nginx + Nchan, ${threads} worker${threads > 1 ? 's' : ''}`, adapterRef: 'nchan' };
  }
  if (id === 'external') {
    if (!external.url) throw new Error('the external target needs --url');
    return { id, kind: 'external', threads: null, label: external.label || external.url, adapterRef: external.adapter || 'simple-comet' };
  }
  throw new Error(`unknown target ${id}: comet-N, ceiling, nchan-N or external (with --url)`);
}

/** Why a target cannot run on this machine, or null. */
export function missingFor(id) {
  if (/^nchan-/.test(id) && (!findNginx() || !findNchanModule())) return 'nginx with Nchan is not installed (apt-get install -y nginx libnginx-mod-nchan)';
  return null;
}

/**
 * Starts a target; pinCpus ("0" or "0-3") pins all its threads there.
 * external: { url, adapter, pid, label } for the external target.
 */
export async function startTarget(id, { pinCpus = null, external = {} } = {}) {
  const d = describeTarget(id, external);
  let handle;
  if (d.kind === 'nchan') {
    const n = await startNchan({ workers: d.threads });
    handle = { ...d, url: `http://127.0.0.1:${n.port}/`, pids: n.pids, stop: n.stop, kill: () => killAll(n.pids()), log: n.errorLog };
  } else if (d.kind === 'external') {
    const pids = external.pid ? String(external.pid).split(',').map(Number) : [];
    for (const p of pids) if (!fs.existsSync(`/proc/${p}`)) throw new Error(`--pid ${p}: no such process`);
    handle = { ...d, url: external.url, pids: () => pids, stop: async () => {}, kill: () => {}, log: () => '' };
  } else {
    const s = startNodeTarget(
      d.kind === 'ceiling'
        ? { target: 'raw' }
        : // the server caps a get's wait at --poll-timeout (30 s by default): let the harness's 60 s stand
          { target: 'server', threads: d.threads, maxWaiting: 200_000, extraArgs: ['--poll-timeout', '120'] },
    );
    const port = await s.ready;
    handle = { ...d, url: `http://127.0.0.1:${port}/`, pids: () => [s.pid], stop: s.stop, kill: () => s.proc.kill('SIGKILL'), log: s.logTail };
  }
  // a server the user runs is theirs to place: only the harness's own targets are pinned
  if (pinCpus !== null && d.kind !== 'external') {
    try {
      pin(handle.pids(), pinCpus);
    } catch (err) {
      await handle.stop();
      throw err;
    }
  }
  return handle;
}

function killAll(pids) {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
