/**
 * One worker thread's parts, wired together: the channel store and the
 * owner of this thread's shard of channels, the router that reaches every
 * owner, the wait room of this thread's gets, and the HTTP front end. The
 * mesh's incoming messages go to whichever part they are addressed to.
 *
 *   HttpFront ──> WaitRoom ──> Router ──> Owner (this thread's, or another's through the mesh) ──> Engine
 */
import type { MessagePort } from 'node:worker_threads';
import { AuthGate } from '../auth/gate.js';
import type { AuthMaterial } from '../auth/keys.js';
import { type Config, connectionBufferLimit } from '../config/options.js';
import type { RedisTarget } from '../engine/redis/connect.js';
import { HttpFront } from '../http/front.js';
import { ClientLimiter, type LimitsMaterial } from '../limits/limiter.js';
import type { Logger } from '../log.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import type { CometError } from '../protocol/errors.js';
import { Responder } from '../protocol/respond.js';
import { Mesh } from '../threads/mesh.js';
import { decode } from '../threads/messages.js';
import { Owner } from '../threads/owner.js';
import { Router } from '../threads/router.js';
import { WaitRoom } from '../waiters/wait-room.js';
import { createEngine } from './engine-factory.js';
import { startHousekeeping } from './housekeeping.js';

export interface ThreadSite {
  config: Config;
  index: number;
  ports: readonly (MessagePort | null)[];
  startTime: number;
  metrics: ThreadMetrics;
  metricsBuffer: SharedArrayBuffer;
  redis?: RedisTarget;
  auth: AuthMaterial;
  limits?: LimitsMaterial;
  log: Logger;
}

export class CometThread {
  private readonly mesh: Mesh;
  private readonly router: Router;
  private readonly waitRoom: WaitRoom;
  private readonly front: HttpFront;
  private readonly closeEngine: () => Promise<void>;
  private readonly stopHousekeeping: () => void;

  constructor(site: ThreadSite) {
    const { config, metrics } = site;
    const engine = createEngine(site);
    this.closeEngine = () => engine.close();
    this.mesh = new Mesh(site.index, site.ports);
    this.router = new Router(this.mesh);
    const owner = new Owner(engine, this.mesh, this.router, { maxMessages: config.maxAnswerMessages, maxBytes: config.maxAnswerBytes }, metrics);
    this.router.connect(owner, engine);
    const responder = new Responder(config.corsOrigin, (code) => metrics.error(code), connectionBufferLimit(config), {
      waiting: (answers, bytes) => {
        metrics.add(SLOT.unreadAnswers, answers);
        metrics.add(SLOT.unreadBytes, bytes);
      },
      closed: () => metrics.add(SLOT.slowReadersClosed),
    });
    this.waitRoom = new WaitRoom(this.router, responder, metrics, config);
    const inboxes = { owner, replies: this.router, news: this.waitRoom };
    this.mesh.onBatch((batch, from) => {
      decode(batch, from, inboxes);
      this.waitRoom.deliver();
    });
    const gate = AuthGate.create(config, site.auth, { verified: () => metrics.add(SLOT.tokensVerified), remembered: () => metrics.add(SLOT.tokensRemembered) });
    const limiter = site.limits && new ClientLimiter(site.limits, config, { untracked: () => metrics.add(SLOT.limitUntracked) });
    this.front = new HttpFront({
      config,
      gate,
      limiter,
      router: this.router,
      waitRoom: this.waitRoom,
      responder,
      metrics,
      metricsBuffer: site.metricsBuffer,
      log: site.log,
    });
    this.stopHousekeeping = startHousekeeping(engine, metrics);
  }

  listen(host: string, port: number): Promise<number> {
    return this.front.listen(host, port);
  }

  /** Stops or starts accepting connections on the public port (the accept gate, server/accept-gate.ts). */
  accepting(on: boolean): void {
    if (on) this.front.resumeAccepting();
    else this.front.pauseAccepting();
  }

  /** Graceful stop: no new connections, requests refused, waiting gets answered now. */
  drain(): void {
    this.front.stopListening();
    this.waitRoom.drain();
  }

  /** Whether requests of this thread still wait for an owner's reply. */
  get awaitingOwners(): boolean {
    return this.router.busy;
  }

  /** Refuses every request still waiting for an owner that will never reply. */
  abandonOwners(err: CometError): void {
    this.router.failAll(err);
  }

  /**
   * Closes every socket of this thread. A worker must do so before its thread
   * ends: uWS keeps native handles on the thread's event loop, and Node
   * aborts the whole process when a thread's loop closes with handles open.
   */
  close(): void {
    this.stopHousekeeping();
    this.waitRoom.stop();
    this.front.closeAll();
    this.mesh.close();
    void this.closeEngine();
  }
}
