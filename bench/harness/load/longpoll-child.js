// One subscriber client process of the fan-out, many-channels, idle and
// streams scenarios (./longpoll-clients.js forks several: one process holds
// at most 6,000 sockets, well under the 20,000 open files a process may
// have). Every socket is a raw connection, no http.Agent, no parser objects
// per request: with the long-poll transport a keep-alive connection with one
// get waiting at a time, its requests and answers through the target's
// adapter (../adapters.js); with `sse` an event stream and with `ws` a
// WebSocket, opened and read as the adapter's `streams` says
// (./stream-readers.js).
//
// The messages are typed in ./messages.d.ts (LongPollCommand, LongPollReport).
// parent -> child  {cmd:'open', urls, adapterRef, transport, count, firstIndex, channel,
//                   ownChannels, localAddresses, concurrency, rate}
//                    socket g (firstIndex + i) connects to urls[g % urls.length]
//                    ownChannels: socket g waits on `${channel}-${g}`, else all on channel
//                    transport: longpoll (the default), sse or ws
//                    rate: connects started per second (0 = no limit): a burst faster than
//                    the target accepts overflows its listen backlog, and the kernel
//                    retries the dropped handshakes only after 1-15 s
//                  {cmd:'arm', expect}  a publish is coming: answers from now on are deliveries
//                  {cmd:'ask'}  every long-poll asks again from its last answer's cursor (the
//                    parent sends it after a round, so that a round's timings hold
//                    only its deliveries, not the next gets); a stream needs nothing
//                  {cmd:'close'}
// child  -> parent {type:'ready'} {type:'opened', count, failed, firstError}
//                    a long-poll counts as opened once connected, a stream once the
//                    server has answered its request (and, over WebSocket, its subscribe)
//                  {type:'early', index, status, body}      (answered before arm)
//                  {type:'armed'} {type:'asked'}
//                  {type:'delivered', ok, bad, closed, firstBad, arrivals}
//                    arrivals: monotonic clock (ms, process.hrtime) of each good answer
//                  {type:'fatal', message}
// Exits when the parent goes away, and after 15 minutes in any case.

import net from 'node:net';
import { loadAdapter } from '../adapters.js';
import { formatRequest, parseResponse } from '../http1.js';
import { OPCODE, SseReader, WsReader, maskedFrame, sseRequest, wsUpgrade } from './stream-readers.js';

/**
 * @typedef {import('./messages.js').LongPollReport} LongPollReport
 * @typedef {import('./messages.js').LongPollCommand} LongPollCommand
 * @typedef {import('./messages.js').OpenCommand} OpenCommand
 * @typedef {import('./messages.js').BadAnswer} BadAnswer
 * @typedef {import('../types.js').Response} Response
 * @typedef {import('../types.js').GetResult} GetResult
 * @typedef {import('../types.js').StreamAdapter} StreamAdapter
 * @typedef {object} Transport what a socket does once connected, and with what it reads
 * @property {(i: number) => void} start writes the socket's first request
 * @property {(i: number, chunk: Buffer, at: number) => void} data chunk: a view on readBuffer, valid until the next read
 * @property {(i: number) => void} [again] asks again after a round (a long-poll; a stream goes on by itself)
 */

setTimeout(() => process.exit(3), 15 * 60_000).unref();
process.on('disconnect', () => process.exit(0));
/** @param {LongPollReport} m */
const send = (m) => process.connected && process.send?.(m);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** @type {net.Socket[]} */
const sockets = [];
/** What every socket reads into: a transport copies what it keeps of a chunk before the next read. */
const readBuffer = Buffer.alloc(256 * 1024);
/** @type {import('../types.js').Adapter} set by the open command, before any socket */
let adapter;
/** @type {string[]} */
let hostHeaders = [];
/** @type {string[]} */
let channels = [];
/** @type {unknown[]} */
let cursors = [];
/** @type {string[]} */
let bufs = [];
/** @type {boolean[]} per socket: answered in this round (or gone) */
let done = [];
/** @type {boolean[]} per socket: closed by the server or the network */
let gone = [];
let armed = false;
let expect = '';
let round = newRound();
/** @type {Transport} set by the open command */
let transport;
/** Set by the open command: reports a socket open (true) or refused (false, why), once each. */
let settle = (/** @type {number} */ _i, /** @type {boolean} */ _ok, /** @type {string} */ _why = '') => {};

function newRound() {
  return { answered: 0, ok: 0, bad: 0, closed: 0, firstBad: /** @type {BadAnswer | null} */ (null), arrivals: /** @type {number[]} */ ([]) };
}

