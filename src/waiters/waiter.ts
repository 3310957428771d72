/**
 * One get in progress on this thread, from arrival, through the owner's
 * reply, while parked, to its answer; a stream (below), which goes on where
 * a get would end; and the channel entry that holds the gets and streams of
 * one channel. The only per-waiting-get allocation is the Waiter, and its
 * abort callback for one not answered within its request's handler.
 */
import type { Buffer } from 'node:buffer';
import type { CometError } from '../protocol/errors.js';
import type { GetHandler } from '../threads/router.js';
import type { HttpResponse } from '../uws.js';
import type { AnswerHeaders } from '../protocol/cors.js';
import type { Delivery } from './delivery.js';

/** The gets of one channel waiting on this thread (waiters/wait-room.ts). */
export class ChannelEntry {
  readonly parked = new Set<Waiter>();
  /** Streams told of news here (Stream, below): those whose read is in flight are counted in `pending`. */
  readonly streams = new Set<Stream>();
  /** Gets sent to the owner and not yet answered or parked. */
  pending = 0;
  /** Newest message time this thread has heard of (news, or an answer with messages); -1 while none, and then the entry goes as soon as it is idle. */
  latest = -1;
  /** Whether the owner may count this thread among the channel's watchers (a get that may wait was sent): forgetting the entry then unwatches. */
  watching = false;
  idleSince = 0;
  /** News collected during the current batch. */
  newsTimes: number[] = [];
  newsBodies: string[] = [];
  constructor(readonly channel: string) {}
}

/** What happens to a waiter, handled by the wait room: the owner's replies (the client going away is the wait room's own abort handler). */
export interface WaiterEvents {
  answered(waiter: Waiter, time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean): void;
  parked(waiter: Waiter, cursor: number): void;
  failed(waiter: Waiter, err: CometError): void;
}

export class Waiter implements GetHandler {
  /** The newest time this get has seen: messages must be newer. -1 until the owner replied. */
  cursor = -1;
  /** Timeout-wheel bucket while parked, 0 otherwise. */
  bucket = 0;
  aborted = false;
  /** Its answer is being written. */
  settled = false;
  /** Its connection is not read until then (--pipelining ordered). */
  paused = false;

  constructor(
    readonly room: WaiterEvents,
    readonly res: HttpResponse,
    readonly entry: ChannelEntry,
    readonly timeout: number,
    readonly callback: string | undefined,
    /** Its answer's headers (CORS from its request's Origin), chosen while its request handler ran: uWS's request is gone after. */
    readonly headers: AnswerHeaders,
  ) {}

  answered(time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean): void {
    this.room.answered(this, time, json, count, missed, watching);
  }

  parked(cursor: number): void {
    this.room.parked(this, cursor);
  }

  failed(err: CometError): void {
    this.room.failed(this, err);
  }
}

/**
 * A stream subscription: one channel of a server-sent events response or of
 * a WebSocket, which the wait room keeps like a parked get that is never
 * answered for good. It runs the protocol's chain itself: a read from its
 * cursor (the owner registers this thread as a watcher first), then news
 * of each later message, its cursor moving to the last message delivered;
 * after a gap it reads again from the cursor. So a subscriber sees every
 * message after its starting time exactly once, in order, as chained gets
 * would.
 */
/**
 * Where a stream's deliveries go: an SSE response, or a WebSocket carrying
 * many subscriptions (the front end's). A sink that finds its client too
 * slow, or gone, ends the stream through the wait room (WaitRoom.closeStream).
 */
export interface StreamSink {
  /** The owner's first reply: the stream starts after `time` (a WebSocket's subscribe answers it). */
  started(stream: Stream, time: number): void;
  deliver(stream: Stream, delivery: Delivery): void;
  /** The store failed the stream's read: refused before it started, ended after. */
  failed(stream: Stream, err: CometError): void;
  /** Graceful shutdown: the stream ends cleanly, and the client resumes elsewhere. */
  shutdown(): void;
}

/** What happens to a stream, handled by the wait room. */
export interface StreamEvents {
  streamAnswered(stream: Stream, time: number, json: Buffer | string, count: number, missed: boolean, times: readonly number[]): void;
  streamParked(stream: Stream, cursor: number): void;
  streamFailed(stream: Stream, err: CometError): void;
}

export class Stream implements GetHandler {
  /** The newest time delivered (or known to have nothing after it). */
  cursor: number;
  /** In its entry's `streams`, told of news; otherwise a read is in flight, or it is closed. */
  listening = false;
  started = false;
  closed = false;

  constructor(
    readonly room: StreamEvents,
    readonly entry: ChannelEntry,
    readonly sink: StreamSink,
    /** The starting time the client gave, or -1 for "from the channel's time now". */
    readonly since: number,
  ) {
    this.cursor = since;
  }

  get channel(): string {
    return this.entry.channel;
  }

  answered(time: number, json: Buffer | string, count: number, missed: boolean, _watching: boolean, times?: readonly number[]): void {
    this.room.streamAnswered(this, time, json, count, missed, times ?? []);
  }

  parked(cursor: number): void {
    this.room.streamParked(this, cursor);
  }

  failed(err: CometError): void {
    this.room.streamFailed(this, err);
  }
}
