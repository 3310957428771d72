#!/usr/bin/env node
// The soak: comet-server under a mixed load for N minutes, checking what a
// long run breaks. Puts from single writers per channel; chained readers
// that check exactly-once, in-order delivery (each message is its channel's
// next sequence number); gets aborted while they wait; bad requests, which
// must be refused 4xx; slow readers that read their answers a little at a
// time. Every few seconds it samples the server's RSS, its threads' V8 heaps,
// its open files and its waiting gets; after the warm-up, none may grow past
// its tolerance, every reader must have seen every acknowledged message of
// its channel in order, and no answer may be a 5xx. Exit 0 when all held, 1
// when any did not (the report says which), 2 for bad options.
//
//   node bench/soak.js --minutes 10 --report SOAK.md --chart bench/charts/soak.svg
//   node bench/soak.js --minutes 0.5 --warmup 10        # what CI runs (test/soak.test.ts)
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fmtMiB, markdownTable, median, parseArgs, progress, sleep } from './lib/common.js';
import { readRss, startTarget } from './lib/server.js';
import { barChart } from './report/svg.js';

const USAGE = `Usage: node bench/soak.js [options]
  --minutes N        how long the load runs (default 10)
  --warmup S         seconds before the baseline samples (default 60)
  --threads N        comet-server worker threads (default 2)
  --channels N       channels, each with one writer and readers over them (default 100)
  --buffer-size N    the server's --buffer-size: messages kept per channel (default 100, so
                     that every buffer is full well within the warm-up: filling is not growth)
  --publishers N     writer loops, each owning channels/publishers channels (default 10)
  --put-interval MS  pause between one writer's puts (default 20)
  --readers N        chained readers, spread over the channels (default 100)
  --aborters N       loops of gets aborted while they wait (default 10)
  --bad N            loops of bad requests (default 2)
  --slow N           slow readers at a time (default 4)
  --sample S         seconds between samples (default 5)
  --rss-growth F     allowed RSS growth over the baseline, a fraction (default 0.25, at least 32 MiB)
  --files-growth N   allowed growth in open files (default 64)
  --json FILE        samples and verdicts as JSON
  --report FILE      markdown report (default: stdout)
  --chart FILE       SVG chart of RSS and heap per minute`;

/** @type {Record<string, any>} */
const o = (() => {
  try {
    return parseArgs(
      process.argv.slice(2),
      {
        minutes: 10,
        warmup: 60,
        threads: 2,
        channels: 100,
        bufferSize: 100,
        publishers: 10,
        putInterval: 20,
        readers: 100,
        aborters: 10,
        bad: 2,
        slow: 4,
        sample: 5,
        rssGrowth: 0.25,
        filesGrowth: 64,
        json: '',
        report: '',
        chart: '',
      },
      USAGE,
    );
  } catch (err) {
    process.stderr.write(`${/** @type {Error} */ (err).message}\n`);
    process.exit(2);
  }
})();

const MiB = 1024 * 1024;
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
/** @type {{ port: number }} */
const target = { port: 0 };

/**
 * One GET, its body parsed as JSON where it is; never throws on a status.
 * @param {string} query
 * @param {AbortSignal} [signal]
 * @returns {Promise<{ status: number, json: any }>}
 */
function get(query, signal) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: target.port, path: `/?${query}`, agent, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const problems = {
  /** 5xx answers, with what was asked. */
  serverErrors: /** @type {string[]} */ ([]),
  /** A reader saw a message out of order, twice, or with one missing, without `missed`. */
  order: /** @type {string[]} */ ([]),
  /** A bad request that was not refused 4xx. */
  notRefused: /** @type {string[]} */ ([]),
};
const counts = { puts: 0, delivered: 0, aborted: 0, bad: 0, slow: 0, missed: 0, networkErrors: 0 };
/** @param {string} what @param {number} status */
const noteStatus = (what, status) => {
  if (status >= 500 && problems.serverErrors.length < 20) problems.serverErrors.push(`${status} for ${what}`);
};

const channel = (/** @type {number} */ i) => `soak-${i}`;
/** The last sequence number acknowledged per channel. */
const acked = new Array(o.channels).fill(0);
/** The last sequence number each reader saw. */
const seen = new Array(o.readers).fill(-1);

let running = true;

async function publisher(/** @type {number} */ p) {
  for (let next = p; running; next += o.publishers) {
    const c = next % o.channels;
    const seq = acked[c] + 1;
    try {
      const res = await get(`method=put&channel=${channel(c)}&message=${seq}`);
      noteStatus('put', res.status);
      if (res.status === 200) {
        acked[c] = seq;
        counts.puts++;
      }
    } catch {
      counts.networkErrors++;
    }
    await sleep(o.putInterval);
  }
}

