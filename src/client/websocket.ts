/**
 * The WebSocket transport: one connection per client, carrying its
 * subscriptions, puts and syncs as JSON frames. Requests carry an id the
 * answer repeats; deliveries name their channel. The connection opens with
 * the first request and closes once nothing has used it for a moment.
 *
 * A channel is subscribed once per connection however many subscriptions of
 * the client read it (the server's deliveries name the channel, not a
 * subscription): they share its position. After the connection closed (a
 * network failure, or the server closing a connection too slow to keep up
 * with 1008/1013, or going away with 1001), each channel subscribes again
 * from the last time it delivered, with backoff, on a new connection.
 */
import { CometClientError, errorFromRefusal, networkError } from './errors.js';
import { type Backoff, retrying } from './retry.js';
import { anySignal, watchdog } from './transport.js';

/** A request frame without its id and token. */
export type Frame = Record<string, string | number>;

/** The part of the WebSocket API used here, which the browser's, Node.js 22's and the ws package's all have. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  // The event as `object`: the browser's and the ws package's event types then both fit.
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: object) => void): void;
}
export type WebSocketConstructor = new (url: string) => SocketLike;

/** How long a connection stays open with no request and no subscription, so that a burst of puts reuses it. */
const IDLE_MS = 1000;
/** How long an opening handshake may take: neither ws nor browsers bound it, and every request waits on it. */
const CONNECT_MS = 10_000;

interface Connection {
  socket: SocketLike;
  closed: boolean;
}

interface Delivery {
  channel: string;
  time: number;
  messages: string[];
  missed?: boolean;
}

/** Where a channel's deliveries go: only those of the connection that answered its subscribe. */
interface Route {
  live: Connection | undefined;
  started(time: number): void;
  deliver(delivery: Delivery): void;
  lost(err: CometClientError): void;
}

interface Pending {
  connection: Connection;
  resolve(answer: Record<string, unknown>): void;
  reject(err: unknown): void;
}

export type RequestOptions = { signal?: AbortSignal; deadlineMs: number };

export interface SocketTransport {
  /** One request frame; resolves with its answer, rejects with a CometClientError or the signal's reason. */
  request(frame: Frame, options: RequestOptions, token?: string): Promise<unknown>;
  /** Sends `channel`'s deliveries to `route` once a subscribe for it is answered, until the returned function is called. */
  route(channel: string, route: Route): () => void;
}

