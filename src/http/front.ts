/**
 * The HTTP front end of one worker thread: routes, request parsing, and the
 * life cycle of each response. Everything read from the HttpRequest is read
 * synchronously at the top of the handler (uWS invalidates it on return), and
 * onAborted is registered before any asynchronous step.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { type AuthGate, bearerToken } from '../auth/gate.js';
import type { Config } from '../config/options.js';
import type { ClientLimiter } from '../limits/limiter.js';
import type { Logger } from '../log.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { PROMETHEUS_CONTENT_TYPE, renderMetrics } from '../metrics/prometheus.js';
import { CometError, refusals } from '../protocol/errors.js';
import { scriptSafeJson } from '../protocol/jsonp.js';
import {
  overlayParams,
  type ParamLimits,
  parseLastEventId,
  parseProtocolRequest,
  type ProtocolRequest,
  type RawParams,
  readParams,
} from '../protocol/params.js';
import type { PutHandler, Router } from '../threads/router.js';
import type { WaitRoom } from '../waiters/wait-room.js';
import { DEMO_PREFIX, type DemoFile, loadDemoFiles } from './demo.js';
import { EventStreams } from './event-stream.js';
import { serveWebSockets } from './websocket.js';
import { connectionBufferLimit } from '../config/options.js';
import { ambiguousFraming } from './framing.js';
import { ALLOWED_METHODS, type AnswerHeaders, CorsPolicy } from '../protocol/cors.js';
import type { Responder } from '../protocol/respond.js';
import { type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket, uws } from '../uws.js';

export interface FrontEndOptions {
  config: Config;
  /** Access control, when --auth is put or all. */
  gate: AuthGate | undefined;
  /** Per-client limits, when --rate-limit or --max-connections-per-ip is on. */
  limiter: ClientLimiter | undefined;
  router: Router;
  waitRoom: WaitRoom;
  responder: Responder;
  metrics: ThreadMetrics;
  metricsBuffer: SharedArrayBuffer;
  log: Logger;
}

const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|text\/plain)\s*(;|$)/i;
/** RFC 6750 3: what a client is told to send when its token is missing or refused. */
const CHALLENGE: [string, string] = ['WWW-Authenticate', 'Bearer'];

/**
 * A put or sync, answered when its owner thread replies. That is inside the
 * request's handler when this thread owns the channel and its engine is
 * synchronous. An answer still owed when the handler returns must know of
 * an abort; with --pipelining ordered the connection is not read meanwhile:
 * uWS closes a connection whose next request arrives while an answer is
 * owed, which would lose the answer of a put already stored; paused, the
 * next request waits in the kernel and is read, and answered, after this one.
 */
class TimeAnswer implements PutHandler {
  private done = false;
  private aborted = false;
  private paused = false;
  constructor(
    private readonly responder: Responder,
    private readonly res: HttpResponse,
    private readonly callback: string | undefined,
    private readonly headers: AnswerHeaders,
  ) {}
  get gone(): boolean {
    return this.aborted;
  }
  /** Called before the handler returns: nothing asynchronous has run yet, so no abort can be missed. */
  leaveHandler(ordered: boolean): void {
    if (this.done) return;
    this.res.onAborted(() => (this.aborted = true));
    if (!ordered) return;
    this.res.pause();
    this.paused = true;
  }
  timed(time: number): void {
    if (this.settle()) this.responder.time(this.res, time, this.callback, this.headers);
  }
  failed(err: CometError): void {
    if (this.settle()) this.responder.refuse(this.res, err, this.headers);
  }
  /** Whether the answer can be written; reading resumes first. */
  private settle(): boolean {
    this.done = true;
    if (this.aborted) return false;
    if (this.paused) this.res.resume();
    return true;
  }
}

/** The methods of the protocol's path that uWS routes to handlers of their own. */
const PROTOCOL_METHODS = ['get', 'head', 'post', 'options'] as const;
type ProtocolMethod = (typeof PROTOCOL_METHODS)[number];
/** Where a handler's request goes: a protocol method uWS routed, anything else on the public listener, or the admin listener. */
const ANY = 0;
const ADMIN = 1;
type Routed = ProtocolMethod | typeof ANY | typeof ADMIN;

