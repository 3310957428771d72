/**
 * How an answer's body is handed to the socket without letting a client that
 * does not read make the server hold more than one answer for it.
 *
 * uWS's end() buffers whatever the socket does not take, without limit: 100
 * connections pipelining 200 gets each and never reading once took the
 * server to 3.6 GB. tryEnd() writes only what the kernel takes; the rest of
 * the body stays here, by reference, and is written as the socket drains
 * (onWritable). The response stays pending meanwhile, and uWS closes a
 * connection whose next request arrives while its answer is pending, so a
 * connection holds at most one unsent answer whatever it pipelines; one
 * whose unsent rest exceeds --max-connection-buffer is closed at once, and
 * one that takes nothing for 10 s is closed by uWS's write timeout.
 *
 * A small answer given after its request's handler returned (a fan-out's,
 * most of all) goes to end() instead: tryEnd cost a fan-out about 10% more
 * CPU per delivery, and such an answer cannot pile up behind pipelined
 * requests (they close the connection while it is owed), only one per
 * request the client sends and the server answers later.
 */
import { Buffer } from 'node:buffer';
import type { HttpResponse } from '../uws.js';

/** Counts what waits on slow readers (metrics live in a higher layer). */
export interface SlowReaderCounters {
  /** `answers` more answers (fewer when negative) and `bytes` more bytes wait for their clients to read. */
  waiting(answers: number, bytes: number): void;
  /** A connection was closed: its answer left more than --max-connection-buffer bytes unsent. */
  closed(): void;
}

const IGNORE_ABORT = (): void => {};
/** Characters or bytes: at most 12 KiB in UTF-8. */
const SMALL_LATER_ANSWER = 4096;

export class AnswerWriter {
  constructor(
    private readonly maxUnsent: number,
    private readonly counters: SlowReaderCounters,
    /** Whether `body` is (part of) a Buffer whose contents change after each answer (Responder's own): copied when left unsent. */
    private readonly reused: (body: Buffer) => boolean = () => false,
  ) {}

  /**
   * Ends `res` with `body` (status and headers already written), inside a
   * cork; `later`: outside its request's handler. False when the connection
   * must be closed, which the caller does once out of the cork: its answer
   * left more than --max-connection-buffer unsent.
   */
  end(res: HttpResponse, body: string | Buffer, later: boolean): boolean {
    if (later && body.length <= SMALL_LATER_ANSWER) {
      res.end(body);
      return true;
    }
    // A total size of 0 lets uWS take the body's own length for Content-Length.
    const [, done] = res.tryEnd(body, 0);
    return done || this.stalled(res, body);
  }

  private stalled(res: HttpResponse, body: string | Buffer): boolean {
    // A fan-out's stalled readers share its Buffer as it is; the one reused for every time answer is copied.
    const bytes = typeof body === 'string' || this.reused(body) ? Buffer.from(body) : body;
    const total = bytes.length;
    let unsent = total - res.getWriteOffset();
    // The abort handler in place (a waiting get's) must not run: its answer is given.
    if (unsent > this.maxUnsent) {
      res.onAborted(IGNORE_ABORT);
      this.counters.closed();
      return false;
    }
    this.counters.waiting(1, unsent);
    res.onAborted(() => this.counters.waiting(-1, -unsent));
    res.onWritable((offset) => {
      const [ok, done] = res.tryEnd(bytes.subarray(offset), total);
      const left = done ? 0 : total - res.getWriteOffset();
      this.counters.waiting(done ? -1 : 0, left - unsent);
      unsent = left;
      return ok;
    });
    return true;
  }
}
