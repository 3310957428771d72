/**
 * The WaitRoom without HTTP: real Router, Owner, Mesh and MemoryEngine on one
 * thread and a real Responder, writing to recording stand-ins for uWS's
 * HttpResponse. The room is imported with its two serialisers counted, so
 * that a fan-out can be seen to build each distinct answer once.
 */
import type { MessagePort } from 'node:worker_threads';
import t from 'tap';
import type { Test } from 'tap';
import * as jsonp from '../../src/protocol/jsonp.js';
import * as respond from '../../src/protocol/respond.js';
import { nowMicros } from '../../src/engine/clock.js';
import { StoreFailure } from '../../src/engine/engine.js';
import { errorSlot, readMetrics, SLOT } from '../../src/metrics/counters.js';
import type { GetRequest } from '../../src/protocol/params.js';
import { ownerOf, type PutHandler } from '../../src/threads/router.js';
import type { HttpResponse } from '../../src/uws.js';
import type { CometError } from '../../src/protocol/errors.js';
import type { Delivery } from '../../src/waiters/delivery.js';
import type { WaitRoomLimits } from '../../src/waiters/wait-room.js';
import type { Stream, StreamSink } from '../../src/waiters/waiter.js';
import { receive, TestEngine, threadParts, type ThreadParts } from '../helpers/thread-parts.js';
import { meshPorts } from '../../src/threads/mesh.js';
import { waitFor } from '../helpers/wait.js';

const serialised = { answers: 0, jsonp: 0 };
const { WaitRoom } = await t.mockImport<typeof import('../../src/waiters/wait-room.js')>('../../src/waiters/wait-room.js', {
  '../../src/protocol/respond.js': {
    ...respond,
    messagesAnswer: (...args: Parameters<typeof respond.messagesAnswer>) => {
      serialised.answers++;
      return respond.messagesAnswer(...args);
    },
  },
  '../../src/protocol/jsonp.js': {
    ...jsonp,
    wrapJsonp: (...args: Parameters<typeof jsonp.wrapJsonp>) => {
      serialised.jsonp++;
      return jsonp.wrapJsonp(...args);
    },
  },
});

type Chunk = Parameters<HttpResponse['end']>[0] & {};

function text(chunk: Chunk): string {
  if (typeof chunk === 'string') return chunk;
  if (chunk instanceof ArrayBuffer) return Buffer.from(chunk).toString();
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString();
}

/** What the client would receive; `misuse` lists every call uWS forbids (after the end, after an abort, outside a cork). */
class FakeResponse {
  status = '200 OK';
  /** Header lines as they go out (the Responder writes several in one value). */
  readonly headers: string[] = [];
  body: string | undefined;
  closes: boolean | undefined;
  readonly misuse: string[] = [];
  private corked = false;
  private statusWritten = false;
  private aborted = false;
  private ended = false;
  private onAbort: (() => void) | undefined;
  /** How many abort handlers were registered. */
  abortHandlers = 0;
  readonly res = this as unknown as HttpResponse;

  /** uWS writes the text as the status line whole, so lines after the first are header lines; it ignores a second call. */
  writeStatus(status: Chunk): HttpResponse {
    this.use('writeStatus');
    if (this.statusWritten) this.misuse.push('writeStatus twice');
    this.statusWritten = true;
    const [line, ...headers] = text(status).split('\r\n');
    this.status = line!;
    this.headers.push(...headers);
    return this.res;
  }

  writeHeader(key: Chunk, value: Chunk): HttpResponse {
    this.use('writeHeader');
    this.headers.push(...`${text(key)}: ${text(value)}`.split('\r\n'));
    return this.res;
  }

  end(body?: Chunk, closeConnection?: boolean): HttpResponse {
    this.use('end');
    this.ended = true;
    this.body = body === undefined ? '' : text(body);
    this.closes = closeConnection === true;
    return this.res;
  }

  /** A socket that takes every answer whole. */
  tryEnd(body: Chunk): [boolean, boolean] {
    this.end(body);
    return [true, true];
  }

  cork(write: () => void): HttpResponse {
    if (this.aborted) this.misuse.push('cork after abort');
    this.corked = true;
    try {
      write();
    } finally {
      this.corked = false;
    }
    return this.res;
  }

  onAborted(handler: () => void): HttpResponse {
    this.onAbort = handler;
    this.abortHandlers++;
    return this.res;
  }

  /** The client goes away, as uWS reports it. */
  abort(): void {
    this.aborted = true;
    this.onAbort?.();
  }

  get answered(): boolean {
    return this.ended;
  }

