#!/usr/bin/env node
// Resident memory per idle waiting get, and publish-to-all-delivered latency.
//
//   node bench/idle-memory.js [--counts 1000,10000,18000] [--threads 1,2] [--runs 3]
//                             [--channels 1] [--target server|raw] [--out FILE]
//
// For each (threads, N, run): start a fresh server, warm it up, wait until its
// RSS is steady, read VmRSS from /proc/PID/status; open N idle long-poll gets
// (timeout=60) from client child processes (raw node:net sockets, <= 6,000 per
// process, source addresses 127.0.0.2..127.0.0.9); wait until the server's
// comet_waiting_gets gauge equals N; settle; read VmRSS again. Per get =
// (after - before) / N. Then one put per channel and time until every client
// process reports all its gets answered with the message.
// Loopback only; every wait is bounded.

import { performance } from 'node:perf_hooks';
import http from 'node:http';
import {
  parseArgs,
  headerLines,
  markdownTable,
  mmm,
  fmtInt,
  fmtMiB,
  fmtFixed,
  emit,
  progress,
  sleep,
  withTimeout,
  loadAverage,
  leastDisturbed,
  systemBusyUs,
  procCpuUs,
} from './lib/common.js';

const loadAtStart = loadAverage();
import { startTarget, readRss, httpGet, waitingGets, steadyRss } from './lib/server.js';
import { LOCAL_ADDRESSES, MAX_PER_CLIENT, spawnIdleClients } from './lib/idle-clients.js';

const USAGE = `usage: node bench/idle-memory.js [options]
  --counts 1000,10000,18000   numbers of idle waiting gets
  --threads 1,2               server --threads values (ignored for --target raw)
  --runs 3                    runs per (threads, N); the table shows median (min–max)
  --channels 1                spread the gets over this many channels (1 = all on one)
  --target server             'server' (dist/cli/main.js) or 'raw' (bench/targets/raw-uws.js)
  --timeout 60                the gets' timeout= parameter, seconds
  --per-client 6000           most sockets per client process
  --min-clients 2             fewest client processes
  --concurrency 256           connects in flight per client process
  --local-addresses 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
  --max-waiting 100000        passed as --max-waiting to the server (0: not passed)
  --poll-timeout 120          passed as --poll-timeout to the server so that its cap (default 30 s)
                              does not answer the idle gets during the measurement (0: not passed)
  --server-args ''            extra server arguments, space separated
  --settle-ms 2000            wait after the gauge reaches N before reading RSS
  --warmup 200                warm-up long-poll gets (answered by a put) before the baseline
  --max-other 0.3             a run during whose settle + delivery other processes used more cores
                              than this is run again (up to --retries times); least disturbed kept
  --retries 2
  --wait-quiet-ms 20000       before each run, wait up to this long for other processes to use
                              < 0.25 cores (the machine may be shared); 0 = don't wait
  --out FILE                  also write the markdown there`;

const opts = parseArgs(
  process.argv.slice(2),
  {
    counts: [1000, 10000, 18000],
    threads: [1, 2],
    runs: 3,
    channels: 1,
    target: 'server',
    timeout: 60,
    perClient: 6000,
    minClients: 2,
    concurrency: 256,
    localAddresses: LOCAL_ADDRESSES,
    maxWaiting: 100000,
    pollTimeout: 120,
    serverArgs: '',
    settleMs: 2000,
    warmup: 200,
    waitQuietMs: 20000,
    maxOther: 0.3,
    retries: 2,
    out: '',
  },
  USAGE,
);

if (!['server', 'raw'].includes(opts.target)) throw new Error(`--target must be server or raw\n${USAGE}`);
for (const a of opts.localAddresses) {
  if (!/^127\.\d+\.\d+\.\d+$/.test(a)) throw new Error(`--local-addresses must be loopback (127.x.y.z), got ${a}`);
}
if (opts.perClient > MAX_PER_CLIENT) throw new Error(`--per-client must be <= ${MAX_PER_CLIENT}`);
if (opts.runs < 1 || opts.runs > 20) throw new Error('--runs must be 1..20');
for (const n of opts.counts) {
  if (!Number.isInteger(n) || n < 1 || n > 19_000) throw new Error(`--counts: ${n} is not in 1..19000 (the server may hold at most 20,000 open files)`);
}

