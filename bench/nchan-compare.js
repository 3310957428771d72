#!/usr/bin/env node
// comet-server against nginx + Nchan (and the bare uWebSockets.js floor), side
// by side in one run:
//
//   node bench/nchan-compare.js [--targets server1,server2,raw,nchan1,nchan2]
//                               [--counts 10000,18000] [--runs 3] [--quick] [--out FILE]
//
// (a) Resident memory per idle waiting long-poll: a fresh target per run, a
//     warm-up, a steady baseline, then N idle long-polls on one channel from
//     client child processes (bench/lib/idle-client.js via idle-clients.js, raw
//     sockets, source addresses 127.0.0.2-9); once the target reports N
//     waiting, (after - before) / N, summing VmRSS (and Pss) over all of the
//     target's processes (nginx: master + workers).
// (b) Publish latency and fan-out: right after (a)'s reading, one publish on a
//     warm keep-alive connection, timed to its own answer and until every
//     client process has all its long-polls answered with the message.
// (c) Publish throughput: wrk (Debian's) pinned to core 1, the target pinned
//     to core 0, keep-alive connections, a Lua script rotating over channels;
//     requests/s and the target's CPU µs per request (/proc/PID/stat, all
//     processes), with the busy share of each core (/proc/stat).
//
// Targets: server1/server2 = node dist/cli/main.js --threads 1/2; raw =
// bench/targets/raw-uws.js; nchan1/nchan2 = nginx + Nchan with 1/2 workers
// (bench/targets/nchan/, apt-get install -y nginx libnginx-mod-nchan wrk).
// Loopback only; every loop is bounded in count and time, and the whole run
// stops itself after --max-minutes.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  emit,
  fmtFixed,
  fmtInt,
  fmtMiB,
  headerLines,
  leastDisturbed as leastDisturbedRun,
  loadAverage,
  markdownTable,
  mmm,
  parseArgs,
  procCpuUs,
  progress,
  sleep,
  systemBusyUs,
  withTimeout,
} from './lib/common.js';
import { httpGet, readRss, repoRoot, serverMain, startTarget, steadyRss, waitingGets } from './lib/server.js';
import { LOCAL_ADDRESSES, MAX_PER_CLIENT, spawnIdleClients } from './lib/idle-clients.js';
import { findNchanModule, findNginx, packageVersions, startNchan } from './targets/nchan/start.js';

const loadAtStart = loadAverage();

const USAGE = `usage: node bench/nchan-compare.js [options]
  --targets server1,server2,raw,nchan1,nchan2
                              server1/2: comet-server --threads 1/2; raw: bare uWS floor;
                              nchan1/2: nginx + Nchan with 1/2 worker processes
  --counts 10000,18000        idle waiting long-polls for (a); (b) is read at --fanout-count
  --fanout-count 10000        the N whose publish timings make table (b) (must be in --counts)
  --runs 3                    fresh-target runs per (target, N): median (min–max)
  --settle-ms 2000            wait after the target reports N waiting before reading memory
  --warmup 200                warm-up long-polls per round (3 rounds, each answered by a publish)
  --per-client 6000           most sockets per client process
  --concurrency 384           connects in flight over all client processes
  --connect-rate 6000         connects started per second over all client processes (0: no
                              limit); faster bursts overflow the targets' listen backlog (511)
                              and the dropped handshakes are retried by the kernel after 1-15 s
  --wrk-duration 5            seconds per wrk run for (c)
  --wrk-runs 3                wrk runs per target (a fresh target each)
  --wrk-connections 50
  --wrk-channels 1000         channels the wrk script rotates over
  --wait-quiet-ms 5000        before each run, wait up to this long for the rest of the
                              machine to use < 0.25 cores; 0 = don't wait
  --max-other 0.3             a run during which other processes used more cores than this
                              is run again (up to --retries times); the least disturbed is kept
  --retries 1
  --skip-memory               skip (a) and (b)
  --skip-throughput           skip (c)
  --quick                     counts 1000,2000, fan-out at 1000, 1 run, 1 wrk run of 2 s
  --max-minutes 20            hard stop for the whole run
  --out FILE                  also write the markdown report there`;

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const opts = parseArgs(
  argv,
  {
    targets: ['server1', 'server2', 'raw', 'nchan1', 'nchan2'],
    counts: quick ? [1000, 2000] : [10000, 18000],
    fanoutCount: quick ? 1000 : 10000,
    runs: quick ? 1 : 3,
    settleMs: quick ? 1000 : 2000,
    warmup: 200,
    perClient: 6000,
    concurrency: 384,
    connectRate: 6000,
    wrkDuration: quick ? 2 : 5,
    wrkRuns: quick ? 1 : 3,
    wrkConnections: 50,
    wrkChannels: 1000,
    waitQuietMs: quick ? 0 : 5000,
    maxOther: 0.3,
    retries: quick ? 0 : 1,
    skipMemory: false,
    skipThroughput: false,
    quick: false,
    maxMinutes: 20,
    out: '',
  },
  USAGE,
);

