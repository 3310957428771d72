/**
 * The comet client: publish, sync, and subscriptions that run the protocol's
 * chain (sync once, then gets with `time` set to the last answer's), or hold
 * a stream open (server-sent events, or one WebSocket for all of a client's
 * subscriptions), in browsers and in Node.js, with no dependencies (but the
 * ws package for WebSocket on Node.js 20, which has none of its own).
 *
 * A subscription never loses or repeats a message while the server holds
 * it: after any failure it asks again from the last time it delivered, so a
 * dropped connection, a server restart or a load balancer switching nodes
 * costs a retry, not data. When the server says it cannot vouch for what
 * came before (`missed`: messages dropped from a full buffer, or lost with an
 * in-memory server's restart), the application is told with the next batch.
 * Retries back off exponentially with full jitter, so that thousands of
 * clients cut off together do not come back together.
 */
import { CometClientError, CometNetworkError, CometRequestError } from './errors.js';
import { readEventStream } from './events.js';
import { retrying } from './retry.js';
import { fetchTransport, jsonpTransport, type Params, type Transport } from './transport.js';
import { socketSubscriptions, socketTransport, type WebSocketConstructor } from './websocket.js';

export { CometClientError, CometNetworkError, CometRequestError, CometServerError } from './errors.js';
export type { SocketLike, WebSocketConstructor } from './websocket.js';

export interface ClientOptions {
  /** The protocol endpoint, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  /**
   * How subscriptions reach the server: `fetch` (default: chained long-polling
   * gets), `jsonp` (browsers only: for pages that can only load scripts from
   * the server), `events` (one server-sent event stream per subscription,
   * read with fetch) or `websocket` (one connection for all of this client's
   * subscriptions, and its publish and sync too). Publish and sync go over
   * fetch with `events`.
   */
  transport?: 'fetch' | 'jsonp' | 'events' | 'websocket';
  /** Seconds a get may wait on the server (it caps this by its own limit); default 30. */
  pollTimeout?: number;
  /**
   * `events`: the server's --stream-heartbeat (seconds, default 15). A stream
   * that brings nothing, not even a heartbeat, for twice this long is taken
   * as dead (a connection cut without a word) and opened again.
   */
  streamHeartbeat?: number;
  /**
   * `websocket`: the WebSocket constructor to use; default the global one
   * (browsers, Node.js 22+), else the ws package's (Node.js 20).
   */
  WebSocket?: WebSocketConstructor;
  /** Retry delays: the first, and the most (ms); defaults 250 and 15,000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * A JWT for a server with access control on: sent as `Authorization: Bearer`
   * over fetch and events, as the `token` parameter over JSONP, and in every
   * request frame (`"token"`) over a WebSocket. A string is used as is,
   * and a 401 answer is final. A function (returning the token or a promise
   * of it) is called before the first request and its result kept; after a
   * 401 it is called again and the request retried once with the new token,
   * so a second 401 in a row is the refusal; a subscription refreshed that way
   * goes on from where it was. JSONP cannot see a 401 (it fails like a network
   * error), so over JSONP every failed request drops the kept token and the
   * next attempt calls the function again. A 403 (the token does not cover the
   * channel or method) is always final.
   */
  token?: string | (() => string | Promise<string>);
}

export interface BatchInfo {
  /** Time of the last message of the batch: where the subscription continues from. */
  time: number;
  /** The server could not vouch that nothing came between the previous batch and this one. */
  missed: boolean;
}

export interface SubscribeOptions {
  /** Continue after this time (the `time` of a batch seen earlier); default: from now (a sync). */
  time?: number;
  /** Stops the subscription: no request is sent after it fires. */
  signal?: AbortSignal;
  /** Told of every failed request; retryable ones are retried, a refused one (4xx) ends the subscription. */
  onError?: (err: CometClientError) => void;
}

export interface Subscription {
  stop(): void;
  /** Resolves once the subscription stopped (stop(), the signal, or a refusal, which rejects it). */
  done: Promise<void>;
}

export interface CometClient {
  publish(channel: string, message: string, options?: { signal?: AbortSignal }): Promise<number>;
  sync(channel: string, options?: { signal?: AbortSignal }): Promise<number>;
  subscribe(channel: string, onMessages: (messages: string[], info: BatchInfo) => void, options?: SubscribeOptions): Subscription;
}

/** Margin over the poll timeout before a get with no answer counts as lost. */
const DEADLINE_MARGIN_MS = 10_000;
/** Deadline of a put or sync. */
const QUICK_DEADLINE_MS = 15_000;

const TRANSPORTS = ['fetch', 'jsonp', 'events', 'websocket'];

