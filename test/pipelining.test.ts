/**
 * Pipelined requests on one connection, against a real server with two
 * threads: every request is answered in order, or the connection is closed
 * and nothing that went unanswered was stored. uWS closes a connection whose
 * next request it parses while an answer is still owed; a put owed by
 * another thread (or a store that answers later) is therefore held until the
 * turn's I/O is done and dropped if that happened (src/threads/router.ts
 * put()); with --pipelining ordered, a connection with an owed answer is not
 * read until it is written (src/http/front.ts TimeAnswer, the wait room).
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import { ownerOf } from '../src/threads/router.js';
import { redisAvailable, startRedis } from './helpers/redis.js';
import { type CometServer, startServer } from './helpers/server.js';

const TRIALS = 100;

interface Answer {
  status: number;
  body: string;
}

/** Parses complete HTTP answers (Content-Length framed) off the front of `data`. */
function parseAnswers(data: Buffer): Answer[] {
  const answers: Answer[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end === -1) return answers;
    const head = data.subarray(at, end).toString('latin1');
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (data.length < end + 4 + length) return answers;
    answers.push({ status: Number(head.slice(9, 12)), body: data.subarray(end + 4, end + 4 + length).toString() });
    at = end + 4 + length;
  }
}

/**
 * Sends each of `writes` on one connection (`gapMs` apart) and collects the
 * answers until `expected` arrived or the server closed the connection.
 */
