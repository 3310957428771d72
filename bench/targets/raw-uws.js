#!/usr/bin/env node
// A bare uWebSockets.js long-poll server: the ceiling that the harness
// (bench/cli.js) holds every target against. It does the least a server of the
// Simple Comet Protocol can do, with fixed answers:
//   put   remembers the channel's last time, answers {"time":T} and answers
//         every held get of the channel with {"time":T,"messages":[M]}
//   sync  answers {"time":T} (the channel's last time, else a fresh one)
//   get   with a time older than the channel's last: answered at once with a
//         fixed message (the "buffered" case); otherwise held open (onAborted
//         set, nothing else: no per-get timer, no time bookkeeping)
// GET /metrics exposes comet_waiting_gets and comet_gc_seconds_total (GC pause
// seconds, from a perf_hooks observer called per collection) like the real
// server, so that the harness reports the ceiling's GC per request beside it.
//
//   node bench/targets/raw-uws.js --port 0 --host 127.0.0.1
//
// Logs one JSON line {"msg":"listening","port":P} on stdout, like comet-server.
// Runs on the same uWebSockets.js build as comet-server would (the server's
// own loader; COMET_UWS_BUILD pins one, as it does for the server), so that
// the ratios compare the server with the ceiling of the stack it runs on.

import { constants, PerformanceObserver } from 'node:perf_hooks';
import * as runtime from '../../dist/uws.js';

const build = runtime.loadUws(process.env.COMET_UWS_BUILD || 'auto');
const uws = runtime.uws;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write('usage: node bench/targets/raw-uws.js [--port 0] [--host 127.0.0.1]\n');
  process.exit(0);
}

/** @param {string} name @param {string} def */
function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));

/** channel -> Set<HttpResponse> */
const channels = new Map();
/** channel -> the time of its last put */
const last = new Map();
let waiting = 0;
let lastTime = 0;
function nextTime() {
  const now = Date.now() * 1000;
  lastTime = now > lastTime ? now : lastTime + 1;
  return lastTime;
}

/** @param {Record<string, unknown>} obj */
function log(obj) {
  process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, ...obj }) + '\n');
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** GC pause seconds by kind, as comet-server counts them (src/metrics/gc.ts). */
const gc = { minor: 0, major: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = /** @type {{ detail?: { kind?: number } }} */ (entry).detail?.kind;
    gc[kind === constants.NODE_PERFORMANCE_GC_MINOR ? 'minor' : 'major'] += entry.duration / 1000;
  }
}).observe({ entryTypes: ['gc'] });

const app = uws.App();
app.get('/metrics', (res) => {
  res
    .writeHeader('Content-Type', 'text/plain; version=0.0.4')
    .end(
      `# TYPE comet_waiting_gets gauge\ncomet_waiting_gets ${waiting}\n` +
        `# TYPE comet_gc_seconds_total counter\ncomet_gc_seconds_total{kind="minor"} ${gc.minor}\ncomet_gc_seconds_total{kind="major"} ${gc.major}\n`,
    );
});
app.get('/', (res, req) => {
  const q = new URLSearchParams(req.getQuery() ?? '');
  const method = q.get('method');
  const channel = q.get('channel');
  if (!channel || (method !== 'get' && method !== 'put' && method !== 'sync')) {
    res.writeStatus('400 Bad Request').writeHeader('Content-Type', JSON_TYPE).end('{"error":"bad request"}');
    return;
  }
  if (method === 'sync') {
    res.writeHeader('Content-Type', JSON_TYPE).end(`{"time":${last.get(channel) ?? nextTime()}}`);
    return;
  }
  if (method === 'get') {
    const since = q.get('time');
    const lastTime = last.get(channel);
    if (since !== null && lastTime !== undefined && Number(since) < lastTime) {
      res.writeHeader('Content-Type', JSON_TYPE).end(`{"time":${lastTime},"messages":["m"]}`);
      return;
    }
    let set = channels.get(channel);
    if (set === undefined) channels.set(channel, (set = new Set()));
    set.add(res);
    waiting++;
    res.onAborted(() => {
      res.aborted = true;
      if (channels.get(channel) !== set) return; // already being answered
      if (set.delete(res)) waiting--;
      if (set.size === 0) channels.delete(channel);
    });
    return;
  }
  const message = q.get('message') ?? '';
  const t = nextTime();
  last.set(channel, t);
  const set = channels.get(channel);
  if (set !== undefined) {
    channels.delete(channel);
    waiting -= set.size;
    const body = `{"time":${t},"messages":${JSON.stringify([message])}}`;
    // Fan out after this handler returns: uWS corks the put's own socket while
    // its handler runs, and a cork on another socket from inside it does not
    // take, so each waiting response would go out as several small writes.
    setImmediate(() => {
      for (const r of set) {
        if (r.aborted) continue;
        r.cork(() => {
          r.writeHeader('Content-Type', JSON_TYPE).writeHeader('Cache-Control', 'no-store').end(body);
        });
      }
      set.clear();
    });
  }
  res.writeHeader('Content-Type', JSON_TYPE).end(`{"time":${t}}`);
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});

app.listen(host, port, (listenSocket) => {
  if (!listenSocket) {
    log({ level: 50, msg: 'listen failed', host, port });
    process.exit(1);
  }
  log({ msg: 'listening', host, port: uws.us_socket_local_port(listenSocket), node: process.version, uws: build.version });
  const stop = () => {
    uws.us_listen_socket_close(listenSocket);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
});