export function socketTransport(url: string, Socket: WebSocketConstructor | undefined): SocketTransport {
  const target = new URL(url);
  target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:';
  const pending = new Map<number, Pending>();
  const routes = new Map<string, Route>();
  let nextId = 1;
  /** The connection open or opening; `opened` once it is. */
  let current: Promise<Connection> | undefined;
  let opened: Connection | undefined;
  let idle: ReturnType<typeof setTimeout> | undefined;

  const connect = (): Promise<Connection> => {
    if (current === undefined) {
      const opening = open();
      current = opening;
      opening.catch(() => {
        if (current === opening) current = undefined;
      });
    }
    return current;
  };

  const open = async (): Promise<Connection> => {
    const Constructor = Socket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? (await loadWs());
    return new Promise<Connection>((resolve, reject) => {
      const connection: Connection = { socket: new Constructor(target.href), closed: false };
      const socket = connection.socket;
      let wasOpen = false;
      const giveUp = setTimeout(() => {
        connection.closed = true;
        reject(networkError(`the WebSocket did not connect within ${CONNECT_MS} ms`, 'COMET_CLIENT_TIMEOUT'));
        socket.close();
      }, CONNECT_MS);
      socket.addEventListener('open', () => {
        clearTimeout(giveUp);
        if (connection.closed) return;
        wasOpen = true;
        opened = connection;
        resolve(connection);
      });
      socket.addEventListener('message', (event) => dispatch(connection, (event as { data: unknown }).data));
      // An error is always followed by a close, which says all there is to say.
      socket.addEventListener('error', () => undefined);
      socket.addEventListener('close', (event) => {
        const { code, reason } = event as { code?: number; reason?: string };
        const how = code ? ` (code ${code}${reason ? `: ${reason}` : ''})` : '';
        if (!wasOpen) {
          clearTimeout(giveUp);
          connection.closed = true;
          return reject(networkError(`the WebSocket could not connect${how}`));
        }
        lose(connection, networkError(`the WebSocket closed${how}`));
      });
    });
  };

  /**
   * A connection's end, for everything that used it: at its close event, or
   * as soon as it is taken for dead (a close handshake on a dead connection
   * waits for a timeout: its users must not).
   */
  const lose = (connection: Connection, err: CometClientError): void => {
    if (connection.closed) return;
    connection.closed = true;
    // Only if it is still the client's connection: an idle one closed on purpose may already have a successor.
    if (opened === connection) {
      opened = undefined;
      current = undefined;
    }
    for (const [id, entry] of pending) {
      if (entry.connection !== connection) continue;
      pending.delete(id);
      entry.reject(err);
    }
    for (const route of routes.values()) {
      if (route.live !== connection) continue;
      route.live = undefined;
      route.lost(err);
    }
  };

  const dispatch = (connection: Connection, data: unknown): void => {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(String(data)) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof frame.id === 'number') {
      const entry = pending.get(frame.id);
      if (entry === undefined) return;
      pending.delete(frame.id);
      if (typeof frame.error === 'string' || typeof frame.code === 'string') entry.reject(errorFromRefusal(frame));
      else entry.resolve(frame);
      becameIdle();
    } else if (typeof frame.channel === 'string' && Array.isArray(frame.messages)) {
      const route = routes.get(frame.channel);
      if (route !== undefined && route.live === connection) route.deliver(frame as unknown as Delivery);
    }
  };

  const becameIdle = (): void => {
    if (pending.size > 0 || routes.size > 0 || current === undefined || idle !== undefined) return;
    const last = current;
    idle = setTimeout(() => {
      idle = undefined;
      if (pending.size > 0 || routes.size > 0 || current !== last) return;
      current = undefined;
      opened = undefined;
      void last.then(
        (c) => {
          // Nothing uses it, so nothing is told; its close event then finds it closed already.
          c.closed = true;
          c.socket.close();
        },
        () => undefined,
      );
    }, IDLE_MS);
    // In Node.js an idle connection must not keep the process alive (browsers' timers are numbers).
    (idle as { unref?: () => void }).unref?.();
  };

  const busy = (): void => {
    clearTimeout(idle);
    idle = undefined;
  };

  return {
    async request(frame, { signal, deadlineMs }, token) {
      busy();
      const deadline = watchdog(deadlineMs, () => networkError(`no answer within ${deadlineMs} ms`, 'COMET_CLIENT_TIMEOUT'));
      const [both, release] = signal ? anySignal([signal, deadline.signal]) : [deadline.signal, () => undefined];
      const id = nextId++;
      try {
        const connection = await Promise.race([connect(), rejectOnAbort(both)]);
        return await new Promise<Record<string, unknown>>((resolve, reject) => {
          if (connection.closed) return reject(networkError('the WebSocket closed'));
          const subscribed = frame.method === 'subscribe' ? routes.get(String(frame.channel)) : undefined;
          const answered = (answer: Record<string, unknown>): void => {
            // Here, not after an await: the channel's first delivery may be in the same read as this answer.
            if (subscribed !== undefined && routes.get(String(frame.channel)) === subscribed) {
              subscribed.live = connection;
              subscribed.started(answer.time as number);
            }
            resolve(answer);
          };
          pending.set(id, { connection, resolve: answered, reject });
          both.addEventListener('abort', () => {
            if (!pending.delete(id)) return;
            reject(both.reason);
            // No answer in time: the connection is taken as dead, so that every user of it starts again on a new one.
            if (!deadline.signal.aborted) return;
            lose(connection, networkError(`no answer within ${deadlineMs} ms: the WebSocket is taken as dead`, 'COMET_CLIENT_TIMEOUT'));
            connection.socket.close();
          });
          connection.socket.send(JSON.stringify(token === undefined ? { id, ...frame } : { id, ...frame, token }));
        });
      } finally {
        deadline.clear();
        release();
        becameIdle();
      }
    },
    route(channel, route) {
      busy();
      routes.set(channel, route);
      return () => {
        if (routes.get(channel) === route) routes.delete(channel);
        becameIdle();
      };
    },
  };
}

