/**
 * Server-sent events (`method=events`): one HTTP response per stream, kept
 * open, written with uWS's write() (chunked). The stream's life cycle is
 * here: headers at the owner's first reply (a store that fails it is
 * refused with the HTTP answer a get would have), events as they come, a
 * comment when quiet, and an end on shutdown, on abort, or when its
 * client is too slow.
 *
 * A slow reader: uWS's write() buffers whatever the socket does not take,
 * without limit, and says so by returning false; true means everything it
 * held went out. What is written while the stream is backed up counts
 * against --max-connection-buffer (an upper bound of what uWS holds), and a
 * stream past it is closed: the client reconnects with Last-Event-ID and
 * misses nothing the server still holds.
 */
import { Buffer } from 'node:buffer';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { type AnswerHeaders, OK } from '../protocol/cors.js';
import { type CometError, refusals } from '../protocol/errors.js';
import type { Responder } from '../protocol/respond.js';
import { EVENT_STREAM_TYPE, SSE_HEARTBEAT, SSE_OPENING } from '../protocol/streams.js';
import type { HttpResponse } from '../uws.js';
import type { Delivery } from '../waiters/delivery.js';
import { Stream, type StreamSink } from '../waiters/waiter.js';
import type { WaitRoom } from '../waiters/wait-room.js';

const HEARTBEAT = Buffer.from(SSE_HEARTBEAT);

/** This thread's event streams, and their heartbeat. */
export class EventStreams {
  private readonly open = new Set<EventStream>();
  /** Half-heartbeats since start: a stream written in the epoch before last has been quiet for at least half of --stream-heartbeat. */
  epoch = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly room: WaitRoom,
    readonly responder: Responder,
    readonly metrics: ThreadMetrics,
    /** --max-connection-buffer. */
    readonly maxUnsent: number,
    heartbeatSeconds: number,
  ) {
    // Every half period, to every stream quiet since the one before: none is quiet for a whole period.
    this.timer = setInterval(() => this.beat(), (heartbeatSeconds * 1000) / 2);
    this.timer.unref();
  }

  /**
   * Takes over a validated events request, in its handler: the stream is
   * opened on the wait room, or refused (--max-waiting, shutting down).
   */
  start(res: HttpResponse, channel: string, since: number, headers: AnswerHeaders): void {
    const sink = new EventStream(this, res, headers);
    const stream = this.room.openStream(channel, since, sink);
    if (!(stream instanceof Stream)) {
      this.responder.refuse(res, stream, headers);
      return;
    }
    sink.stream = stream;
    if (sink.ended) return;
    // Registered before the handler returns, whatever the owner's reply: uWS asks for it on a response left open.
    res.onAborted(() => sink.gone());
    this.open.add(sink);
  }

  forget(sink: EventStream): void {
    this.open.delete(sink);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private beat(): void {
    const quiet = this.epoch - 1;
    this.epoch++;
    for (const sink of this.open) if (sink.lastEpoch <= quiet) sink.heartbeat();
  }
}

export class EventStream implements StreamSink {
  stream: Stream | undefined;
  /** The headers are written (the owner's first reply came). */
  private opened = false;
  /** The response is ended, closed or aborted: it must not be touched again. */
  ended = false;
  /** Bytes written since the last write() that went out whole: at most what uWS holds. */
  private owed = 0;
  lastEpoch: number;
  /** What the corked write writes: one function per stream, not a closure per write. */
  private pending: Buffer = HEARTBEAT;
  private wrote = true;
  private readonly corkedWrite = (): void => {
    this.wrote = this.res.write(this.pending);
  };

  constructor(
    private readonly streams: EventStreams,
    private readonly res: HttpResponse,
    private readonly headers: AnswerHeaders,
  ) {
    this.lastEpoch = streams.epoch;
  }

  started(stream: Stream): void {
    const res = this.res;
    // Set here too: with this thread's own owner, the stream starts before openStream() returns it.
    this.stream = stream;
    this.opened = true;
    const open = (): void => {
      res.writeStatus(this.headers.head(OK, EVENT_STREAM_TYPE));
      // nginx passes the stream on as it comes even where proxy_buffering is on.
      res.writeHeader('X-Accel-Buffering', 'no');
      res.write(SSE_OPENING);
    };
    if (res === this.streams.responder.inHandler) open();
    else res.cork(open);
  }

  deliver(_stream: Stream, delivery: Delivery): void {
    this.write(delivery.sse());
  }

  failed(_stream: Stream, err: CometError): void {
    if (this.ended) return;
    if (!this.opened) {
      this.ended = true;
      this.streams.forget(this);
      this.streams.responder.refuse(this.res, err, this.headers);
      return;
    }
    this.end();
  }

  shutdown(): void {
    this.end();
  }

  heartbeat(): void {
    if (this.opened) this.write(HEARTBEAT);
  }

  /** The client went away (uWS's abort): nothing may be written any more. */
  gone(): void {
    this.close();
  }

  private write(bytes: Buffer): void {
    if (this.ended) return;
    this.lastEpoch = this.streams.epoch;
    this.pending = bytes;
    if (this.res === this.streams.responder.inHandler) this.corkedWrite();
    else this.res.cork(this.corkedWrite);
    this.pending = HEARTBEAT;
    if (this.wrote) {
      this.owed = 0;
      return;
    }
    this.owed += bytes.length;
    if (this.owed <= this.streams.maxUnsent) return;
    this.streams.metrics.add(SLOT.slowReadersClosed);
    this.close();
    this.res.close();
  }

  /** Ends the response: its chunked body's last chunk, so that the client sees a clean end and reconnects. */
  private end(): void {
    if (this.ended) return;
    this.close();
    if (this.opened) this.res.cork(() => this.res.end());
    else this.streams.responder.refuse(this.res, refusals.shuttingDown(), this.headers);
  }

  /** Takes the stream off the wait room and this thread's list; the response is not touched after. */
  private close(): void {
    this.ended = true;
    this.streams.forget(this);
    if (this.stream !== undefined) this.streams.room.closeStream(this.stream);
  }
}
