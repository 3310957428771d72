/**
 * A worker thread's messaging parts (Mesh, Router, Owner) built inside the
 * test's own thread and wired as src/server/thread.ts wires them, over real
 * MessagePorts; and a store at the edge, a MemoryEngine that a test can make
 * answer late, fail, or stop reporting news, for the paths a MemoryEngine
 * never takes by itself.
 */
import type { MessagePort } from 'node:worker_threads';
import {
  type Engine,
  type EngineStats,
  type Eventually,
  type GapListener,
  type MessageListener,
  type ReadLimits,
  type ReadResult,
} from '../../src/engine/engine.js';
import { MemoryEngine } from '../../src/engine/memory-engine.js';
import { createMetricsBuffer, ThreadMetrics } from '../../src/metrics/counters.js';
import { Mesh } from '../../src/threads/mesh.js';
import { decode, type NewsInbox } from '../../src/threads/messages.js';
import { Owner } from '../../src/threads/owner.js';
import { Router } from '../../src/threads/router.js';

/** Start time 0: every cursor a test uses is "known", so `missed` appears only where a test makes it. */
export function memoryEngine(): MemoryEngine {
  return new MemoryEngine({ bufferSize: 100, bufferBytes: 1 << 20, channelTtlMs: 60_000, memoryBudget: 1 << 26, startTime: 0 });
}

type Operation = 'append' | 'currentTime' | 'read' | 'watch';

export class TestEngine implements Engine {
  readonly inner = memoryEngine();
  /** Every result as a promise, as a store across the network gives them. */
  slow = false;
  /** Results are held back until release(): the order of replies and news is the test's to choose. */
  holding = false;
  private readonly held: Array<() => void> = [];
  /** Messages are stored but not reported to the listener (a subscription that dropped them). */
  deaf = false;
  private readonly failures = new Map<Operation, unknown>();
  private onGap: GapListener = () => {};

  get appendsAtOnce(): boolean {
    return !this.slow && !this.holding;
  }

  /** The next call of `operation` rejects with `reason` (a StoreFailure, or anything a buggy store might throw). */
  failNext(operation: Operation, reason: unknown): void {
    this.failures.set(operation, reason);
  }

  /** Settles every held result, in the order the operations were called. */
  release(): void {
    for (const settle of this.held.splice(0)) settle();
  }

  /** What the store does when it knows that news of `channel` was lost. */
  reportGap(channel: string): void {
    this.onGap(channel);
  }

  append(channel: string, body: string): Eventually<number> {
    return this.settle('append', () => this.inner.append(channel, body));
  }

  currentTime(channel: string): Eventually<number> {
    return this.settle('currentTime', () => this.inner.currentTime(channel));
  }

  read(channel: string, since: number, limits: ReadLimits, times?: number[]): Eventually<ReadResult> {
    return this.settle('read', () => this.inner.read(channel, since, limits, times));
  }

  watch(channel: string): Eventually<void> {
    return this.settle('watch', () => this.inner.watch(channel));
  }

  unwatch(channel: string): void {
    this.inner.unwatch(channel);
  }

  setListener(onMessage: MessageListener, onGap?: GapListener): void {
    this.inner.setListener((channel, time, body) => {
      if (!this.deaf) onMessage(channel, time, body);
    });
    if (onGap) this.onGap = onGap;
  }

  sweep(nowMs?: number): void {
    this.inner.sweep(nowMs);
  }

  stats(): EngineStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private settle<T>(operation: Operation, run: () => T): Eventually<T> {
    if (this.failures.has(operation)) {
      const reason = this.failures.get(operation);
      this.failures.delete(operation);
      return Promise.reject(reason);
    }
    const result = run();
    if (this.holding) return new Promise((resolve) => this.held.push(() => resolve(result)));
    return this.slow ? Promise.resolve(result) : result;
  }
}

export interface ThreadParts {
  mesh: Mesh;
  router: Router;
  owner: Owner;
  metrics: ThreadMetrics;
  metricsBuffer: SharedArrayBuffer;
}

/**
 * Thread `self` of `ports.length`, reading at most `maxMessages` per answer.
 * Incoming batches go nowhere until `receive` says where news goes.
 */
export function threadParts(self: number, ports: readonly (MessagePort | null)[], engine: Engine, maxMessages = 100): ThreadParts {
  const mesh = new Mesh(self, ports);
  const router = new Router(mesh);
  const metricsBuffer = createMetricsBuffer(ports.length);
  const metrics = new ThreadMetrics(metricsBuffer, self);
  const owner = new Owner(engine, mesh, router, { maxMessages, maxBytes: 1 << 20 }, metrics);
  router.connect(owner, engine);
  return { mesh, router, owner, metrics, metricsBuffer };
}

/** Decodes every incoming batch to this thread's owner, router and `news`, then runs `afterBatch` (the wait room's delivery). */
export function receive(parts: ThreadParts, news: NewsInbox, afterBatch: () => void = () => {}): void {
  const inboxes = { owner: parts.owner, replies: parts.router, news };
  parts.mesh.onBatch((batch, from) => {
    decode(batch, from, inboxes);
    afterBatch();
  });
}
