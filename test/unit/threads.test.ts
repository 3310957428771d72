/**
 * The cross-thread layer without worker threads: the message codec, the Mesh
 * over real MessageChannels, and Router with Owner over a MemoryEngine, on one
 * thread and on two (two sets of parts in this thread, linked by a Mesh). One
 * file: every test file pays the TypeScript loader's start-up of about two
 * seconds.
 */
import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import t from 'tap';
import type { Test } from 'tap';
import { type Engine, StoreFailure } from '../../src/engine/engine.js';
import { SLOT } from '../../src/metrics/counters.js';
import { CometError, type ErrorCode, refusals } from '../../src/protocol/errors.js';
import { Mesh } from '../../src/threads/mesh.js';
import { type Batch, decode, Encoder, type Inboxes, type NewsInbox, type OwnerInbox, type ReplyInbox } from '../../src/threads/messages.js';
import { type GetHandler, ownerOf, type PutHandler } from '../../src/threads/router.js';
import { memoryEngine, receive, TestEngine, threadParts, type ThreadParts } from '../helpers/thread-parts.js';
import { meshPorts } from '../../src/threads/mesh.js';
import { waitFor, within } from '../helpers/wait.js';
import { texts } from '../helpers/read-texts.js';

/** One call taken in by an inbox: which inbox, which method, its arguments (a CometError as code, status, message, closes). */
type Call = readonly unknown[];

/** The three inboxes of a thread, writing every call they take in to one log, in order. */
function recordingInboxes(log: Call[]): Inboxes {
  const owner: OwnerInbox = {
    put: (from, requestId, channel, body) => log.push(['owner', 'put', from, requestId, channel, body]),
    sync: (from, requestId, channel) => log.push(['owner', 'sync', from, requestId, channel]),
    get: (from, requestId, channel, since, wait) => log.push(['owner', 'get', from, requestId, channel, since, wait]),
    stream: (from, requestId, channel, since) => log.push(['owner', 'stream', from, requestId, channel, since]),
    unwatch: (from, channel) => log.push(['owner', 'unwatch', from, channel]),
  };
  const replies: ReplyInbox = {
    timed: (requestId, time) => log.push(['replies', 'timed', requestId, time]),
    answered: (requestId, time, json, count, missed, watching, times) =>
      log.push(['replies', 'answered', requestId, time, Buffer.from(json).toString(), count, missed, watching, ...(times === undefined ? [] : [times])]),
    parked: (requestId, cursor) => log.push(['replies', 'parked', requestId, cursor]),
    failed: (requestId, error) => log.push(['replies', 'failed', requestId, describeError(error)]),
  };
  const news: NewsInbox = {
    news: (channel, time, body) => log.push(['news', 'news', channel, time, body]),
    gap: (channel) => log.push(['news', 'gap', channel]),
  };
  return { owner, replies, news };
}

function describeError(error: unknown): unknown {
  return error instanceof CometError ? ['CometError', error.code, error.statusCode, error.message, error.closesConnection] : error;
}

/** An outbox that is one array, as the mesh's is for one destination and one turn. */
function encoderInto(batch: Batch): Encoder {
  return new Encoder({ batch: () => batch });
}

// ---- codec -------------------------------------------------------------------

