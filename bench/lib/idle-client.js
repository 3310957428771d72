// Client child process of bench/idle-memory.js: holds up to a few thousand idle
// long-poll gets on raw node:net sockets (a hand-written HTTP/1.1 request, no
// http.Agent, no parser) and tells the parent over IPC when they are all open
// and when they have all been answered.
//
// parent -> child  {cmd:'open', port, host, count, firstIndex, channels, channelBase,
//                   timeout, localAddresses, concurrency, expect}
//                  {cmd:'close'}
// child  -> parent {type:'opened', count, failed, firstError}
//                  {type:'early', index, status, body}   (a get answered before the put)
//                  {type:'delivered', ok, bad, closed, at, firstBad}
//                  {type:'fatal', message}
//
// Everything is bounded: the child exits on its own if the parent goes away or
// after --max-life-ms (default 15 minutes).

import net from 'node:net';
import { performance } from 'node:perf_hooks';

const MAX_LIFE_MS = Number(process.env.IDLE_CLIENT_MAX_LIFE_MS ?? 15 * 60 * 1000);
const lifeTimer = setTimeout(() => process.exit(3), MAX_LIFE_MS);
lifeTimer.unref();
process.on('disconnect', () => process.exit(0));

/** @type {net.Socket[]} */
const sockets = [];
/** per socket: received text, or null once complete */
let bufs = [];
let answered = 0;
let ok = 0;
let bad = 0;
let closed = 0;
let firstBad = null;
let armed = false; // true once the parent says a put is coming (answers after that count as deliveries)
let expect = '';
let total = 0;

function send(msg) {
  if (process.connected) process.send(msg);
}

/** Returns {status, body} once the HTTP response in text is complete, else null. */
function parseComplete(text) {
  const he = text.indexOf('\r\n\r\n');
  if (he < 0) return null;
  const head = text.slice(0, he);
  const status = Number(head.slice(9, 12));
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const rest = text.slice(he + 4);
  if (m) {
    const len = Number(m[1]);
    // Byte length matters, not UTF-16 length; our bodies are ASCII.
    if (Buffer.byteLength(rest) < len) return null;
    return { status, body: rest.slice(0, len) };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    if (!rest.endsWith('0\r\n\r\n')) return null;
    // de-chunk
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
  return null;
}

function finishOne() {
  answered++;
  if (armed && answered === total) {
    send({ type: 'delivered', ok, bad, closed, at: performance.timeOrigin + performance.now(), firstBad });
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
  if (!armed) {
    send({ type: 'early', index: i, status: res.status, body: res.body.slice(0, 300) });
  }
  if (res.status === 200 && res.body.includes(expect)) ok++;
  else {
    bad++;
    if (firstBad === null) firstBad = { status: res.status, body: res.body.slice(0, 300) };
  }
  finishOne();
}

function onGone(i) {
  if (bufs[i] === null) return;
  bufs[i] = null;
  closed++;
  if (!armed) send({ type: 'early', index: i, status: 0, body: 'connection closed before an answer' });
  finishOne();
}

function open(cmd) {
  const { port, host, count, firstIndex, channels, channelBase, timeout, localAddresses, concurrency } = cmd;
  expect = cmd.expect;
  total = count;
  bufs = new Array(count).fill('');
  let next = 0;
  let inFlight = 0;
  let opened = 0;
  let failed = 0;
  let firstError = null;
  const reported = { done: false };

  const maybeDone = () => {
    if (!reported.done && opened + failed === count) {
      reported.done = true;
      send({ type: 'opened', count: opened, failed, firstError });
    }
  };

  const launch = () => {
    while (inFlight < concurrency && next < count) {
      const i = next++;
      const g = firstIndex + i;
      const channel = channels > 1 ? `${channelBase}-${g % channels}` : channelBase;
      const req =
        `GET /?method=get&channel=${encodeURIComponent(channel)}&timeout=${timeout} HTTP/1.1\r\n` +
        `Host: ${host}\r\n\r\n`;
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
  };
  launch();
}

process.on('message', (cmd) => {
  try {
    if (cmd.cmd === 'open') open(cmd);
    else if (cmd.cmd === 'arm') {
      // The parent is about to publish: from now on an answer is a delivery.
      armed = true;
      if (answered === total) send({ type: 'delivered', ok, bad, closed, at: performance.timeOrigin + performance.now(), firstBad });
      send({ type: 'armed' });
    } else if (cmd.cmd === 'close') {
      for (const s of sockets) s?.destroy();
      setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    send({ type: 'fatal', message: String(err?.stack ?? err) });
  }
});
send({ type: 'ready' });
