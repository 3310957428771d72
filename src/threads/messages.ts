/**
 * What threads say to each other about channels, and its encoding: the one
 * place where each message's layout is written, once to encode and once to
 * decode, side by side, against interfaces the compiler checks at both ends.
 *
 * Worker threads form a full mesh of MessagePorts (threads/mesh.ts); every
 * port carries batches, each batch one flat array of messages laid end to
 * end, [op, ...fields, op, ...fields], structured-cloned (batched structured
 * clone measured faster than msgpackr and than Piscina: see BENCHMARKS.md).
 * Flat, rather than an object per message: nothing is allocated per message
 * on either side beyond the fields themselves.
 *
 * Ordering: a port delivers batches in order and a batch is read front to
 * back, so everything one thread sends another arrives in the order it was
 * sent. The owner of a channel relies on this: a reply to a get and the news
 * of a later message on that channel can never overtake each other.
 */
import type { Buffer } from 'node:buffer';
import { CometError, type ErrorCode } from '../protocol/errors.js';

export type Batch = (number | string)[];

/**
 * Requests, taken in by the owner of the channel (threads/owner.ts). `from`
 * is the requesting thread, where the reply goes; on the wire it is the port
 * the request came by.
 */
export interface OwnerInbox {
  put(from: number, requestId: number, channel: string, body: string): void;
  sync(from: number, requestId: number, channel: string): void;
  /** `wait` false: answer now whatever there is (timeout=0); true: the owner may tell the get to park. */
  get(from: number, requestId: number, channel: string, since: number, wait: boolean): void;
  /**
   * A stream's read (waiters/stream.ts): a get that may wait, whose answer
   * also gives each message's time, since each becomes an event of its own.
   */
  stream(from: number, requestId: number, channel: string, since: number): void;
  /** The thread has no waiting get on the channel any more. */
  unwatch(from: number, channel: string): void;
}

/** Replies, taken in by the requesting thread (threads/router.ts). */
export interface ReplyInbox {
  /** A put was stored at `time`, or a sync found the channel at `time`. */
  timed(requestId: number, time: number): void;
  /**
   * A get's answer: `count` messages, `json` their texts as a read gives
   * them (engine.ts ReadResult), or decoded into a string once they crossed
   * threads; `watching`: the owner counts the requesting thread among the
   * channel's watchers; `times`: each message's time, for a stream's read.
   */
  answered(requestId: number, time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean, times?: readonly number[]): void;
  /** Nothing newer than `cursor` yet: the get waits, and news of later messages is on its way. */
  parked(requestId: number, cursor: number): void;
  failed(requestId: number, error: CometError): void;
}

/** From the owner to every thread with gets waiting on the channel (waiters/wait-room.ts). */
export interface NewsInbox {
  news(channel: string, time: number, body: string): void;
  /** Messages of the channel may have been lost: its waiting gets read again from their cursors. */
  gap(channel: string): void;
}

const OP_PUT = 1;
const OP_SYNC = 2;
const OP_GET = 3;
const OP_UNWATCH = 4;
const OP_TIME = 5;
const OP_ANSWER = 6;
const OP_PARKED = 7;
const OP_FAIL = 8;
const OP_NEWS = 9;
const OP_CRASH = 10;
const OP_GAP = 11;
const OP_STREAM = 12;
/** OP_ANSWER followed by the time of each of its `count` messages. */
const OP_STREAM_ANSWER = 13;

/** Where a thread's outgoing messages to one other thread are queued (threads/mesh.ts). */
export interface Outbox {
  /** The batch to append to; the mesh sends it at the end of this event-loop turn. */
  batch(): Batch;
}

/**
 * Everything addressed to one thread, encoded into its outbox. It is that
 * thread's inboxes as seen from here: calling a method here is calling it
 * there, later.
 */
export class Encoder implements OwnerInbox, ReplyInbox, NewsInbox {
  constructor(private readonly outbox: Outbox) {}

  put(_from: number, requestId: number, channel: string, body: string): void {
    this.outbox.batch().push(OP_PUT, requestId, channel, body);
  }

  sync(_from: number, requestId: number, channel: string): void {
    this.outbox.batch().push(OP_SYNC, requestId, channel);
  }

  get(_from: number, requestId: number, channel: string, since: number, wait: boolean): void {
    this.outbox.batch().push(OP_GET, requestId, channel, since, wait ? 1 : 0);
  }