  get contentType(): string | undefined {
    return this.headers.find((line) => line.startsWith('Content-Type: '))?.slice('Content-Type: '.length);
  }

  private use(call: string): void {
    if (this.aborted) this.misuse.push(`${call} after abort`);
    if (this.ended) this.misuse.push(`${call} after end`);
    if (!this.corked) this.misuse.push(`${call} uncorked`);
  }
}

const JSON_TYPE = 'application/json; charset=utf-8';
const SCRIPT_TYPE = 'application/javascript; charset=utf-8';

interface Room extends ThreadParts {
  engine: TestEngine;
  responder: respond.Responder;
  room: InstanceType<typeof WaitRoom>;
  /** Every response handed to the room, to check none was misused. */
  responses: FakeResponse[];
}

/** A room on thread `self` of a mesh whose ports, as seen from that thread, are `row` (one thread alone by default). */
function makeRoom(t: Test, limits: Partial<WaitRoomLimits> = {}, self = 0, row: readonly (MessagePort | null)[] = meshPorts(1)[0]!): Room {
  const engine = new TestEngine();
  const parts = threadParts(self, row, engine);
  const responder = new respond.Responder('*', (code) => parts.metrics.error(code), 1 << 20, { waiting: () => {}, closed: () => {} });
  const waitRoom = new WaitRoom(parts.router, responder, parts.metrics, { maxWaiting: 100, maxAnswerMessages: 100, maxAnswerBytes: 1 << 20, ...limits });
  receive(parts, waitRoom, () => waitRoom.deliver());
  const responses: FakeResponse[] = [];
  t.teardown(() => {
    waitRoom.stop();
    parts.mesh.close();
  });
  return { ...parts, engine, responder, room: waitRoom, responses };
}

/** A get as the HTTP front end hands it over. */
function start(r: Room, channel: string, since: number, options: { timeout?: number; callback?: string } = {}): FakeResponse {
  const response = new FakeResponse();
  r.responses.push(response);
  const request: GetRequest = { method: 'get', channel, since, timeout: options.timeout ?? 30, callback: options.callback };
  r.room.start(response.res, request, r.responder.cors.wildcard!);
  return response;
}

/** Stores a message through the router, as a put request does; gives its time. */
function put(r: Room, channel: string, message: string): number {
  let stored = -1;
  const handler: PutHandler = {
    gone: false,
    timed: (time) => (stored = time),
    failed: (err) => {
      throw err;
    },
  };
  r.router.put(channel, JSON.stringify(message), handler);
  if (stored === -1) throw new Error('the MemoryEngine did not store at once');
  return stored;
}

const waiting = (r: Room): number => readMetrics(r.metricsBuffer, 1).waiting;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}
const answered = (responses: FakeResponse[], what: string): Promise<unknown> =>
  waitFor(() => responses.every((r) => r.answered), { intervalMs: 1, timeoutMs: 2000, what });

/** A test whose rooms' responses are checked, at its end, for any call uWS forbids. */
type RoomFactory = (limits?: Partial<WaitRoomLimits>, self?: number, row?: readonly (MessagePort | null)[]) => Room;
function roomTest(name: string, body: (t: Test, room: RoomFactory) => Promise<void>): void {
  t.test(name, async (t) => {
    const rooms: Room[] = [];
    await body(t, (limits, self, row) => {
      const r = makeRoom(t, limits, self, row);
      rooms.push(r);
      return r;
    });
    t.same(
      rooms.flatMap((r) => r.responses.flatMap((response) => response.misuse)),
      [],
      'no response was written after its end or its abort, or outside a cork',
    );
  });
}

roomTest('a get that finds messages is answered at once, as JSON or JSONP', async (t, room) => {
  const r = room();
  const a = put(r, 'c', 'a');
  const b = put(r, 'c', 'b');
  const plain = start(r, 'c', 0);
  t.equal(plain.answered, true, 'answered within start()');
  t.equal(plain.abortHandlers, 0, 'answered in its handler: no abort handler registered');
  t.same([plain.status, plain.contentType, plain.body, plain.closes], ['200 OK', JSON_TYPE, `{"time":${b},"messages":["a","b"]}`, false]);
  t.ok(plain.headers.includes('Cache-Control: no-store') && plain.headers.includes('Access-Control-Allow-Origin: *'));
  const script = start(r, 'c', a, { callback: 'cb.x' });
  t.same([script.contentType, script.body], [SCRIPT_TYPE, `/**/cb.x({"time":${b},"messages":["b"]});`]);
  const now = start(r, 'c', b, { timeout: 0 });
  t.equal(now.body, `{"time":${b},"messages":[]}`, 'timeout=0: answered at once with nothing');
  t.equal(waiting(r), 0, 'every waiting slot is free again');
  t.equal(r.metrics.values[SLOT.messagesOut], 3);
  t.equal(r.metrics.values[SLOT.bytesOut], plain.body!.length + script.body!.length + now.body!.length);
});

