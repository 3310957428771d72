/**
 * The requesting side: how this thread's HTTP front end and wait room reach
 * the owner of a channel, wherever it runs. Requests for channels this thread
 * owns go straight to the local Owner; the others are encoded for the mesh,
 * and their replies are matched back by request id.
 */
import type { Buffer } from 'node:buffer';
import { hashChannel } from '../engine/channel-hash.js';
import type { Engine } from '../engine/engine.js';
import type { CometError } from '../protocol/errors.js';
import type { Mesh } from './mesh.js';
import type { OwnerInbox, ReplyInbox } from './messages.js';

/**
 * The sharding policy: every channel has exactly one owner thread, the only
 * one that stores its messages and assigns its times.
 */
export function ownerOf(channel: string, threads: number): number {
  return threads === 1 ? 0 : hashChannel(channel) % threads;
}

/** A put or a sync waiting for its reply. */
export interface TimeHandler {
  timed(time: number): void;
  failed(err: CometError): void;
}

/** A put's handler, which also knows whether its client is still there. */
export interface PutHandler extends TimeHandler {
  /** The client went away before the put left this thread: it is dropped, never stored. */
  readonly gone: boolean;
}

/** A get waiting for its owner's reply (waiters/waiter.ts). */
export interface GetHandler {
  /** `times`: each message's time, for a stream's read (stream()). */
  answered(time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean, times?: readonly number[]): void;
  parked(cursor: number): void;
  failed(err: CometError): void;
}

/**
 * Requests waiting for a reply, by id. A request to this thread's own owner
 * is usually answered before the call returns (a synchronous engine): it
 * waits in one slot instead of the map, whose set, get, delete and rehashing
 * showed in profiles of puts. A reply empties the slot before its handler
 * runs, so a handler may send the next request; a request sent while another
 * is still in the slot moves that one to the map.
 */
class Pending<H> {
  private readonly waiting = new Map<number, H>();
  /** The local request in progress; 0 when none. */
  private localId = 0;
  private localHandler: H | undefined;

  /** Before the request is sent; `local`: to this thread's own owner. */
  open(id: number, handler: H, local: boolean): void {
    if (!local) {
      this.waiting.set(id, handler);
      return;
    }
    if (this.localHandler !== undefined) this.waiting.set(this.localId, this.localHandler);
    this.localId = id;
    this.localHandler = handler;
  }

  /** After the request was sent: a local request still unanswered waits in the map like any other. */
  sent(id: number): void {
    if (this.localId !== id) return;
    this.waiting.set(id, this.localHandler!);
    this.localId = 0;
    this.localHandler = undefined;
  }

  take(id: number): H | undefined {
    if (id === this.localId) {
      const handler = this.localHandler;
      this.localId = 0;
      this.localHandler = undefined;
      return handler;
    }
    const handler = this.waiting.get(id);
    if (handler !== undefined) this.waiting.delete(id);
    return handler;
  }

  get size(): number {
    return this.waiting.size + (this.localHandler === undefined ? 0 : 1);
  }

  takeAll(): H[] {
    const handlers = [...this.waiting.values()];
    this.waiting.clear();
    return handlers;
  }
}

export class Router implements ReplyInbox {
  private nextRequestId = 1;
  private readonly times = new Pending<TimeHandler>();
  private readonly gets = new Pending<GetHandler>();
  /** Each thread's owner: the local Owner for this thread, the mesh's encoder for the others. */
  private owners: OwnerInbox[] = [];
  private localEngine: Pick<Engine, 'appendsAtOnce'> = { appendsAtOnce: true };
  /** Puts held until this turn's I/O is done (see put()), in four parallel arrays. */
  private heldOwners: number[] = [];
  private heldChannels: string[] = [];
  private heldBodies: string[] = [];
  private heldHandlers: PutHandler[] = [];

  constructor(private readonly mesh: Mesh) {
    mesh.onFlush(this.release);
  }

  /** Joins this thread's own owner, which replies to this router in turn, and stores with `engine`. */
  connect(owner: OwnerInbox, engine: Pick<Engine, 'appendsAtOnce'>): void {
    this.owners = this.mesh.to.map((encoder, thread) => (thread === this.mesh.self ? owner : encoder));
    this.localEngine = engine;
  }

  ownerOf(channel: string): number {
    return ownerOf(channel, this.mesh.size);
  }

