/**
 * A node recovers from a Redis outage as one.
 *
 * Why: every connection (each thread's command connection and subscriber
 * connections) reconnects on its own backoff (connect.ts: up to 2 s between
 * attempts), so once Redis was back one thread served while another still
 * answered 503 COMET_ERR_STORE_UNAVAILABLE for up to ~2 s, and a client whose
 * put a node acknowledged could see its next request to that node fail
 * (issue 13 item 7).
 *
 * How: the node's threads share one Int32, the number of times one of their
 * connections became ready (in the metrics buffer's header, see
 * metrics/counters.ts). A connection that becomes ready adds one and wakes
 * every thread (Atomics.notify). A thread with a connection down waits on the
 * count (Atomics.waitAsync), and when it moves, reconnects that connection at
 * once instead of at the end of its backoff. And a request that finds its
 * connection down after the count moved (Redis answered some connection of
 * this node since this one was lost) does not fail at once: it reconnects the
 * connection and waits for it, at most the command timeout. The count is
 * written in the 'ready' handler, before anything can be sent on that
 * connection, so a request that follows any 200 of this node sees it, however
 * the kernel spread the connections over the threads: no window is left.
 *
 * While Redis is down, nothing changes: the count does not move, connections
 * keep their backoff, and requests fail at once (503), as before.
 */
import type { EventEmitter } from 'node:events';

/** ES2024's Atomics.waitAsync (in Node since 16), missing from the ES2022 library this project compiles against. */
type WaitAsync = (
  cell: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** What is used of an ioredis connection (a Redis or a Cluster client). */
interface Connection extends EventEmitter {
  status: string;
  connect(): Promise<void>;
}

/** A cell of one's own, for an engine that runs alone (tests): a node of one thread. */
export function ownRecoveryCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** This thread's side of the node's recovery: the connections it follows, and its wait on the shared count. */
export class NodeRecovery {
  private readonly connections = new Set<TrackedConnection>();
  private waiting = false;
  private closed = false;

  /** `cell`: one Int32 in a SharedArrayBuffer, the same for every thread of the node. */
  constructor(
    private readonly cell: Int32Array,
    private readonly timeoutMs: number,
  ) {}

  /** Follows a connection from now on (before its first 'ready'). */
  track(conn: Connection): TrackedConnection {
    const tracked = new TrackedConnection(conn, this, this.timeoutMs);
    this.connections.add(tracked);
    return tracked;
  }

  close(): void {
    this.closed = true;
    this.connections.clear();
  }

  get readyCount(): number {
    return Atomics.load(this.cell, 0);
  }

  /** A connection of this thread became ready: every thread's lost connections may reconnect now, this one's included. */
  ready(): void {
    Atomics.add(this.cell, 0, 1);
    Atomics.notify(this.cell, 0);
  }

  /** A connection of this thread was lost: wake up when another connection of the node becomes ready. One wait per thread. */
  lost(): void {
    if (this.waiting || this.closed) return;
    this.waiting = true;
    const wait = waitAsync(this.cell, 0, this.readyCount);
    if (wait.async) void wait.value.then(this.woken);
    else queueMicrotask(this.woken);
  }

  private readonly woken = (): void => {
    this.waiting = false;
    if (this.closed) return;
    let down = false;
    for (const conn of this.connections) {
      if (conn.behind) conn.reconnectNow();
      if (conn.lostAt !== undefined) down = true;
    }
    // A reconnection tried now may fail too (Redis went away again): its 'close' waits again, but so does this, for a connection still connecting.
    if (down) this.lost();
  };
}

export class TrackedConnection {
  /** The node's ready count when this connection was lost; undefined while it is up (and before it was lost). */
  lostAt: number | undefined;
  /** While requests wait for this connection to come back: settles on 'ready', 'close' or the timeout. */
  private back: Promise<void> | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly node: NodeRecovery,
    private readonly timeoutMs: number,
  ) {
    conn.on('ready', () => {
      this.lostAt = undefined;
      node.ready();
    });
    conn.on('close', () => {
      this.lostAt ??= node.readyCount;
      node.lost();
    });
  }

  /**
   * Whether this connection is down although another connection of the node
   * became ready since it was lost: Redis is back, and what would be sent on
   * this connection should wait for it (catchUp) rather than fail. One
   * property read while the connection is up.
   */
  get behind(): boolean {
    return this.lostAt !== undefined && this.node.readyCount !== this.lostAt;
  }

  /** Reconnects now if the connection is waiting out its backoff; resolves once it is ready, or failed again, or after the timeout. */
  catchUp(): Promise<void> {
    this.reconnectNow();
    if (this.conn.status === 'end') return Promise.resolve();
    this.back ??= new Promise<void>((resolve) => {
      const settle = (): void => {
        clearTimeout(timer);
        this.conn.off('ready', settle);
        this.conn.off('close', settle);
        this.back = undefined;
        resolve();
      };
      const timer = setTimeout(settle, this.timeoutMs);
      this.conn.once('ready', settle);
      this.conn.once('close', settle);
    });
    return this.back;
  }

  /**
   * Cuts the backoff short. ioredis offers no call for it: its pending attempt
   * is a timer in a private field (reconnectTimeout, on a Redis and on a
   * Cluster client alike), cleared here so that it does not start a second
   * attempt later; connect() then starts one now. test/redis-engine.test.ts
   * pins this against the installed ioredis.
   */
  reconnectNow(): void {
    if (this.conn.status !== 'reconnecting') return;
    const pending = this.conn as unknown as { reconnectTimeout: NodeJS.Timeout | null };
    clearTimeout(pending.reconnectTimeout ?? undefined);
    pending.reconnectTimeout = null;
    this.conn.connect().catch(() => {});
  }
}