const TARGETS = {
  server1: { label: 'comet-server --threads 1', kind: 'server', threads: 1 },
  server2: { label: 'comet-server --threads 2', kind: 'server', threads: 2 },
  raw: { label: 'raw uWS floor (1 process)', kind: 'raw' },
  nchan1: { label: 'nginx+Nchan, 1 worker', kind: 'nchan', workers: 1 },
  nchan2: { label: 'nginx+Nchan, 2 workers', kind: 'nchan', workers: 2 },
};

for (const t of opts.targets) if (!TARGETS[t]) throw new Error(`unknown target ${t}\n${USAGE}`);
for (const n of opts.counts) {
  if (!Number.isInteger(n) || n < 1 || n > 19_000) throw new Error(`--counts: ${n} is not in 1..19000 (targets hold at most 20,000 open files)`);
}
if (opts.runs < 1 || opts.runs > 10) throw new Error('--runs must be 1..10');
if (opts.wrkRuns < 1 || opts.wrkRuns > 10) throw new Error('--wrk-runs must be 1..10');
if (opts.wrkDuration < 1 || opts.wrkDuration > 60) throw new Error('--wrk-duration must be 1..60 s');
if (opts.wrkConnections < 1 || opts.wrkConnections > 1000) throw new Error('--wrk-connections must be 1..1000');
if (opts.wrkChannels < 1 || opts.wrkChannels > 100_000) throw new Error('--wrk-channels must be 1..100000');
if (opts.perClient > MAX_PER_CLIENT) throw new Error(`--per-client must be <= ${MAX_PER_CLIENT}`);

// ---------------------------------------------------------------- cleanup

