#!/usr/bin/env node
// Cross-thread dispatch: which mechanism should carry channel operations from the
// thread that parsed a request to the thread that owns the channel?
//
//   node bench/experiments/dispatch.js [--ops 200000] [--channels 1000] [--message-bytes 100]
//                          [--window 1000] [--owners 2] [--runs 5]
//                          [--variants structured,msgpackr,piscina,unbatched,inline] [--out FILE]
//
// Variants (each run starts fresh threads; runs interleave the variants):
//  (a) structured  worker_threads, full mesh of MessagePorts, ops batched per event-loop
//                  turn into one postMessage per destination (array of [op,id,channel,message]),
//                  structured clone; replies batched the same way.
//  (b) msgpackr    the same batches encoded with msgpackr into an ArrayBuffer that is
//                  transferred (transferList), decoded on the other side.
//  (c) piscina     Piscina 5 pool of the owner threads, custom loadBalancer routing each
//                  task to the owner of its channel, one task per operation.
//  extra references: 'unbatched' = (a) with one postMessage per op; 'inline' = no thread
//                  hop, the dispatcher applies the ops itself.
// The dispatcher is itself a worker thread (the main thread only orchestrates and reads
// process.cpuUsage(), which covers every thread of the process).

import { Worker, MessageChannel } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  parseArgs,
  headerLines,
  markdownTable,
  mmm,
  fmtInt,
  fmtFixed,
  emit,
  progress,
  withTimeout,
  median,
  loadAverage,
  systemBusyUs,
  waitQuiet,
} from '../lib/common.js';

const loadAtStart = loadAverage();

const here = path.dirname(fileURLToPath(import.meta.url));
const workerFile = path.join(here, 'dispatch-worker.js');

const USAGE = `usage: node bench/experiments/dispatch.js [options]
  --ops 200000          measured operations per run ('put', one per op)
  --warmup-ops 50000    operations before the measured ones, same threads (JIT warm-up)
  --channels 1000       channels the ops are spread over (fixed-seed pseudo-random)
  --message-bytes 100   message size
  --window 1000         most operations outstanding at once
  --owners 2            owner threads
  --buffer-cap 100      messages kept per channel by an owner
  --runs 5              runs per variant; the table shows median (min–max)
  --variants structured,msgpackr,piscina,unbatched,inline
  --piscina-atomics sync   Piscina's atomics option: sync | async | disabled
  --run-timeout-ms 120000  a run that takes longer fails
  --max-other 0.3          a run during which other processes used more cores than this is
                           run again (up to --retries times); the least disturbed try is kept
  --retries 2
  --wait-quiet-ms 20000    before each run, wait up to this long for other processes to use
                           < 0.25 cores (the machine may be shared); 0 = don't wait
  --out FILE            also write the markdown there`;

const opts = parseArgs(
  process.argv.slice(2),
  {
    ops: 200000,
    warmupOps: 50000,
    channels: 1000,
    messageBytes: 100,
    window: 1000,
    owners: 2,
    bufferCap: 100,
    runs: 5,
    variants: ['structured', 'msgpackr', 'piscina', 'unbatched', 'inline'],
    piscinaAtomics: 'sync',
    runTimeoutMs: 120000,
    waitQuietMs: 20000,
    maxOther: 0.3,
    retries: 2,
    out: '',
  },
  USAGE,
);

const KNOWN = {
  structured: '(a) MessagePort mesh, batched, structured clone',
  msgpackr: '(b) MessagePort mesh, batched, msgpackr + transferred ArrayBuffer',
  piscina: '(c) Piscina 5, loadBalancer by channel owner, one task per op',
  unbatched: 'ref: MessagePort mesh, one postMessage per op',
  inline: 'ref: no thread hop (dispatcher applies ops itself)',
};
for (const v of opts.variants) if (!(v in KNOWN)) throw new Error(`unknown variant ${v}\n${USAGE}`);
if (opts.ops < 1 || opts.ops > 5_000_000) throw new Error('--ops must be 1..5,000,000');
if (opts.runs < 1 || opts.runs > 50) throw new Error('--runs must be 1..50');
if (opts.owners < 1 || opts.owners > 64) throw new Error('--owners must be 1..64');
if (!['sync', 'async', 'disabled'].includes(opts.piscinaAtomics)) throw new Error('--piscina-atomics must be sync, async or disabled');

const require = createRequire(import.meta.url);
/** Installed version of a package (its package.json may not be in its "exports"). */
function pkgVersion(name) {
  try {
    let dir = path.dirname(require.resolve(name));
    for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (fs.existsSync(file)) {
        const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (pkg.name === name) return pkg.version;
      }
    }
  } catch {
    /* not installed */
  }
  return null;
}
for (const [variant, pkg] of [
  ['msgpackr', 'msgpackr'],
  ['piscina', 'piscina'],
]) {
  if (opts.variants.includes(variant) && !pkgVersion(pkg)) {
    throw new Error(`variant ${variant} needs the ${pkg} package: npm install --save-dev ${pkg}`);
  }
}