/** Every message the Encoder writes, and the call it must become at the other end (decoded as from thread 2). */
const MESSAGES: ReadonlyArray<readonly [keyof Encoder, (e: Encoder) => void, Call]> = [
  ['put', (e) => e.put(7, 1, 'chan/é', '{"a":"\\u2028"}'), ['owner', 'put', 2, 1, 'chan/é', '{"a":"\\u2028"}']],
  ['sync', (e) => e.sync(7, 2, 'c'), ['owner', 'sync', 2, 2, 'c']],
  ['get', (e) => e.get(7, 3, 'c', 1_733_270_400_000_123, true), ['owner', 'get', 2, 3, 'c', 1_733_270_400_000_123, true]],
  ['get', (e) => e.get(7, 4, 'c', -1, false), ['owner', 'get', 2, 4, 'c', -1, false]],
  ['stream', (e) => e.stream(7, 5, 'c', 42), ['owner', 'stream', 2, 5, 'c', 42]],
  ['unwatch', (e) => e.unwatch(7, 'c'), ['owner', 'unwatch', 2, 'c']],
  ['timed', (e) => e.timed(5, 99), ['replies', 'timed', 5, 99]],
  ['answered', (e) => e.answered(6, 10, Buffer.from('"x","€"'), 2, true, false), ['replies', 'answered', 6, 10, '"x","€"', 2, true, false]],
  ['answered', (e) => e.answered(7, 11, Buffer.alloc(0), 0, false, true), ['replies', 'answered', 7, 11, '', 0, false, true]],
  ['answered', (e) => e.answered(12, 21, '"a","b,c"', 2, false, true, [20, 21]), ['replies', 'answered', 12, 21, '"a","b,c"', 2, false, true, [20, 21]]],
  ['answered', (e) => e.answered(13, 30, '', 0, true, true, []), ['replies', 'answered', 13, 30, '', 0, true, true, []]],
  ['parked', (e) => e.parked(8, 12), ['replies', 'parked', 8, 12]],
  [
    'failed',
    (e) => e.failed(9, refusals.storeUnavailable('redis down')),
    ['replies', 'failed', 9, ['CometError', 'COMET_ERR_STORE_UNAVAILABLE', 503, 'redis down', false]],
  ],
  [
    'failed',
    (e) => e.failed(10, refusals.ambiguousFraming()),
    ['replies', 'failed', 10, ['CometError', 'COMET_ERR_BAD_FRAMING', 400, refusals.ambiguousFraming().message, true]],
  ],
  ['news', (e) => e.news('c', 13, '"z"'), ['news', 'news', 'c', 13, '"z"']],
  ['gap', (e) => e.gap('c'), ['news', 'gap', 'c']],
];

t.test('codec: every message arrives at its inbox with its arguments, in order, from one batch', async (t) => {
  const written = new Set(MESSAGES.map(([name]) => name));
  const writable = Object.getOwnPropertyNames(Encoder.prototype).filter((name) => name !== 'constructor' && name !== 'crash');
  t.same([...written].sort(), writable.sort(), 'the table covers every message the Encoder can write');

  const batch: Batch = [];
  const encoder = encoderInto(batch);
  for (const [, write] of MESSAGES) write(encoder);
  const log: Call[] = [];
  // Through structured clone, as a MessagePort carries it.
  decode(structuredClone(batch), 2, recordingInboxes(log));
  t.same(
    log,
    MESSAGES.map(([, , call]) => call),
  );
});

t.test('codec: each message alone decodes the same as within a batch', async (t) => {
  for (const [name, write, call] of MESSAGES) {
    const batch: Batch = [];
    write(encoderInto(batch));
    const log: Call[] = [];
    decode(batch, 2, recordingInboxes(log));
    t.same(log, [call], name);
  }
});

t.test("codec: an answer's messages leave as text of only their own bytes, not a view of the engine's storage", async (t) => {
  const storage = Buffer.from('"old","x","€","later"');
  const view = storage.subarray(6, 15);
  const batch: Batch = [];
  encoderInto(batch).answered(1, 2, view, 2, false, true);
  storage.write('"zzzzzzz"', 6);
  t.ok(
    batch.every((part) => typeof part !== 'object'),
    'nothing in the batch refers to the storage',
  );
  const log: Call[] = [];
  decode(structuredClone(batch), 2, recordingInboxes(log));
  t.same(log, [['replies', 'answered', 1, 2, '"x","€"', 2, false, true]], 'the engine writing over its storage afterwards changes nothing');
});

t.test('codec: an unknown operation throws, naming the thread it came from', async (t) => {
  const log: Call[] = [];
  const batch: Batch = [];
  encoderInto(batch).timed(1, 2);
  batch.push(99);
  t.throws(() => decode(batch, 4, recordingInboxes(log)), /corrupt batch from thread 4: unknown operation 99 at 3/);
  t.same(log, [['replies', 'timed', 1, 2]], 'what came before it was taken in');
});

t.test('codec: the crash message makes the receiving thread throw', async (t) => {
  const batch: Batch = [];
  encoderInto(batch).crash();
  t.throws(() => decode(batch, 1, recordingInboxes([])), /fault injection/);
});

// ---- mesh --------------------------------------------------------------------