export function createClient(options: ClientOptions): CometClient {
  const kind = options.transport ?? 'fetch';
  if (!TRANSPORTS.includes(kind)) throw new TypeError(`transport must be one of ${TRANSPORTS.join(', ')}, got ${JSON.stringify(kind)}`);
  if (kind === 'jsonp' && typeof document === 'undefined') throw new TypeError('the jsonp transport needs a browser page (document)');
  const jsonp = kind === 'jsonp';
  const socket = kind === 'websocket' ? socketTransport(options.url, options.WebSocket) : undefined;
  const transport: Transport = socket ?? (jsonp ? jsonpTransport(options.url) : fetchTransport(options.url));
  const send = sender(transport.request, options.token, jsonp);
  const pollTimeout = options.pollTimeout ?? 30;
  const backoff = { initialMs: options.backoff?.initialMs ?? 250, maxMs: options.backoff?.maxMs ?? 15_000 };
  const silenceMs = 2 * (options.streamHeartbeat ?? 15) * 1000;
  const stream = sender(
    (params: Params, opts: Parameters<typeof readEventStream>[3], token?: string) => readEventStream(options.url, params, token, opts),
    options.token,
    false,
  );
  const join = socket && socketSubscriptions(socket, sender(socket.request, options.token, false), backoff, QUICK_DEADLINE_MS);

  const time = async (params: Params, post: boolean, signal?: AbortSignal): Promise<number> => {
    const body = (await send(params, { post, signal, deadlineMs: QUICK_DEADLINE_MS })) as { time: number };
    return body.time;
  };

  const client: CometClient = {
    publish: (channel, message, opts) => time({ method: 'put', channel, message }, !jsonp, opts?.signal),
    sync: (channel, opts) => time({ method: 'sync', channel }, false, opts?.signal),
    subscribe(channel, onApplication, opts = {}) {
      const controller = new AbortController();
      const stop = () => controller.abort(new DOMException('the subscription was stopped', 'AbortError'));
      opts.signal?.addEventListener('abort', stop, { once: true });
      if (opts.signal?.aborted) stop();
      const signal = controller.signal;
      // An exception from the application's callback ends the subscription, its done rejecting
      // with it, whichever transport called it (a stream would otherwise take it for a failure
      // and reconnect, and a WebSocket's event handler would throw it into the event loop).
      let thrown: { error: unknown } | undefined;
      const onMessages = (messages: string[], info: BatchInfo): void => {
        try {
          onApplication(messages, info);
        } catch (error) {
          thrown ??= { error };
          stop();
        }
      };
      const again = <T>(attempt: (progress: () => void) => Promise<T>) => retrying(attempt, signal, backoff, opts.onError);

      // Where a chain or a stream starts: a known time, so that a stream dropped before its first message resumes losing nothing.
      const start = async (): Promise<number | undefined> => opts.time ?? (await again(() => client.sync(channel, { signal })));

      const poll = async (): Promise<void> => {
        let cursor = await start();
        while (cursor !== undefined && !signal.aborted) {
          const since: number = cursor;
          const answer = await again(
            async () =>
              (await send(
                { method: 'get', channel, time: String(since), timeout: String(pollTimeout) },
                { post: false, signal, deadlineMs: pollTimeout * 1000 + DEADLINE_MARGIN_MS },
              )) as { time: number; messages: string[]; missed?: boolean },
          );
          if (answer === undefined) break;
          const missed = answer.missed === true;
          if (answer.messages.length > 0 || missed) onMessages(answer.messages, { time: answer.time, missed });
          cursor = answer.time;
        }
      };

      const events = async (): Promise<void> => {
        let cursor = await start();
        if (cursor === undefined) return;
        await again((progress) =>
          stream(
            { method: 'events', channel, time: String(cursor) },
            {
              signal,
              silenceMs,
              opened: progress,
              onBatch: ({ messages, time = cursor!, missed }) => {
                cursor = time;
                onMessages(messages, { time, missed });
              },
            },
          ),
        );
      };

      const run = async (): Promise<void> => {
        if (signal.aborted) return;
        if (join) return join(channel, opts.time, { signal, onMessages, onError: opts.onError });
        return kind === 'events' ? events() : poll();
      };

      const done = run()
        .then(() => {
          if (thrown) throw thrown.error;
        })
        .finally(() => opts.signal?.removeEventListener('abort', stop));
      // An application told of the refusal by onError may never look at done:
      // its rejection must not then count as unhandled (which ends a Node.js
      // process). Awaiting done still sees it.
      if (opts.onError) done.catch(() => undefined);
      return { stop, done };
    },
  };
  return client;
}

/**
 * Calls `call` (a request, or opening a stream) with the token when there is
 * one. Without one it is `call` itself: a client with no token pays nothing
 * per request for tokens.
 */
function sender<P, O, R>(
  call: (params: P, options: O, token?: string) => Promise<R>,
  token: ClientOptions['token'],
  jsonp: boolean,
): (params: P, options: O) => Promise<R> {
  if (token === undefined) return (params, opts) => call(params, opts);
  if (typeof token === 'string') {
    if (token === '') throw new TypeError('token must not be empty');
    return (params, opts) => call(params, opts, token);
  }
  if (typeof token !== 'function') throw new TypeError('token must be a string or a function returning one');
  const source = token;
  // Shared by concurrent requests, so that one refresh serves all those the same 401 refused.
  let current: Promise<string> | undefined;
  const obtain = (): Promise<string> => {
    const next = (async () => {
      const value = await source();
      if (typeof value !== 'string' || value === '') throw new TypeError('the token function must return a non-empty string');
      return value;
    })();
    // A failed call is not kept: the next request calls the function again.
    next.catch(() => {
      if (current === next) current = undefined;
    });
    return next;
  };
  return async (params, opts) => {
    const used = (current ??= obtain());
    try {
      return await call(params, opts, await used);
    } catch (err) {
      if (jsonp && err instanceof CometNetworkError && current === used) current = undefined;
      if (!(err instanceof CometRequestError && err.status === 401)) throw err;
      // Another request may have refreshed it already: the token it got is as fresh.
      if (current === used) current = undefined;
      return call(params, opts, await (current ??= obtain()));
    }
  };
}
