/**
 * The protocol over a WebSocket on --path (uWS's own WebSocket support):
 * JSON text frames both ways, any number of channel subscriptions per
 * connection, and puts and syncs answered by request id
 * (protocol/streams.ts has the formats).
 *
 * Each subscription is a stream of the wait room (waiters/waiter.ts), like
 * an event stream; the connection is the sink of all of its streams. A
 * frame is checked as the same request over HTTP would be (parameters, the
 * token when --auth is on, --rate-limit per frame), and a refused frame
 * changes nothing and leaves the connection open.
 *
 * A slow consumer: uWS buffers what the socket does not take; past
 * --max-connection-buffer buffered the connection is closed with 1013, and
 * the client resubscribes from its last times. uWS pings an idle connection
 * and closes one that does not answer.
 */
import { Buffer } from 'node:buffer';
import type { AuthGate } from '../auth/gate.js';
import { bearerToken } from '../auth/gate.js';
import type { AuthMethod } from '../auth/grant.js';
import type { AddressWords } from '../limits/address.js';
import type { ClientLimiter } from '../limits/limiter.js';
import type { Logger } from '../log.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { CorsPolicy } from '../protocol/cors.js';
import { type CometError, refusals } from '../protocol/errors.js';
import { scriptSafeJson } from '../protocol/jsonp.js';
import type { Responder } from '../protocol/respond.js';
import { FrameRefusal, type FrameRequest, parseFrame, wsAnswer, wsRefusal } from '../protocol/streams.js';
import type { PutHandler, Router } from '../threads/router.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from '../uws.js';
import type { Delivery } from '../waiters/delivery.js';
import { Stream, type StreamSink } from '../waiters/waiter.js';
import type { WaitRoom } from '../waiters/wait-room.js';

/** Close codes (RFC 6455 7.4.1). */
const GOING_AWAY = 1001;
const TRY_AGAIN_LATER = 1013;

export interface WebSocketOptions {
  path: string;
  maxChannelBytes: number;
  maxMessageBytes: number;
  /** Largest frame a client may send; uWS closes the connection (1009) past it. */
  maxFrameBytes: number;
  maxSubscriptions: number;
  /** Buffered bytes past which a connection is closed as too slow. */
  maxUnsent: number;
  heartbeatSeconds: number;
  router: Router;
  room: WaitRoom;
  responder: Responder;
  metrics: ThreadMetrics;
  gate: AuthGate | undefined;
  /** Set only with --rate-limit. */
  rateLimiter: ClientLimiter | undefined;
  log: Logger;
}

interface SocketData {
  connection: Connection;
}

/** Serves WebSocket upgrades on `options.path` of `app`. */
export function serveWebSockets(app: TemplatedApp, options: WebSocketOptions): void {
  app.ws<SocketData>(options.path, {
    maxPayloadLength: options.maxFrameBytes,
    // Closed here, with a code that says why, before uWS would drop a frame.
    maxBackpressure: options.maxUnsent * 2,
    closeOnBackpressureLimit: false,
    // uWS pings a connection idle for most of this, and closes one idle for all of it.
    idleTimeout: Math.max(8, Math.ceil((options.heartbeatSeconds * 2) / 4) * 4),
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      try {
        upgrade(res, req, context, options);
      } catch (err) {
        // uWS aborts the process when an upgrade handler returns without answering.
        options.log.error({ err }, 'WebSocket upgrade failed');
        options.responder.refuse(res, refusals.internal(), CorsPolicy.NONE);
      }
    },
    open: (ws) => ws.getUserData().connection.opened(ws),
    message: (ws, message, isBinary) => {
      const connection = ws.getUserData().connection;
      try {
        connection.frame(message, isBinary);
      } catch (err) {
        // A bug in one frame costs that frame only.
        options.log.error({ err }, 'WebSocket frame handler failed');
        connection.refuse('null', refusals.internal());
      }
    },
    close: (ws) => ws.getUserData().connection.closed(),
  });
}

/**
 * The upgrade request: refused with an HTTP answer while shutting down, past
 * --rate-limit, or from a browser Origin outside --cors-origin's list (a
 * page elsewhere must not drive a visitor's connection).
 */
function upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, options: WebSocketOptions): void {
  const { responder } = options;
  const cors: CorsPolicy = responder.cors;
  const origin = req.getHeader('origin');
  const headers = cors.wildcard ?? cors.forOrigin(origin);
  let refusal: CometError | undefined;
  let client: AddressWords | undefined;
  if (responder.closing) refusal = refusals.shuttingDown();
  else if (!cors.allowsOrigin(origin)) refusal = refusals.originNotAllowed();
  else if (options.rateLimiter !== undefined) {
    client = options.rateLimiter.clientOf(res, req);
    const wait = client === undefined ? 0 : options.rateLimiter.admitClient(client);
    if (wait > 0) refusal = refusals.rateLimited(wait, false);
  }
  if (refusal !== undefined) {
    responder.inHandler = res;
    try {
      responder.refuse(res, refusal, headers);
    } finally {
      responder.inHandler = null;
    }
    return;
  }
  // A token given once at the upgrade (?token= or Authorization) stands for frames that carry none.
  const token = bearerToken(req.getHeader('authorization')) ?? new URLSearchParams(req.getQuery() ?? '').get('token') ?? undefined;
  const connection = new Connection(options, token, client);
  res.upgrade<SocketData>(
    { connection },
    req.getHeader('sec-websocket-key'),
    req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'),
    context,
  );
}

/** A subscription of the connection: its stream, and the id of the subscribe that its start answers. */
interface Subscription {
  /** Undefined while openStream() runs. */
  stream: Stream | undefined;
  id: string;
}

class Connection implements StreamSink {
  private ws: WebSocket<SocketData> | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Closed (by either side): nothing may be sent, and the ws must not be touched. */
  private done = false;

  constructor(
    private readonly options: WebSocketOptions,
    private readonly token: string | undefined,
    private readonly client: AddressWords | undefined,
  ) {}

  opened(ws: WebSocket<SocketData>): void {
    this.ws = ws;
    this.options.metrics.add(SLOT.webSockets, 1);
    this.options.room.sinks.add(this);
  }

  /** The close handler: the connection is gone, whoever closed it. */
  closed(): void {
    if (this.ws !== undefined && !this.done) this.options.metrics.add(SLOT.webSockets, -1);
    this.release();
  }

  frame(message: ArrayBuffer, isBinary: boolean): void {
    if (this.done) return;
    if (isBinary) return this.send(wsRefusal('null', refusals.frameBinary()));
    let request: FrameRequest;
    try {
      request = parseFrame(Buffer.from(message).toString('utf8'), this.options);
    } catch (err) {
      if (err instanceof FrameRefusal) return this.refuse(err.id, err.error);
      throw err;
    }
    const limited = this.limited(request);
    if (limited !== undefined) return this.refuse(request.id, limited);
    switch (request.method) {
      case 'subscribe':
        return this.subscribe(request.id, request.channel, request.since);
      case 'unsubscribe':
        this.unsubscribe(request.channel);
        return this.send(wsAnswer(request.id));
      case 'put':
        this.options.metrics.add(SLOT.requestsPut);
        this.options.metrics.add(SLOT.messagesIn);
        this.options.metrics.add(SLOT.bytesIn, request.bytes);
        return this.options.router.put(request.channel, scriptSafeJson(request.message), new FrameAnswer(this, request.id));
      case 'sync':
        this.options.metrics.add(SLOT.requestsSync);
        return this.options.router.sync(request.channel, new FrameAnswer(this, request.id));
    }
  }

  get gone(): boolean {
    return this.done;
  }

  started(stream: Stream, time: number): void {
    const subscription = this.adopt(stream);
    if (subscription !== undefined) this.send(wsAnswer(subscription.id, time));
  }

  deliver(_stream: Stream, delivery: Delivery): void {
    for (const frame of delivery.ws()) this.send(frame);
  }

  failed(stream: Stream, err: CometError): void {
    const subscription = this.adopt(stream);
    if (subscription === undefined) return;
    this.subscriptions.delete(stream.channel);
    if (!stream.started) return this.refuse(subscription.id, err);
    // Its client resubscribes from its last time once the store answers again.
    this.end(TRY_AGAIN_LATER, err.message);
  }