roomTest('a get that finds nothing is parked, and answered with the news of the next message', async (t, room) => {
  const r = room();
  const a = put(r, 'c', 'a');
  const parked = start(r, 'c', a);
  const fresh = start(r, 'new', -1);
  await turns(3);
  t.equal(parked.answered, false);
  t.same([parked.abortHandlers, fresh.abortHandlers], [1, 1], 'a parked get has its abort handler');
  t.equal(waiting(r), 2, 'parked gets hold their slots');
  const b = put(r, 'c', 'b');
  await answered([parked], 'the parked get');
  t.equal(parked.body, `{"time":${b},"messages":["b"]}`);
  t.equal(parked.closes, false);
  t.equal(fresh.answered, false, 'news of another channel does not answer it');
  const n = put(r, 'new', 'n');
  await answered([fresh], 'the get with no cursor');
  t.equal(fresh.body, `{"time":${n},"messages":["n"]}`);
  t.equal(waiting(r), 0);
});

roomTest('a get without a time hears a put that reached its owner thread before the get did', async (t, room) => {
  const ports = meshPorts(2);
  const [here, owner] = [room({}, 0, ports[0]!), room({}, 1, ports[1]!)];
  let channel = 'race';
  while (ownerOf(channel, 2) !== 1) channel += '-';
  const before = put(owner, channel, 'before');
  while (nowMicros() <= before) {
    // A get sent after that put was answered arrives after its time.
  }
  const get = start(here, channel, -1);
  // Stored by the owner at once, while the get is still on its way there over the mesh.
  const raced = put(owner, channel, 'raced');
  await answered([get], 'the get without a time');
  t.equal(get.body, `{"time":${raced},"messages":["raced"]}`, 'answered with the put that arrived after it, not the one before');
  const next = start(here, channel, -1);
  await turns(5);
  t.equal(next.answered, false, 'a get arriving after both waits');
  const last = put(owner, channel, 'last');
  await answered([next], 'the next get');
  t.equal(next.body, `{"time":${last},"messages":["last"]}`);
});

roomTest('a fan-out answers each cursor with what is newer, serialising each distinct answer once', async (t, room) => {
  const r = room();
  const t1 = put(r, 'c', 'a');
  const early = [start(r, 'c', t1), start(r, 'c', t1)];
  const jsonpF = [start(r, 'c', t1, { callback: 'f' }), start(r, 'c', t1, { callback: 'f' })];
  const jsonpG = start(r, 'c', t1, { callback: 'g' });
  // In the same turn: these park after the first put, before its news arrives.
  const t2 = put(r, 'c', 'b');
  const middle = start(r, 'c', t2);
  const t3 = put(r, 'c', 'c');
  const late = start(r, 'c', t3);
  serialised.answers = 0;
  serialised.jsonp = 0;
  await answered([...early, ...jsonpF, jsonpG, middle], 'every get older than the last message');
  const both = `{"time":${t3},"messages":["b","c"]}`;
  t.same(
    early.map((x) => x.body),
    [both, both],
  );
  t.same(
    jsonpF.map((x) => [x.contentType, x.body]),
    [
      [SCRIPT_TYPE, `/**/f(${both});`],
      [SCRIPT_TYPE, `/**/f(${both});`],
    ],
  );
  t.equal(jsonpG.body, `/**/g(${both});`);
  t.equal(middle.body, `{"time":${t3},"messages":["c"]}`);
  t.equal(late.answered, false, 'nothing newer than its cursor: still parked');
  t.same(serialised, { answers: 2, jsonp: 2 }, 'two cursors, two callbacks: two bodies and two wrappings for six answers');
  t.equal(r.metrics.values[SLOT.newsSent], 2, 'one news per message, not per get');
});

