/**
 * The requesting side: how the HTTP front end of this thread reaches the
 * owner of a channel, wherever it runs. Requests for channels this thread owns
 * go straight to the local Owner; the others travel through the mesh, and
 * their replies are matched back by request id.
 */
import { CometError, type ErrorCode } from '../protocol/errors.js';
import type { Mesh } from './mesh.js';
import type { LocalRequester, Owner } from './owner.js';
import {
  type Batch,
  OP_ANSWER,
  OP_CRASH,
  OP_FAIL,
  OP_GAP,
  OP_GET,
  OP_NEWS,
  OP_PARKED,
  OP_PUT,
  OP_SYNC,
  OP_TIME,
  OP_UNWATCH,
} from './messages.js';
import { ownerOf } from './shard.js';

/** Whoever waits for a reply: a put or sync in flight, or a get (waiters/waiter.ts). */
export interface ReplyHandler {
  /** op is OP_TIME, OP_ANSWER or OP_PARKED; bodies, missed and watching come with OP_ANSWER. */
  settle(op: number, time: number, bodies?: string[], missed?: boolean, watching?: boolean): void;
  fail(err: CometError): void;
}

/** Where news of new messages goes on this thread (waiters/wait-room.ts). */
export interface NewsSink {
  news(channel: string, time: number, body: string): void;
  /** Messages of the channel may have been lost: its waiting gets read again from their cursors. */
  gap(channel: string): void;
  /** Called once after a batch: deliver everything that news() collected. */
  deliver(): void;
}

export class Router implements LocalRequester {
  private nextRequestId = 1;
  private readonly pending = new Map<number, ReplyHandler>();
  /** The local request in progress (see enterLocal); 0 when none. */
  private localId = 0;
  private localHandler: ReplyHandler | undefined;
  private owner!: Owner;
  private sink!: NewsSink;

  constructor(private readonly mesh: Mesh) {
    mesh.onBatch((batch, from) => this.receive(batch, from));
  }

  connect(owner: Owner, sink: NewsSink): void {
    this.owner = owner;
    this.sink = sink;
  }

  ownerOf(channel: string): number {
    return ownerOf(channel, this.mesh.size);
  }

  put(channel: string, body: string, handler: ReplyHandler): void {
    const owner = this.ownerOf(channel);
    if (owner !== this.mesh.self) return this.mesh.send(owner, OP_PUT, this.track(handler), channel, body);
    const id = this.enterLocal(handler);
    this.owner.put(owner, id, channel, body);
    this.leaveLocal(id);
  }

  sync(channel: string, handler: ReplyHandler): void {
    const owner = this.ownerOf(channel);
    if (owner !== this.mesh.self) return this.mesh.send(owner, OP_SYNC, this.track(handler), channel);
    const id = this.enterLocal(handler);
    this.owner.sync(owner, id, channel);
    this.leaveLocal(id);
  }

  /** `wait` false: answer now whatever there is (timeout=0); true: the owner may park it. */
  get(channel: string, since: number, wait: boolean, handler: ReplyHandler): void {
    const owner = this.ownerOf(channel);
    if (owner !== this.mesh.self) return this.mesh.send(owner, OP_GET, this.track(handler), channel, since, wait ? 1 : 0);
    const id = this.enterLocal(handler);
    this.owner.get(owner, id, channel, since, wait);
    this.leaveLocal(id);
  }

  unwatch(channel: string): void {
    const owner = this.ownerOf(channel);
    if (owner === this.mesh.self) this.owner.unwatch(owner, channel);
    else this.mesh.send(owner, OP_UNWATCH, channel);
  }

  /** Fault injection: makes thread `to` throw an uncaught exception. */
  crash(to: number): void {
    this.mesh.send(to, OP_CRASH);
  }

  /** Whether requests still wait for an owner's reply. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** Answers every request still waiting for an owner with `err` (an owner that will never reply). */
  failAll(err: CometError): void {
    const handlers = [...this.pending.values()];
    this.pending.clear();
    for (const handler of handlers) handler.fail(err);
  }

  settle(requestId: number, op: number, time: number, bodies?: string[], missed?: number, watching?: number): void {
    this.take(requestId)?.settle(op, time, bodies, missed === 1, watching === 1);
  }

  fail(requestId: number, code: ErrorCode, message: string): void {
    this.take(requestId)?.fail(new CometError(code, message));
  }

  private track(handler: ReplyHandler): number {
    const id = this.nextRequestId++;
    this.pending.set(id, handler);
    return id;
  }

  /**
   * A request to this thread's own owner is usually answered before the call
   * returns (a synchronous engine): it waits in one slot instead of the
   * pending map, whose set, get, delete and rehashing showed in profiles of
   * puts. A reply empties the slot before its handler runs, so a handler may
   * send the next request; a request sent while another is still in the slot
   * moves that one to the map.
   */
  private enterLocal(handler: ReplyHandler): number {
    if (this.localHandler !== undefined) this.pending.set(this.localId, this.localHandler);
    const id = this.nextRequestId++;
    this.localId = id;
    this.localHandler = handler;
    return id;
  }

  /** After the local call: a request still unanswered waits in the pending map like any other. */
  private leaveLocal(id: number): void {
    if (this.localId !== id) return;
    this.pending.set(id, this.localHandler!);
    this.localId = 0;
    this.localHandler = undefined;
  }

  private take(requestId: number): ReplyHandler | undefined {
    if (requestId === this.localId) {
      const handler = this.localHandler;
      this.localId = 0;
      this.localHandler = undefined;
      return handler;
    }
    const handler = this.pending.get(requestId);
    if (handler) this.pending.delete(requestId);
    return handler;
  }

  private receive(batch: Batch, from: number): void {
    const owner = this.owner;
    let i = 0;
    while (i < batch.length) {
      switch (batch[i]) {
        case OP_PUT:
          owner.put(from, batch[i + 1] as number, batch[i + 2] as string, batch[i + 3] as string);
          i += 4;
          break;
        case OP_SYNC:
          owner.sync(from, batch[i + 1] as number, batch[i + 2] as string);
          i += 3;
          break;
        case OP_GET:
          owner.get(from, batch[i + 1] as number, batch[i + 2] as string, batch[i + 3] as number, batch[i + 4] === 1);
          i += 5;
          break;
        case OP_UNWATCH:
          owner.unwatch(from, batch[i + 1] as string);
          i += 2;
          break;
        case OP_TIME:
        case OP_PARKED:
          this.settle(batch[i + 1] as number, batch[i] as number, batch[i + 2] as number);
          i += 3;
          break;
        case OP_ANSWER:
          this.settle(batch[i + 1] as number, OP_ANSWER, batch[i + 2] as number, batch[i + 3] as string[], batch[i + 4] as number, batch[i + 5] as number);
          i += 6;
          break;
        case OP_FAIL:
          this.fail(batch[i + 1] as number, batch[i + 2] as ErrorCode, batch[i + 3] as string);
          i += 4;
          break;
        case OP_NEWS:
          this.sink.news(batch[i + 1] as string, batch[i + 2] as number, batch[i + 3] as string);
          i += 4;
          break;
        case OP_GAP:
          this.sink.gap(batch[i + 1] as string);
          i += 2;
          break;
        case OP_CRASH:
          throw new Error(`fault injection: thread ${this.mesh.self} was asked to crash`);
        default:
          throw new Error(`corrupt batch from thread ${from}: unknown operation ${String(batch[i])} at ${i}`);
      }
    }
    this.sink.deliver();
  }
}