async function reader(/** @type {number} */ r, /** @type {AbortSignal} */ stop) {
  const c = r % o.channels;
  let time = -1;
  while (time < 0 && !stop.aborted) {
    const res = await get(`method=sync&channel=${channel(c)}`).catch(() => undefined);
    if (res?.status === 200) time = res.json.time;
  }
  while (!stop.aborted) {
    const res = await get(`method=get&channel=${channel(c)}&time=${time}&timeout=5`, stop).catch(() => undefined);
    if (res === undefined) continue;
    noteStatus('get', res.status);
    if (res.status !== 200) continue;
    if (res.json.missed) {
      counts.missed++;
      seen[r] = -1;
    }
    for (const message of res.json.messages) {
      const seq = Number(message);
      if (seen[r] !== -1 && seq !== seen[r] + 1 && problems.order.length < 20) {
        problems.order.push(`reader ${r} on ${channel(c)}: ${seq} after ${seen[r]}`);
      }
      seen[r] = seq;
      counts.delivered++;
    }
    time = res.json.time;
  }
}

async function aborter() {
  while (running) {
    const controller = new AbortController();
    const waiting = get(`method=get&channel=${channel(Math.floor(Math.random() * o.channels))}&timeout=30`, controller.signal).catch(() => undefined);
    await sleep(Math.random() * 300);
    controller.abort();
    await waiting;
    counts.aborted++;
  }
}

const BAD = [
  'method=bogus&channel=a',
  'method=get',
  'method=get&channel=a&time=-1',
  'method=put&channel=a',
  'method=get&channel=a&callback=__proto__',
  `method=get&channel=${'x'.repeat(5000)}`,
  'method=put&channel=a&message=%E0%A4%A',
];

async function badRequests() {
  for (let i = 0; running; i++) {
    const query = BAD[i % BAD.length];
    const res = await get(query).catch(() => undefined);
    if (res !== undefined) {
      noteStatus('a bad request', res.status);
      if ((res.status < 400 || res.status >= 500) && problems.notRefused.length < 20) problems.notRefused.push(`${res.status} for ${query.slice(0, 60)}`);
      counts.bad++;
    }
    await sleep(20);
  }
}

/** Asks for a channel's whole buffer and reads the answer a little at a time, over a few seconds. */
async function slowReader() {
  while (running) {
    await new Promise((resolve) => {
      const socket = net.connect(target.port, '127.0.0.1', () =>
        socket.write(`GET /?method=get&channel=${channel(0)}&time=0&timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n`),
      );
      socket.on('error', () => {});
      socket.pause();
      const drip = setInterval(() => {
        socket.resume();
        setImmediate(() => socket.pause());
      }, 500);
      setTimeout(() => {
        clearInterval(drip);
        socket.destroy();
        counts.slow++;
        resolve(undefined);
      }, 4000);
    });
  }
}

/** @param {string} text @param {string} name */
const metricValue = (text, name) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

/** @param {number} pid */
async function sample(pid) {
  const res = await new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: target.port, path: '/metrics' }, (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  const text = /** @type {string} */ (res);
  return {
    rss: readRss(pid),
    heap: metricValue(text, 'comet_heap_used_bytes'),
    files: fs.readdirSync(`/proc/${pid}/fd`).length,
    waiting: metricValue(text, 'comet_waiting_gets'),
  };
}