  shutdown(): void {
    this.end(GOING_AWAY, 'the server is shutting down');
  }

  /**
   * Sends a frame; closes the connection when its client has left too much
   * unread. Not in a cork of its own: outside a handler uWS corks a send
   * itself (one write either way), and ws.cork() would cost a call from
   * native code back into JavaScript per frame of a fan-out.
   */
  send(frame: Buffer | string): void {
    if (this.done) return;
    const ws = this.ws!;
    // Sent whole (1, the usual case): nothing is buffered, and no call into uWS is needed to know it.
    if (ws.send(frame, false) === 1 || ws.getBufferedAmount() <= this.options.maxUnsent) return;
    this.options.metrics.add(SLOT.slowReadersClosed);
    this.end(TRY_AGAIN_LATER, 'too slow: more than --max-connection-buffer unread');
  }

  refuse(id: string, err: CometError): void {
    this.options.metrics.error(err.code);
    this.send(wsRefusal(id, err));
  }

  private subscribe(id: string, channel: string, since: number): void {
    const { room, maxSubscriptions, metrics } = this.options;
    this.unsubscribe(channel);
    if (this.subscriptions.size >= maxSubscriptions) return this.refuse(id, refusals.tooManySubscriptions(maxSubscriptions));
    metrics.add(SLOT.requestsSubscribe);
    // In the map before it opens: with this thread's own owner it starts, and is answered, within openStream().
    this.subscriptions.set(channel, { stream: undefined, id });
    const stream = room.openStream(channel, since, this);
    if (stream instanceof Stream) this.adopt(stream);
    else {
      this.subscriptions.delete(channel);
      this.refuse(id, stream);
    }
  }

  /** The subscription `stream` belongs to (the one opening when it has none yet), or undefined for one replaced since. */
  private adopt(stream: Stream): Subscription | undefined {
    const subscription = this.subscriptions.get(stream.channel);
    if (subscription === undefined) return undefined;
    subscription.stream ??= stream;
    return subscription.stream === stream ? subscription : undefined;
  }

  private unsubscribe(channel: string): void {
    const subscription = this.subscriptions.get(channel);
    if (subscription === undefined) return;
    this.subscriptions.delete(channel);
    if (subscription.stream !== undefined) this.options.room.closeStream(subscription.stream);
  }

  /** The token and --rate-limit refusal of a request frame, or undefined when it may go on. */
  private limited(request: FrameRequest): CometError | undefined {
    const { gate, rateLimiter } = this.options;
    if (rateLimiter !== undefined && this.client !== undefined) {
      const wait = rateLimiter.admitClient(this.client);
      if (wait > 0) return refusals.rateLimited(wait, false);
    }
    if (gate === undefined || request.method === 'unsubscribe') return undefined;
    const method: AuthMethod = request.method === 'subscribe' ? 'get' : request.method;
    return gate.check(request.token ?? this.token, method, request.channel);
  }

  private end(code: number, reason: string): void {
    if (this.done) return;
    const ws = this.ws!;
    this.release();
    this.options.metrics.add(SLOT.webSockets, -1);
    // uWS runs the close handler within end(): done is set first.
    ws.end(code, reason);
  }

  /** Every subscription's stream closes and its slot is freed. */
  private release(): void {
    if (this.done) return;
    this.done = true;
    this.options.room.sinks.delete(this);
    for (const subscription of this.subscriptions.values()) if (subscription.stream !== undefined) this.options.room.closeStream(subscription.stream);
    this.subscriptions.clear();
  }
}

/** The answer to a put or sync frame: the time, or the refusal, by its id. */
class FrameAnswer implements PutHandler {
  constructor(
    private readonly connection: Connection,
    private readonly id: string,
  ) {}

  get gone(): boolean {
    return this.connection.gone;
  }

  timed(time: number): void {
    this.connection.send(wsAnswer(this.id, time));
  }

  failed(err: CometError): void {
    this.connection.refuse(this.id, err);
  }
}