/** `threads` meshes linked by MessageChannels, closed when the test ends. */
function meshes(t: Test, threads: number): { meshes: Mesh[]; ports: (MessagePort | null)[][] } {
  const ports = meshPorts(threads);
  const all = ports.map((row, self) => new Mesh(self, row));
  t.teardown(() => all.forEach((mesh) => mesh.close()));
  return { meshes: all, ports };
}

/** Records each postMessage on `port` into `log` as `post→<to>`, then posts. */
function spyPosts(port: MessagePort, to: number, log: string[]): void {
  const post = port.postMessage.bind(port);
  port.postMessage = (value: unknown) => {
    log.push(`post→${to}`);
    post(value);
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('mesh: what one turn queues leaves as one batch per destination, in order; an idle turn sends nothing', async (t) => {
  const {
    meshes: [m0, m1, m2],
    ports,
  } = meshes(t, 3);
  const posts: string[] = [];
  spyPosts(ports[0]![1]!, 1, posts);
  spyPosts(ports[0]![2]!, 2, posts);
  const received: Array<{ at: number; from: number; calls: Call[] }> = [];
  for (const mesh of [m0!, m1!, m2!]) {
    mesh.onBatch((batch, from) => {
      const calls: Call[] = [];
      decode(batch, from, recordingInboxes(calls));
      received.push({ at: mesh.self, from, calls });
    });
  }

  m0!.to[1]!.timed(1, 10);
  m0!.to[2]!.gap('a');
  m0!.to[1]!.news('c', 30, '"x"');
  m0!.to[1]!.timed(2, 20);
  m0!.to[2]!.gap('b');
  t.same(posts, [], 'nothing leaves within the turn that queued it');
  await waitFor(() => received.length === 2, { intervalMs: 1, what: 'one batch at each of threads 1 and 2' });
  for (let i = 0; i < 5; i++) await turn();

  t.same(posts.sort(), ['post→1', 'post→2']);
  t.same(
    received.sort((a, b) => a.at - b.at),
    [
      {
        at: 1,
        from: 0,
        calls: [
          ['replies', 'timed', 1, 10],
          ['news', 'news', 'c', 30, '"x"'],
          ['replies', 'timed', 2, 20],
        ],
      },
      {
        at: 2,
        from: 0,
        calls: [
          ['news', 'gap', 'a'],
          ['news', 'gap', 'b'],
        ],
      },
    ],
  );

  m0!.to[1]!.timed(3, 30);
  await waitFor(() => received.length === 3, { intervalMs: 1, what: 'the next turn’s batch' });
  t.same(received[2], { at: 1, from: 0, calls: [['replies', 'timed', 3, 30]] }, 'a later turn, a later batch');
  t.same(posts.length, 3, 'only the destination with something queued was posted to');
});

t.test('mesh: a thread’s own batch is handled last, after the other threads’ batches are posted', async (t) => {
  const {
    meshes: [m0],
    ports,
  } = meshes(t, 2);
  const events: string[] = [];
  spyPosts(ports[0]![1]!, 1, events);
  m0!.onBatch((batch, from) => {
    const calls: Call[] = [];
    decode(batch, from, recordingInboxes(calls));
    events.push(`own from ${from}: ${JSON.stringify(calls)}`);
  });
  m0!.to[0]!.news('c', 1, '"first queued"');
  m0!.to[1]!.timed(1, 1);
  m0!.to[0]!.gap('c');
  await waitFor(() => events.length === 2, { intervalMs: 1, what: 'the flush' });
  t.same(events, [
    'post→1',
    `own from 0: ${JSON.stringify([
      ['news', 'news', 'c', 1, '"first queued"'],
      ['news', 'gap', 'c'],
    ])}`,
  ]);
});

t.test('mesh: a single thread delivers to itself without any port', async (t) => {
  const [m] = meshes(t, 1).meshes;
  const batches: Batch[] = [];
  m!.onBatch((batch) => batches.push(batch));
  m!.to[0]!.timed(1, 2);
  await waitFor(() => batches.length === 1, { intervalMs: 1, what: 'the own batch' });
  for (let i = 0; i < 3; i++) await turn();
  t.equal(batches.length, 1, 'no empty batch on idle turns');
});

t.test('mesh: close() closes every port of the thread', async (t) => {
  const {
    meshes: [m0],
    ports,
  } = meshes(t, 3);
  const closed = [once(ports[1]![0]!, 'close'), once(ports[2]![0]!, 'close')];
  m0!.close();
  await within(Promise.all(closed), 2000, 'the peers’ ports closing');
  t.pass('both peers saw their port to thread 0 close');
});

// ---- router and owner ----------------------------------------------------------

/** The handler of one request, recording what it is told. */
class Replies implements PutHandler, GetHandler {
  readonly log: Call[] = [];
  /** A client that went away before its put left the thread. */
  gone = false;
  constructor(private readonly next?: () => void) {}
  timed(time: number): void {
    this.record(['timed', time]);
  }
  answered(time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean): void {
    this.record(['answered', time, texts({ time, json, count, missed }).bodies, missed, watching]);
  }
  parked(cursor: number): void {
    this.record(['parked', cursor]);
  }
  failed(err: CometError): void {
    this.record(['failed', err.code, err.statusCode, err.message]);
  }
  get time(): number {
    const reply = this.log[0];
    if (reply?.[0] !== 'timed') throw new Error(`not timed: ${JSON.stringify(reply)}`);
    return reply[1] as number;
  }
  private record(reply: Call): void {
    this.log.push(reply);
    this.next?.();
  }
}

/** News and gaps reaching one thread. */
class NewsLog implements NewsInbox {
  readonly log: Call[] = [];
  news(channel: string, time: number, body: string): void {
    this.log.push(['news', channel, time, body]);
  }
  gap(channel: string): void {
    this.log.push(['gap', channel]);
  }
}

interface TestThread extends ThreadParts {
  news: NewsLog;
}

/** `count` threads' parts in this thread, linked by a mesh, decoding as src/server/thread.ts does. */
function threads(t: Test, count: number, engines: (self: number) => Engine = memoryEngine, maxMessages?: number): TestThread[] {
  const ports = meshPorts(count);
  return ports.map((row, self) => {
    const parts = threadParts(self, row, engines(self), maxMessages);
    const news = new NewsLog();
    receive(parts, news);
    t.teardown(() => parts.mesh.close());
    return { ...parts, news };
  });
}

/** A channel name that thread `owner` of `count` owns. */
function ownedBy(owner: number, count: number, prefix = 'ch'): string {
  for (let i = 0; ; i++) if (ownerOf(`${prefix}${i}`, count) === owner) return `${prefix}${i}`;
}

const put = (thread: ThreadParts, channel: string, body: string, next?: () => void): Replies => {
  const replies = new Replies(next);
  thread.router.put(channel, body, replies);
  return replies;
};
const sync = (thread: ThreadParts, channel: string): Replies => {
  const replies = new Replies();
  thread.router.sync(channel, replies);
  return replies;
};
const get = (thread: ThreadParts, channel: string, since: number, wait: boolean, next?: () => void): Replies => {
  const replies = new Replies(next);
  thread.router.get(channel, since, wait, replies);
  return replies;
};

const settled = (requests: Replies[], what = 'every reply'): Promise<unknown> =>
  waitFor(() => requests.every((r) => r.log.length > 0), { intervalMs: 1, timeoutMs: 2000, what });

t.test('one thread: puts are timed at once with increasing times; sync gives the current time', async (t) => {
  const [thread] = threads(t, 1);
  const th = thread!;
  t.same(sync(th, 'c').log, [['timed', 0]], 'a channel never written is at the start time');
  const puts = [put(th, 'c', '"a"'), put(th, 'c', '"b"'), put(th, 'c', '"c"')];
  t.ok(
    puts.every((p) => p.log.length === 1),
    'a MemoryEngine answers before put returns',
  );
  t.ok(puts[0]!.time < puts[1]!.time && puts[1]!.time < puts[2]!.time, 'times increase');
  t.same(sync(th, 'c').log, [['timed', puts[2]!.time]]);
  t.equal(th.router.busy, false);
});

t.test('one thread: a get is answered when there is something to say, parked otherwise', async (t) => {
  const [thread] = threads(t, 1);
  const th = thread!;
  t.same(get(th, 'c', 0, false).log, [['answered', 0, [], false, false]], 'a get that will not wait is answered empty');
  const p1 = put(th, 'c', '"a"').time;
  const p2 = put(th, 'c', '"b"').time;
  t.same(get(th, 'c', 0, false).log, [['answered', p2, ['"a"', '"b"'], false, false]]);
  t.same(get(th, 'c', p1, true).log, [['answered', p2, ['"b"'], false, true]], 'a waiting get with messages is answered, and watching');
  t.same(get(th, 'c', p2, true).log, [['parked', p2]], 'nothing newer: parked at the cursor');
  t.same(get(th, 'c', -(p2 + 1), true).log, [['parked', p2]], 'no cursor, arrived after the last put: parked at the current time');
  t.same(get(th, 'c', -p2, false).log, [['answered', p2, ['"b"'], false, false]], 'no cursor, arrived before the last put got here: answered with it');
  t.same(get(th, 'fresh', 0, true).log, [['parked', 0]]);
});

t.test('one thread: the owner reads within its limits and reports messages it no longer holds', async (t) => {
  const engine = memoryEngine();
  const [thread] = threads(t, 1, () => engine, 2);
  const th = thread!;
  const times = ['"a"', '"b"', '"c"'].map((body) => put(th, 'c', body).time);
  t.same(get(th, 'c', 0, false).log, [['answered', times[1], ['"a"', '"b"'], false, false]], 'at most two messages');
  put(th, 'gone', '"x"');
  engine.sweep(Date.now() + 3_600_000);
  t.same(get(th, 'gone', 0, true).log[0]?.slice(2), [[], true, true], 'evicted: answered `missed` at once instead of parked');
});

t.test('one thread: a waiting get makes its thread a watcher; each put brings one news per thread, not per get', async (t) => {
  const [thread] = threads(t, 1);
  const th = thread!;
  get(th, 'c', 0, true);
  get(th, 'c', 0, true);
  get(th, 'other', 0, false);
  const p = put(th, 'c', '"a"').time;
  put(th, 'other', '"not watched"');
  await waitFor(() => th.news.log.length > 0, { intervalMs: 1, what: 'news' });
  for (let i = 0; i < 3; i++) await turn();
  t.same(th.news.log, [['news', 'c', p, '"a"']]);
  t.equal(th.metrics.values[SLOT.newsSent], 1);

  th.router.unwatch('c');
  put(th, 'c', '"b"');
  for (let i = 0; i < 3; i++) await turn();
  t.same(th.news.log.length, 1, 'no news once the thread unwatched');
});

t.test('two threads: requests reach the owner of their channel and replies come back to their handlers', async (t) => {
  const [t0, t1] = threads(t, 2);
  const remote = ownedBy(1, 2);
  const local = ownedBy(0, 2);
  const first = put(t0!, remote, '"a"');
  t.same(first.log, [], 'a remote put waits for its reply');
  t.equal(t0!.router.busy, true);
  const second = put(t1!, remote, '"b"');
  const third = put(t0!, remote, '"c"');
  const mine = put(t0!, local, '"d"');
  t.equal(mine.log.length, 1, 'a put to this thread’s own channel is answered at once');
  await settled([first, second, third]);
  t.ok(second.time < first.time && first.time < third.time, 'times increase in the order the owner took the puts in');
  t.same(sync(t1!, remote).log, [['timed', third.time]], 'the owner holds them');
  const answer = get(t0!, remote, 0, false);
  await settled([answer]);
  t.same(answer.log, [['answered', third.time, ['"b"', '"a"', '"c"'], false, false]]);
  t.equal(t0!.router.busy, false);
  t.equal(t1!.router.busy, false);
});

t.test('two threads: one news per watching thread; a reply and later news keep their order', async (t) => {
  const [t0, t1] = threads(t, 2);
  const channel = ownedBy(1, 2);
  let newsBeforeParked = -1;
  const parked0 = get(t0!, channel, 0, true, () => (newsBeforeParked = t0!.news.log.length));
  get(t0!, channel, 0, true);
  const p = put(t0!, channel, '"a"');
  const parked1 = get(t1!, channel, 0, true);
  t.same(parked1.log, [['parked', 0]], 'the owner’s own thread is parked at once, before the remote put arrives');
  await settled([parked0, p]);
  await waitFor(() => t0!.news.log.length > 0 && t1!.news.log.length > 0, { intervalMs: 1, what: 'news at both threads' });
  t.same(parked0.log, [['parked', 0]]);
  t.equal(newsBeforeParked, 0, 'the get’s reply came before the news of the message put after it');
  t.same(t0!.news.log, [['news', channel, p.time, '"a"']], 'two gets on thread 0, one news');
  t.same(t1!.news.log, [['news', channel, p.time, '"a"']]);
  t.equal(t1!.metrics.values[SLOT.newsSent], 2, 'counted by the owner: one per watching thread');

  t0!.router.unwatch(channel);
  // Sent after the unwatch on the same port, so the owner has taken that in first.
  const q = put(t0!, channel, '"b"');
  await settled([q]);
  await waitFor(() => t1!.news.log.length === 2, { intervalMs: 1, what: 'the second news at thread 1' });
  for (let i = 0; i < 5; i++) await turn();
  t.same(t0!.news.log.length, 1, 'thread 0 unwatched: no more news');
  t.same(t1!.news.log[1], ['news', channel, q.time, '"b"']);
});

const FAILURES: ReadonlyArray<readonly [string, unknown, ErrorCode, number, string]> = [
  ['unavailable', new StoreFailure('unavailable', 'redis: connection refused'), 'COMET_ERR_STORE_UNAVAILABLE', 503, 'redis: connection refused'],
  ['refused', new StoreFailure('refused', 'ERR script failed'), 'COMET_ERR_INTERNAL', 500, 'ERR script failed'],
  ['closed', new StoreFailure('closed', 'engine closed'), 'COMET_ERR_SHUTTING_DOWN', 503, 'the server is shutting down'],
  ['an Error', new Error('bug'), 'COMET_ERR_INTERNAL', 500, 'the channel store failed: bug'],
  ['a string', 'odd', 'COMET_ERR_INTERNAL', 500, 'the channel store failed: odd'],
];

t.test('failures of the store become refusals, for every kind of request', async (t) => {
  const engine = new TestEngine();
  const [thread] = threads(t, 1, () => engine);
  const th = thread!;
  for (const [kind, reason, code, status, message] of FAILURES) {
    const requests = [
      ['put', 'append', () => put(th, 'c', '"a"')],
      ['sync', 'currentTime', () => sync(th, 'c')],
      ['get', 'read', () => get(th, 'c', 0, false)],
      ['waiting get', 'watch', () => get(th, `watch-${kind}`, 0, true)],
    ] as const;
    for (const [what, operation, send] of requests) {
      engine.failNext(operation, reason);
      const replies = send();
      await settled([replies], `${what} failing with ${kind}`);
      t.same(replies.log, [['failed', code, status, message]], `${what}, store failing with ${kind}`);
    }
  }
  t.equal(th.router.busy, false);
});

t.test('two threads: a failure at the owner reaches the requesting thread as the same refusal', async (t) => {
  const engine = new TestEngine();
  const [t0] = threads(t, 2, (self) => (self === 1 ? engine : memoryEngine()));
  const channel = ownedBy(1, 2);
  engine.failNext('append', new StoreFailure('unavailable', 'down'));
  const replies = put(t0!, channel, '"a"');
  await settled([replies]);
  t.same(replies.log, [['failed', 'COMET_ERR_STORE_UNAVAILABLE', 503, 'down']]);
});

t.test('a watch that failed is forgotten: the next waiting get watches again and hears news', async (t) => {
  const engine = new TestEngine();
  const [thread] = threads(t, 1, () => engine);
  const th = thread!;
  engine.failNext('watch', new StoreFailure('unavailable', 'down'));
  const failed = get(th, 'c', 0, true);
  await settled([failed]);
  t.same(failed.log, [['failed', 'COMET_ERR_STORE_UNAVAILABLE', 503, 'down']]);
  t.same(get(th, 'c', 0, true).log, [['parked', 0]]);
  const p = put(th, 'c', '"a"');
  await waitFor(() => th.news.log.length > 0, { intervalMs: 1, what: 'news after the second watch' });
  t.same(th.news.log, [['news', 'c', p.time, '"a"']]);
});

t.test('an engine that answers later: every request is pending until its reply, then reaches its own handler', async (t) => {
  const engine = new TestEngine();
  engine.slow = true;
  const [thread] = threads(t, 1, () => engine);
  const th = thread!;
  const a = put(th, 'c', '"a"');
  const b = put(th, 'c', '"b"');
  t.ok(
    [a, b].every((r) => r.log.length === 0),
    'no put answered while the calls run',
  );
  t.equal(th.router.busy, true);
  // Puts leave at the end of the turn (held, see Router.put): the sync and get follow them.
  await settled([a, b]);
  t.ok(a.time < b.time);
  const s = sync(th, 'c');
  const g = get(th, 'c', a.time - 1, false);
  t.ok(
    [s, g].every((r) => r.log.length === 0),
    'nor a sync or a get',
  );
  await settled([s, g]);
  t.same(s.log, [['timed', b.time]]);
  t.same(g.log, [['answered', b.time, ['"a"', '"b"'], false, false]]);
  t.equal(th.router.busy, false);
});

t.test('a put not stored at once is held until the turn ends, and dropped if its client went away meanwhile', async (t) => {
  const engine = new TestEngine();
  engine.slow = true;
  const [t0, t1] = threads(t, 2, (self) => (self === 0 ? engine : memoryEngine()));
  const remote = ownedBy(1, 2);
  const local = ownedBy(0, 2);
  const kept = [put(t0!, remote, '"kept"'), put(t0!, local, '"kept"')];
  const dropped = [put(t0!, remote, '"dropped"'), put(t0!, local, '"dropped"')];
  // As uWS closes a connection whose next request arrives, pipelined, in the same read.
  for (const r of dropped) r.gone = true;
  t.equal(t0!.router.busy, true, 'held puts keep the router busy');
  await settled(kept);
  await turn();
  t.ok(
    dropped.every((r) => r.log.length === 0),
    'a dropped put is never answered',
  );
  const remoteMessages = get(t1!, remote, 0, false);
  const localMessages = get(t0!, local, 0, false);
  await settled([remoteMessages, localMessages]);
  t.same(remoteMessages.log[0]?.[2], ['"kept"'], 'nor stored by another thread');
  t.same(localMessages.log[0]?.[2], ['"kept"'], 'nor by a store that answers later');
  t.equal(t0!.router.busy, false);
});

t.test('a handler may send the next request from inside its reply', async (t) => {
  for (const slow of [false, true]) {
    const engine = new TestEngine();
    engine.slow = slow;
    const [thread] = threads(t, 1, () => engine);
    const th = thread!;
    const chain: Replies[] = [];
    let sent = 0;
    const step = (): void => {
      if (sent === 6) return;
      const n = sent++;
      // Alternate puts and gets, so that each kind of reply starts the other kind of request.
      chain[n] = n % 2 === 0 ? put(th, 'c', `"${n}"`, step) : get(th, 'c', 0, false, step);
    };
    step();
    await waitFor(() => chain.length === 6 && chain.every((r) => r.log.length > 0), { intervalMs: 1, what: 'the whole chain' });
    const what = slow ? 'slow engine' : 'MemoryEngine';
    t.ok(
      chain.every((r) => r.log.length === 1),
      `${what}: each handler told once`,
    );
    t.same(chain[5]!.log[0]?.slice(2), [['"0"', '"2"', '"4"'], false, false], `${what}: the last get saw every put`);
    t.equal(th.router.busy, false, `${what}: nothing left pending`);
  }
});

t.test('failAll answers every request still waiting for an owner that will never reply', async (t) => {
  const ports = meshPorts(2);
  const engine = new TestEngine();
  const th = threadParts(0, ports[0]!, engine);
  t.teardown(() => {
    th.mesh.close();
    ports[1]![0]!.close();
  });
  const channel = ownedBy(1, 2);
  const local = put(th, ownedBy(0, 2), '"answered"');
  engine.holding = true;
  // Left unanswered by this thread's own store too: it must not hide in the local slot.
  const requests = [put(th, channel, '"a"'), sync(th, channel), get(th, channel, 0, true), put(th, ownedBy(0, 2), '"held"')];
  t.equal(th.router.busy, true);
  th.router.failAll(refusals.shuttingDown());
  for (const r of requests) t.same(r.log, [['failed', 'COMET_ERR_SHUTTING_DOWN', 503, 'the server is shutting down']]);
  t.same(local.log.length, 1, 'the answered local put is not refused');
  t.equal(th.router.busy, false);
  // Replies arriving after all: nobody waits for them any more.
  engine.release();
  th.router.timed(2, 5);
  th.router.answered(4, 5, '', 0, false, true);
  await turn();
  t.ok(
    requests.every((r) => r.log.length === 1),
    'late replies reach no handler',
  );
});