roomTest('a fan-out answer stops at maxAnswerMessages or maxAnswerBytes, in UTF-8; the rest is read from the new cursor', async (t, room) => {
  // '"a€€"' is 5 characters and 9 bytes.
  for (const [messages, limits, expected] of [
    [['aaaa', 'bbbb', 'cccc'], { maxAnswerMessages: 2 }, 2],
    [['aaaa', 'bbbb', 'cccc'], { maxAnswerBytes: '"aaaa"'.length * 2 }, 2],
    [['aaaa', 'bbbb', 'cccc'], { maxAnswerBytes: '"aaaa"'.length * 2 - 1 }, 1],
    [['aaaa', 'bbbb', 'cccc'], { maxAnswerBytes: 1 }, 1],
    [['a€€', 'b€€', 'c€€'], { maxAnswerBytes: 18 }, 2],
    [['a€€', 'b€€', 'c€€'], { maxAnswerBytes: 17 }, 1],
  ] as const) {
    const r = room(limits);
    const parked = start(r, 'c', put(r, 'c', 'first'));
    const times = messages.map((m) => put(r, 'c', m));
    await answered([parked], 'the parked get');
    const bodies = messages.map((m) => `"${m}"`);
    t.equal(parked.body, `{"time":${times[expected - 1]},"messages":[${bodies.slice(0, expected).join(',')}]}`, JSON.stringify(limits));
    const next = start(r, 'c', times[expected - 1]!);
    t.equal(next.body, `{"time":${times[2]},"messages":[${bodies.slice(expected).join(',')}]}`, 'the next get has the rest at once');
  }
});

roomTest('a parked get with no news is answered empty when its timeout passes', async (t, room) => {
  const r = room();
  const cursor = put(r, 'c', 'a');
  const began = Date.now();
  const parked = start(r, 'c', cursor, { timeout: 1, callback: 'cb' });
  await waitFor(() => parked.answered, { intervalMs: 5, timeoutMs: 3000, what: 'the timeout answer' });
  const waited = Date.now() - began;
  t.ok(waited >= 900 && waited < 2500, `answered after ${waited} ms, for a 1 s timeout on a 250 ms wheel`);
  t.same([parked.contentType, parked.body], [SCRIPT_TYPE, `/**/cb({"time":${cursor},"messages":[]});`]);
  t.equal(waiting(r), 0);
});

roomTest('an aborted get frees its slot at once and its response is never touched again', async (t, room) => {
  const r = room();
  const cursor = put(r, 'c', 'a');
  const parked = start(r, 'c', cursor, { timeout: 1 });
  const kept = start(r, 'c', cursor);
  t.equal(waiting(r), 2);
  parked.abort();
  t.equal(waiting(r), 1, 'freed while parked');

  // Aborted while the owner has not replied yet (a store answering late).
  r.engine.holding = true;
  const pending = start(r, 'c', cursor);
  t.equal(waiting(r), 2);
  t.equal(pending.abortHandlers, 1, 'a get whose owner has not replied has its abort handler');
  pending.abort();
  t.equal(waiting(r), 1, 'freed while its owner had not replied');
  r.engine.holding = false;
  r.engine.release();
  await turns(3);

  const b = put(r, 'c', 'b');
  await answered([kept], 'the get that stayed');
  t.equal(kept.body, `{"time":${b},"messages":["b"]}`);
  // Past the aborted get's timeout: its wheel entry is gone too.
  await new Promise((resolve) => setTimeout(resolve, 1300));
  t.same([parked.answered, pending.answered], [false, false]);
  t.equal(waiting(r), 0, 'no slot released twice, none leaked');
  t.equal(r.metrics.values[SLOT.messagesOut], 1);
});

roomTest('maxWaiting: a get beyond it is refused with 503 and counted', async (t, room) => {
  const r = room({ maxWaiting: 2 });
  const cursor = put(r, 'c', 'a');
  const held = [start(r, 'c', cursor), start(r, 'c', cursor)];
  const refused = start(r, 'c', 0);
  t.same([refused.status, refused.contentType, refused.closes], ['503 Service Unavailable', JSON_TYPE, false]);
  t.same(JSON.parse(refused.body!), { error: 'too many waiting gets, try again later', code: 'COMET_ERR_TOO_MANY_WAITING' });
  t.equal(r.metrics.values[errorSlot('COMET_ERR_TOO_MANY_WAITING')], 1);
  t.equal(waiting(r), 2, 'the refused get took no slot');
  put(r, 'c', 'b');
  await answered(held, 'the held gets');
  t.equal(start(r, 'c', 0).answered, true, 'answered slots are free for the next gets');
});

roomTest('drain answers every parked get at once, closing the connection; so is a get parked while closing', async (t, room) => {
  const r = room();
  const cursor = put(r, 'c', 'a');
  const parked = [start(r, 'c', cursor), start(r, 'd', -1, { callback: 'cb' })];
  r.engine.holding = true;
  const late = start(r, 'e', 0);
  r.responder.closing = true;
  r.room.drain();
  t.same(
    parked.map((p) => [p.body, p.closes]),
    [
      [`{"time":${cursor},"messages":[]}`, true],
      ['/**/cb({"time":0,"messages":[]});', true],
    ],
  );
  t.equal(late.answered, false, 'not yet replied to by its owner');
  r.engine.holding = false;
  r.engine.release();
  await answered([late], 'the get whose reply came after the drain');
  t.same([late.body, late.closes], ['{"time":0,"messages":[]}', true]);
  const after = start(r, 'c', cursor);
  t.same([after.body, after.closes], [`{"time":${cursor},"messages":[]}`, true], 'a get during the drain does not wait');
  t.equal(waiting(r), 0);
});

