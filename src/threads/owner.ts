/**
 * The owner side of this thread's shard: executes operations on the channels
 * this thread owns, whichever thread they came from, and tells every thread
 * with waiting gets on a channel about each new message.
 *
 * Cross-thread cost of a publish: one OP_NEWS per watching thread, never per
 * waiting get. A thread registers as a watcher with every get that may wait
 * (before the read, so no message can fall between the read and the
 * registration) and leaves with OP_UNWATCH once it has had no waiting get on
 * the channel for a while (see waiters/wait-room.ts).
 */
import { type Engine, type Eventually, type ReadLimits, type ReadResult, StoreFailure } from '../engine/engine.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { type CometError, refusals } from '../protocol/errors.js';
import type { Mesh } from './mesh.js';
import type { OwnerInbox, ReplyInbox } from './messages.js';

export class Owner implements OwnerInbox {
  /** Threads with waiting gets, per watched channel, and the engine's readiness to report news. */
  private readonly watches = new Map<string, { threads: number[]; ready: Eventually<void> }>();
  /** Where replies go, by requesting thread: this thread's own requester directly, the others through the mesh. */
  private readonly replies: readonly ReplyInbox[];

  constructor(
    private readonly engine: Engine,
    private readonly mesh: Mesh,
    local: ReplyInbox,
    private readonly limits: ReadLimits,
    private readonly metrics: ThreadMetrics,
  ) {
    this.replies = mesh.to.map((encoder, thread) => (thread === mesh.self ? local : encoder));
    engine.setListener(this.announce, this.announceGap);
  }

  put(from: number, requestId: number, channel: string, body: string): void {
    this.replyTime(from, requestId, this.engine.append(channel, body));
  }

  sync(from: number, requestId: number, channel: string): void {
    this.replyTime(from, requestId, this.engine.currentTime(channel));
  }

  /**
   * Answers at once when there is something to say (messages, `missed`, or a
   * get that will not wait); otherwise tells the thread to park the get with
   * its cursor, the news of any later message being on its way.
   */
  get(from: number, requestId: number, channel: string, since: number, wait: boolean): void {
    const ready = wait ? this.addWatcher(channel, from) : undefined;
    if (ready instanceof Promise) {
      ready.then(
        () => this.read(from, requestId, channel, since, wait),
        (err: unknown) => this.fail(from, requestId, err),
      );
    } else {
      this.read(from, requestId, channel, since, wait);
    }
  }

  /** As a get that may wait, its answer giving each message's time. */
  stream(from: number, requestId: number, channel: string, since: number): void {
    const ready = this.addWatcher(channel, from);
    if (ready instanceof Promise) {
      ready.then(
        () => this.read(from, requestId, channel, since, true, []),
        (err: unknown) => this.fail(from, requestId, err),
      );
    } else {
      this.read(from, requestId, channel, since, true, []);
    }
  }

  unwatch(from: number, channel: string): void {
    const watch = this.watches.get(channel);
    if (!watch) return;
    const at = watch.threads.indexOf(from);
    if (at === -1) return;
    watch.threads.splice(at, 1);
    if (watch.threads.length === 0) {
      this.watches.delete(channel);
      this.engine.unwatch(channel);
      this.metrics.set(SLOT.watchedChannels, this.watches.size);
    }
  }

  /** `times`: a stream's read, whose answer gives each message's time. */
  private read(from: number, requestId: number, channel: string, since: number, wait: boolean, times?: number[]): void {
    const result = this.engine.read(channel, since, this.limits, times);
    if (result instanceof Promise) {
      result.then(
        (r) => this.answer(from, requestId, r, wait, times),
        (err: unknown) => this.fail(from, requestId, err),
      );
    } else {
      this.answer(from, requestId, result, wait, times);
    }
  }

  private replyTime(from: number, requestId: number, time: Eventually<number>): void {
    if (typeof time === 'number') this.replies[from]!.timed(requestId, time);
    else
      time.then(
        (t) => this.replies[from]!.timed(requestId, t),
        (err: unknown) => this.fail(from, requestId, err),
      );
  }

  private answer(from: number, requestId: number, result: ReadResult, wait: boolean, times?: number[]): void {
    if (result.count > 0 || result.missed || !wait) {
      this.replies[from]!.answered(requestId, result.time, result.json, result.count, result.missed, wait, times);
    } else {
      this.replies[from]!.parked(requestId, result.time);
    }
  }

  /** Registers `thread` before any read, so that no message can fall between the read and the registration. */
  private addWatcher(channel: string, thread: number): Eventually<void> {
    let watch = this.watches.get(channel);
    if (!watch) {
      const ready = this.engine.watch(channel);
      const created = { threads: [] as number[], ready };
      watch = created;
      this.watches.set(channel, watch);
      this.metrics.set(SLOT.watchedChannels, this.watches.size);
      // A watch that failed (store unreachable) is forgotten, so that the next get tries again.
      if (ready instanceof Promise) {
        ready.catch(() => {
          if (this.watches.get(channel) !== created) return;
          this.watches.delete(channel);
          this.metrics.set(SLOT.watchedChannels, this.watches.size);
        });
      }
    }
    if (!watch.threads.includes(thread)) watch.threads.push(thread);
    return watch.ready;
  }

  private readonly announce = (channel: string, time: number, body: string): void => {
    const watch = this.watches.get(channel);
    if (!watch) return;
    for (const thread of watch.threads) this.mesh.to[thread]!.news(channel, time, body);
    this.metrics.add(SLOT.newsSent, watch.threads.length);
  };

  private readonly announceGap = (channel: string): void => {
    const watch = this.watches.get(channel);
    if (!watch) return;
    for (const thread of watch.threads) this.mesh.to[thread]!.gap(channel);
  };

  private fail(to: number, requestId: number, err: unknown): void {
    this.replies[to]!.failed(requestId, refusalFor(err));
  }
}

/** What the requester is told when the store failed; anything but a StoreFailure is a bug of ours. */
function refusalFor(err: unknown): CometError {
  if (!(err instanceof StoreFailure)) return refusals.storeFailed(err instanceof Error ? err.message : String(err));
  switch (err.kind) {
    case 'unavailable':
      return refusals.storeUnavailable(err.message);
    case 'refused':
      return refusals.storeRefused(err.message);
    case 'closed':
      return refusals.shuttingDown();
  }
}