function onceMessage(worker, type) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m && m.type === type) {
        cleanup();
        resolve(m);
      }
    };
    const onErr = (err) => {
      cleanup();
      reject(err);
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`worker exited with ${code} while waiting for ${type}`));
    };
    const cleanup = () => {
      worker.off('message', onMsg);
      worker.off('error', onErr);
      worker.off('exit', onExit);
    };
    worker.on('message', onMsg);
    worker.on('error', onErr);
    worker.on('exit', onExit);
  });
}

async function runVariant(variant) {
  const common = {
    variant,
    ops: opts.ops,
    channels: opts.channels,
    owners: opts.owners,
    messageBytes: opts.messageBytes,
    window: opts.window,
    bufferCap: opts.bufferCap,
    piscinaAtomics: opts.piscinaAtomics,
  };
  const workers = [];
  try {
    let dispatcher;
    if (variant === 'piscina') {
      dispatcher = new Worker(workerFile, { workerData: { ...common, role: 'piscina-dispatcher' } });
      workers.push(dispatcher);
    } else if (variant === 'inline') {
      dispatcher = new Worker(workerFile, { workerData: { ...common, role: 'inline' } });
      workers.push(dispatcher);
    } else {
      const encoding = variant === 'msgpackr' ? 'msgpackr' : 'structured';
      const owners = [];
      for (let k = 0; k < opts.owners; k++) {
        owners.push(new Worker(workerFile, { workerData: { ...common, role: 'owner', index: k, encoding } }));
      }
      dispatcher = new Worker(workerFile, { workerData: { ...common, role: 'dispatcher' } });
      workers.push(...owners, dispatcher);
      // Full mesh among dispatcher and owners (as the server's threads would be); the
      // benchmark traffic uses the dispatcher -> owner links.
      const nodes = [dispatcher, ...owners];
      const portsOf = nodes.map(() => []);
      const dispatcherPorts = [];
      for (let i = 0; i < nodes.length; i++) {
        for (let j = i + 1; j < nodes.length; j++) {
          const { port1, port2 } = new MessageChannel();
          portsOf[i].push(port1);
          portsOf[j].push(port2);
          if (i === 0) dispatcherPorts[j - 1] = port1;
        }
      }
      const ownerReady = owners.map((w) => onceMessage(w, 'ready'));
      owners.forEach((w, k) => w.postMessage({ cmd: 'ports', ports: portsOf[k + 1] }, portsOf[k + 1]));
      await Promise.all(ownerReady);
      dispatcher.postMessage({ cmd: 'ports', ports: dispatcherPorts }, dispatcherPorts);
      // close the dispatcher's idle ends of owner-owner links? they belong to owners; nothing to do
    }
    await onceMessage(dispatcher, 'ready');
    const warmed = onceMessage(dispatcher, 'warmed');
    dispatcher.postMessage({ cmd: 'run', ops: opts.ops, warmupOps: opts.warmupOps });
    await warmed;
    const done = onceMessage(dispatcher, 'done');
    const sys0 = systemBusyUs();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    dispatcher.postMessage({ cmd: 'go' });
    const res = await done;
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const sys1 = systemBusyUs();
    const cpuUs = cpu.user + cpu.system;
    // CPU that other processes used meanwhile (the machine may be shared): /proc/stat
    // ticks are 10 ms, so this is coarse for short runs.
    const otherCores = sys0 === null ? NaN : Math.max(0, sys1 - sys0 - cpuUs) / 1000 / wallMs;
    if (res.completed !== opts.ops || res.errors !== 0) {
      throw new Error(`${variant}: completed ${res.completed}/${opts.ops}, errors ${res.errors}`);
    }
    return {
      opsPerSec: opts.ops / (res.elapsedMs / 1000),
      cpuUsPerOp: cpuUs / opts.ops,
      cores: cpuUs / 1000 / wallMs,
      elapsedMs: res.elapsedMs,
      opsPerPost: res.posts > 0 ? opts.ops / res.posts : NaN,
      otherCores,
    };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

async function main() {
  const results = Object.fromEntries(opts.variants.map((v) => [v, []]));
  const failures = [];
  const disturbed = Object.fromEntries(opts.variants.map((v) => [v, 0]));
  const started = Date.now();
  for (let r = 0; r < opts.runs; r++) {
    // rotate the order each run so drift (thermal, other load) does not favour one variant
    const order = opts.variants.map((_, i) => opts.variants[(i + r) % opts.variants.length]);
    for (const v of order) {
      let kept = null;
      for (let attempt = 0; attempt <= opts.retries; attempt++) {
        await waitQuiet(opts.waitQuietMs);
        try {
          const x = await withTimeout(runVariant(v), opts.runTimeoutMs, `${v} run ${r + 1}`);
          progress(
            `run ${r + 1}/${opts.runs}${attempt ? ` (retry ${attempt})` : ''} ${v}: ${fmtInt(x.opsPerSec)} ops/s, ` +
              `${x.cpuUsPerOp.toFixed(2)} µs CPU/op, ${x.cores.toFixed(2)} cores busy, ${x.opsPerPost.toFixed(1)} ops/message, ` +
              `${x.elapsedMs.toFixed(0)} ms, other processes ${x.otherCores.toFixed(2)} cores`,
          );
          if (kept === null || x.otherCores < kept.otherCores) kept = x;
          if (!(x.otherCores > opts.maxOther)) break;
        } catch (err) {
          progress(`run ${r + 1} ${v} FAILED: ${err.stack ?? err}`);
          failures.push(`${v} run ${r + 1}: ${String(err.message).split('\n')[0]}`);
          break;
        }
      }
      if (kept) {
        if (kept.otherCores > opts.maxOther) disturbed[v]++;
        results[v].push(kept);
      }
    }
  }
  const rows = opts.variants.map((v) => {
    const xs = results[v];
    return [
      KNOWN[v],
      mmm(
        xs.map((x) => x.opsPerSec),
        fmtInt,
      ),
      mmm(
        xs.map((x) => x.cpuUsPerOp),
        fmtFixed(2),
      ),
      mmm(
        xs.map((x) => x.cores),
        fmtFixed(2),
      ),
      v === 'inline'
        ? 'n/a'
        : mmm(
            xs.map((x) => x.opsPerPost),
            fmtFixed(1),
          ),
      mmm(
        xs.map((x) => x.otherCores),
        fmtFixed(2),
      ),
      `${xs.length}/${opts.runs}` + (disturbed[v] ? ` (${disturbed[v]} disturbed)` : ''),
    ];
  });
  const best = opts.variants
    .filter((v) => v !== 'inline' && results[v].length)
    .map((v) => [v, median(results[v].map((x) => x.opsPerSec))])
    .sort((a, b) => b[1] - a[1]);

  const lines = headerLines('Cross-thread dispatch of channel operations', loadAtStart);
  lines.push(
    `- Workload: ${fmtInt(opts.ops)} measured 'put' ops (after ${fmtInt(opts.warmupOps)} warm-up ops on the same threads) ` +
      `over ${fmtInt(opts.channels)} channels (fixed-seed pseudo-random, owner = FNV-1a(channel) mod ${opts.owners}), ` +
      `${opts.messageBytes}-byte messages, at most ${fmtInt(opts.window)} ops outstanding; ` +
      `${opts.owners} owner threads append to a per-channel array (last ${opts.bufferCap} kept) and reply with a time.`,
    `- A dispatcher worker thread issues the ops (the main thread only orchestrates). ` +
      `CPU = process.cpuUsage() delta (user + system, all threads of the process) over the measured ops.`,
    `- Versions: msgpackr ${pkgVersion('msgpackr') ?? 'n/a'}, piscina ${pkgVersion('piscina') ?? 'n/a'} (atomics: ${opts.piscinaAtomics}).`,
    `- "other processes": machine-wide busy CPU (/proc/stat) minus this process's, during the measured ops; ` +
      `a run above ${opts.maxOther} was run again (up to ${opts.retries} times) and the least disturbed try kept; ` +
      `"disturbed" counts runs kept above it.`,
    `- Cells: median (min–max) over ${opts.runs} runs, fresh threads each run, variant order rotated per run. Total time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
    markdownTable(['variant', 'round trips / s', 'CPU µs per op', 'cores busy', 'ops per message to owners', 'other processes (cores)', 'runs ok'], rows),
    '',
  );
  if (best.length) {
    lines.push(
      `Fastest cross-thread variant by median throughput: ${best[0][0]} (${fmtInt(best[0][1])} ops/s)` +
        (best.length > 1
          ? `; then ${best
              .slice(1)
              .map(([v, x]) => `${v} ${fmtInt(x)}`)
              .join(', ')}.`
          : '.'),
      '',
    );
  }
  if (failures.length) lines.push('Failures:', '', ...failures.map((f) => `- ${f}`), '');
  emit(lines.join('\n'), opts.out);
  if (failures.length) process.exitCode = 1;
}

const hardStop = setTimeout(
  () => {
    progress('dispatch: overall time limit reached, stopping');
    process.exit(2);
  },
  30 * 60 * 1000,
);
hardStop.unref();

main().catch((err) => {
  progress(err.stack ?? String(err));
  process.exit(1);
});
