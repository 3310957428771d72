/**
 * What a stream delivery carries (waiters/waiter.ts Stream), in the format
 * each transport writes, built once per distinct starting point.
 */
import { Buffer } from 'node:buffer';
import { splitMessages, sseEvents, sseMissed, wsDelivery } from '../protocol/streams.js';

/**
 * Messages for the streams of one channel that share a starting point,
 * each format built at most once however many streams take it: the
 * serialisation of a fan-out is per distinct cursor, never per subscriber.
 */
export class Delivery {
  private events: Buffer | undefined;
  private frames: Buffer[] | undefined;
  private byteCount: number | undefined;

  constructor(
    private readonly channel: string,
    /** Times and JSON texts of the messages; `bodies` undefined for a read, whose texts come joined. */
    private readonly times: readonly number[],
    private bodies: readonly string[] | undefined,
    private readonly joined: string | undefined,
    private readonly start: number,
    private readonly end: number,
    /** The starting time could not be vouched for (`missed`), and what it was. */
    readonly missed: boolean,
    private readonly after: number,
    /** A read's time, which a delivery of `missed` alone carries, as a get's answer would. */
    private readonly readTime: number,
    /** End index of a WebSocket delivery from `start` within the answer caps (wait-room.ts answerEnd). */
    private readonly frameEnd: (bodies: readonly string[], start: number, end: number) => number,
  ) {}

  get count(): number {
    return this.end - this.start;
  }

  /** UTF-8 bytes of the messages' JSON texts, comma-joined as a read gives them: what comet_bytes_out_total counts. */
  get bytes(): number {
    if (this.byteCount === undefined) {
      if (this.joined !== undefined) this.byteCount = Buffer.byteLength(this.joined);
      else {
        let bytes = Math.max(0, this.count - 1);
        for (let i = this.start; i < this.end; i++) bytes += Buffer.byteLength(this.bodies![i]!);
        this.byteCount = bytes;
      }
    }
    return this.byteCount;
  }

  /** Time of the last message. */
  get time(): number {
    return this.times[this.end - 1]!;
  }

  /**
   * Server-sent events: `missed` first when it applies, then an event per
   * message. Bytes, encoded once: uWS would encode a string again for every
   * stream it is written to.
   */
  sse(): Buffer {
    if (this.events === undefined) {
      const events = this.count === 0 ? '' : sseEvents(this.times, this.texts(), this.start, this.end);
      this.events = Buffer.from(this.missed ? sseMissed(this.after) + events : events);
    }
    return this.events;
  }

  /** WebSocket frames, each within --max-answer-messages and --max-answer-bytes as a get's answer; `missed` on the first. */
  ws(): Buffer[] {
    if (this.frames === undefined) {
      const quoted = JSON.stringify(this.channel);
      if (this.joined !== undefined || this.count === 0) {
        // A read is already within the caps.
        this.frames = [Buffer.from(wsDelivery(quoted, this.count === 0 ? this.readTime : this.time, this.joined ?? '', this.missed))];
      } else {
        const bodies = this.texts();
        const frames: Buffer[] = [];
        for (let from = this.start; from < this.end; ) {
          const to = this.frameEnd(bodies, from, this.end);
          frames.push(Buffer.from(wsDelivery(quoted, this.times[to - 1]!, bodies.slice(from, to).join(','), this.missed && from === this.start)));
          from = to;
        }
        this.frames = frames;
      }
    }
    return this.frames;
  }

  private texts(): readonly string[] {
    this.bodies ??= splitMessages(this.joined!, this.end);
    return this.bodies;
  }
}
