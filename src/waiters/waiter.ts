/**
 * One get in progress on this thread: from arrival, through the owner's
 * reply, while parked, to its answer. The only per-waiting-get allocation is
 * this object and its abort callback.
 */
import type { HttpResponse } from '../uws.js';
import type { CometError } from '../protocol/errors.js';
import type { ReplyHandler } from '../threads/router.js';
import type { ChannelEntry, WaitRoom } from './wait-room.js';

export class Waiter implements ReplyHandler {
  /** The newest time this get has seen: messages must be newer. -1 until the owner replied. */
  cursor = -1;
  /** Timeout-wheel bucket while parked, 0 otherwise. */
  bucket = 0;
  aborted = false;

  constructor(
    readonly room: WaitRoom,
    readonly res: HttpResponse,
    readonly entry: ChannelEntry,
    readonly timeout: number,
    readonly callback: string | undefined,
  ) {}

  readonly onAborted = (): void => this.room.aborted(this);

  settle(op: number, time: number, bodies?: string[], missed?: boolean, watching?: boolean): void {
    this.room.settled(this, op, time, bodies, missed === true, watching === true);
  }

  fail(err: CometError): void {
    this.room.failed(this, err);
  }
}