/** Live servers, so that they are killed on any exit (bench/lib/idle-clients.js kills its children). */
const liveServers = new Set();
process.on('exit', () => {
  for (const s of liveServers) s.proc.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** Exercises the get/put path a little so that one-time costs (JIT, buffers) land before the baseline. */
async function warmUp(port, count) {
  if (count <= 0) return;
  const agent = new http.Agent({ keepAlive: true, maxSockets: count + 8 });
  try {
    for (let round = 0; round < 3; round++) {
      const channel = `warmup-${round}`;
      const gets = [];
      for (let i = 0; i < count; i++) {
        gets.push(httpGet(port, `/?method=get&channel=${channel}&timeout=10`, 15_000, agent).catch((e) => ({ status: 0, body: String(e) })));
      }
      // Let the gets arrive (bounded), then publish.
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const w = await waitingGets(port).catch(() => null);
        if (w !== null && w >= count) break;
        await sleep(50);
      }
      await sleep(100);
      await httpGet(port, `/?method=put&channel=${channel}&message=warm`, 5000, agent);
      await withTimeout(Promise.all(gets), 20_000, 'warm-up gets');
      // a few sync/put round trips on other channels
      for (let i = 0; i < 50; i++) await httpGet(port, `/?method=put&channel=warm-${i}&message=x`, 5000, agent);
    }
  } finally {
    agent.destroy();
  }
}

async function oneRun(threads, n, runIndex) {
  const label = `${opts.target === 'raw' ? 'raw' : `threads=${threads}`} N=${n} run ${runIndex + 1}/${opts.runs}`;
  const server = startTarget({
    target: opts.target,
    threads,
    maxWaiting: opts.maxWaiting,
    extraArgs: [
      ...(opts.pollTimeout > 0 ? ['--poll-timeout', String(opts.pollTimeout)] : []),
      ...opts.serverArgs.split(/\s+/).filter(Boolean),
    ],
  });
  liveServers.add(server);
  let clients = null;
  try {
    const port = await server.ready;
    progress(`${label}: server pid ${server.pid} on port ${port}`);
    await warmUp(port, opts.warmup);
    const before = await steadyRss(() => [server.pid]);

    // Spawn clients and split N over them.
    clients = await spawnIdleClients(n, { perClient: opts.perClient, minClients: opts.minClients });
    const token = `bench${Date.now().toString(36)}x${runIndex}`;
    const channelBase = `idle-${token}`;
    const tOpen = performance.now();
    const { openMs } = await clients.open({
      port,
      channel: channelBase,
      channels: opts.channels,
      pathTemplate: `/?method=get&channel={channel}&timeout=${opts.timeout}`,
      localAddresses: opts.localAddresses,
      concurrency: opts.concurrency,
      expect: `"messages":["${token}"]`,
    });

    // Wait (bounded) for the gauge to show all N.
    const gaugeDeadline = Date.now() + 60_000 + n * 2;
    let gauge = null;
    for (;;) {
      gauge = await waitingGets(port).catch(() => null);
      if (gauge === n) break;
      clients.throwIfEarly('gets', 'put');
      if (Date.now() > gaugeDeadline) throw new Error(`comet_waiting_gets stayed at ${gauge}, expected ${n}`);
      await sleep(gauge !== null && gauge > n * 0.99 ? 50 : 250);
    }
    const gaugeMs = performance.now() - tOpen;
    // CPU used by other processes over settle + delivery (the machine may be shared)
    const ourPids = [process.pid, server.pid, ...clients.pids()];
    const ourCpu = () => ourPids.reduce((a, pid) => a + procCpuUs(pid), 0);
    const sys0 = systemBusyUs();
    const ours0 = ourCpu();
    const tw0 = performance.now();
    await sleep(opts.settleMs);
    const after = readRss(server.pid);
    clients.throwIfEarly('gets', 'put');
    const gaugeAfterSettle = await waitingGets(port);

    // Publish and time delivery to all.
    await clients.arm();
    const deliveredP = clients.delivered(60_000);
    const putAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const t0 = performance.now();
    const puts = [];
    for (let ch = 0; ch < opts.channels; ch++) {
      const channel = opts.channels > 1 ? `${channelBase}-${ch}` : channelBase;
      puts.push(httpGet(port, `/?method=put&channel=${encodeURIComponent(channel)}&message=${token}`, 20_000, putAgent));
    }
    const putResults = await Promise.all(puts);
    putAgent.destroy();
    const badPut = putResults.find((r) => r.status !== 200);
    if (badPut) throw new Error(`put answered ${badPut.status}: ${badPut.body}`);
    const { ok, bad, closed, firstBad, lastArrived } = await deliveredP;
    const deliverMs = lastArrived - t0;
    const otherCores = sys0 === null ? NaN : Math.max(0, systemBusyUs() - sys0 - (ourCpu() - ours0)) / 1000 / (performance.now() - tw0);
    const result = {
      threads: opts.target === 'raw' ? 'raw' : threads,
      n,
      before,
      after,
      perGet: (after - before) / n,
      deliverMs,
      ok,
      bad,
      closed,
      openMs,
      gaugeMs,
      gaugeAfterSettle,
      firstBad,
      otherCores,
    };
    progress(
      `${label}: rss ${fmtMiB(before)} -> ${fmtMiB(after)} = ${fmtInt(result.perGet)} B/get; ` +
        `opened in ${fmtInt(openMs)} ms, gauge=N after ${fmtInt(gaugeMs)} ms; ` +
        `delivered ${ok}/${n} in ${deliverMs.toFixed(1)} ms; other processes ${otherCores.toFixed(2)} cores` +
        (bad || closed ? ` (bad ${bad}, closed ${closed}, first bad ${JSON.stringify(firstBad)})` : ''),
    );
    return result;
  } finally {
    await clients?.close();
    await server.stop();
    liveServers.delete(server);
  }
}

async function main() {
  const threadList = opts.target === 'raw' ? [1] : opts.threads;
  const rows = [];
  const failures = [];
  const started = Date.now();
  for (const threads of threadList) {
    for (const n of opts.counts) {
      const results = [];
      for (let r = 0; r < opts.runs; r++) {
        const what = `${opts.target === 'raw' ? 'raw' : `threads=${threads}`} N=${n} run ${r + 1}`;
        const kept = await leastDisturbed(what, () => oneRun(threads, n, r), failures, {
          retries: opts.retries,
          maxOther: opts.maxOther,
          waitQuietMs: opts.waitQuietMs,
          pauseMs: 500,
        });
        if (kept) results.push(kept);
      }
      const disturbed = results.filter((x) => x.disturbed).length;
      if (results.length === 0) {
        rows.push([opts.target === 'raw' ? 'raw uWS (1)' : threads, fmtInt(n), 'failed', '', '', '', '', '', '']);
        continue;
      }
      const okAll = results.every((x) => x.ok === n);
      rows.push([
        opts.target === 'raw' ? 'raw uWS (1)' : threads,
        fmtInt(n),
        mmm(results.map((x) => x.before), fmtMiB),
        mmm(results.map((x) => x.after), fmtMiB),
        mmm(results.map((x) => x.perGet), fmtInt),
        mmm(results.map((x) => x.deliverMs), fmtFixed(1)),
        `${okAll ? 'all' : 'NOT all'}: ${results.map((x) => `${x.ok}/${n}`).join(', ')}`,
        mmm(results.map((x) => x.otherCores), fmtFixed(2)),
        `${results.length}/${opts.runs}` + (disturbed ? ` (${disturbed} disturbed)` : ''),
      ]);
    }
  }
  const lines = headerLines(
    `Idle memory per waiting get (${opts.target === 'raw' ? 'raw uWebSockets.js floor, bench/targets/raw-uws.js' : 'comet-server dist/cli/main.js'})`,
    loadAtStart,
  );
  lines.push(
    `- Gets: \`GET /?method=get&channel=…&timeout=${opts.timeout}\` on raw node:net sockets, ` +
      `${opts.channels === 1 ? 'all on one channel' : `spread over ${fmtInt(opts.channels)} channels`}, ` +
      `≤ ${fmtInt(opts.perClient)} per client process (at least ${opts.minClients}), source addresses ${opts.localAddresses[0]}..${opts.localAddresses.at(-1)}`,
    `- RSS: VmRSS of the server process (all its threads) from /proc/PID/status; "before" after a warm-up of ${opts.warmup}×3 answered gets and once steady; ` +
      `"after" ${opts.settleMs} ms after comet_waiting_gets reached N. Bytes per get = (after − before) / N.`,
    `- Delivery: ${opts.channels === 1 ? 'one put' : `${fmtInt(opts.channels)} puts (one per channel)`} sent, until the parent has heard from every client process (IPC) that all its gets were answered with the message.`,
    `- "other processes": machine-wide busy CPU (/proc/stat) minus that of the server, the clients and this script, ` +
      `over the settle and delivery phases; a run above ${opts.maxOther} was run again (up to ${opts.retries} times) and the least disturbed try kept.`,
    `- Cells: median (min–max) over ${opts.runs} run(s), a fresh server each run. Total time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
    markdownTable(
      ['threads', 'N', 'RSS before', 'RSS after', 'bytes per waiting get', 'publish → all delivered (ms)', 'delivered', 'other processes (cores)', 'runs ok'],
      rows,
    ),
    '',
  );
  if (failures.length) lines.push('Failures:', '', ...failures.map((f) => `- ${f}`), '');
  emit(lines.join('\n'), opts.out);
  if (failures.length) process.exitCode = 1;
}

const hardStop = setTimeout(() => {
  progress('idle-memory: overall time limit reached, stopping');
  process.exit(2);
}, 60 * 60 * 1000);
hardStop.unref();

main().catch((err) => {
  progress(err.stack ?? String(err));
  process.exit(1);
});