function reportIfDone() {
  if (armed && round.answered === sockets.length) {
    armed = false;
    send({ type: 'delivered', ok: round.ok, bad: round.bad, closed: round.closed, firstBad: round.firstBad, arrivals: round.arrivals });
  }
}

/**
 * A socket's messages arrived: a delivery in an armed round, else an early answer.
 * @param {number} i
 * @param {boolean} ok the answer was what a subscriber expects (not an error)
 * @param {string[]} messages
 * @param {number} at
 * @param {BadAnswer} what the answer, as a report shows it
 */
function onMessages(i, ok, messages, at, what) {
  if (!armed || done[i]) {
    send({ type: 'early', index: i, ...what });
  } else {
    done[i] = true;
    round.answered++;
    if (ok && messages.some((m) => m.includes(expect))) {
      round.ok++;
      round.arrivals.push(at);
    } else {
      round.bad++;
      round.firstBad ??= what;
    }
  }
  reportIfDone();
}

/** @param {number} i */
function ask(i) {
  sockets[i].write(formatRequest(adapter.get(channels[i], cursors[i]), hostHeaders[i]));
}

/**
 * @param {number} i
 * @param {Response} res
 * @param {number} at
 */
function onAnswer(i, res, at) {
  /** @type {GetResult} */
  let answer;
  try {
    answer = adapter.readGet(res);
  } catch {
    answer = { ok: false, messages: [], cursor: null, timedOut: false };
  }
  if (answer.ok && answer.timedOut) {
    // a long-poll that ran out of time: ask again, nothing was delivered
    if (answer.cursor !== null) cursors[i] = answer.cursor;
    ask(i);
    return;
  }
  if (answer.ok) cursors[i] = answer.cursor;
  onMessages(i, answer.ok, answer.messages, at, { status: res.status, body: res.body.slice(0, 300) });
}

/** @type {Transport} */
const longPoll = {
  start(i) {
    settle(i, true);
    ask(i);
  },
  again: ask,
  data(i, chunk, at) {
    bufs[i] += chunk.toString('latin1');
    for (;;) {
      const parsed = parseResponse(bufs[i]);
      if (parsed === null) return;
      bufs[i] = parsed.rest;
      onAnswer(i, parsed.response, at);
    }
  },
};

/**
 * @param {number} i
 * @param {number} status
 * @param {string} line
 */
const settleOnStatus = (i, status, line, want = 200) => status !== want && settle(i, false, `${line} (wanted ${want})`);

/** @param {StreamAdapter} streams @returns {Transport} */
function sse(streams) {
  /** @type {SseReader[]} */
  const readers = [];
  return {
    start(i) {
      readers[i] = new SseReader();
      sockets[i].write(sseRequest(streams.sse(channels[i]), hostHeaders[i]));
    },
    data(i, chunk, at) {
      const open = readers[i].read(
        chunk,
        (status, line) => (status === 200 ? settle(i, true) : settleOnStatus(i, status, line)),
        (event, data) => {
          const what = { status: 200, body: `event: ${event}, data: ${data.slice(0, 300)}` };
          if (event !== 'message') onMessages(i, false, [], at, what);
          else onMessages(i, true, [streams.sseMessage(data)], at, what);
        },
      );
      if (!open) sockets[i].destroy();
    },
  };
}

/** @param {StreamAdapter} streams @returns {Transport} */
function ws(streams) {
  /** @type {WsReader[]} */
  const readers = [];
  /** @type {(string | null)[]} */
  const subscribes = [];
  return {
    start(i) {
      readers[i] = new WsReader();
      const { path, subscribe } = streams.ws(channels[i]);
      subscribes[i] = subscribe;
      sockets[i].write(wsUpgrade(path, hostHeaders[i]));
    },
    data(i, chunk, at) {
      readers[i].read(
        chunk,
        (status, line) => {
          if (status !== 101) settleOnStatus(i, status, line, 101);
          else if (subscribes[i] === null) settle(i, true);
          else sockets[i].write(maskedFrame(OPCODE.text, Buffer.from(/** @type {string} */ (subscribes[i]))));
        },
        (opcode, payload) => {
          if (opcode === OPCODE.ping) sockets[i].write(maskedFrame(OPCODE.pong, payload));
          else if (opcode === OPCODE.close) sockets[i].destroy();
          else if (opcode === OPCODE.text) {
            const text = payload.toString('utf8');
            const frame = streams.wsFrame(text);
            if ('subscribed' in frame) settle(i, true);
            else if ('refused' in frame) settle(i, false, frame.refused);
            else onMessages(i, true, frame.messages, at, { status: 101, body: text.slice(0, 300) });
          }
        },
      );
    },
  };
}