export class HttpFront {
  private readonly responder: Responder;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  /** The operations listener (--admin-port), when configured: /metrics and /healthz move there. */
  private readonly adminApp: TemplatedApp | undefined;
  private adminSocket: us_listen_socket | null = null;
  /** Where the public listener listens, for listening again after a pause at the open-file ceiling. */
  private address = { host: '', port: 0 };
  private paused = false;
  /** `--cors-origin *`: every request's headers, without reading its Origin. */
  private readonly wildcard: AnswerHeaders | undefined;
  private readonly limits: ParamLimits;
  private readonly gate: AuthGate | undefined;
  /** Set only with --rate-limit: every other request reads no address. */
  private readonly rateLimiter: ClientLimiter | undefined;
  /** --pipelining ordered: a connection whose answer is owed is not read meanwhile. */
  private readonly ordered: boolean;
  /** The demo's files (--demo on), read once here at thread start. */
  private readonly demo: Map<string, DemoFile> | undefined;
  /** Server-sent events (method=events) open on this thread. */
  private readonly eventStreams: EventStreams;

  constructor(private readonly options: FrontEndOptions) {
    this.responder = options.responder;
    this.limits = options.config;
    this.gate = options.gate;
    this.ordered = options.config.pipelining === 'ordered';
    this.demo = options.config.demo === 'on' ? loadDemoFiles(options.config.path) : undefined;
    this.wildcard = this.responder.cors.wildcard;
    this.rateLimiter = options.limiter?.rateLimited ? options.limiter : undefined;
    this.eventStreams = new EventStreams(
      options.waitRoom,
      this.responder,
      options.metrics,
      connectionBufferLimit(options.config),
      options.config.streamHeartbeat,
    );
    this.app = uws.App();
    // uWS routes the protocol's own methods on its path, which spares each
    // request the getUrl() and getMethod() calls into native code that
    // route() makes (a tenth of a put's handler in a profile).
    const path = options.config.path;
    for (const method of PROTOCOL_METHODS) this.app[method](path, this.protocolHandler(method));
    if (options.config.websocket === 'on') this.webSockets(path);
    this.app.any('/*', this.onRequest);
    if (options.limiter !== undefined && options.config.maxConnectionsPerIp > 0) this.limitConnections(options.limiter);
    this.adminApp = options.config.adminPort === 0 ? undefined : uws.App().any('/*', this.onAdminRequest);
  }

  /**
   * Listens on the public port, and on the admin port when there is one.
   * Every thread listens on the admin port too (SO_REUSEPORT, as on the
   * public one; a non-zero port, so uSockets sets it): a health check then
   * reaches whichever thread the kernel picks, no thread is a single point
   * whose stall alone fails every check, and the admin listener's own accept
   * queue keeps /healthz answering while the public one is full.
   */
  async listen(host: string, port: number): Promise<number> {
    this.address = { host, port };
    const [listening] = await Promise.all([
      listenOn(this.app, host, port, (socket) => (this.listenSocket = socket)),
      this.adminApp && listenOn(this.adminApp, this.options.config.adminHost || host, this.options.config.adminPort, (socket) => (this.adminSocket = socket)),
    ]);
    return listening;
  }

  /**
   * At the open-file ceiling: the public listen socket closes, so that the
   * kernel refuses new connections instead of this thread spinning on a
   * failing accept(); open connections are served on.
   */
  pauseAccepting(): void {
    if (this.listenSocket === null) return;
    uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    this.paused = true;
  }

  /** Below the ceiling again: listens on the same port (SO_REUSEPORT, as at start); not once closing. */
  resumeAccepting(): void {
    if (!this.paused || this.responder.closing) return;
    this.paused = false;
    listenOn(this.app, this.address.host, this.address.port, (socket) => (this.listenSocket = socket)).catch((err: Error) =>
      this.options.log.error({ err }, 'cannot listen again after a pause at --max-connections'),
    );
  }

