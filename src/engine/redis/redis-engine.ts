/**
 * The cluster-mode engine: channels in Redis, shared by every node.
 *
 * Each worker thread has its own engine, for the channels it owns: a command
 * connection (to one Redis, or a Cluster client routing by slot) and its
 * subscriber connections. Because a channel has one owner thread per node, a
 * node subscribes to a channel's announcements once, however many gets wait
 * on it on however many threads, and unsubscribes when the owner stops
 * watching it (the last get left; see threads/owner.ts).
 *
 * Gap-free delivery: a watch starts from the channel's current time read
 * before subscribing, and each announcement carries its message, so a
 * watched channel's messages reach the listener in order. When a subscription
 * was interrupted (a reconnection, or a slot moving to another master), the
 * engine reads back from the stream everything after the last message it
 * passed on, holding the announcements that arrive meanwhile, and only then
 * releases them: nothing is skipped, and repeats (time <= last) are dropped.
 * Where the stream no longer holds what followed (Redis restarted without its
 * data), the gap is reported, and the gets waiting re-read from their cursors.
 *
 * While Redis is unreachable every operation fails at once with
 * COMET_ERR_STORE_UNAVAILABLE (503); nothing is queued, and at most
 * `maxPending` commands are in flight per thread, so memory stays bounded.
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { type Cluster, type Redis, ReplyError } from 'ioredis';
import { type Engine, type EngineStats, type GapListener, type MessageListener, type ReadLimits, type ReadResult, StoreFailure } from '../engine.js';
import { backoff, commandClient, FirstConnection, type RedisTarget } from './connect.js';
import { channelKeys } from './keys.js';
import { NodeRecovery, ownRecoveryCell, type TrackedConnection } from './recovery.js';
import { APPEND, READ } from './scripts.js';
import { Subscriber } from './subscriber.js';

export interface RedisEngineOptions {
  target: RedisTarget;
  /** Prefix of every key and pub/sub channel name. */
  prefix: string;
  bufferSize: number;
  /** Bytes of JSON-encoded bodies kept per channel (Redis counts bytes, the memory engine characters). */
  bufferBytes: number;
  channelTtlMs: number;
  /** Longest wait for one Redis command or connection attempt. */
  timeoutMs: number;
  /** Most commands in flight on this thread; past it operations fail at once (503). */
  maxPending: number;
  /** Told when a connection goes up or down, for the log. */
  onConnection(up: boolean, where: string, err?: Error): void;
  /**
   * The count of Redis connections that became ready, one Int32 shared by
   * every thread of the node, so that they recover from an outage together
   * (recovery.ts); default: one of this engine's own.
   */
  readyCell?: Int32Array;
}

type Reply = [number, number, ...(number | string)[]];
type ScriptClient = (Redis | Cluster) & {
  cometAppend(stream: string, meta: string, notify: string, body: string, cap: number, bytesCap: number, ttlMs: number, publish: string): Promise<number>;
  cometRead(stream: string, meta: string, since: number, maxMessages: number, maxBytes: number, ttlMs: number): Promise<Reply>;
};

interface Watch {
  channel: string;
  /** Newest message time passed on (or the channel's time when the watch began): announcements up to it are repeats. */
  last: number;
  /** From a re-subscription until its read-back is done: the announcements held meanwhile. */
  held: [number, string][] | null;
  /** A read-back is in progress. */
  reading: boolean;
  /** Held announcements were dropped (too many): read back once more. */
  overflow: boolean;
  /** Incremented by every interruption, so that a read-back in progress knows to read again. */
  interruptions: number;
}

const READ_BACK_MESSAGES = 1000;
const READ_BACK_BYTES = 16 * 1024 * 1024;
const HELD_MAX = 10_000;
/**
 * Redis error codes (an error reply's first word) that mean "not now" (out of
 * memory, failing over, loading) rather than a bug of ours.
 */
const TRANSIENT_REPLIES = new Set(['OOM', 'CLUSTERDOWN', 'LOADING', 'READONLY', 'MASTERDOWN', 'TRYAGAIN', 'BUSY', 'NOREPLICAS', 'MOVED', 'ASK']);

