// One long-poll client process of the fan-out, many-channels and idle
// scenarios (./longpoll-clients.js forks several: one process holds at most
// 6,000 sockets, well under the 20,000 open files a process may have). Every
// socket is a raw keep-alive connection with one get waiting at a time; no
// http.Agent, no parser objects per socket. Requests and answers go through
// the target's adapter (../adapters.js).
//
// The messages are typed in ./messages.d.ts (LongPollCommand, LongPollReport).
// parent -> child  {cmd:'open', urls, adapterRef, count, firstIndex, channel, ownChannels,
//                   localAddresses, concurrency, rate}
//                    socket g (firstIndex + i) connects to urls[g % urls.length]
//                    ownChannels: socket g waits on `${channel}-${g}`, else all on channel
//                    rate: connects started per second (0 = no limit): a burst faster than
//                    the target accepts overflows its listen backlog, and the kernel
//                    retries the dropped handshakes only after 1-15 s
//                  {cmd:'arm', expect}  a publish is coming: answers from now on are deliveries
//                  {cmd:'ask'}  every socket asks again from its last answer's cursor (the
//                    parent sends it after a round, so that a round's timings hold
//                    only its deliveries, not the next gets)
//                  {cmd:'close'}
// child  -> parent {type:'ready'} {type:'opened', count, failed, firstError}
//                  {type:'early', index, status, body}      (answered before arm)
//                  {type:'armed'} {type:'asked'}
//                  {type:'delivered', ok, bad, closed, firstBad, arrivals}
//                    arrivals: monotonic clock (ms, process.hrtime) of each good answer
//                  {type:'fatal', message}
// Exits when the parent goes away, and after 15 minutes in any case.

import net from 'node:net';
import { loadAdapter } from '../adapters.js';
import { formatRequest, parseResponse } from '../http1.js';

/**
 * @typedef {import('./messages.js').LongPollReport} LongPollReport
 * @typedef {import('./messages.js').LongPollCommand} LongPollCommand
 * @typedef {import('./messages.js').OpenCommand} OpenCommand
 * @typedef {import('./messages.js').BadAnswer} BadAnswer
 * @typedef {import('../types.js').Response} Response
 * @typedef {import('../types.js').GetResult} GetResult
 */

setTimeout(() => process.exit(3), 15 * 60_000).unref();
process.on('disconnect', () => process.exit(0));
/** @param {LongPollReport} m */
const send = (m) => process.connected && process.send?.(m);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** @type {net.Socket[]} */
const sockets = [];
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

function newRound() {
  return { answered: 0, ok: 0, bad: 0, closed: 0, firstBad: /** @type {BadAnswer | null} */ (null), arrivals: /** @type {number[]} */ ([]) };
}

/** @param {number} i */
function ask(i) {
  sockets[i].write(formatRequest(adapter.get(channels[i], cursors[i]), hostHeaders[i]));
}

function reportIfDone() {
  if (armed && round.answered === sockets.length) {
    armed = false;
    send({ type: 'delivered', ok: round.ok, bad: round.bad, closed: round.closed, firstBad: round.firstBad, arrivals: round.arrivals });
  }
}

/**
 * @param {number} i
 * @param {Response} res
 */
function onAnswer(i, res) {
  const at = nowMs();
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
  if (!armed || done[i]) {
    send({ type: 'early', index: i, status: res.status, body: res.body.slice(0, 300) });
  } else {
    done[i] = true;
    round.answered++;
    if (answer.ok && answer.messages.some((m) => m.includes(expect))) {
      round.ok++;
      round.arrivals.push(at);
    } else {
      round.bad++;
      round.firstBad ??= { status: res.status, body: res.body.slice(0, 300) };
    }
  }
  reportIfDone();
}

/**
 * @param {number} i
 * @param {Buffer} chunk
 */
function onData(i, chunk) {
  bufs[i] += chunk.toString('latin1');
  for (;;) {
    const parsed = parseResponse(bufs[i]);
    if (parsed === null) return;
    bufs[i] = parsed.rest;
    onAnswer(i, parsed.response);
  }
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
  const { urls, adapterRef, count, firstIndex, channel, ownChannels, localAddresses, concurrency, rate = 0 } = cmd;
  // the nodes of a target differ in their port only: the adapter (its base path) is the same
  adapter = await loadAdapter(adapterRef, urls[0]);
  const targets = urls.map((u) => new URL(u)).map(({ hostname, port }) => ({ hostname, port: Number(port), header: `${hostname}:${port}` }));
  /** @param {number} i */
  const targetOf = (i) => targets[(firstIndex + i) % targets.length];
  hostHeaders = Array.from({ length: count }, (_, i) => targetOf(i).header);
  channels = Array.from({ length: count }, (_, i) => (ownChannels ? `${channel}-${firstIndex + i}` : channel));
  cursors = new Array(count).fill(null);
  bufs = new Array(count).fill('');
  done = new Array(count).fill(false);
  gone = new Array(count).fill(false);
  let next = 0;
  let inFlight = 0;
  let opened = 0;
  let failed = 0;
  /** @type {string | null} */
  let firstError = null;
  const settled = () => {
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
      const s = net.connect({ host: hostname, port, localAddress: localAddresses[(firstIndex + i) % localAddresses.length] });
      sockets[i] = s;
      inFlight++;
      let connected = false;
      s.setNoDelay(true);
      s.once('connect', () => {
        connected = true;
        inFlight--;
        opened++;
        ask(i);
        settled();
        launch();
      });
      s.on('data', (c) => onData(i, c));
      s.on('error', (/** @type {NodeJS.ErrnoException} */ err) => {
        if (connected) return;
        inFlight--;
        failed++;
        firstError ??= `${err.code ?? ''} ${err.message}`;
        settled();
        launch();
      });
      s.on('close', () => connected && onGone(i));
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
      for (let i = 0; i < sockets.length; i++) if (!gone[i]) ask(i);
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