/** @param {number} i */
function onGone(i) {
  gone[i] = true;
  if (armed && !done[i]) {
    done[i] = true;
    round.answered++;
    round.closed++;
    reportIfDone();
  } else if (!armed) {
    send({ type: 'early', index: i, status: 0, body: 'connection closed before an answer' });
  }
}

/** @param {OpenCommand} cmd */
async function open(cmd) {
  const { urls, adapterRef, transport: kind = 'longpoll', count, firstIndex, channel, ownChannels, localAddresses, concurrency, rate = 0 } = cmd;
  // the nodes of a target differ in their port only: the adapter (its base path) is the same
  adapter = await loadAdapter(adapterRef, urls[0]);
  transport = longPoll;
  if (kind !== 'longpoll') {
    if (!adapter.streams) throw new Error(`adapter ${adapterRef} has no streams: it cannot open ${kind} subscribers`);
    transport = kind === 'sse' ? sse(adapter.streams) : ws(adapter.streams);
  }
  const targets = urls.map((u) => new URL(u)).map(({ hostname, port }) => ({ hostname, port: Number(port), header: `${hostname}:${port}` }));
  /** @param {number} i */
  const targetOf = (i) => targets[(firstIndex + i) % targets.length];
  hostHeaders = Array.from({ length: count }, (_, i) => targetOf(i).header);
  channels = Array.from({ length: count }, (_, i) => (ownChannels ? `${channel}-${firstIndex + i}` : channel));
  cursors = new Array(count).fill(null);
  bufs = new Array(count).fill('');
  done = new Array(count).fill(false);
  gone = new Array(count).fill(false);
  /** per socket: open or refused, reported */
  const settled = new Array(count).fill(false);
  let next = 0;
  let inFlight = 0;
  let opened = 0;
  let failed = 0;
  /** @type {string | null} */
  let firstError = null;
  settle = (i, ok, why = '') => {
    if (settled[i]) return;
    settled[i] = true;
    if (ok) opened++;
    else {
      failed++;
      firstError ??= why;
    }
    if (opened + failed === count) send({ type: 'opened', count: opened, failed, firstError });
  };
  const started = nowMs();
  /** @type {NodeJS.Timeout | null} */
  let timer = null;
  const launch = () => {
    const allowed = rate > 0 ? Math.floor(((nowMs() - started) / 1000) * rate) + 1 : count;
    while (inFlight < concurrency && next < count && next < allowed) {
      const i = next++;
      const { hostname, port } = targetOf(i);
      const s = net.connect({
        host: hostname,
        port,
        localAddress: localAddresses[(firstIndex + i) % localAddresses.length],
        // read into one buffer for every socket, not through a stream: the client's CPU per
        // delivery then is a fraction of the server's, so that a fan-out measures the server
        onread: {
          buffer: readBuffer,
          callback: (n) => {
            transport.data(i, readBuffer.subarray(0, n), nowMs());
            return true;
          },
        },
      });
      sockets[i] = s;
      inFlight++;
      let connected = false;
      s.setNoDelay(true);
      s.once('connect', () => {
        connected = true;
        inFlight--;
        transport.start(i);
        launch();
      });
      s.on('error', (/** @type {NodeJS.ErrnoException} */ err) => {
        if (connected) return;
        inFlight--;
        settle(i, false, `${err.code ?? ''} ${err.message}`);
        launch();
      });
      s.on('close', () => {
        if (!connected) return;
        // a stream the server closed before it opened was refused, not lost
        if (!settled[i]) settle(i, false, 'connection closed before the stream opened');
        else onGone(i);
      });
    }
    if (next < count && next >= allowed && timer === null) {
      timer = setTimeout(() => {
        timer = null;
        launch();
      }, 2);
    }
  };
  launch();
}

process.on('message', async (/** @type {LongPollCommand} */ cmd) => {
  try {
    if (cmd.cmd === 'open') await open(cmd);
    else if (cmd.cmd === 'arm') {
      expect = cmd.expect;
      round = newRound();
      armed = true;
      for (let i = 0; i < sockets.length; i++) {
        done[i] = gone[i];
        if (gone[i]) round.answered++, round.closed++;
      }
      send({ type: 'armed' });
      reportIfDone();
    } else if (cmd.cmd === 'ask') {
      const { again } = transport;
      if (again) for (let i = 0; i < sockets.length; i++) if (!gone[i]) again(i);
      send({ type: 'asked' });
    } else if (cmd.cmd === 'close') {
      for (const s of sockets) s?.destroy();
      setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    send({ type: 'fatal', message: String(/** @type {Error} */ (err)?.stack ?? err) });
  }
});
send({ type: 'ready' });