/**
 * A channel's subscriptions over the client's connection: the first one
 * subscribes the channel (from its `time`, or from now), later ones join it
 * where it is; the last one to stop unsubscribes it. Resolves when `signal`
 * fires, rejects with a refusal (which ends every subscription of the channel).
 */
export function socketSubscriptions(
  transport: SocketTransport,
  send: (frame: Frame, options: RequestOptions) => Promise<unknown>,
  backoff: Backoff,
  deadlineMs: number,
): (channel: string, time: number | undefined, subscriber: Subscriber) => Promise<void> {
  const groups = new Map<string, Group>();

  const start = (channel: string, time: number | undefined, members: Group): void => {
    const controller = new AbortController();
    const signal = controller.signal;
    let cursor = time;
    let lost: (err: CometClientError) => void = () => undefined;
    const route: Route = {
      live: undefined,
      started(at) {
        cursor = at;
      },
      deliver({ time: at, messages, missed }) {
        cursor = at;
        const info = { time: at, missed: missed === true };
        for (const member of members) member.onMessages(messages, info);
      },
      lost: (err) => lost(err),
    };
    const unroute = transport.route(channel, route);
    const run = retrying(
      async (progress) => {
        // Made before the subscribe is sent: the connection may close as soon as it is answered.
        const dropped = new Promise<never>((_, reject) => {
          lost = reject;
        });
        dropped.catch(() => undefined);
        await send(cursor === undefined ? { method: 'subscribe', channel } : { method: 'subscribe', channel, time: cursor }, { signal, deadlineMs });
        progress();
        await untilAborted(signal, dropped);
      },
      signal,
      backoff,
      (err) => {
        for (const member of members) member.onError?.(err);
      },
    );
    members.stopped = () => {
      if (groups.get(channel) === members) groups.delete(channel);
      controller.abort();
      const live = route.live;
      unroute();
      // Fire and forget: the channel's deliveries are already ignored, and a failure is the connection's end, which unsubscribes too.
      if (live !== undefined) send({ method: 'unsubscribe', channel }, { deadlineMs }).catch(() => undefined);
    };
    run.then(
      () => undefined,
      (err: unknown) => {
        if (groups.get(channel) === members) groups.delete(channel);
        unroute();
        for (const member of members) member.refused(err);
      },
    );
  };

  return (channel, time, subscriber) =>
    new Promise<void>((resolve, reject) => {
      const member: Member = { ...subscriber, refused: reject };
      let members = groups.get(channel);
      if (members === undefined) {
        members = new Set() as Group;
        groups.set(channel, members);
        start(channel, time, members);
      }
      const group = members;
      group.add(member);
      member.signal.addEventListener(
        'abort',
        () => {
          group.delete(member);
          if (group.size === 0) group.stopped();
          resolve();
        },
        { once: true },
      );
    });
}

export interface Subscriber {
  signal: AbortSignal;
  /** As subscribe's: `info` is a BatchInfo. */
  onMessages(messages: string[], info: { time: number; missed: boolean }): void;
  onError?: (err: CometClientError) => void;
}

interface Member extends Subscriber {
  refused(err: unknown): void;
}

type Group = Set<Member> & { stopped(): void };

/** Resolves when the signal fires, rejects when `failed` does; the listener goes with it. */
function untilAborted(signal: AbortSignal, failed: Promise<never>): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve();
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    failed.catch((err: unknown) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/**
 * The ws package, for Node.js without a global WebSocket (20). Its name is in
 * a variable so that bundlers building for browsers, which have WebSocket and
 * never get here, do not try to include it.
 */
async function loadWs(): Promise<WebSocketConstructor> {
  const name = 'ws';
  const ws = (await import(name)) as { WebSocket: WebSocketConstructor };
  return ws.WebSocket;
}