  /**
   * Stops accepting connections on the public port; requests on open ones
   * are refused with 503 from now on. The admin listener stays open until
   * closeAll(), so that health checks see the 503 of a draining server.
   */
  stopListening(): void {
    this.responder.closing = true;
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  /**
   * Closes every socket of this thread, idle keep-alive connections included
   * (their waiting requests see onAborted). The thread must not end before:
   * Node aborts the process when a thread's loop closes with uWS handles open.
   * App.close() is in the native module but missing from its type definitions.
   */
  closeAll(): void {
    this.eventStreams.stop();
    this.stopListening();
    if (this.adminSocket) uws.us_listen_socket_close(this.adminSocket);
    this.adminSocket = null;
    for (const app of [this.app, this.adminApp]) (app as (TemplatedApp & { close(): void }) | undefined)?.close();
  }

  /**
   * Answered on the next turn of the loop, not in the handler: once a handler
   * has answered, uWS goes on parsing whatever follows in the same read, even
   * after Connection: close, and would serve a request smuggled behind this
   * one. While this answer is owed, uWS drops the connection instead when
   * more follows; otherwise the client gets its 400 and the connection closes.
   */
  private refuseAmbiguous(res: HttpResponse, headers: AnswerHeaders): void {
    const err = refusals.ambiguousFraming();
    let aborted = false;
    res.onAborted(() => (aborted = true));
    setImmediate(() => {
      if (aborted) this.options.metrics.error(err.code);
      else this.responder.refuse(res, err, headers);
    });
  }

  /**
   * --max-connections-per-ip: uWS's filter sees every connection open (1)
   * and close (-1); one past the limit is closed as it opens, before any
   * request is read (closing it there is safe in both builds: uWS ends it
   * like any other close). Closes are counted out by the main thread
   * (limits/connection-count.ts), since uWS no longer knows their address.
   */
  private limitConnections(limiter: ClientLimiter): void {
    this.app.filter((res, count) => {
      if (count !== 1) return;
      try {
        if (limiter.connectionOpened(res)) return;
      } catch (err) {
        this.options.log.error({ err }, 'per-client connection check failed');
        return;
      }
      this.options.metrics.add(SLOT.ipConnectionsRefused);
      res.close();
    });
  }

  /** WebSocket upgrades on the protocol's path (uWS gives a GET without one to the GET handler). */
  private webSockets(path: string): void {
    const { config, router, waitRoom, metrics, gate, log } = this.options;
    serveWebSockets(this.app, {
      path,
      maxChannelBytes: config.maxChannelBytes,
      maxMessageBytes: config.maxMessageBytes,
      maxFrameBytes: config.maxBodyBytes,
      maxSubscriptions: config.maxSubscriptions,
      maxUnsent: connectionBufferLimit(config),
      heartbeatSeconds: config.streamHeartbeat,
      router,
      room: waitRoom,
      responder: this.responder,
      metrics,
      gate,
      rateLimiter: this.rateLimiter,
      log,
    });
  }

  /** Requests to the protocol's path with `method`, which uWS routed here. */
  private protocolHandler(method: ProtocolMethod): (res: HttpResponse, req: HttpRequest) => void {
    return (res, req) => this.handle(res, req, this.headersFor(req), method);
  }

  /** Everything else on the public listener. */
  private readonly onRequest = (res: HttpResponse, req: HttpRequest): void => {
    this.handle(res, req, this.headersFor(req), ANY);
  };

  /** The admin listener: operations only, no CORS header on anything. */
  private readonly onAdminRequest = (res: HttpResponse, req: HttpRequest): void => {
    this.handle(res, req, CorsPolicy.NONE, ADMIN);
  };

  /** The request is gone once the handler returns: its Origin is read now, for answers given later too. */
  private headersFor(req: HttpRequest): AnswerHeaders {
    return this.wildcard ?? this.responder.cors.forOrigin(req.getHeader('origin'));
  }

  /**
   * uWS aborts the whole process when a handler returns without answering or
   * registering onAborted, which an exception would cause: a bug in one
   * request must cost that request only.
   */
  private handle(res: HttpResponse, req: HttpRequest, headers: AnswerHeaders, routed: Routed): void {
    this.responder.inHandler = res;
    try {
      if (routed === ANY) this.route(res, req, headers);
      else if (routed === ADMIN) this.routeAdmin(res, req);
      else if (!this.framedTwoWays(res, req, routed, headers)) this.protocol(res, req, routed, headers);
    } catch (err) {
      this.options.log.error({ err }, 'request handler failed');
      try {
        this.responder.refuse(res, refusals.internal(), headers);
      } catch {
        // Already answered before the failure: nothing more to say.
      }
    } finally {
      this.responder.inHandler = null;
    }
  }

  private route(res: HttpResponse, req: HttpRequest, headers: AnswerHeaders): void {
    const url = req.getUrl();
    const method = req.getMethod();
    if (this.framedTwoWays(res, req, method, headers)) return;
    if (url === this.options.config.path) return this.protocol(res, req, method, headers);
    if (this.adminApp === undefined && this.operations(res, url, method)) return;
    if (this.demo && (url === '/demo' || url.startsWith(DEMO_PREFIX))) return this.demoFile(res, url, method, headers);
    if (this.options.config.faultInjection === 'on' && url === '/_fault/crash' && method === 'post') return this.crash(res, req.getQuery() ?? '');
    this.responder.refuse(res, refusals.noSuchPath(url), headers);
  }

  /**
   * Refuses a request that could be framed two ways, and says so. Only
   * requests that may carry a body are scanned: a get without Content-Length
   * (every long-poll) pays one header look-up.
   */
  private framedTwoWays(res: HttpResponse, req: HttpRequest, method: string, headers: AnswerHeaders): boolean {
    if ((method !== 'post' && req.getHeader('content-length') === '') || !ambiguousFraming(req)) return false;
    this.refuseAmbiguous(res, headers);
    return true;
  }

  /** The admin listener: /metrics and /healthz, and 404 for anything else. */
  private routeAdmin(res: HttpResponse, req: HttpRequest): void {
    const url = req.getUrl();
    if (!this.operations(res, url, req.getMethod())) this.responder.refuse(res, refusals.noSuchPath(url), CorsPolicy.NONE);
  }

  /** /metrics and /healthz, answered without CORS headers; false for anything else. */
  private operations(res: HttpResponse, url: string, method: string): boolean {
    if (url === '/healthz' && (method === 'get' || method === 'head')) {
      this.health(res, method === 'head');
      return true;
    }
    if (url === '/metrics' && method === 'get') {
      const { metricsBuffer, config } = this.options;
      this.responder.plain(res, 200, PROMETHEUS_CONTENT_TYPE, renderMetrics(metricsBuffer, config.threads, config.redis !== '', config.uwsBuild));
      return true;
    }
    return false;
  }

  private protocol(res: HttpResponse, req: HttpRequest, method: string, headers: AnswerHeaders): void {
    if (this.responder.closing) return this.responder.refuse(res, refusals.shuttingDown(), headers);
    let limited: CometError | undefined;
    if (this.rateLimiter !== undefined) {
      const wait = this.rateLimiter.admit(res, req);
      // A POST's connection closes after the answer: its body is not worth the connection's next request.
      if (wait > 0) limited = refusals.rateLimited(wait, method === 'post');
      if (limited !== undefined && method !== 'post') return this.responder.refuse(res, limited, headers, undefined, method === 'head');
    }
    // Read only when tokens are checked: with --auth off a request costs no header look-up more.
    const bearer = this.gate === undefined ? undefined : bearerToken(req.getHeader('authorization'));
    switch (method) {
      case 'get':
      case 'head':
        return this.withParams(res, req.getQuery() ?? '', undefined, method === 'head', headers, bearer, req);
      case 'post':
        return this.readForm(res, req, headers, bearer, limited);
      case 'options':
        return this.responder.preflight(res, headers);
      default:
        return this.responder.refuse(res, refusals.httpMethod(method), headers, ['Allow', ALLOWED_METHODS]);
    }
  }

  /**
   * Reads an x-www-form-urlencoded body, capping its size. A body that comes
   * in one chunk (most do) is decoded straight from uWS's buffer, valid only
   * during the callback; one that comes in several is copied into one Buffer
   * of its declared length as it comes (a copy of each chunk, then one of
   * all, left 120 KB of garbage outside the heap per 60 KB put, freed only
   * when the collector got to it).
   *
   * A refused POST (`refused`, a type other than a form, a body over
   * --max-body-bytes) is answered once its body has been read and thrown
   * away, up to --max-discard-bytes: a connection closed with bytes unread is
   * reset, and a reset can destroy the answer before the client, or a proxy
   * in front, reads it.
   */
  private readForm(res: HttpResponse, req: HttpRequest, headers: AnswerHeaders, bearer: string | undefined, refused: CometError | undefined): void {
    const query = req.getQuery() ?? '';
    const contentType = req.getHeader('content-type');
    const lastEventId = req.getHeader('last-event-id');
    const declared = Number(req.getHeader('content-length') || '0');
    const { maxBodyBytes: maxBody, maxDiscardBytes } = this.options.config;
    let refusal = refused;
    if (refusal === undefined && contentType !== '' && !FORM_TYPES.test(contentType)) refusal = refusals.unsupportedMediaType();
    if (refusal === undefined && declared > maxBody) refusal = refusals.bodyTooLarge(maxBody);
    if (refusal !== undefined && declared > maxDiscardBytes) return this.responder.refuse(res, refusal, headers);
    const state = { aborted: false, done: false, size: 0, refusal, body: undefined as Buffer | undefined };
    res.onAborted(() => {
      state.aborted = true;
    });
    const onChunk = (chunk: ArrayBuffer, isLast: boolean): void => {
      if (state.done || state.aborted) return;
      const size = state.size + chunk.byteLength;
      state.size = size;
      if (state.refusal === undefined && size > maxBody) {
        state.refusal = refusals.bodyTooLarge(maxBody);
        state.body = undefined;
      }
      if (state.refusal !== undefined) {
        if (!isLast && size <= maxDiscardBytes) return;
        state.done = true;
        return this.responder.refuse(res, state.refusal, headers);
      }
      let body: Buffer = Buffer.from(chunk);
      if (size > chunk.byteLength || !isLast) {
        // Chunked bodies declare no length: their storage doubles as they come, up to --max-body-bytes.
        if (state.body === undefined || state.body.length < size) state.body = grown(state.body, size - chunk.byteLength, Math.max(size, declared), maxBody);
        body.copy(state.body, size - chunk.byteLength);
        body = state.body.subarray(0, size);
      }
      if (!isLast) return;
      state.done = true;
      if (!isUtf8(body)) return this.responder.refuse(res, refusals.bodyNotUtf8(), headers);
      this.withParams(res, query, body.toString('utf8'), false, headers, bearer, undefined, lastEventId);
    };
    // uWS feeds the body while it reads the socket, corked, as it runs handlers: an answer given here is given in the handler.
    res.onData((chunk, isLast) => {
      this.responder.inHandler = res;
      try {
        onChunk(chunk, isLast);
      } finally {
        this.responder.inHandler = null;
      }
    });
  }

  /**
   * `req`, while its handler runs (a GET), for the headers only an events
   * request reads; a POST's, read before its body came, is `lastEventId`.
   */
  private withParams(
    res: HttpResponse,
    query: string,
    body: string | undefined,
    head: boolean,
    headers: AnswerHeaders,
    bearer: string | undefined,
    req: HttpRequest | undefined,
    lastEventId = '',
  ): void {
    let request: ProtocolRequest;
    let params: RawParams;
    try {
      params = body === undefined ? readParams(query) : overlayParams(readParams(query), readParams(body));
      request = parseProtocolRequest(params, this.limits);
      // A reconnecting EventSource's last event: where it resumes, whatever time the URL it reuses says.
      if (request.method === 'events') request.since = parseLastEventId(req?.getHeader('last-event-id') ?? lastEventId) ?? request.since;
    } catch (err) {
      if (err instanceof CometError) return this.responder.refuse(res, err, headers, undefined, head);
      throw err;
    }
    // Before HEAD too: its answer would tell whether the request would be served. A stream is a get that goes on.
    const refused = this.gate?.check(bearer ?? params.token, request.method === 'events' ? 'get' : request.method, request.channel);
    if (refused !== undefined) return this.responder.refuse(res, refused, headers, refused.statusCode === 401 ? CHALLENGE : undefined, head);
    if (head) return this.responder.head(res, request.callback, headers, request.method === 'events');
    this.execute(res, request, headers);
  }

  private execute(res: HttpResponse, request: ProtocolRequest, headers: AnswerHeaders): void {
    const { router, metrics, waitRoom } = this.options;
    if (request.method === 'get') {
      metrics.add(SLOT.requestsGet);
      return waitRoom.start(res, request, headers);
    }
    if (request.method === 'events') {
      metrics.add(SLOT.requestsEvents);
      return this.eventStreams.start(res, request.channel, request.since, headers);
    }
    const pending = new TimeAnswer(this.responder, res, request.callback, headers);
    if (request.method === 'put') {
      metrics.add(SLOT.requestsPut);
      metrics.add(SLOT.messagesIn);
      metrics.add(SLOT.bytesIn, request.bytes);
      router.put(request.channel, scriptSafeJson(request.message), pending);
    } else {
      metrics.add(SLOT.requestsSync);
      router.sync(request.channel, pending);
    }
    pending.leaveHandler(this.ordered);
  }

  private health(res: HttpResponse, head: boolean): void {
    if (this.responder.closing) return this.responder.refuse(res, refusals.shuttingDown(), CorsPolicy.NONE);
    if (head) return this.responder.head(res, undefined, CorsPolicy.NONE);
    this.responder.plain(res, 200, 'application/json; charset=utf-8', `{"status":"ok","threads":${this.options.config.threads}}`);
  }

  private demoFile(res: HttpResponse, url: string, method: string, headers: AnswerHeaders): void {
    if (method !== 'get' && method !== 'head') {
      return this.responder.refuse(res, refusals.httpMethod(method, ' here'), headers, ['Allow', 'GET, HEAD']);
    }
    if (url === '/demo') return this.responder.file(res, 301, 'text/plain; charset=utf-8', '', method === 'head', ['Location', DEMO_PREFIX]);
    const file = this.demo!.get(url);
    if (file === undefined) return this.responder.refuse(res, refusals.noSuchPath(url), headers);
    this.responder.file(res, 200, file.contentType, file.body, method === 'head');
  }

  private crash(res: HttpResponse, query: string): void {
    const thread = Number(/(?:^|&)thread=(\d+)/.exec(query)?.[1] ?? '0');
    if (thread >= this.options.config.threads) return this.responder.refuse(res, refusals.noSuchThread(thread), CorsPolicy.NONE);
    this.options.router.crash(thread);
    this.responder.plain(res, 200, 'application/json; charset=utf-8', `{"crashing":${thread}}`);
  }
}

function listenOn(app: TemplatedApp, host: string, port: number, keep: (socket: us_listen_socket) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) return reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
      keep(socket);
      resolve(uws.us_socket_local_port(socket as never));
    });
  });
}

/** Storage for a body of at least `size` bytes (doubling past what it had, never past `limit`), holding its first `used` bytes. */
function grown(previous: Buffer | undefined, used: number, size: number, limit: number): Buffer {
  const next = Buffer.allocUnsafe(Math.min(limit, Math.max(size, (previous?.length ?? 0) * 2)));
  previous?.copy(next, 0, 0, used);
  return next;
}
