/**
 * The subscriptions of one thread: which Redis connection listens to which
 * channel's announcements, and re-establishing them after a reconnection.
 *
 * A single Redis: one subscriber connection, SUBSCRIBE. A Redis Cluster: one
 * connection per master, SSUBSCRIBE (sharded pub/sub) on the master owning the
 * channel's slot, since a sharded announcement only reaches subscribers of
 * that shard. Subscriptions are managed here rather than by the client's
 * auto-resubscribe, because the engine must know when they are in place
 * again: only then can it read what was announced while they were down
 * without leaving a gap (see SubscriberEvents.resubscribed).
 */
import { type Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { backoff, connectionOptions, FirstConnection, nodeOptions, type RedisTarget } from './connect.js';
import type { NodeRecovery, TrackedConnection } from './recovery.js';

export interface SubscriberEvents {
  announcement(notify: string, payload: string): void;
  /**
   * These subscriptions are being sent again after an interruption. From now
   * on announcements may arrive before `resubscribed` (in the same read as the
   * SUBSCRIBE's reply, ahead of the promise callbacks): they must be held, not
   * passed on ahead of what the interruption may have lost.
   */
  resubscribing(notifies: string[]): void;
  /** These subscriptions are in place again after an interruption: announcements may have been lost meanwhile. */
  resubscribed(notifies: string[]): void;
  /** A connection changed state (for the up/down gauge and the log). */
  connection(up: boolean, where: string, err?: Error): void;
}

/** One subscriber connection and the channels it listens to. */
class Link {
  readonly notifies = new Set<string>();
  private readonly firstReady: FirstConnection;
  private readonly recovering: TrackedConnection;
  constructor(
    readonly where: string,
    readonly conn: Redis,
    private readonly sharded: boolean,
    private readonly events: SubscriberEvents,
    timeoutMs: number,
    recovery: NodeRecovery,
    onMoved: () => void,
  ) {
    this.firstReady = new FirstConnection(conn, timeoutMs);
    this.recovering = recovery.track(conn);
    conn.on(sharded ? 'smessage' : 'message', (notify: string, payload: string) => events.announcement(notify, payload));
    // ioredis (6) emits 'moved' when the master dropped one of our shard
    // channels (the server-side SUNSUBSCRIBE of a slot that moved away) or
    // refused one (MOVED). Nothing else tells this node promptly: its command
    // client learns of a move only when one of its own commands meets a
    // MOVED, and a node whose gets on the channel are all parked sends none.
    if (sharded) conn.on('moved', onMoved);
    conn.on('ready', () => {
      events.connection(true, where);
      this.restore();
    });
    conn.on('error', (err: Error) => events.connection(false, where, err));
    conn.on('close', () => events.connection(false, where));
  }

  async add(notify: string): Promise<void> {
    if (this.firstReady.pending) await this.firstReady.pending;
    // Redis is back for another connection of this node: wait for this one rather than fail the get (recovery.ts).
    if (this.recovering.behind) await this.recovering.catchUp();
    await (this.sharded ? this.conn.ssubscribe(notify) : this.conn.subscribe(notify));
    this.notifies.add(notify);
  }

  remove(notify: string): void {
    if (!this.notifies.delete(notify)) return;
    if (this.conn.status !== 'ready') return;
    (this.sharded ? this.conn.sunsubscribe(notify) : this.conn.unsubscribe(notify)).catch(() => {});
  }

  /**
   * After a reconnection: subscribe to everything again, then report what is
   * in place. A sharded subscription can fail alone (its slot moved away
   * meanwhile: the slot map's next reading moves it); the others are
   * reported regardless, or nothing would be read back for them. If the
   * connection dropped again, its next 'ready' restores them all; if it did
   * not (the SUBSCRIBE timed out, say), nothing else would: try again.
   */
  private restore(attempt = 1): void {
    const notifies = [...this.notifies];
    if (notifies.length === 0) return;
    this.events.resubscribing(notifies);
    const settled = this.sharded
      ? Promise.allSettled(notifies.map((n) => this.conn.ssubscribe(n))).then((results) => notifies.filter((_, i) => results[i]!.status === 'fulfilled'))
      : this.conn.subscribe(...notifies).then(
          () => notifies,
          () => {
            if (this.conn.status === 'ready') setTimeout(() => this.restore(attempt + 1), backoff(attempt)).unref();
            return [];
          },
        );
    settled.then((restored) => {
      const current = restored.filter((n) => this.notifies.has(n));
      if (current.length > 0) this.events.resubscribed(current);
    });
  }
}

/** After a master dropped or refused a subscription: the slot map is read at once, then again after each of these delays. */
const REREAD_DELAYS_MS = [300, 1200];

export class Subscriber {
  private readonly links = new Map<string, Link>();
  /** Which link each subscribed channel is on. */
  private readonly linkOf = new Map<string, Link>();
  /** Channels whose slot moved to another master, being subscribed there. */
  private readonly moving = new Set<string>();
  /** The next re-read of the slot map after a dropped subscription, while some are due. */
  private rereadTimer: NodeJS.Timeout | undefined;
  private rereading = false;

  constructor(
    private readonly target: RedisTarget,
    private readonly commands: Redis | Cluster,
    private readonly timeoutMs: number,
    private readonly recovery: NodeRecovery,
    private readonly events: SubscriberEvents,
  ) {
    if (target.cluster) (commands as Cluster).on('refresh', () => this.rehome());
    // A single Redis: its subscriber connection is opened now, not by the first get.
    else this.linkFor('');
  }

  get count(): number {
    return this.linkOf.size;
  }

  async subscribe(notify: string): Promise<void> {
    const link = this.linkFor(notify);
    await link.add(notify);
    this.linkOf.set(notify, link);
  }

  unsubscribe(notify: string): void {
    this.moving.delete(notify);
    const link = this.linkOf.get(notify);
    if (!link) return;
    this.linkOf.delete(notify);
    link.remove(notify);
  }

  close(): void {
    clearTimeout(this.rereadTimer);
    this.rereading = false;
    this.moving.clear();
    for (const link of this.links.values()) link.conn.disconnect();
    this.links.clear();
    this.linkOf.clear();
  }

  private linkFor(notify: string): Link {
    const where = this.target.cluster ? this.nodeOf(notify) : this.target.urls[0]!;
    let link = this.links.get(where);
    if (link === undefined) {
      link = new Link(where, this.connect(where), this.target.cluster, this.events, this.timeoutMs, this.recovery, () => this.slotMoved());
      this.links.set(where, link);
    }
    return link;
  }

  private connect(where: string): Redis {
    if (!this.target.cluster) return new Redis(where, connectionOptions(this.timeoutMs));
    const [host, port] = splitNodeKey(where);
    return new Redis({ ...nodeOptions(this.target.urls[0]!, this.timeoutMs), host, port });
  }

  /** "host:port" of the master serving the slot of `notify`, as the command client last learned it. */
  private nodeOf(notify: string): string {
    const node = (this.commands as Cluster).slots[calculateSlot(notify)]?.[0];
    if (node === undefined) throw new Error('the Redis Cluster slot map is not known yet');
    return node;
  }

  /**
   * A master dropped a subscription (its slot moved away) or refused one: the
   * command client reads the slot map again, and its 'refresh' makes
   * rehome() follow the move. The master that answers may not have heard of
   * the move yet (the others learn it from whoever moves the slot, or by
   * gossip, a moment later), so the map is read again shortly after, twice;
   * the periodic refresh (connect.ts) is the last resort. One series at a
   * time: a slot holding many channels drops them all at once.
   */
  private slotMoved(step = 0): void {
    if (step === 0) {
      if (this.rereading) return;
      this.rereading = true;
    }
    (this.commands as Cluster).refreshSlotsCache();
    const delay = REREAD_DELAYS_MS[step];
    if (delay === undefined) {
      this.rereading = false;
      return;
    }
    this.rereadTimer = setTimeout(() => this.slotMoved(step + 1), delay);
    this.rereadTimer.unref();
  }

  /**
   * The Cluster's slot map changed: subscriptions whose slot moved to another
   * master follow it, and are reported as resubscribed once in place (what
   * was announced during the move is read back by the engine).
   */
  private rehome(): void {
    for (const [notify, link] of this.linkOf) {
      let where: string;
      try {
        where = this.nodeOf(notify);
      } catch {
        return;
      }
      if (where === link.where) continue;
      link.remove(notify);
      this.linkOf.delete(notify);
      this.moving.add(notify);
      this.move(notify, 1);
    }
  }

  /** Subscribes a channel at its new master, retrying with backoff until it succeeds or the channel is unsubscribed. */
  private move(notify: string, attempt: number): void {
    if (!this.moving.has(notify)) return;
    this.events.resubscribing([notify]);
    this.subscribe(notify).then(
      () => {
        if (!this.moving.delete(notify)) return;
        this.events.resubscribed([notify]);
      },
      (err: Error) => {
        this.events.connection(false, 'cluster', err);
        setTimeout(() => this.move(notify, attempt + 1), backoff(attempt)).unref();
      },
    );
  }
}

function splitNodeKey(key: string): [string, number] {
  const colon = key.lastIndexOf(':');
  return [key.slice(0, colon), Number(key.slice(colon + 1))];
}