roomTest('a gap makes parked gets read again from their cursors', async (t, room) => {
  const r = room();
  const cursor = put(r, 'c', 'a');
  const parked = start(r, 'c', cursor, { callback: 'cb' });
  r.engine.deaf = true;
  const b = put(r, 'c', 'b');
  await turns(3);
  t.equal(parked.answered, false, 'the store did not report the message');
  r.engine.reportGap('c');
  await answered([parked], 'the re-read');
  t.equal(parked.body, `/**/cb({"time":${b},"messages":["b"]});`);
});

roomTest('news that overtook the owner’s reply to park is not missed: the get reads again', async (t, room) => {
  const r = room();
  r.engine.holding = true;
  const get = start(r, 'c', 0);
  r.engine.release(); // the watch: the owner now reads, and that read is held
  await turns(1);
  r.engine.holding = false;
  const a = put(r, 'c', 'a');
  await turns(3);
  t.equal(get.answered, false, 'the news came while the get was not parked yet');
  r.engine.release(); // the read from before the put: nothing, park at 0
  await answered([get], 'the get');
  t.equal(get.body, `{"time":${a},"messages":["a"]}`);
});

roomTest('news for a channel nobody waits on here any more makes the thread stop watching it', async (t, room) => {
  const r = room();
  // A waiting get sent by someone other than the room: the owner counts this thread as a watcher.
  r.router.get('c', 0, true, { answered: () => {}, parked: () => {}, failed: () => {} });
  put(r, 'c', 'a');
  await turns(3);
  t.equal(r.metrics.values[SLOT.newsSent], 1);
  put(r, 'c', 'b');
  await turns(3);
  t.equal(r.metrics.values[SLOT.newsSent], 1, 'the owner heard the unwatch: no more news');
});

roomTest('a get the store failed is refused with the store’s refusal, and counted', async (t, room) => {
  const r = room();
  r.engine.failNext('read', new StoreFailure('unavailable', 'store unreachable'));
  const refused = start(r, 'c', 0);
  await answered([refused], 'the refusal');
  t.same([refused.status, JSON.parse(refused.body!)], ['503 Service Unavailable', { error: 'store unreachable', code: 'COMET_ERR_STORE_UNAVAILABLE' }]);
  t.equal(r.metrics.values[errorSlot('COMET_ERR_STORE_UNAVAILABLE')], 1);
  t.equal(waiting(r), 0);
});

roomTest('a channel stays watched for a while after a get answered at once', async (t, room) => {
  const r = room();
  put(r, 'c', 'a');
  t.equal(start(r, 'c', 0).answered, true);
  // Within LINGER_MS (2 s) of the get: the idle sweep (every second) must keep the channel.
  await new Promise((resolve) => setTimeout(resolve, 1300));
  put(r, 'c', 'b');
  await turns(3);
  // An entry whose gets were all answered at once used to keep idleSince 0
  // and be forgotten (the channel unwatched) at the next sweep.
  t.equal(r.metrics.values[SLOT.newsSent], 1, 'the owner still sends this thread the news');
});

roomTest('gets on channels never written store nothing, and what they watch goes with their last get', async (t, room) => {
  const r = room();
  const names = Array.from({ length: 50 }, (_, i) => `never-${i}`);
  const gets = names.map((name) => start(r, name, -1, { timeout: 1 }));
  const now = names.map((name) => start(r, name, 0, { timeout: 0 }));
  t.ok(
    now.every((x) => x.answered),
    'timeout=0 answered at once',
  );
  await turns(3);
  t.equal(r.metrics.values[SLOT.watchedChannels], names.length, 'one watch per name while its gets wait');
  t.same([r.engine.stats().channels, r.engine.stats().bytes], [0, 0], 'no stored channel, nothing charged to the memory budget');
  gets[0]!.abort();
  t.equal(r.metrics.values[SLOT.watchedChannels], names.length - 1, 'an aborted last get unwatches its channel at once, without lingering');
  const first = put(r, names[1]!, 'first');
  await answered([gets[1]!], 'the get on the channel written');
  t.equal(gets[1]!.body, `{"time":${first},"messages":["first"]}`, 'the first message on a watched name reaches its get');
  t.equal(r.engine.stats().channels, 1, 'only the written channel is stored');
  await waitFor(() => gets.slice(2).every((x) => x.answered), { intervalMs: 5, timeoutMs: 5000, what: 'the timeouts' });
  // At most the written channel, which lingers for 2 s after its answer (gone already if the timeouts came late on a loaded machine).
  t.ok(r.metrics.values[SLOT.watchedChannels]! <= 1, 'timed-out gets unwatched their never-written channels at once', {
    watched: r.metrics.values[SLOT.watchedChannels],
  });
  t.equal(r.engine.stats().channels, 1);
});

