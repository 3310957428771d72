/**
 * One get in progress on this thread, from arrival, through the owner's
 * reply, while parked, to its answer; and the channel entry that holds the
 * gets of one channel. The only per-waiting-get allocation is the Waiter, and
 * its abort callback for one not answered within its request's handler.
 */
import type { Buffer } from 'node:buffer';
import type { CometError } from '../protocol/errors.js';
import type { GetHandler } from '../threads/router.js';
import type { HttpResponse } from '../uws.js';
import type { AnswerHeaders } from '../protocol/cors.js';

/** The gets of one channel waiting on this thread (waiters/wait-room.ts). */
export class ChannelEntry {
  readonly parked = new Set<Waiter>();
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