// wrk processes; bench/lib/idle-clients.js kills its client processes itself
const liveChildren = new Set();
const liveTargets = new Set();
process.on('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
  for (const t of liveTargets) t.killNow();
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
const hardStop = setTimeout(() => {
  progress(`nchan-compare: --max-minutes ${opts.maxMinutes} reached, stopping`);
  process.exit(2);
}, opts.maxMinutes * 60_000);
hardStop.unref();

// ---------------------------------------------------------------- targets

function readStatusField(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size (shared pages split among their users), bytes, or NaN. */
function readPss(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const sumOf = (pids, f) => pids.reduce((a, p) => a + f(p), 0);

const runsOk = (results, runs) => {
  const d = results.filter((x) => x.disturbed).length;
  return `${results.length}/${runs}` + (d ? ` (${d} disturbed)` : '');
};

function openFds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

const publishAgent = () => new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One request on the given agent; resolves {status, body, ms}. */
function request(port, method, pathAndQuery, body, agent, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const headers = body === undefined ? {} : { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) };
    const req = http.request({ host: '127.0.0.1', port, method, path: pathAndQuery, agent, headers, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, body: text, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pathAndQuery} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts a target and returns a uniform handle:
 * {label, port, pids(), stop(), killNow(), waiting(), subTemplate, publish(agent, ch, msg), wrkRequestLua}
 */
async function startAny(name) {
  const t = TARGETS[name];
  if (t.kind === 'nchan') {
    const n = await startNchan({ workers: t.workers });
    const handle = {
      name,
      label: t.label,
      port: n.port,
      pids: n.pids,
      stop: n.stop,
      killNow: () => {
        for (const p of n.pids()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        fs.rmSync(n.dir, { recursive: true, force: true });
      },
      errorLog: n.errorLog,
      async status() {
        const { status, body } = await httpGet(n.port, '/nchan_status', 5000);
        if (status !== 200) throw new Error(`/nchan_status answered ${status}`);
        return body;
      },
      async waiting() {
        const m = /^subscribers: (\d+)/m.exec(await handle.status());
        return m ? Number(m[1]) : null;
      },
      subTemplate: '/sub?channel={channel}',
      publish: (agent, ch, msg) => request(n.port, 'POST', `/pub?channel=${encodeURIComponent(ch)}`, msg, agent),
      // POST with the message as the body (a GET on /pub only returns channel info)
      wrkRequestLua: (chExpr) => `wrk.format("POST", "/pub?channel=" .. ${chExpr}, nil, "m")`,
    };
    liveTargets.add(handle);
    return handle;
  }
  const s = startTarget({
    target: t.kind === 'raw' ? 'raw' : 'server',
    threads: t.threads,
    maxWaiting: 100_000,
    // the server caps a get's wait at --poll-timeout (default 30 s): let timeout=60 stand
    extraArgs: t.kind === 'raw' ? [] : ['--poll-timeout', '120'],
  });
  const handle = {
    name,
    label: t.label,
    pids: () => [s.pid],
    stop: s.stop,
    killNow: () => s.proc.kill('SIGKILL'),
    errorLog: s.logTail,
    waiting: () => waitingGets(handle.port),
    subTemplate: '/?method=get&channel={channel}&timeout=60',
    publish: (agent, ch, msg) =>
      request(handle.port, 'GET', `/?method=put&channel=${encodeURIComponent(ch)}&message=${encodeURIComponent(msg)}`, undefined, agent),
    wrkRequestLua: (chExpr) => `wrk.format("GET", "/?method=put&channel=" .. ${chExpr} .. "&message=m")`,
  };
  liveTargets.add(handle);
  try {
    handle.port = await s.ready;
  } catch (err) {
    liveTargets.delete(handle);
    throw err;
  }
  return handle;
}

async function stopAny(h) {
  try {
    await withTimeout(h.stop(), 15_000, `stopping ${h.label}`);
  } catch (err) {
    progress(`${err.message}: killing`);
    h.killNow();
  }
  liveTargets.delete(h);
}

// ---------------------------------------------------------------- (a) + (b)

async function waitForWaiting(h, n, maxMs) {
  const deadline = Date.now() + maxMs;
  let w = null;
  for (;;) {
    w = await h.waiting().catch(() => null);
    if (w === n) return w;
    if (Date.now() > deadline) throw new Error(`${h.label}: ${w} waiting, expected ${n} after ${maxMs} ms`);
    await sleep(w !== null && w > n * 0.99 ? 50 : 200);
  }
}

/** Long-polls and publishes a little so that one-time costs land before the baseline. */
async function warmUp(h, count) {
  if (count <= 0) return;
  const agent = new http.Agent({ keepAlive: true, maxSockets: count + 8 });
  const pub = publishAgent();
  try {
    for (let round = 0; round < 3; round++) {
      const channel = `warmup-${round}`;
      const subPath = h.subTemplate.replaceAll('{channel}', channel);
      const gets = [];
      for (let i = 0; i < count; i++) {
        gets.push(request(h.port, 'GET', subPath, undefined, agent, 15_000).catch((e) => ({ status: 0, body: String(e) })));
      }
      await waitForWaiting(h, count, 10_000).catch(() => {});
      await sleep(100);
      await h.publish(pub, channel, 'warm');
      const answers = await withTimeout(Promise.all(gets), 20_000, 'warm-up long-polls');
      const bad = answers.filter((a) => a.status !== 200 || !a.body.includes('warm')).length;
      if (bad) throw new Error(`${h.label}: ${bad} of ${count} warm-up long-polls not answered with the message, e.g. ${JSON.stringify(answers.find((a) => a.status !== 200 || !a.body.includes('warm')))}`);
      for (let i = 0; i < 50; i++) await h.publish(pub, `warm-${i}`, 'x');
    }
  } finally {
    agent.destroy();
    pub.destroy();
  }
}

async function memoryRun(name, n, runIndex) {
  const label = `${TARGETS[name].label} N=${n} run ${runIndex + 1}/${opts.runs}`;
  const h = await startAny(name);
  let clients = null;
  const pub = publishAgent();
  try {
    progress(`${label}: pids ${h.pids().join(' ')} on port ${h.port}`);
    // Clients first, so that pages they share with the target (libc, the node
    // binary) are shared the same way at both readings of Pss.
    clients = await spawnIdleClients(n, { perClient: opts.perClient, minClients: 2 });
    const k = clients.size;
    await warmUp(h, opts.warmup);
    await h.publish(pub, 'publisher-warm', 'x'); // opens the publisher's keep-alive connection
    const before = await steadyRss(h.pids);
    const beforePss = sumOf(h.pids(), readPss);

    const token = `bench${Date.now().toString(36)}x${runIndex}`;
    const channel = `idle-${token}`;
    const tOpen = performance.now();
    await clients.open({
      port: h.port,
      channel,
      pathTemplate: h.subTemplate,
      localAddresses: LOCAL_ADDRESSES,
      concurrency: Math.max(1, Math.floor(opts.concurrency / k)),
      rate: opts.connectRate > 0 ? Math.max(1, opts.connectRate / k) : 0,
      expect: token,
    });
    await waitForWaiting(h, n, 60_000 + n * 2);
    const waitingMs = performance.now() - tOpen;
    clients.throwIfEarly('long-polls');

    const pids = h.pids();
    const ourPids = [process.pid, ...pids, ...clients.pids()];
    const ourCpu = () => sumOf(ourPids, procCpuUs);
    const sys0 = systemBusyUs();
    const ours0 = ourCpu();
    const tw0 = performance.now();
    await sleep(opts.settleMs);
    const after = sumOf(pids, readRss);
    const afterPss = sumOf(pids, readPss);
    const shmem = sumOf(pids, (p) => readStatusField(p, 'RssShmem'));
    const fds = pids.map(openFds);
    clients.throwIfEarly('long-polls');
    const stillWaiting = await h.waiting();
    if (stillWaiting !== n) throw new Error(`${stillWaiting} waiting after the settle, expected ${n}`);

    // (b): one publish, timed to its answer and to the last delivery
    await clients.arm();
    const deliveredP = clients.delivered(60_000);
    const t0 = performance.now();
    const put = await h.publish(pub, channel, token);
    if (put.status < 200 || put.status > 299) throw new Error(`publish answered ${put.status}: ${put.body.slice(0, 200)}`);
    const { ok, bad, closed, firstBad, lastArrived } = await deliveredP;
    const deliverMs = lastArrived - t0;
    const otherCores = sys0 === null ? NaN : Math.max(0, systemBusyUs() - sys0 - (ourCpu() - ours0)) / 1000 / (performance.now() - tw0);
    const r = {
      n,
      processes: pids.length,
      before,
      after,
      perWait: (after - before) / n,
      perWaitPss: (afterPss - beforePss) / n,
      shmem,
      fds,
      putMs: put.ms,
      putStatus: put.status,
      deliverMs,
      ok,
      bad,
      closed,
      firstBad,
      waitingMs,
      otherCores,
    };
    progress(
      `${label}: ΣRSS ${fmtMiB(before)} -> ${fmtMiB(after)} = ${fmtInt(r.perWait)} B/long-poll (Pss ${fmtInt(r.perWaitPss)}); ` +
        `${n} waiting after ${fmtInt(waitingMs)} ms; fds per process ${fds.join('/')}; publish ${put.status} in ${put.ms.toFixed(2)} ms, ` +
        `delivered ${ok}/${n} in ${deliverMs.toFixed(1)} ms; other processes ${otherCores.toFixed(2)} cores` +
        (bad || closed ? ` (bad ${bad}, closed ${closed}, first bad ${JSON.stringify(firstBad)})` : ''),
    );
    return r;
  } catch (err) {
    const log = h.errorLog?.();
    if (log) progress(`${label}: target log tail:\n${log}`);
    throw err;
  } finally {
    pub.destroy();
    await clients?.close();
    await stopAny(h);
  }
}

// ---------------------------------------------------------------- (c)

/** Per-CPU busy and total jiffies from /proc/stat: [{busy, total}] indexed by cpu number. */
function perCpuTimes() {
  const out = [];
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
    out[Number(m[1])] = { busy, total: busy + f[3] + f[4] };
  }
  return out;
}

function pinToCore(pids, core) {
  for (const pid of pids) {
    const r = spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset -a -p -c ${core} ${pid} failed: ${r.stderr}`);
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      if (m && m[1] !== String(core)) throw new Error(`pid ${pid} thread ${tid} still allowed on ${m[1]}`);
    }
  }
}

function writeWrkScript(h, dir) {
  const file = path.join(dir, `${h.name}.lua`);
  const lua = `-- generated by bench/nchan-compare.js: rotate publishes over ${opts.wrkChannels} channels
local reqs = {}
local i = 0
init = function(args)
  for c = 0, ${opts.wrkChannels - 1} do
    reqs[c + 1] = ${h.wrkRequestLua('"tp-" .. c')}
  end
end
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
`;
  fs.writeFileSync(file, lua);
  return file;
}

/** Runs wrk pinned to core 1; resolves its parsed output. Bounded by duration + 20 s. */
function runWrk(port, script, seconds) {
  return new Promise((resolve, reject) => {
    const args = ['-c', '1', 'wrk', '-t1', `-c${opts.wrkConnections}`, `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${port}/`];
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000);
    // taskset execs wrk in place, so child.pid is wrk's: its CPU time, read until it exits
    // (the last < 50 ms of a run are missed)
    let wrkCpuUs = 0;
    const poll = setInterval(() => {
      const us = procCpuUs(child.pid);
      if (us > wrkCpuUs) wrkCpuUs = us;
    }, 50);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      clearInterval(poll);
      liveChildren.delete(child);
      if (code !== 0) return reject(new Error(`wrk exited ${code ?? sig}: ${err}${out}`));
      resolve({ ...parseWrk(out), wrkCpuUs });
    });
  });
}

function toMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2]];
}

function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const reqs = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: reqs ? Number(reqs[1]) : 0,
    p50: toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: errors ? errors.slice(1).reduce((a, x) => a + Number(x), 0) : 0,
    raw: out,
  };
}

async function throughputRun(name, runIndex, dir) {
  const label = `${TARGETS[name].label} wrk run ${runIndex + 1}/${opts.wrkRuns}`;
  const h = await startAny(name);
  try {
    const pids = h.pids();
    pinToCore(pids, 0);
    const script = writeWrkScript(h, dir);
    await runWrk(h.port, script, 1); // warm-up, not counted
    await sleep(300);
    const cpu0 = sumOf(pids, procCpuUs);
    const cores0 = perCpuTimes();
    const t0 = performance.now();
    const w = await runWrk(h.port, script, opts.wrkDuration);
    const wallMs = performance.now() - t0;
    const cpuUs = sumOf(pids, procCpuUs) - cpu0;
    const cores1 = perCpuTimes();
    const coreBusy = (c) => (cores1[c] && cores0[c] ? (cores1[c].busy - cores0[c].busy) / Math.max(1, cores1[c].total - cores0[c].total) : NaN);
    if (!(w.requests > 0)) throw new Error(`wrk made no requests:\n${w.raw}`);
    const targetCores = cpuUs / 1000 / wallMs;
    const wrkCores = w.wrkCpuUs / 1000 / wallMs;
    const core0 = coreBusy(0);
    const core1 = coreBusy(1);
    const r = {
      ...w,
      cpuPerReq: cpuUs / w.requests,
      targetCores,
      wrkCores,
      core0,
      core1,
      // what else ran on the two cores meanwhile (this script idles while wrk runs)
      otherCores: Math.max(0, core0 + core1 - targetCores - wrkCores),
      after: h.status ? await h.status().catch(() => '') : '',
    };
    progress(
      `${label}: ${fmtInt(w.rps)} req/s (${fmtInt(w.requests)} requests, p50 ${w.p50.toFixed(2)} ms, p99 ${w.p99.toFixed(2)} ms, non-2xx ${w.non2xx}, socket errors ${w.socketErrors}); ` +
        `target ${r.cpuPerReq.toFixed(2)} µs CPU/request, ${r.targetCores.toFixed(2)} cores; wrk ${r.wrkCores.toFixed(2)} cores; ` +
        `core 0 ${(r.core0 * 100).toFixed(0)}% busy, core 1 ${(r.core1 * 100).toFixed(0)}%; other processes ${r.otherCores.toFixed(2)} cores` +
        (r.after ? `; Nchan: ${r.after.split('\n').filter((l) => /^(stored messages|shared memory used|channels):/.test(l)).join(', ')}` : ''),
    );
    return r;
  } finally {
    await stopAny(h);
  }
}

// ---------------------------------------------------------------- main

/** leastDisturbed() with this run's --retries, --max-other and --wait-quiet-ms. */
const leastDisturbed = (what, fn, failures) =>
  leastDisturbedRun(what, fn, failures, { retries: opts.retries, maxOther: opts.maxOther, waitQuietMs: opts.waitQuietMs });

function checkPrerequisites() {
  const want = opts.targets.map((t) => TARGETS[t].kind);
  if (want.includes('server') && !fs.existsSync(serverMain)) {
    progress(`${serverMain} is missing: npm run build`);
    const r = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  if (want.includes('nchan')) {
    if (!findNginx() || !findNchanModule()) throw new Error('nginx or the Nchan module is missing: apt-get install -y nginx libnginx-mod-nchan');
  }
  if (!opts.skipThroughput) {
    for (const bin of ['wrk', 'taskset']) {
      if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is missing: apt-get install -y ${bin === 'wrk' ? 'wrk' : 'util-linux'}`);
    }
    if (os.cpus().length < 2) throw new Error('(c) pins the target to core 0 and wrk to core 1: needs 2 cores (or --skip-throughput)');
  }
}

function nginxVersion() {
  const nginx = findNginx();
  if (!nginx) return 'not installed';
  const r = spawnSync(nginx, ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout).trim().replace(/^nginx version: /, '');
}

async function main() {
  checkPrerequisites();
  const started = Date.now();
  const failures = [];
  const memRows = [];
  const fanRows = [];
  const tputRows = [];

  if (!opts.skipMemory) {
    // Round-robin (run 1 of every target and N, then run 2, ...), so that a slow
    // spell of the machine lands on every target rather than on one.
    const byKey = new Map();
    for (let r = 0; r < opts.runs; r++) {
      for (const name of opts.targets) {
        for (const n of opts.counts) {
          const x = await leastDisturbed(`${TARGETS[name].label} N=${n} run ${r + 1}`, () => memoryRun(name, n, r), failures);
          const key = `${name}/${n}`;
          if (!byKey.has(key)) byKey.set(key, []);
          if (x) byKey.get(key).push(x);
        }
      }
    }
    for (const name of opts.targets) {
      for (const n of opts.counts) {
        const results = byKey.get(`${name}/${n}`);
        const label = TARGETS[name].label;
        if (results.length === 0) {
          memRows.push([label, fmtInt(n), 'failed', '', '', '', '', '', '', '']);
          continue;
        }
        const okAll = results.every((x) => x.ok === n);
        memRows.push([
          label,
          fmtInt(n),
          String(results[0].processes),
          mmm(results.map((x) => x.before), fmtMiB),
          mmm(results.map((x) => x.after), fmtMiB),
          mmm(results.map((x) => x.perWait), fmtInt),
          mmm(results.map((x) => x.perWaitPss), fmtInt),
          mmm(results.map((x) => x.shmem), fmtMiB),
          results.map((x) => x.fds.join('/')).join(', '),
          runsOk(results, opts.runs),
        ]);
        fanRows.push({
          n,
          row: [
            label,
            fmtInt(n),
            mmm(results.map((x) => x.putMs), fmtFixed(2)),
            mmm(results.map((x) => x.deliverMs), fmtFixed(1)),
            `${okAll ? 'all' : 'NOT all'}: ${results.map((x) => `${x.ok}/${n}`).join(', ')}`,
            [...new Set(results.map((x) => x.putStatus))].join(', '),
            mmm(results.map((x) => x.otherCores), fmtFixed(2)),
            runsOk(results, opts.runs),
          ],
        });
      }
    }
  }

  if (!opts.skipThroughput) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nchan-compare-wrk-'));
    try {
      const byName = new Map(opts.targets.map((name) => [name, []]));
      for (let r = 0; r < opts.wrkRuns; r++) {
        for (const name of opts.targets) {
          const x = await leastDisturbed(`${TARGETS[name].label} wrk run ${r + 1}`, () => throughputRun(name, r, dir), failures);
          if (x) byName.get(name).push(x);
        }
      }
      for (const name of opts.targets) {
        const results = byName.get(name);
        const label = TARGETS[name].label;
        if (results.length === 0) {
          tputRows.push([label, 'failed', '', '', '', '', '', '', '', '', '', '', '']);
          continue;
        }
        const medTarget = mmm(results.map((x) => x.targetCores), fmtFixed(2));
        // per run: which side had its core full (≥ 0.9 of it)
        const kinds = results.map((x) => {
          const t = x.targetCores >= 0.9;
          const w = x.wrkCores >= 0.9;
          return t && w ? 'both' : t ? 'target' : w ? 'wrk' : 'neither';
        });
        const bound = new Set(kinds).size === 1 ? `${kinds[0]} (every run)` : kinds.join(', ');
        tputRows.push([
          label,
          mmm(results.map((x) => x.rps), fmtInt),
          mmm(results.map((x) => x.p50), fmtFixed(2)),
          mmm(results.map((x) => x.p99), fmtFixed(2)),
          mmm(results.map((x) => x.cpuPerReq), fmtFixed(2)),
          medTarget,
          mmm(results.map((x) => x.core0 * 100), fmtFixed(0)),
          mmm(results.map((x) => x.core1 * 100), fmtFixed(0)),
          results.map((x) => `${x.non2xx}/${x.socketErrors}`).join(', '),
          bound,
          mmm(results.map((x) => x.wrkCores), fmtFixed(2)),
          mmm(results.map((x) => x.otherCores), fmtFixed(2)),
          runsOk(results, opts.wrkRuns),
        ]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const versions = packageVersions(['nginx', 'libnginx-mod-nchan', 'wrk']);
  const lines = headerLines('comet-server vs nginx + Nchan (long-poll pub/sub)', loadAtStart);
  lines.push(
    `- Targets: ${opts.targets.map((t) => TARGETS[t].label).join('; ')}. comet-server: \`node dist/cli/main.js --port 0 --host 127.0.0.1 --threads N --max-waiting 100000 --poll-timeout 120\`; ` +
      'raw: `bench/targets/raw-uws.js` (holds gets, answers puts, stores nothing); ' +
      `Nchan: nginx ${nginxVersion()} (Debian nginx ${versions.nginx}, libnginx-mod-nchan ${versions['libnginx-mod-nchan']}), ` +
      '`bench/targets/nchan/nginx.conf.template`: master + N workers, longpoll subscriber with `nchan_subscriber_first_message newest`, ' +
      '`nchan_message_buffer_length 1000`, `nchan_message_timeout 5m`, `nchan_shared_memory_size 256M` (comet-server\'s defaults: 1,000 messages per channel, 5 min TTL, 256 MiB budget).',
    `- Requests: comet-server and raw wait with \`GET /?method=get&channel=C&timeout=60\` and publish with \`GET /?method=put&channel=C&message=M\`; ` +
      'Nchan waits with `GET /sub?channel=C` and publishes with `POST /pub?channel=C` and the message as the body (a GET there only returns channel info).',
    `- A run during which other processes used more than ${opts.maxOther} cores was run again up to ${opts.retries} time(s) and the least disturbed try kept; "disturbed" counts kept runs still above it.`,
    '',
    ...(opts.skipMemory
      ? []
      : [
          `### (a) Resident memory per idle waiting long-poll`,
          '',
          `- Runs go round-robin over targets and N (run 1 of each, then run 2, ...). A fresh target per run; ${opts.warmup}×3 warm-up long-polls answered by publishes; client processes (≤ ${fmtInt(opts.perClient)} raw sockets each, ` +
            `source addresses ${LOCAL_ADDRESSES[0]}..${LOCAL_ADDRESSES.at(-1)}, ≤ ${fmtInt(opts.connectRate)} connects/s) started before the baseline; "before" once ΣVmRSS is steady; ` +
            `N long-polls on one channel; "after" ${opts.settleMs} ms after the target reports N waiting (comet_waiting_gets, or \`subscribers:\` of \`nchan_stub_status\`).`,
          '- Σ = summed over all of the target\'s processes (nginx: master + workers). Bytes per long-poll = (after − before) / N. ' +
            'VmRSS counts a shared page once in every process that touched it (nginx\'s shared memory zone, pages inherited from the master); ' +
            'Pss splits it among them, so the Pss column is the fairer one for several processes.',
          '',
          markdownTable(
            ['target', 'N', 'processes', 'ΣVmRSS before', 'ΣVmRSS after', 'bytes per waiting long-poll (ΣVmRSS)', 'bytes per waiting long-poll (ΣPss)', 'ΣRssShmem after', 'open fds per process (nginx: master/workers), each run', 'runs ok'],
            memRows,
          ),
          '',
          `### (b) Publish latency and fan-out`,
          '',
          `- The same runs as (a): once the memory is read, one publish on a warm keep-alive connection (node:http) to the channel all N wait on; ` +
            '"publish answered" is from sending it to its answer, "all delivered" from sending it until every client process has told (IPC) that all its long-polls got the message. ' +
            `Table rows at N = ${fmtInt(opts.fanoutCount)} answer (b); other N are shown too.`,
          '- "other processes": machine-wide busy CPU (/proc/stat) minus the target\'s, the clients\' and this script\'s over the settle and the delivery.',
          '',
          markdownTable(
            ['target', 'waiting long-polls', 'publish answered (ms)', 'publish → all delivered (ms)', 'delivered', 'publish status', 'other processes (cores)', 'runs ok'],
            [...fanRows.filter((r) => r.n === opts.fanoutCount), ...fanRows.filter((r) => r.n !== opts.fanoutCount)].map((r) => r.row),
          ),
          '',
        ]),
    ...(opts.skipThroughput
      ? []
      : [
          `### (c) Publish throughput, keep-alive, ${fmtInt(opts.wrkChannels)} channels`,
          '',
          `- \`taskset -c 1 wrk -t1 -c${opts.wrkConnections} -d${opts.wrkDuration}s --latency -s SCRIPT\` (Debian wrk ${versions.wrk}); the Lua script rotates over ${fmtInt(opts.wrkChannels)} channels ` +
            '(comet-server/raw: `GET /?method=put&channel=tp-K&message=m`; Nchan: `POST /pub?channel=tp-K` with body `m`), nobody subscribed. ' +
            `The target (every thread of every process) is pinned to core 0 with \`taskset -a -p -c 0\`. A fresh target per run, a 1 s wrk warm-up first; ${opts.wrkRuns} run(s) per target, round-robin over the targets.`,
          '- Target CPU: utime + stime of all its processes from /proc/PID/stat over the measured run; cores = that / wall time; µs per request = that / requests wrk completed. ' +
            'Core 0/1 busy: /proc/stat per CPU (anything else on that core counts too). "core full": which side used ≥ 90 % of its core (target: all its processes; wrk: its process), per run. ' +
            'wrk CPU: its /proc/PID/stat read every 50 ms until it exits. "other processes" = core 0 + core 1 busy − target − wrk.',
          '- nginx: `keepalive_requests 1000000` so that wrk\'s connections stay open for the whole run (nginx 1.22\'s default closes one every 1,000 requests).',
          '',
          markdownTable(
            ['target', 'requests/s', 'latency p50 (ms)', 'latency p99 (ms)', 'target CPU µs per request', 'target CPU (cores)', 'core 0 busy %', 'core 1 busy %', 'non-2xx / socket errors, each run', 'core full', 'wrk CPU (cores)', 'other processes (cores)', 'runs ok'],
            tputRows,
          ),
          '',
        ]),
    `Total time ${((Date.now() - started) / 1000).toFixed(0)} s. Cells: median (min–max).`,
    '',
  );
  if (failures.length) lines.push('Failures:', '', ...failures.map((f) => `- ${f}`), '');
  emit(lines.join('\n'), opts.out);
  if (failures.length) process.exitCode = 1;
}

main().catch((err) => {
  progress(err.stack ?? String(err));
  process.exit(1);
});