  stream(_from: number, requestId: number, channel: string, since: number): void {
    this.outbox.batch().push(OP_STREAM, requestId, channel, since);
  }

  unwatch(_from: number, channel: string): void {
    this.outbox.batch().push(OP_UNWATCH, channel);
  }

  timed(requestId: number, time: number): void {
    this.outbox.batch().push(OP_TIME, requestId, time);
  }

  /**
   * `json` leaves as a string: the engine's view of its storage is valid only
   * until it is next called (and would clone the whole storage with it), and
   * a string crosses a MessagePort for 0.6 µs less than a copy of the bytes
   * in a Uint8Array (structured clone, microbenchmark).
   */
  answered(requestId: number, time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean, times?: readonly number[]): void {
    const batch = this.outbox.batch();
    batch.push(times === undefined ? OP_ANSWER : OP_STREAM_ANSWER, requestId, time, json.toString(), count, missed ? 1 : 0, watching ? 1 : 0);
    if (times !== undefined) for (let i = 0; i < count; i++) batch.push(times[i]!);
  }

  parked(requestId: number, cursor: number): void {
    this.outbox.batch().push(OP_PARKED, requestId, cursor);
  }

  failed(requestId: number, error: CometError): void {
    this.outbox.batch().push(OP_FAIL, requestId, error.code, error.message);
  }

  news(channel: string, time: number, body: string): void {
    this.outbox.batch().push(OP_NEWS, channel, time, body);
  }

  gap(channel: string): void {
    this.outbox.batch().push(OP_GAP, channel);
  }

  /** Fault injection (tests only): the receiving thread throws. */
  crash(): void {
    this.outbox.batch().push(OP_CRASH);
  }
}

export interface Inboxes {
  owner: OwnerInbox;
  replies: ReplyInbox;
  news: NewsInbox;
}

/** Hands each message of a batch from thread `from` to the inbox it is addressed to. */
export function decode(batch: Batch, from: number, to: Inboxes): void {
  let i = 0;
  while (i < batch.length) {
    switch (batch[i]) {
      case OP_PUT:
        to.owner.put(from, batch[i + 1] as number, batch[i + 2] as string, batch[i + 3] as string);
        i += 4;
        break;
      case OP_SYNC:
        to.owner.sync(from, batch[i + 1] as number, batch[i + 2] as string);
        i += 3;
        break;
      case OP_GET:
        to.owner.get(from, batch[i + 1] as number, batch[i + 2] as string, batch[i + 3] as number, batch[i + 4] === 1);
        i += 5;
        break;
      case OP_STREAM:
        to.owner.stream(from, batch[i + 1] as number, batch[i + 2] as string, batch[i + 3] as number);
        i += 4;
        break;
      case OP_UNWATCH:
        to.owner.unwatch(from, batch[i + 1] as string);
        i += 2;
        break;
      case OP_TIME:
        to.replies.timed(batch[i + 1] as number, batch[i + 2] as number);
        i += 3;
        break;
      case OP_ANSWER:
        to.replies.answered(
          batch[i + 1] as number,
          batch[i + 2] as number,
          batch[i + 3] as string,
          batch[i + 4] as number,
          batch[i + 5] === 1,
          batch[i + 6] === 1,
        );
        i += 7;
        break;
      case OP_STREAM_ANSWER: {
        const count = batch[i + 4] as number;
        to.replies.answered(
          batch[i + 1] as number,
          batch[i + 2] as number,
          batch[i + 3] as string,
          count,
          batch[i + 5] === 1,
          batch[i + 6] === 1,
          batch.slice(i + 7, i + 7 + count) as number[],
        );
        i += 7 + count;
        break;
      }
      case OP_PARKED:
        to.replies.parked(batch[i + 1] as number, batch[i + 2] as number);
        i += 3;
        break;
      case OP_FAIL:
        to.replies.failed(batch[i + 1] as number, new CometError(batch[i + 2] as ErrorCode, batch[i + 3] as string));
        i += 4;
        break;
      case OP_NEWS:
        to.news.news(batch[i + 1] as string, batch[i + 2] as number, batch[i + 3] as string);
        i += 4;
        break;
      case OP_GAP:
        to.news.gap(batch[i + 1] as string);
        i += 2;
        break;
      case OP_CRASH:
        throw new Error('fault injection: this thread was asked to crash');
      default:
        throw new Error(`corrupt batch from thread ${from}: unknown operation ${String(batch[i])} at ${i}`);
    }
  }
}