export class RedisEngine implements Engine {
  readonly appendsAtOnce = false;
  private readonly client: ScriptClient;
  private readonly subscriber: Subscriber;
  /** Watched channels, by the name of their pub/sub channel. */
  private readonly watches = new Map<string, Watch>();
  private readonly publish: string;
  private listener: MessageListener = () => {};
  private onGap: GapListener = () => {};
  private pending = 0;
  /** Whether the command sockets hold this turn's commands (see cork), and which. */
  private corked = false;
  private readonly corkedSockets: Socket[] = [];
  private closed = false;
  private readonly firstReady: FirstConnection;
  private readonly recovery: NodeRecovery;
  private readonly commands: TrackedConnection;

  constructor(private readonly options: RedisEngineOptions) {
    const { target, timeoutMs } = options;
    this.client = commandClient(target, timeoutMs) as ScriptClient;
    this.client.defineCommand('cometAppend', { numberOfKeys: 3, lua: APPEND });
    this.client.defineCommand('cometRead', { numberOfKeys: 2, lua: READ });
    const where = target.urls.join(',');
    this.client.on('ready', () => options.onConnection(true, where));
    this.client.on('error', (err: Error) => options.onConnection(false, where, err));
    this.firstReady = new FirstConnection(this.client, timeoutMs);
    this.recovery = new NodeRecovery(options.readyCell ?? ownRecoveryCell(), timeoutMs);
    this.commands = this.recovery.track(this.client);
    this.publish = target.cluster ? 'SPUBLISH' : 'PUBLISH';
    this.subscriber = new Subscriber(target, this.client, timeoutMs, this.recovery, {
      announcement: this.announced,
      resubscribed: (notifies) => {
        // readBack retries its own read failures until the watch ends: nothing to await or catch here
        for (const notify of notifies) void this.readBack(notify);
      },
      resubscribing: (notifies) => {
        for (const notify of notifies) {
          const watch = this.watches.get(notify);
          if (watch !== undefined) watch.held ??= [];
        }
      },
      connection: options.onConnection,
    });
  }

  setListener(onMessage: MessageListener, onGap: GapListener = () => {}): void {
    this.listener = onMessage;
    this.onGap = onGap;
  }

  append(channel: string, body: string): Promise<number> {
    const { prefix, bufferSize, bufferBytes, channelTtlMs } = this.options;
    const keys = channelKeys(prefix, channel);
    return this.command(() => this.client.cometAppend(keys.stream, keys.meta, keys.notify, body, bufferSize, bufferBytes, channelTtlMs, this.publish));
  }

  async currentTime(channel: string): Promise<number> {
    return (await this.readReply(channel, -1, 0, 0))[0];
  }

  async read(channel: string, since: number, limits: ReadLimits, times?: number[]): Promise<ReadResult> {
    const reply = await this.readReply(channel, since, limits.maxMessages, limits.maxBytes);
    let json = '';
    for (let i = 3; i < reply.length; i += 2) {
      json += i === 3 ? (reply[i] as string) : `,${reply[i] as string}`;
      times?.push(reply[i - 1] as number);
    }
    return { time: reply[0], count: (reply.length - 2) / 2, json: Buffer.from(json), missed: reply[1] === 1 };
  }

  async watch(channel: string): Promise<void> {
    const { notify } = channelKeys(this.options.prefix, channel);
    const watch: Watch = { channel, last: -1, held: null, reading: false, overflow: false, interruptions: 0 };
    this.watches.set(notify, watch);
    try {
      // Read before subscribing: a message between the two is above `last`, and is found by the read that follows every watch.
      watch.last = await this.currentTime(channel);
      if (this.watches.get(notify) === watch) await this.subscriber.subscribe(notify);
    } catch (err) {
      if (this.watches.get(notify) === watch) this.watches.delete(notify);
      throw this.translate(err);
    }
    if (!this.watches.has(notify)) this.subscriber.unsubscribe(notify);
  }

  unwatch(channel: string): void {
    const { notify } = channelKeys(this.options.prefix, channel);
    if (!this.watches.delete(notify)) return;
    this.subscriber.unsubscribe(notify);
  }

  /** Redis expires idle channels by itself (each append sets their keys' TTL). */
  sweep(): void {}

  stats(): EngineStats {
    return { channels: 0, messages: 0, bytes: 0, subscriptions: this.subscriber.count, up: this.client.status === 'ready' };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.recovery.close();
    this.watches.clear();
    this.subscriber.close();
    this.client.disconnect();
  }

  private readReply(channel: string, since: number, maxMessages: number, maxBytes: number): Promise<Reply> {
    const keys = channelKeys(this.options.prefix, channel);
    return this.command(() => this.client.cometRead(keys.stream, keys.meta, since, maxMessages, maxBytes, this.options.channelTtlMs));
  }