/** Records the channels the owner unwatches in its engine. */
function unwatches(r: Room): string[] {
  const channels: string[] = [];
  const unwatch = r.engine.unwatch.bind(r.engine);
  r.engine.unwatch = (channel) => {
    channels.push(channel);
    unwatch(channel);
  };
  return channels;
}

roomTest('a gap on a channel never written keeps its held get watched while the store reads it again', async (t, room) => {
  const r = room();
  const unwatched = unwatches(r);
  const get = start(r, 'silent', 0);
  await turns(3);
  t.equal(get.answered, false, 'parked');
  r.engine.holding = true;
  r.engine.reportGap('silent');
  await turns(3);
  // The re-read is in flight: the get is neither parked nor answered, and the entry has heard of no message.
  t.same(unwatched, [], 'the channel is not unwatched between the re-read and the re-parking');
  r.engine.holding = false;
  r.engine.release();
  await turns(3);
  t.equal(get.answered, false, 'parked again');
  t.equal(r.metrics.values[SLOT.watchedChannels], 1);
  const first = put(r, 'silent', 'first');
  await answered([get], 'the held get');
  t.equal(get.body, `{"time":${first},"messages":["first"]}`, 'the first message reaches the get held across the gap');
  t.same(unwatched, [], 'and the channel, written now, lingers after its answer');
});

roomTest('a gap whose re-read fails refuses the held get and unwatches its never-written channel', async (t, room) => {
  const r = room();
  const unwatched = unwatches(r);
  const get = start(r, 'silent', 0);
  await turns(3);
  r.engine.failNext('read', new StoreFailure('unavailable', 'store unreachable'));
  r.engine.reportGap('silent');
  await answered([get], 'the refusal');
  t.equal(get.status, '503 Service Unavailable');
  t.same([unwatched, r.metrics.values[SLOT.watchedChannels], waiting(r)], [['silent'], 0, 0], 'nothing left watched or waiting');
});

roomTest('a waiting get whose read fails after its watch took leaves nothing watched', async (t, room) => {
  const r = room();
  const unwatched = unwatches(r);
  r.engine.failNext('read', new StoreFailure('unavailable', 'store unreachable'));
  const refused = start(r, 'silent', 0);
  await answered([refused], 'the refusal');
  t.equal(refused.status, '503 Service Unavailable');
  await turns(3);
  // The owner registered the thread as a watcher before the read: the thread must say it left.
  t.same([unwatched, r.metrics.values[SLOT.watchedChannels]], [['silent'], 0], 'the owner unwatched the channel');
});

// ---- Responder.time -------------------------------------------------------------------------

t.test('Responder.time: a time answer is the JSON of its time at every digit count, and JSONP falls back to the string', async (t) => {
  const responder = new respond.Responder('*', () => {}, 1 << 20, { waiting: () => {}, closed: () => {} });
  const headers = responder.cors.forOrigin('');
  for (const time of [
    0,
    7,
    999_999_999_999_999,
    1e15,
    1_796_386_615_832_001,
    1_000_000_100_000_000,
    1_234_567_800_000_009,
    1_795_660_099_999_999,
    1e16 - 1,
    1e16,
    Number.MAX_SAFE_INTEGER,
  ]) {
    const res = new FakeResponse();
    res.cork(() => responder.time(res.res, time, undefined, headers));
    t.equal(res.body, `{"time":${time}}`, `time ${time}`);
    t.equal(res.contentType, JSON_TYPE);
  }
  const res = new FakeResponse();
  res.cork(() => responder.time(res.res, 1_796_386_615_832_001, 'cb', headers));
  t.equal(res.body, '/**/cb({"time":1796386615832001});');
  t.equal(res.contentType, SCRIPT_TYPE);
});

/** A socket that takes nothing until onWritable, then everything. */
class StalledResponse extends FakeResponse {
  writable: ((offset: number) => boolean) | undefined;
  override tryEnd(body: Chunk): [boolean, boolean] {
    if (this.writable === undefined) return [false, false];
    this.end(body);
    return [true, true];
  }
  getWriteOffset(): number {
    return 0;
  }
  onWritable(handler: (offset: number) => boolean): HttpResponse {
    this.writable = handler;
    return this.res;
  }
}