async function main() {
  const server = startTarget({ target: 'server', threads: o.threads, extraArgs: ['--buffer-size', String(o.bufferSize)] });
  target.port = await server.listening;
  const pid = /** @type {number} */ (server.pid);
  const started = Date.now();
  const durationMs = o.minutes * 60_000;
  progress(`soak: ${o.minutes} min on comet-server --threads ${o.threads} (pid ${pid}), warm-up ${o.warmup} s`);
  const readersStop = new AbortController();
  const loads = [
    ...Array.from({ length: o.publishers }, (_, p) => publisher(p)),
    ...Array.from({ length: o.aborters }, aborter),
    ...Array.from({ length: o.bad }, badRequests),
    ...Array.from({ length: o.slow }, slowReader),
  ];
  const readers = Array.from({ length: o.readers }, (_, r) => reader(r, readersStop.signal));
  /** @type {{ s: number, rss: number, heap: number, files: number, waiting: number }[]} */
  const samples = [];
  while (Date.now() - started < durationMs) {
    await sleep(Math.min(o.sample * 1000, durationMs - (Date.now() - started)));
    const s = { s: Math.round((Date.now() - started) / 1000), ...(await sample(pid)) };
    samples.push(s);
    progress(
      `  ${s.s} s: RSS ${fmtMiB(s.rss)}, heap ${fmtMiB(s.heap)}, ${s.files} files, ${s.waiting} waiting, ${counts.puts} puts, ${counts.delivered} delivered`,
    );
  }
  running = false;
  await Promise.all(loads);
  // Readers catch up with the last acknowledged puts, then stop: every get still waiting is let go.
  const caughtUp = () => seen.every((v, r) => v === acked[r % o.channels] || v === -1);
  for (let i = 0; i < 50 && !caughtUp(); i++) await sleep(100);
  readersStop.abort();
  await Promise.all(readers);
  let after = await sample(pid);
  for (let i = 0; i < 50 && after.waiting > 0; i++) {
    await sleep(100);
    after = await sample(pid);
  }
  await server.stop();

  const behind = seen.flatMap((v, r) => (v !== -1 && v !== acked[r % o.channels] ? [`reader ${r}: ${v} of ${acked[r % o.channels]}`] : []));
  const steady = samples.filter((s) => s.s >= o.warmup);
  const base = steady.slice(0, 3);
  const end = steady.slice(-3);
  const growth = (/** @type {'rss' | 'heap' | 'files'} */ k) => median(end.map((s) => s[k])) - median(base.map((s) => s[k]));
  const rssAllowed = Math.max(32 * MiB, o.rssGrowth * median(base.map((s) => s.rss)));
  const heapAllowed = Math.max(32 * MiB, o.rssGrowth * median(base.map((s) => s.heap)));
  const checks = [
    { check: `RSS growth after warm-up ≤ ${fmtMiB(rssAllowed)}`, value: fmtMiB(growth('rss')), ok: steady.length >= 2 && growth('rss') <= rssAllowed },
    { check: `V8 heap growth after warm-up ≤ ${fmtMiB(heapAllowed)}`, value: fmtMiB(growth('heap')), ok: steady.length >= 2 && growth('heap') <= heapAllowed },
    { check: `open files growth after warm-up ≤ ${o.filesGrowth}`, value: String(growth('files')), ok: steady.length >= 2 && growth('files') <= o.filesGrowth },
    { check: 'waiting gets back to 0 once every client left', value: String(after.waiting), ok: after.waiting === 0 },
    {
      check: 'every reader saw every acknowledged message of its channel, once, in order',
      value: [...problems.order, ...behind].slice(0, 3).join('; ') || 'yes',
      ok: problems.order.length === 0 && behind.length === 0,
    },
    { check: 'no 5xx answer', value: problems.serverErrors.slice(0, 3).join('; ') || 'none', ok: problems.serverErrors.length === 0 },
    {
      check: 'every bad request refused 4xx',
      value: problems.notRefused.slice(0, 3).join('; ') || `${counts.bad} refused`,
      ok: problems.notRefused.length === 0,
    },
  ];
  const passed = checks.every((c) => c.ok) && steady.length >= 2;
  const perMinute = samples.filter((s, i) => i === samples.length - 1 || Math.floor(s.s / 60) !== Math.floor((samples[i + 1]?.s ?? 0) / 60));
  const markdown = [
    `Soak: ${o.minutes} min, comet-server --threads ${o.threads} --buffer-size ${o.bufferSize}, ${o.channels} channels, ${o.publishers} writers (a put each ${o.putInterval} ms), ${o.readers} chained readers, ${o.aborters} aborting loops, ${o.bad} bad-request loops, ${o.slow} slow readers; warm-up ${o.warmup} s. Command: \`node bench/soak.js ${process.argv.slice(2).join(' ')}\`.`,
    '',
    `Load: ${counts.puts} puts acknowledged, ${counts.delivered} messages delivered to readers, ${counts.missed} missed flags, ${counts.aborted} gets aborted, ${counts.bad} bad requests, ${counts.slow} slow readers, ${counts.networkErrors} network errors.`,
    '',
    markdownTable(
      ['check', 'measured', 'verdict'],
      checks.map((c) => [c.check, c.value, c.ok ? 'pass' : 'FAIL']),
    ),
    '',
    markdownTable(
      ['second', 'RSS', 'V8 heap (all threads)', 'open files', 'waiting gets'],
      perMinute.map((s) => [String(s.s), fmtMiB(s.rss), fmtMiB(s.heap), String(s.files), String(s.waiting)]),
    ),
    '',
  ].join('\n');
  if (o.report) fs.writeFileSync(o.report, markdown);
  else process.stdout.write(markdown);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, counts, checks, samples, passed }, null, 2));
  if (o.chart) {
    const groups = perMinute.map((s) => `${Math.round(s.s / 60)} min`);
    const svg = barChart({
      title: `Soak, ${o.minutes} min: server memory over time`,
      unit: 'MiB',
      groups,
      series: [
        { name: 'RSS', values: perMinute.map((s) => Math.round(s.rss / MiB)) },
        { name: 'V8 heap, all threads', values: perMinute.map((s) => Math.round(s.heap / MiB)) },
      ],
    });
    fs.writeFileSync(o.chart, svg);
  }
  progress(passed ? 'soak passed' : 'soak FAILED');
  return passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
