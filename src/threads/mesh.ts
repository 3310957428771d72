/**
 * This thread's links to every worker thread, itself included. Operations are
 * queued per destination and sent as one batch per destination per event-loop
 * turn (setImmediate), which turns thousands of requests per second into a
 * few hundred postMessage calls, and guarantees that deliveries to waiting
 * gets happen outside the HTTP handler that published (uWS corks only one
 * socket at a time, so writing many answers inside another socket's handler
 * would send each of them uncorked).
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { type Batch, Encoder } from './messages.js';

export type BatchHandler = (batch: Batch, from: number) => void;

export class Mesh {
  private readonly outboxes: Batch[];
  private readonly dirty: number[] = [];
  private scheduled = false;
  private handler: BatchHandler = () => {};
  private beforeFlush: () => void = () => {};
  /** What to say to thread i, this one included: calls are queued for it as messages. */
  readonly to: readonly Encoder[];

  /** `ports[i]` links to thread i; `ports[self]` is null. */
  constructor(
    readonly self: number,
    private readonly ports: readonly (MessagePort | null)[],
  ) {
    this.outboxes = ports.map(() => []);
    this.to = ports.map((_, thread) => new Encoder({ batch: () => this.outbox(thread) }));
    ports.forEach((port, index) => {
      port?.on('message', (batch: Batch) => this.handler(batch, index));
    });
  }

  get size(): number {
    return this.ports.length;
  }

  onBatch(handler: BatchHandler): void {
    this.handler = handler;
  }

  /** `release` runs first at every flush, and may still add to this turn's batches (requests held until the turn's I/O is done). */
  onFlush(release: () => void): void {
    this.beforeFlush = release;
  }

  /** Makes the flush happen at the end of this turn even if nothing is queued yet. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** The batch for thread `to`, sent when this turn of the event loop is done; the caller appends one message. */
  private outbox(to: number): Batch {
    const outbox = this.outboxes[to]!;
    if (outbox.length === 0) this.dirty.push(to);
    this.schedule();
    return outbox;
  }

  /**
   * Posts to the other threads first and handles this thread's own batch last:
   * that batch may hold a fan-out to thousands of gets, and the other threads'
   * batches hold replies (a put's answer among them) that must not wait for it.
   */
  private readonly flush = (): void => {
    this.beforeFlush();
    this.scheduled = false;
    const dirty = this.dirty.splice(0);
    let own: Batch | undefined;
    for (const to of dirty) {
      const batch = this.outboxes[to]!;
      this.outboxes[to] = [];
      const port = this.ports[to];
      if (port) port.postMessage(batch);
      else own = batch;
    }
    if (own) this.handler(own, this.self);
  };

  close(): void {
    for (const port of this.ports) port?.close();
  }
}

/** ports[i][j]: thread i's end of the channel between threads i and j (null for i = j). */
export function meshPorts(threads: number): (MessagePort | null)[][] {
  const ports: (MessagePort | null)[][] = Array.from({ length: threads }, () => new Array<MessagePort | null>(threads).fill(null));
  for (let i = 0; i < threads; i++) {
    for (let j = i + 1; j < threads; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }
  return ports;
}