  /**
   * A put this thread's own owner stores at once runs now, and is answered
   * inside its request handler. Any other is held until the turn's I/O is
   * done (the mesh's flush): when a client pipelines a request behind a
   * request not answered in its handler, uWS closes the connection as it
   * parses the next one, in the same read, and a put held until then is
   * dropped instead of stored with no one to tell its time to.
   */
  put(channel: string, body: string, handler: PutHandler): void {
    const owner = this.ownerOf(channel);
    if (owner === this.mesh.self && this.localEngine.appendsAtOnce) return this.sendPut(owner, channel, body, handler);
    this.heldOwners.push(owner);
    this.heldChannels.push(channel);
    this.heldBodies.push(body);
    this.heldHandlers.push(handler);
    this.mesh.schedule();
  }

  private sendPut(owner: number, channel: string, body: string, handler: TimeHandler): void {
    const id = this.nextRequestId++;
    this.times.open(id, handler, owner === this.mesh.self);
    this.owners[owner]!.put(this.mesh.self, id, channel, body);
    this.times.sent(id);
  }

  /** Sends the held puts whose clients are still there. */
  private readonly release = (): void => {
    const handlers = this.heldHandlers;
    if (handlers.length === 0) return;
    const owners = this.heldOwners;
    const channels = this.heldChannels;
    const bodies = this.heldBodies;
    this.heldOwners = [];
    this.heldChannels = [];
    this.heldBodies = [];
    this.heldHandlers = [];
    for (let i = 0; i < handlers.length; i++) {
      if (!handlers[i]!.gone) this.sendPut(owners[i]!, channels[i]!, bodies[i]!, handlers[i]!);
    }
  };

  sync(channel: string, handler: TimeHandler): void {
    const owner = this.ownerOf(channel);
    const id = this.nextRequestId++;
    this.times.open(id, handler, owner === this.mesh.self);
    this.owners[owner]!.sync(this.mesh.self, id, channel);
    this.times.sent(id);
  }

  /** `wait` false: answer now whatever there is (timeout=0); true: the owner may park it. */
  get(channel: string, since: number, wait: boolean, handler: GetHandler): void {
    const owner = this.ownerOf(channel);
    const id = this.nextRequestId++;
    this.gets.open(id, handler, owner === this.mesh.self);
    this.owners[owner]!.get(this.mesh.self, id, channel, since, wait);
    this.gets.sent(id);
  }

  /** A stream's read: as a get that may wait, its answer giving each message's time. */
  stream(channel: string, since: number, handler: GetHandler): void {
    const owner = this.ownerOf(channel);
    const id = this.nextRequestId++;
    this.gets.open(id, handler, owner === this.mesh.self);
    this.owners[owner]!.stream(this.mesh.self, id, channel, since);
    this.gets.sent(id);
  }

  unwatch(channel: string): void {
    this.owners[this.ownerOf(channel)]!.unwatch(this.mesh.self, channel);
  }

  /** Fault injection: makes thread `to` throw an uncaught exception. */
  crash(to: number): void {
    this.mesh.to[to]!.crash();
  }

  /** Whether requests still wait for an owner's reply. */
  get busy(): boolean {
    return this.times.size + this.gets.size + this.heldHandlers.length > 0;
  }

  /** Answers every request still waiting for an owner with `err` (an owner that will never reply). */
  failAll(err: CometError): void {
    const held = this.heldHandlers;
    this.heldOwners = [];
    this.heldChannels = [];
    this.heldBodies = [];
    this.heldHandlers = [];
    for (const handler of held) handler.failed(err);
    for (const handler of this.times.takeAll()) handler.failed(err);
    for (const handler of this.gets.takeAll()) handler.failed(err);
  }

  timed(requestId: number, time: number): void {
    this.times.take(requestId)?.timed(time);
  }

  answered(requestId: number, time: number, json: Buffer | string, count: number, missed: boolean, watching: boolean, times?: readonly number[]): void {
    this.gets.take(requestId)?.answered(time, json, count, missed, watching, times);
  }

  parked(requestId: number, cursor: number): void {
    this.gets.take(requestId)?.parked(cursor);
  }

  failed(requestId: number, err: CometError): void {
    (this.times.take(requestId) ?? this.gets.take(requestId))?.failed(err);
  }
}
