/**
 * The gets waiting on this thread, whatever thread owns their channel.
 *
 * A get is sent to its channel's owner, which either answers it or tells us to
 * park it with a cursor. Parked gets are kept per channel; the owner sends one
 * OP_NEWS per new message to this thread (not per get), and after each batch
 * of news every parked get of the channel is answered, with the answer body
 * serialised once per distinct cursor and once per JSONP callback; only the
 * headers (CORS, chosen from each get's Origin) are each answer's own.
 *
 * Timeouts use a wheel of 250 ms buckets instead of a timer per get.
 *
 * A channel entry outlives its last waiting get by LINGER_MS, so that clients
 * chaining their gets do not make this thread unwatch and re-watch the channel
 * at the owner on every message. An entry that has heard of no message (a
 * channel never written, or written only before the entry existed and not
 * answered from) goes as soon as its last get leaves, unwatching at once:
 * lingering there saves nothing worth its cost, since a chain on a silent
 * channel re-watches only once per timeout, while a flood of gets on distinct
 * names would keep one entry here, one watch at the owner and one watched
 * name in its engine per name for LINGER_MS after each get. So whatever a
 * get on a never-written channel holds lives exactly as long as some get
 * waits on the channel, and --max-waiting bounds how many there are.
 *
 * Streams (server-sent events, WebSocket subscriptions: waiters/stream.ts)
 * live here too, in their channel's entry beside its parked gets, and are
 * served by the same news: a publish still costs one notice per thread, and
 * each delivery is serialised once per distinct cursor. Each holds a
 * --max-waiting slot for as long as it is open.
 */
import { Buffer } from 'node:buffer';
import { nowMicros } from '../engine/clock.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import type { AnswerHeaders } from '../protocol/cors.js';
import { type CometError, refusals } from '../protocol/errors.js';
import { wrapJsonp } from '../protocol/jsonp.js';
import type { GetRequest } from '../protocol/params.js';
import { messagesAnswer, type Responder } from '../protocol/respond.js';
import type { NewsInbox } from '../threads/messages.js';
import type { Router } from '../threads/router.js';
import type { HttpResponse } from '../uws.js';
import { Delivery } from './delivery.js';
import { ChannelEntry, Stream, type StreamEvents, type StreamSink, Waiter, type WaiterEvents } from './waiter.js';

const TICK_MS = 250;
const LINGER_MS = 2000;

export interface WaitRoomLimits {
  maxWaiting: number;
  maxAnswerMessages: number;
  maxAnswerBytes: number;
  /** --pipelining: 'ordered' stops reading a connection while its get waits. */
  pipelining?: string;
}

