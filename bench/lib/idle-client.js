// Client child process of bench/lib/idle-clients.js: holds up to 6,000 idle
// long-poll subscribers on raw node:net sockets (a hand-written HTTP/1.1 GET,
// no http.Agent, no parser) and tells the parent over IPC when they are all
// open and when they have all been answered.
//
// The request path is a template in which {channel} is replaced:
//   comet-server / raw uWS: /?method=get&channel={channel}&timeout=60
//   nginx + Nchan:          /sub?channel={channel}
//
// parent -> child  {cmd:'open', port, host, count, firstIndex, channel, channels,
//                   pathTemplate, localAddresses, concurrency, rate, expect}
//                  (channels: 1 = every socket waits on channel; more = socket g
//                  waits on `${channel}-${g % channels}`)
//                  (rate: most connects started per second, 0 = no limit; a burst
//                  faster than the target accepts overflows its listen backlog, and
//                  the dropped handshakes come back only after SYN retries of 1-15 s)
//                  {cmd:'arm'}    a publish is coming: answers from now on are deliveries
//                  {cmd:'close'}
// child  -> parent {type:'ready'} {type:'opened', count, failed, firstError}
//                  {type:'early', index, status, body}   (answered before the publish)
//                  {type:'armed'}
//                  {type:'delivered', ok, bad, closed, firstAt, at, firstBad}
//                  {type:'fatal', message}
//
// Bounded: exits when the parent goes away, or after IDLE_CLIENT_MAX_LIFE_MS
// (default 15 minutes).

import net from 'node:net';
import { performance } from 'node:perf_hooks';

const MAX_LIFE_MS = Number(process.env.IDLE_CLIENT_MAX_LIFE_MS ?? 15 * 60 * 1000);
setTimeout(() => process.exit(3), MAX_LIFE_MS).unref();
process.on('disconnect', () => process.exit(0));

/** @type {net.Socket[]} */
const sockets = [];
/** per socket: text received so far, or null once answered or gone */
let bufs = [];
let answered = 0;
let ok = 0;
let bad = 0;
let closed = 0;
let firstBad = null;
let firstAt = null;
let armed = false;
let expect = '';
let total = 0;

const now = () => performance.timeOrigin + performance.now();

function send(msg) {
  if (process.connected) process.send(msg);
}

/** {status, body} once the HTTP response in text is complete, else null. */
function parseComplete(text) {
  const he = text.indexOf('\r\n\r\n');
  if (he < 0) return null;
  const head = text.slice(0, he);
  const status = Number(head.slice(9, 12));
  const rest = text.slice(he + 4);
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (m) {
    const len = Number(m[1]);
    if (Buffer.byteLength(rest, 'latin1') < len) return null;
    return { status, body: rest.slice(0, len) };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    if (!rest.endsWith('0\r\n\r\n')) return null;
    let body = '';
    let p = 0;
    for (;;) {
      const nl = rest.indexOf('\r\n', p);
      const size = parseInt(rest.slice(p, nl), 16);
      if (!size) break;
      body += rest.slice(nl + 2, nl + 2 + size);
      p = nl + 2 + size + 2;
    }
    return { status, body };
  }
  // no length: a 304/204 or similar with an empty body
  if (status === 204 || status === 304) return { status, body: '' };
  return null;
}

function reportIfDone() {
  if (armed && answered === total) {
    send({ type: 'delivered', ok, bad, closed, firstAt, at: now(), firstBad });
  }
}

function onData(i, chunk) {
  if (bufs[i] === null) return;
  const text = bufs[i] + chunk.toString('latin1');
  const res = parseComplete(text);
  if (res === null) {
    bufs[i] = text;
    return;
  }
  bufs[i] = null;
  answered++;
  if (!armed) send({ type: 'early', index: i, status: res.status, body: res.body.slice(0, 300) });
  else if (firstAt === null) firstAt = now();
  if (res.status === 200 && res.body.includes(expect)) ok++;
  else {
    bad++;
    if (firstBad === null) firstBad = { status: res.status, body: res.body.slice(0, 300) };
  }
  reportIfDone();
}

function onGone(i) {
  if (bufs[i] === null) return;
  bufs[i] = null;
  answered++;
  closed++;
  if (!armed) send({ type: 'early', index: i, status: 0, body: 'connection closed before an answer' });
  reportIfDone();
}

function open(cmd) {
  const { port, host, count, firstIndex, channel, channels = 1, pathTemplate, localAddresses, concurrency, rate = 0 } = cmd;
  expect = cmd.expect;
  total = count;
  bufs = new Array(count).fill('');
  const request = (ch) => `GET ${pathTemplate.replaceAll('{channel}', encodeURIComponent(ch))} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`;
  const oneReq = channels > 1 ? null : request(channel);
  let next = 0;
  let inFlight = 0;
  let opened = 0;
  let failed = 0;
  let firstError = null;
  let reported = false;

  const maybeDone = () => {
    if (!reported && opened + failed === count) {
      reported = true;
      send({ type: 'opened', count: opened, failed, firstError });
    }
  };

  const started = performance.now();
  let timer = null;
  const launch = () => {
    const allowed = rate > 0 ? Math.floor(((performance.now() - started) / 1000) * rate) + 1 : count;
    while (inFlight < concurrency && next < count && next < allowed) {
      const i = next++;
      const g = firstIndex + i;
      const req = oneReq ?? request(`${channel}-${g % channels}`);
      const s = net.connect({ host, port, localAddress: localAddresses[g % localAddresses.length] });
      sockets[i] = s;
      inFlight++;
      let connected = false;
      s.setNoDelay(true);
      s.once('connect', () => {
        connected = true;
        s.write(req);
        inFlight--;
        opened++;
        maybeDone();
        launch();
      });
      s.on('data', (c) => onData(i, c));
      s.on('error', (err) => {
        if (!connected) {
          inFlight--;
          failed++;
          if (firstError === null) firstError = `${err.code ?? ''} ${err.message}`;
          bufs[i] = null;
          maybeDone();
          launch();
        }
      });
      s.on('close', () => {
        if (connected) onGone(i);
      });
    }
    // held back by the rate: come back shortly
    if (next < count && next >= allowed && timer === null) {
      timer = setTimeout(() => {
        timer = null;
        launch();
      }, 2);
    }
  };
  launch();
}

process.on('message', (cmd) => {
  try {
    if (cmd.cmd === 'open') open(cmd);
    else if (cmd.cmd === 'arm') {
      armed = true;
      send({ type: 'armed' });
      reportIfDone();
    } else if (cmd.cmd === 'close') {
      for (const s of sockets) s?.destroy();
      setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    send({ type: 'fatal', message: String(err?.stack ?? err) });
  }
});
send({ type: 'ready' });