function exchange(srv: CometServer, writes: string[], expected: number, gapMs = 0): Promise<{ answers: Answer[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port: srv.port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer and no close within 5 s; got ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`));
    }, 5000);
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answers: parseAnswers(Buffer.concat(chunks)), closed });
    };
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (parseAnswers(Buffer.concat(chunks)).length === expected) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => {});
    socket.on('connect', async () => {
      for (const [i, data] of writes.entries()) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!socket.destroyed) socket.write(data);
      }
    });
  });
}

function request(srv: CometServer, query: string): string {
  return `GET /?${query} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`;
}

const putRequest = (srv: CometServer, channel: string, message: string): string =>
  request(srv, `method=put&channel=${encodeURIComponent(channel)}&message=${encodeURIComponent(message)}`);

/** A channel of `prefix` that thread `owner` of two owns. */
function ownedBy(owner: number, prefix: string): string {
  for (let i = 0; ; i++) if (ownerOf(`${prefix}-${i}`, 2) === owner) return `${prefix}-${i}`;
}

async function stored(srv: CometServer, channel: string): Promise<string[]> {
  return (await srv.get(channel, { time: '0' })).messages as string[];
}

/**
 * Checks one trial of pipelined puts: answers come in order, each a 200 with
 * a time, and every message stored was answered (a closed connection may
 * leave later ones unanswered, and then unstored).
 */
async function checkPuts(
  t: Test,
  srv: CometServer,
  puts: { channel: string; message: string }[],
  result: { answers: Answer[]; closed: boolean },
  what: string,
): Promise<boolean> {
  const { answers } = result;
  let ok = answers.length === puts.length || result.closed;
  for (const a of answers) ok &&= a.status === 200 && /^\{"time":\d+\}$/.test(a.body);
  for (const [i, p] of puts.entries()) {
    const isStored = (await stored(srv, p.channel)).includes(p.message);
    if (isStored !== i < answers.length) {
      ok = false;
      t.fail(`${what}: put ${i} ${isStored ? 'stored without its answer' : 'answered but not stored'}`, { answers, closed: result.closed });
    }
  }
  return ok;
}

t.test('pipelined puts in one write, to channels of either thread: answered in order, or closed with nothing unanswered stored', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const tally = { answered: 0, closed: 0, bad: 0 };
  for (const [a, b] of [
    [0, 1],
    [1, 0],
    [1, 1],
    [0, 0],
  ] as const) {
    for (let trial = 0; trial < TRIALS; trial++) {
      const puts = [
        { channel: ownedBy(a, `one-${a}${b}-${trial}`), message: `first ${trial}` },
        { channel: ownedBy(b, `two-${a}${b}-${trial}`), message: `second ${trial}` },
      ];
      const result = await exchange(srv, [puts.map((p) => putRequest(srv, p.channel, p.message)).join('')], 2);
      if (!(await checkPuts(t, srv, puts, result, `owners ${a},${b} trial ${trial}`))) tally.bad++;
      else if (result.answers.length === 2) tally.answered++;
      else tally.closed++;
    }
  }
  t.comment(`answered in order: ${tally.answered}; closed cleanly: ${tally.closed}`);
  t.equal(tally.bad, 0, 'no trial stored a put without its answer, or answered out of order');
});

t.test('with Redis as the store, pipelined puts in one write: answered in order, or closed with nothing unanswered stored', async (t) => {
  if (!redisAvailable(t)) return;
  const redis = await startRedis(t);
  // Every put waits for Redis, the thread's own channels' too: each is held to the end of its turn.
  const srv = await startServer({ t, threads: 2, args: ['--redis', redis.url] });
  const tally = { answered: 0, closed: 0, bad: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    const puts = [0, 1].map((i) => ({ channel: `redis-${trial}-${i}`, message: `m${i} ${trial}` }));
    const result = await exchange(srv, [puts.map((p) => putRequest(srv, p.channel, p.message)).join('')], 2);
    if (!(await checkPuts(t, srv, puts, result, `trial ${trial}`))) tally.bad++;
    else if (result.answers.length === 2) tally.answered++;
    else tally.closed++;
  }
  t.comment(`answered in order: ${tally.answered}; closed cleanly: ${tally.closed}`);
  t.equal(tally.bad, 0, 'no trial stored a put without its answer');
  t.equal(tally.closed, TRIALS, 'uWS closes every connection whose first put waits on Redis');
});

t.test('--pipelining ordered: puts written 1 ms apart behind owed puts are answered in order, or closed with nothing unanswered stored', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--pipelining', 'ordered'] });
  const tally = { answered: 0, closed: 0, bad: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    // A connection lands on either thread: on thread 0, each put is owed by the other one.
    const puts = [0, 1, 2].map((i) => ({ channel: ownedBy(1, `apart-${trial}-${i}`), message: `m${i}` }));
    const result = await exchange(
      srv,
      puts.map((p) => putRequest(srv, p.channel, p.message)),
      3,
      1,
    );
    if (!(await checkPuts(t, srv, puts, result, `trial ${trial}`))) tally.bad++;
    else if (result.answers.length === 3) tally.answered++;
    else tally.closed++;
  }
  t.comment(`answered in order: ${tally.answered}; closed cleanly (writes read together): ${tally.closed}`);
  t.equal(tally.bad, 0, 'no put stored without its answer');
  t.ok(tally.answered > 0, 'requests read after an owed answer wait for it and are answered');
});

t.test('a long-poll followed by a put in one write: the put is answered after the get, or neither is and the put is not stored', async (t) => {
  const srv = await startServer({ t, threads: 2 });
  const tally = { answered: 0, closed: 0, bad: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    const channel = `lp-${trial}`;
    const since = await srv.sync(channel);
    const put = { channel, message: `after ${trial}` };
    const data = request(srv, `method=get&channel=${channel}&time=${since}&timeout=1`) + putRequest(srv, put.channel, put.message);
    const result = await exchange(srv, [data], 2);
    const isStored = (await stored(srv, channel)).includes(put.message);
    const [getAnswer, putAnswer] = result.answers;
    if (result.answers.length === 2 && getAnswer!.status === 200 && /"messages":\[/.test(getAnswer!.body) && putAnswer!.status === 200 && isStored)
      tally.answered++;
    else if (result.closed && result.answers.length === 0 && !isStored) tally.closed++;
    else {
      tally.bad++;
      t.fail(`trial ${trial}`, { answers: result.answers, closed: result.closed, isStored });
    }
  }
  t.comment(`answered in order: ${tally.answered}; closed cleanly: ${tally.closed}`);
  t.equal(tally.bad, 0);
});

t.test('--pipelining ordered: a put written behind a waiting get is answered after it, or neither is and the put is not stored, 100 trials', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--pipelining', 'ordered'] });
  const tally = { answered: 0, closed: 0, bad: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    const channel = `lp-ordered-${trial}`;
    const since = await srv.sync(channel);
    const put = { channel: `after-${trial}`, message: `after ${trial}` };
    const exchanged = exchange(srv, [request(srv, `method=get&channel=${channel}&time=${since}&timeout=10`), putRequest(srv, put.channel, put.message)], 2, 5);
    await new Promise((r) => setTimeout(r, 15));
    // Not read yet: the put waits behind the get.
    const early = (await stored(srv, put.channel)).includes(put.message);
    await srv.put(channel, 'wake');
    const result = await exchanged;
    const [getAnswer, putAnswer] = result.answers;
    const isStored = (await stored(srv, put.channel)).includes(put.message);
    if (
      !early &&
      result.answers.length === 2 &&
      getAnswer!.status === 200 &&
      getAnswer!.body.includes('"wake"') &&
      putAnswer!.status === 200 &&
      /^\{"time":\d+\}$/.test(putAnswer!.body) &&
      isStored
    )
      tally.answered++;
    // A loaded machine may read both writes at once (5 ms apart): uWS then closes the connection
    // before the put runs, as it does without --pipelining ordered (this failed CI once when
    // counted as a failure).
    else if (result.closed && result.answers.length === 0 && !isStored) tally.closed++;
    else {
      tally.bad++;
      if (tally.bad <= 3) t.fail(`trial ${trial}`, { answers: result.answers, closed: result.closed, early, isStored });
    }
  }
  t.comment(`answered in order: ${tally.answered}; closed cleanly (writes read together): ${tally.closed}`);
  t.equal(tally.bad, 0, 'the get answered first, then the put, or the connection closed with the put not stored');
  t.ok(tally.answered >= TRIALS / 2, 'most trials read the put after the get and answered both');
});