export class WaitRoom implements NewsInbox, WaiterEvents, StreamEvents {
  private readonly entries = new Map<string, ChannelEntry>();
  private readonly wheel = new Map<number, Set<Waiter>>();
  private readonly dirty: ChannelEntry[] = [];
  private lastTick = Math.floor(Date.now() / TICK_MS);
  private ticks = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly router: Router,
    private readonly responder: Responder,
    private readonly metrics: ThreadMetrics,
    private readonly limits: WaitRoomLimits,
  ) {
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Takes over a validated get; called synchronously from the HTTP handler. */
  start(res: HttpResponse, request: GetRequest, headers: AnswerHeaders): void {
    if (!this.metrics.reserveWaiting(this.limits.maxWaiting)) {
      this.responder.refuse(res, refusals.tooManyWaiting(), headers);
      return;
    }
    let entry = this.entries.get(request.channel);
    if (entry === undefined) {
      entry = new ChannelEntry(request.channel);
      this.entries.set(request.channel, entry);
    }
    const waiter = new Waiter(this, res, entry, request.timeout, request.callback, headers);
    entry.pending++;
    const wait = request.timeout > 0 && !this.responder.closing;
    // The owner registers this thread as a watcher before it reads: if the read then fails, no
    // answer says so, and the entry must still unwatch when it goes (a no-op if the watch failed).
    if (wait) entry.watching = true;
    // A get without a time carries its arrival to its owner thread, for the puts that get there before it (engine.ts).
    this.router.get(request.channel, request.since < 0 ? -nowMicros() : request.since, wait, waiter);
    // Still in the handler, before anything asynchronous: a get this thread's
    // own owner answered during get() needs no abort handler (uWS asks for one
    // only for a response not ended in its handler; an answer left unsent has
    // its own), which spares it a closure and a call into native code.
    if (waiter.settled) return;
    res.onAborted(() => this.aborted(waiter));
    // A request pipelined behind a waiting get would make uWS close the connection: it waits in the kernel instead.
    if (this.limits.pipelining === 'ordered') {
      res.pause();
      waiter.paused = true;
    }
  }

  answered(waiter: Waiter, time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean): void {
    const entry = waiter.entry;
    entry.pending--;
    if (watching) entry.watching = true;
    // Messages answered from the store count as heard: a chain on this channel is then worth lingering for.
    if (count > 0 && time > entry.latest) entry.latest = time;
    if (!waiter.aborted) this.finish(waiter, time, json, count, missed);
    // The channel lingers from its last get, whether that one waited or not (if a message was heard of: see maybeIdle).
    this.maybeIdle(entry);
  }

  parked(waiter: Waiter, cursor: number): void {
    const entry = waiter.entry;
    entry.pending--;
    entry.watching = true;
    if (waiter.aborted) {
      this.maybeIdle(entry);
      return;
    }
    waiter.cursor = cursor;
    if (this.responder.closing) {
      this.timeOut(waiter);
    } else if (cursor < entry.latest) {
      // News newer than the cursor overtook the reply (possible with engines that
      // answer asynchronously): ask again from the cursor instead of missing it.
      entry.pending++;
      this.router.get(entry.channel, cursor, true, waiter);
    } else {
      this.park(waiter);
    }
  }

  failed(waiter: Waiter, err: CometError): void {
    waiter.entry.pending--;
    this.maybeIdle(waiter.entry);
    if (waiter.aborted) return;
    this.metrics.releaseWaiting();
    this.settle(waiter);
    this.responder.refuse(waiter.res, err, waiter.headers);
  }

  /** The client went away: free its slot now. Its response must not be touched again. */
  aborted(waiter: Waiter): void {
    waiter.aborted = true;
    this.metrics.releaseWaiting();
    if (waiter.bucket !== 0) this.unpark(waiter);
  }

  news(channel: string, time: number, body: string): void {
    const entry = this.entries.get(channel);
    if (entry === undefined) {
      // The owner still counts us as a watcher, but nothing waits here any more.
      this.router.unwatch(channel);
      return;
    }
    entry.watching = true;
    if (time > entry.latest) entry.latest = time;
    if (entry.parked.size === 0 && entry.streams.size === 0) return;
    if (entry.newsTimes.length === 0) this.dirty.push(entry);
    entry.newsTimes.push(time);
    entry.newsBodies.push(body);
  }

  gap(channel: string): void {
    const entry = this.entries.get(channel);
    if (entry === undefined) return;
    for (const waiter of [...entry.parked]) {
      // Pending before unparked: the entry must not look idle (and be forgotten) between the two.
      entry.pending++;
      this.unpark(waiter);
      this.router.get(channel, waiter.cursor, true, waiter);
    }
    for (const stream of [...entry.streams]) {
      entry.streams.delete(stream);
      stream.listening = false;
      this.readStream(stream);
    }
  }

  /** After each batch of messages from the mesh: answers everything news() collected, one fan-out per channel. */
  deliver(): void {
    for (const entry of this.dirty) this.fanOut(entry);
    this.dirty.length = 0;
  }

  /** Graceful shutdown (the responder is closing): every parked get gets its timeout answer now, and every stream ends. */
  drain(): void {
    const sinks = new Set<StreamSink>();
    for (const entry of this.entries.values()) {
      for (const waiter of entry.parked) this.expire(waiter);
      for (const stream of entry.streams) sinks.add(stream.sink);
    }
    for (const sink of this.sinks) sinks.add(sink);
    for (const sink of sinks) sink.shutdown();
  }

  /**
   * Opens a stream on `channel` after `since` (-1: from the channel's time
   * now) for `sink`, or refuses it when --max-waiting slots are all taken.
   * Called synchronously from the front end: with this thread's own
   * in-memory owner, the sink hears of its start before this returns.
   */
  openStream(channel: string, since: number, sink: StreamSink): Stream | CometError {
    if (this.responder.closing) return refusals.shuttingDown();
    if (!this.metrics.reserveWaiting(this.limits.maxWaiting)) return refusals.tooManyWaiting();
    let entry = this.entries.get(channel);
    if (entry === undefined) {
      entry = new ChannelEntry(channel);
      this.entries.set(channel, entry);
    }
    const stream = new Stream(this, entry, sink, since);
    this.metrics.add(SLOT.streams, 1);
    this.readStream(stream);
    return stream;
  }

  /** The stream's client went away, unsubscribed, or was too slow: its slot is free now, and nothing is written to it again. */
  closeStream(stream: Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.metrics.releaseWaiting();
    this.metrics.add(SLOT.streams, -1);
    if (!stream.listening) return;
    stream.listening = false;
    stream.entry.streams.delete(stream);
    this.maybeIdle(stream.entry);
  }

  /**
   * Sinks that end with the server though they may hold no stream at the
   * time (a WebSocket between subscriptions): the front end keeps them here.
   */
  readonly sinks = new Set<StreamSink>();

  streamAnswered(stream: Stream, time: number, json: Buffer | string, count: number, missed: boolean, times: readonly number[]): void {
    const entry = stream.entry;
    entry.pending--;
    entry.watching = true;
    if (count > 0 && time > entry.latest) entry.latest = time;
    if (stream.closed) return this.maybeIdle(entry);
    const after = stream.cursor;
    if (!stream.started) {
      // Without a starting time, it starts just before the first message put after it arrived.
      this.startStream(stream, after >= 0 ? after : count > 0 ? times[0]! - 1 : time);
      if (stream.closed) return this.maybeIdle(entry);
    }
    const text = typeof json === 'string' ? json : json.toString();
    stream.cursor = time;
    this.sentTo(stream, new Delivery(entry.channel, times, undefined, text, 0, count, missed, after, time, this.frameEnd), count);
    if (stream.closed) return this.maybeIdle(entry);
    // More may be held past an answer's caps: read on, as a chain of gets would; `missed` alone has nothing more.
    if (count > 0) this.readStream(stream);
    else this.listen(stream);
  }

  streamParked(stream: Stream, cursor: number): void {
    const entry = stream.entry;
    entry.pending--;
    entry.watching = true;
    if (stream.closed) return this.maybeIdle(entry);
    if (!stream.started) {
      this.startStream(stream, stream.cursor >= 0 ? stream.cursor : cursor);
      if (stream.closed) return this.maybeIdle(entry);
    }
    stream.cursor = cursor;
    // News newer than the cursor overtook the reply: read again from the cursor instead of missing it.
    if (cursor < entry.latest) this.readStream(stream);
    else this.listen(stream);
  }

  streamFailed(stream: Stream, err: CometError): void {
    const entry = stream.entry;
    entry.pending--;
    if (!stream.closed) stream.sink.failed(stream, err);
    this.closeStream(stream);
    this.maybeIdle(entry);
  }

  private startStream(stream: Stream, after: number): void {
    stream.started = true;
    stream.cursor = after;
    stream.sink.started(stream, after);
  }

  /** Reads the stream's channel from its cursor at the owner (which watches for this thread first). */
  private readStream(stream: Stream): void {
    const entry = stream.entry;
    entry.pending++;
    entry.watching = true;
    // Without a cursor yet, its arrival goes to the owner, as for a get (engine.ts read).
    this.router.stream(entry.channel, stream.cursor < 0 ? -nowMicros() : stream.cursor, stream);
  }

  private listen(stream: Stream): void {
    stream.listening = true;
    stream.entry.streams.add(stream);
  }

  private sentTo(stream: Stream, delivery: Delivery, messages: number): void {
    stream.sink.deliver(stream, delivery);
    this.metrics.add(SLOT.messagesOut, messages);
    this.metrics.add(SLOT.bytesOut, delivery.bytes);
  }

  /**
   * News for the streams of a channel: each distinct starting point is
   * serialised once, in each format asked for. Streams mostly share one (all
   * heard the news before), so the last one is looked up first, and the
   * counters are added once per fan-out, not per stream.
   */
  private fanOutStreams(entry: ChannelEntry, times: number[], bodies: string[]): void {
    const count = times.length;
    const last = times[count - 1]!;
    const deliveries = new Map<number, Delivery>();
    let lastStart = -1;
    let delivery: Delivery | undefined;
    let messages = 0;
    let bytes = 0;
    for (const stream of entry.streams) {
      let start = 0;
      while (start < count && times[start]! <= stream.cursor) start++;
      if (start === count) continue;
      if (start !== lastStart) {
        delivery = deliveries.get(start);
        if (delivery === undefined) {
          delivery = new Delivery(entry.channel, times, bodies, undefined, start, count, false, stream.cursor, last, this.frameEnd);
          deliveries.set(start, delivery);
        }
        lastStart = start;
      }
      stream.cursor = last;
      stream.sink.deliver(stream, delivery!);
      messages += count - start;
      bytes += delivery!.bytes;
    }
    this.metrics.add(SLOT.messagesOut, messages);
    this.metrics.add(SLOT.bytesOut, bytes);
  }

  /** answerEnd for a WebSocket delivery's frames. */
  private readonly frameEnd = (bodies: readonly string[], start: number, end: number): number => this.answerEnd(bodies, start, end);

  stop(): void {
    clearInterval(this.timer);
  }

  private fanOut(entry: ChannelEntry): void {
    const times = entry.newsTimes;
    const bodies = entry.newsBodies;
    entry.newsTimes = [];
    entry.newsBodies = [];
    const count = times.length;
    if (entry.streams.size > 0) this.fanOutStreams(entry, times, bodies);
    // Answers keyed by the index of their first message; JSONP variants by callback. Each is
    // given to every waiter as bytes encoded once: uWS converted a string again for every waiter.
    const answers = new Map<number, { json: string; bytes: Buffer; messages: number; jsonp?: Map<string, Buffer> }>();
    for (const waiter of entry.parked) {
      let start = 0;
      if (times[0]! <= waiter.cursor) {
        while (start < count && times[start]! <= waiter.cursor) start++;
        if (start === count) continue;
      }
      let answer = answers.get(start);
      if (answer === undefined) {
        const end = this.answerEnd(bodies, start);
        const json = messagesAnswer(times[end - 1]!, bodies, start, end);
        answer = { json, bytes: Buffer.from(json), messages: end - start };
        answers.set(start, answer);
      }
      let body = answer.bytes;
      const callback = waiter.callback;
      if (callback !== undefined) {
        answer.jsonp ??= new Map();
        let wrapped = answer.jsonp.get(callback);
        if (wrapped === undefined) {
          wrapped = Buffer.from(wrapJsonp(callback, answer.json));
          answer.jsonp.set(callback, wrapped);
        }
        body = wrapped;
      }
      this.unpark(waiter);
      this.settle(waiter);
      this.responder.framed(waiter.res, body, callback !== undefined, waiter.headers);
      this.sent(answer.messages, body.length);
    }
    this.maybeIdle(entry);
  }

  /**
   * End index of one answer starting at `start`, within the count and byte
   * caps (at least one message). Bytes of UTF-8, as the engines count them
   * for a read: a fan-out and a read of the same messages split alike.
   */
  private answerEnd(bodies: readonly string[], start: number, end = bodies.length): number {
    const last = Math.min(end, start + this.limits.maxAnswerMessages);
    let to = start + 1;
    if (to === last) return to;
    let size = Buffer.byteLength(bodies[start]!);
    while (to < last && (size += Buffer.byteLength(bodies[to]!)) <= this.limits.maxAnswerBytes) to++;
    return to;
  }

  private park(waiter: Waiter): void {
    const bucket = Math.ceil((Date.now() + waiter.timeout * 1000) / TICK_MS);
    let waiters = this.wheel.get(bucket);
    if (waiters === undefined) {
      waiters = new Set();
      this.wheel.set(bucket, waiters);
    }
    waiters.add(waiter);
    waiter.bucket = bucket;
    waiter.entry.parked.add(waiter);
    this.metrics.add(SLOT.parkedGets, 1);
  }

  private unpark(waiter: Waiter): void {
    const waiters = this.wheel.get(waiter.bucket);
    if (waiters !== undefined) {
      waiters.delete(waiter);
      if (waiters.size === 0) this.wheel.delete(waiter.bucket);
    }
    waiter.bucket = 0;
    waiter.entry.parked.delete(waiter);
    this.metrics.add(SLOT.parkedGets, -1);
    this.maybeIdle(waiter.entry);
  }

  /** Takes a parked get out of its channel and the wheel and gives it its timeout answer. */
  private expire(waiter: Waiter): void {
    this.unpark(waiter);
    this.timeOut(waiter);
  }

  /** The timeout answer: no messages, the time the get waited from (never below the time it sent). */
  private timeOut(waiter: Waiter): void {
    this.finish(waiter, waiter.cursor, '', 0, false);
  }

  /** The waiter's answer is about to be written: its connection is read again (--pipelining ordered). */
  private settle(waiter: Waiter): void {
    waiter.settled = true;
    if (waiter.paused) waiter.res.resume();
  }

  private finish(waiter: Waiter, time: number, json: Buffer | string, count: number, missed: boolean): void {
    this.settle(waiter);
    const length = this.responder.messages(waiter.res, time, json, missed, waiter.callback, waiter.headers);
    this.sent(count, length);
  }

  /** An answer went out: its slot is free, and its messages and bytes are counted. */
  private sent(messages: number, bytes: number): void {
    this.metrics.releaseWaiting();
    this.metrics.add(SLOT.messagesOut, messages);
    this.metrics.add(SLOT.bytesOut, bytes);
  }

  private maybeIdle(entry: ChannelEntry): void {
    if (entry.parked.size !== 0 || entry.streams.size !== 0 || entry.pending !== 0) return;
    if (entry.latest === -1) this.forget(entry);
    else entry.idleSince = Date.now();
  }

  /** Drops an idle entry; the owner stops counting this thread as a watcher. */
  private forget(entry: ChannelEntry): void {
    // Only the map's own entry: a waiter never outlives its entry there, but this keeps a stale one from removing a new one.
    if (this.entries.get(entry.channel) !== entry) return;
    this.entries.delete(entry.channel);
    if (entry.watching) this.router.unwatch(entry.channel);
  }

  private tick(): void {
    const now = Date.now();
    const current = Math.floor(now / TICK_MS);
    for (let bucket = this.lastTick + 1; bucket <= current; bucket++) {
      const waiters = this.wheel.get(bucket);
      if (waiters === undefined) continue;
      this.wheel.delete(bucket);
      for (const waiter of waiters) this.expire(waiter);
    }
    this.lastTick = current;
    if (++this.ticks % 4 === 0) this.forgetIdle(now);
  }

  private forgetIdle(now: number): void {
    for (const entry of this.entries.values()) {
      if (entry.parked.size > 0 || entry.streams.size > 0 || entry.pending > 0 || now - entry.idleSince < LINGER_MS) continue;
      this.forget(entry);
    }
  }
}