  /** Runs one command within the in-flight bound, its failure typed for the HTTP answer. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreFailure('closed', 'the engine is closed');
    if (this.pending >= this.options.maxPending) {
      throw new StoreFailure('unavailable', `the message store (Redis) is not keeping up: ${this.pending} commands in flight on this thread`);
    }
    this.pending++;
    if (!this.corked) this.cork();
    try {
      if (this.firstReady.pending) await this.firstReady.pending;
      // Redis is back for another connection of this node: wait for ours rather than answer 503 (recovery.ts).
      if (this.commands.behind) await this.commands.catchUp();
      return await run();
    } catch (err) {
      throw this.translate(err);
    } finally {
      this.pending--;
    }
  }

  /**
   * Holds the commands of one event-loop turn in the socket and writes them
   * with one writev when the turn's I/O is done (setImmediate): ioredis
   * writes each command at once, and that write per put was 13 % of a busy
   * thread. Measured, 1 node + Redis on one core: 12.3 to 9.9 µs of node
   * CPU and 10.1 to 8.9 µs of Redis CPU per put (Redis reads fewer, larger
   * packets). A Cluster client has one socket per master: all are held.
   */
  private cork(): void {
    const nodes = this.options.target.cluster ? (this.client as Cluster).nodes('master') : [this.client as Redis];
    for (const node of nodes) {
      const socket = node.stream as Socket | undefined;
      if (socket === undefined) continue;
      socket.cork();
      this.corkedSockets.push(socket);
    }
    this.corked = true;
    setImmediate(this.uncork);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    for (const socket of this.corkedSockets) socket.uncork();
    this.corkedSockets.length = 0;
  };

  /** An error reply is classified by its Redis error code; anything else is the connection's. */
  private translate(err: unknown): StoreFailure {
    if (err instanceof StoreFailure) return err;
    const message = (err as Error).message;
    if (err instanceof ReplyError && !TRANSIENT_REPLIES.has(firstWord(message))) {
      return new StoreFailure('refused', `the message store (Redis) refused the operation: ${message}`);
    }
    const reason = this.client.status === 'ready' ? message : 'not connected, reconnecting';
    return new StoreFailure('unavailable', `the message store (Redis) is unavailable: ${reason}`);
  }

  private readonly announced = (notify: string, payload: string): void => {
    const watch = this.watches.get(notify);
    if (watch === undefined) return;
    const space = payload.indexOf(' ');
    const time = Number(payload.slice(0, space));
    const body = payload.slice(space + 1);
    if (watch.held === null) this.pass(watch, time, body);
    else if (watch.held.length < HELD_MAX) watch.held.push([time, body]);
    else watch.overflow = true;
  };

  private pass(watch: Watch, time: number, body: string): void {
    if (time <= watch.last) return;
    watch.last = time;
    this.listener(watch.channel, time, body);
  }

  /**
   * A subscription is in place again after an interruption: passes on what
   * was stored since the last message passed on, then the announcements held
   * meanwhile; if some of it is no longer stored (Redis restarted without its
   * data), reports the gap. Retries with backoff while Redis is unreachable, for as long as
   * the channel is watched.
   */
  private async readBack(notify: string): Promise<void> {
    const watch = this.watches.get(notify);
    if (watch === undefined) return;
    watch.interruptions++;
    if (watch.reading) return; // a read-back in progress sees the new interruption and reads again
    watch.reading = true;
    watch.held ??= [];
    let attempt = 0;
    let lost = false;
    while (!this.closed && this.watches.get(notify) === watch) {
      const interruptions = watch.interruptions;
      watch.overflow = false;
      try {
        const reply = await this.readReply(watch.channel, watch.last, READ_BACK_MESSAGES, READ_BACK_BYTES);
        if (reply[1] === 1) lost = true;
        for (let i = 2; i < reply.length; i += 2) this.pass(watch, reply[i] as number, reply[i + 1] as string);
        // Done once a read finds nothing newer and no interruption or overflow happened since it was sent.
        if (reply.length === 2 && !watch.overflow && watch.interruptions === interruptions) break;
        attempt = 0;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, backoff(++attempt)).unref());
      }
    }
    const held = watch.held;
    watch.held = null;
    watch.reading = false;
    for (const [time, body] of held) this.pass(watch, time, body);
    if (lost) this.onGap(watch.channel);
  }
}

function firstWord(text: string): string {
  const space = text.indexOf(' ');
  return space === -1 ? text : text.slice(0, space);
}
