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
import type { Engine, Eventually, ReadLimits, ReadResult } from '../engine/engine.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { CometError, type ErrorCode } from '../protocol/errors.js';
import type { Mesh } from './mesh.js';
import { OP_ANSWER, OP_FAIL, OP_GAP, OP_NEWS, OP_PARKED, OP_TIME } from './messages.js';

/** The requesting side of this same thread (threads/router.ts): replies to it skip the mesh. */
export interface LocalRequester {
  settle(requestId: number, op: number, time: number, bodies?: string[], missed?: number, watching?: number): void;
  fail(requestId: number, code: ErrorCode, message: string): void;
}

export class Owner {
  /** Threads with waiting gets, per watched channel, and the engine's readiness to report news. */
  private readonly watches = new Map<string, { threads: number[]; ready: Eventually<void> }>();

  constructor(
    private readonly engine: Engine,
    private readonly mesh: Mesh,
    private readonly local: LocalRequester,
    private readonly limits: ReadLimits,
    private readonly metrics: ThreadMetrics,
  ) {
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
      ready.then(() => this.read(from, requestId, channel, since, wait), (err: Error) => this.fail(from, requestId, err));
    } else {
      this.read(from, requestId, channel, since, wait);
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
    }
  }

  private read(from: number, requestId: number, channel: string, since: number, wait: boolean): void {
    const result = this.engine.read(channel, since, this.limits);
    if (result instanceof Promise) {
      result.then((r) => this.answer(from, requestId, r, wait), (err: Error) => this.fail(from, requestId, err));
    } else {
      this.answer(from, requestId, result, wait);
    }
  }

  private replyTime(from: number, requestId: number, time: Eventually<number>): void {
    if (typeof time === 'number') this.reply(from, OP_TIME, requestId, time);
    else time.then((t) => this.reply(from, OP_TIME, requestId, t), (err: Error) => this.fail(from, requestId, err));
  }

  private answer(from: number, requestId: number, result: ReadResult, wait: boolean): void {
    if (result.bodies.length > 0 || result.missed || !wait) {
      this.reply(from, OP_ANSWER, requestId, result.time, result.bodies, result.missed ? 1 : 0, wait ? 1 : 0);
    } else {
      this.reply(from, OP_PARKED, requestId, result.time);
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
      // A watch that failed (store unreachable) is forgotten, so that the next get tries again.
      if (ready instanceof Promise) {
        ready.catch(() => {
          if (this.watches.get(channel) === created) this.watches.delete(channel);
        });
      }
    }
    if (!watch.threads.includes(thread)) watch.threads.push(thread);
    return watch.ready;
  }

  private readonly announce = (channel: string, time: number, body: string): void => {
    const watch = this.watches.get(channel);
    if (!watch) return;
    for (const thread of watch.threads) this.mesh.send(thread, OP_NEWS, channel, time, body);
    this.metrics.add(SLOT.newsSent, watch.threads.length);
  };

  private readonly announceGap = (channel: string): void => {
    const watch = this.watches.get(channel);
    if (!watch) return;
    for (const thread of watch.threads) this.mesh.send(thread, OP_GAP, channel);
  };

  private reply(to: number, op: number, requestId: number, time: number, bodies?: string[], missed?: number, watching?: number): void {
    if (to === this.mesh.self) this.local.settle(requestId, op, time, bodies, missed, watching);
    else if (bodies === undefined) this.mesh.send(to, op, requestId, time);
    else this.mesh.send(to, op, requestId, time, bodies, missed!, watching!);
  }

  /** A store failure travels as its error code and message; anything else is an internal error. */
  private fail(to: number, requestId: number, err: Error): void {
    const code: ErrorCode = err instanceof CometError ? err.code : 'COMET_ERR_INTERNAL';
    const message = err instanceof CometError ? err.message : `the channel store failed: ${err.message}`;
    if (to === this.mesh.self) this.local.fail(requestId, code, message);
    else this.mesh.send(to, OP_FAIL, requestId, code, message);
  }
}