/** A responder, and an answer written as in its request's handler (through tryEnd, which may leave it unsent) by `write`. */
function inHandler(responder: respond.Responder, res: FakeResponse, write: () => void): void {
  responder.inHandler = res.res;
  res.cork(write);
  responder.inHandler = null;
}

const newResponder = (): respond.Responder => new respond.Responder('*', () => {}, 1 << 20, { waiting: () => {}, closed: () => {} });

t.test('Responder.time: an answer left unsent keeps its own bytes while later answers reuse the buffer', async (t) => {
  const responder = newResponder();
  const headers = responder.cors.forOrigin('');
  const slow = new StalledResponse();
  // Answered in its request's handler, as a put to the thread's own channel is: through tryEnd, which may leave it unsent.
  inHandler(responder, slow, () => responder.time(slow.res, 1_796_386_615_832_001, undefined, headers));
  t.equal(slow.answered, false, 'nothing taken yet');
  const fast = new FakeResponse();
  fast.cork(() => responder.time(fast.res, 1_800_000_000_000_002, undefined, headers));
  t.equal(fast.body, '{"time":1800000000000002}');
  slow.cork(() => slow.writable!(0));
  t.equal(slow.body, '{"time":1796386615832001}', 'the stalled answer was not overwritten by the next');
});

// ---- Responder.messages ---------------------------------------------------------------------

t.test("Responder.messages: a read's bytes spliced into the answer, at every time's digit count, missed or not, JSON or JSONP", async (t) => {
  const responder = newResponder();
  const headers = responder.cors.forOrigin('');
  const texts = ['"a"', jsonp.scriptSafeJson('€ \u2028 \u{1F600} line\nbreak'), jsonp.scriptSafeJson('\u2028raw'), '{"k":[1,2]}'];
  for (const time of [0, 7, 999_999_999_999_999, 1e15, 1_796_386_615_832_001, 1e16 - 1, 1e16, Number.MAX_SAFE_INTEGER]) {
    for (const count of [0, 1, texts.length]) {
      for (const missed of [false, true]) {
        for (const callback of [undefined, 'jQuery.cb_1']) {
          const expected = respond.messagesAnswer(time, texts, 0, count, missed);
          const body = callback === undefined ? expected : jsonp.wrapJsonp(callback, expected);
          // As this thread's engine gives them (bytes), and as they come from another thread's (text).
          for (const json of [Buffer.from(texts.slice(0, count).join(',')), texts.slice(0, count).join(',')]) {
            const res = new FakeResponse();
            let length = 0;
            res.cork(() => (length = responder.messages(res.res, time, json, missed, callback, headers)));
            const what = `time ${time}, ${count} messages, missed ${missed}, callback ${callback}, given as ${typeof json}`;
            t.equal(res.body, body, what);
            t.equal(length, Buffer.byteLength(body), `${what}: its length in bytes`);
            t.equal(res.contentType, callback === undefined ? JSON_TYPE : SCRIPT_TYPE);
          }
        }
      }
    }
  }
});

t.test('Responder.messages: an answer larger than any before grows the reused bytes; a stalled answer keeps its own', async (t) => {
  const responder = newResponder();
  const headers = responder.cors.forOrigin('');
  const big = Array.from({ length: 300 }, (_, i) => JSON.stringify(`${i} ${'é'.repeat(200)}`)).join(',');
  const slow = new StalledResponse();
  inHandler(responder, slow, () => responder.messages(slow.res, 1_796_386_615_832_001, Buffer.from(big), false, undefined, headers));
  t.equal(slow.answered, false, 'nothing taken yet');
  for (const json of ['"small"', big]) {
    const fast = new FakeResponse();
    fast.cork(() => responder.messages(fast.res, 1_800_000_000_000_002, json, true, 'cb', headers));
    t.equal(fast.body, `/**/cb({"time":1800000000000002,"messages":[${json}],"missed":true});`);
  }
  slow.cork(() => slow.writable!(0));
  t.equal(slow.body, `{"time":1796386615832001,"messages":[${big}]}`, 'the stalled answer was not overwritten by the later ones');
});

/** A stream's sink, recording what the wait room tells it. */
class FakeSink implements StreamSink {
  readonly starts: number[] = [];
  readonly deliveries: Delivery[] = [];
  readonly failures: string[] = [];
  shutdowns = 0;
  started(_stream: Stream, time: number): void {
    this.starts.push(time);
  }
  deliver(_stream: Stream, delivery: Delivery): void {
    this.deliveries.push(delivery);
  }
  failed(_stream: Stream, err: CometError): void {
    this.failures.push(err.code);
  }
  shutdown(): void {
    this.shutdowns++;
  }
  /** Every message delivered, as [time, message] from the event-stream form. */
  messages(): Array<[number, string]> {
    return this.deliveries.flatMap((d) =>
      [
        ...d
          .sse()
          .toString()
          .matchAll(/id: (\d+)\ndata: (.*)\n\n/g),
      ].map((m): [number, string] => [Number(m[1]), JSON.parse(m[2]!) as string]),
    );
  }
}

function openStream(r: Room, channel: string, since: number, sink = new FakeSink()): [Stream, FakeSink] {
  const stream = r.room.openStream(channel, since, sink);
  // Not instanceof: the room under test has its own copy of the module graph (mockImport).
  if ('code' in stream) throw stream;
  return [stream, sink];
}

roomTest('streams: one delivery per distinct cursor, shared by its streams, and kept open after it', async (t, room) => {
  const r = room();
  const t1 = put(r, 'c', 'a');
  const [, early1] = openStream(r, 'c', t1);
  const [, early2] = openStream(r, 'c', t1);
  const [, fromStart] = openStream(r, 'c', 0);
  const [gone, goneSink] = openStream(r, 'c', t1);
  t.same([early1.starts, fromStart.starts], [[t1], [0]], 'each starts after its own time, at once with this thread as owner');
  t.same(fromStart.messages(), [[t1, 'a']], 'a stream from an older time catches up first');
  r.room.closeStream(gone);
  t.equal(waiting(r), 3, 'open streams hold their slots; a closed one does not');
  const t2 = put(r, 'c', 'b');
  const t3 = put(r, 'c', 'c');
  await waitFor(() => early1.deliveries.length === 1 && fromStart.deliveries.length === 2, { intervalMs: 1, what: 'the news delivered' });
  t.equal(early1.deliveries[0], early2.deliveries[0], 'streams at one cursor share one delivery');
  t.equal(early1.deliveries[0]!.sse(), early2.deliveries[0]!.sse(), 'and its bytes, encoded once');
  t.same(early1.messages(), [
    [t2, 'b'],
    [t3, 'c'],
  ]);
  t.same(JSON.parse(early1.deliveries[0]!.ws()[0]!.toString()), { channel: 'c', time: t3, messages: ['b', 'c'] });
  t.same(goneSink.deliveries, [], 'a closed stream hears nothing');
  const t4 = put(r, 'c', 'd');
  await waitFor(() => early1.deliveries.length === 2, { intervalMs: 1, what: 'the next message' });
  t.same(early2.messages().at(-1), [t4, 'd'], 'the streams go on after a delivery');
  r.room.gap('c');
  const t5 = put(r, 'c', 'e');
  await waitFor(() => early1.messages().length === 4, { intervalMs: 1, what: 'the message after a gap' });
  t.same(
    early1.messages().map(([time]) => time),
    [t2, t3, t4, t5],
    'after a gap the streams read again from their cursors: nothing twice',
  );
  r.room.drain();
  t.same([early1.shutdowns, early2.shutdowns, fromStart.shutdowns, goneSink.shutdowns], [1, 1, 1, 0], 'a shutdown reaches every open stream');
});

roomTest('streams: --max-waiting, a WebSocket frame cap, and a store failure before the start', async (t, room) => {
  const r = room({ maxWaiting: 2, maxAnswerMessages: 2 });
  const t0 = put(r, 'c', 'x');
  openStream(r, 'c', t0);
  const [, capped] = openStream(r, 'c', t0);
  const refused = r.room.openStream('c', t0, new FakeSink());
  t.equal((refused as CometError).code, 'COMET_ERR_TOO_MANY_WAITING', 'past --max-waiting: refused');
  for (const m of ['1', '2', '3']) put(r, 'c', m);
  await waitFor(() => capped.deliveries.length === 1, { intervalMs: 1, what: 'the news' });
  t.same(
    capped.deliveries[0]!.ws().map((f) => JSON.parse(f.toString()).messages),
    [['1', '2'], ['3']],
    'a WebSocket delivery is split at --max-answer-messages',
  );
  const f = room();
  f.engine.failNext('read', new StoreFailure('unavailable', 'down'));
  const [, failing] = openStream(f, 'd', 5);
  await waitFor(() => failing.failures.length === 1, { intervalMs: 1, what: 'the failure' });
  t.same([failing.failures, failing.starts, waiting(f)], [['COMET_ERR_STORE_UNAVAILABLE'], [], 0], 'refused before it started, its slot freed');
});
