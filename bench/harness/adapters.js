// Protocol adapters: how the harness speaks to a target. Each adapter turns
// the harness's operations into requests and reads the answers, so the same
// scenarios run against comet-server, the raw uWebSockets.js ceiling, nginx +
// Nchan, or any server a user describes in a small module of their own
// (`--adapter ./my-adapter.js`, see bench/README.md).
//
// An adapter module's default export is a function (url: URL) => Adapter; the
// contract is the Adapter type of ./types.d.ts (and bench/README.md, "Adapters").
// Cursors are opaque to the harness.

/**
 * @typedef {import('./types.js').Adapter} Adapter
 * @typedef {import('./types.js').AdapterFactory} AdapterFactory
 */

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const LONG_POLL_S = 60;

/**
 * The Simple Comet Protocol (comet-server and the raw ceiling).
 * @type {AdapterFactory}
 */
export function simpleComet(url) {
  const base = url.pathname;
  /** @param {Record<string, string | number>} params */
  const q = (params) => `${base}?${new URLSearchParams(/** @type {Record<string, string>} */ (params))}`;
  return {
    put: (channel, message) => ({ path: q({ method: 'put', channel, message }) }),
    sync: (channel) => ({ path: q({ method: 'sync', channel }) }),
    get: (channel, cursor) => ({
      path: q(
        cursor === null
          ? { method: 'get', channel, timeout: LONG_POLL_S }
          : { method: 'get', channel, time: /** @type {number} */ (cursor), timeout: LONG_POLL_S },
      ),
    }),
    async buffered(channel, call) {
      const first = JSON.parse((await call({ path: q({ method: 'put', channel, message: 'first' }) })).body);
      await call({ path: q({ method: 'put', channel, message: 'second' }) });
      // answered at once with "second", the message after "first"
      return { path: q({ method: 'get', channel, time: first.time, timeout: 0 }) };
    },
    readPut: (res) => ({ ok: res.status === 200 && res.body.startsWith('{"time":') }),
    readGet(res) {
      if (res.status !== 200) return { ok: false, messages: [], cursor: null, timedOut: false };
      const answer = JSON.parse(res.body);
      return { ok: true, messages: answer.messages, cursor: answer.time, timedOut: answer.messages.length === 0 };
    },
    waiting: { path: '/metrics', read: (body) => promSum(body, 'comet_waiting_gets') },
    streams: {
      sse: (channel) => ({ path: q({ method: 'events', channel }), headers: { Accept: 'text/event-stream' } }),
      // an event's data is the message as a JSON string
      sseMessage: (data) => JSON.parse(data),
      ws: (channel) => ({ path: base, subscribe: JSON.stringify({ id: 1, method: 'subscribe', channel }) }),
      wsFrame(text) {
        const frame = JSON.parse(text);
        if (Array.isArray(frame.messages)) return { messages: frame.messages };
        return frame.error === undefined ? { subscribed: true } : { refused: text };
      },
      waiting: { path: '/metrics', read: (body) => promSum(body, 'comet_streams') },
    },
  };
}

/**
 * nginx + Nchan as configured in bench/targets/nchan/nginx.conf.template:
 * POST {base}pub?channel=C publishes, GET {base}sub?channel=C long-polls, and a
 * subscriber chains with the Last-Modified and Etag of its last message.
 * @type {AdapterFactory}
 */
export function nchan(url) {
  const base = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  /** @param {string} loc @param {string} channel */
  const chan = (loc, channel) => `${base}${loc}?channel=${encodeURIComponent(channel)}`;
  // time 0 means "no message id" to Nchan (then it waits for the newest); 1 s is before any message
  const EPOCH = 'Thu, 01 Jan 1970 00:00:01 GMT';
  const waiting = { path: `${base}nchan_status`, read: (/** @type {string} */ body) => Number(/^subscribers: (\d+)/m.exec(body)?.[1] ?? NaN) };
  return {
    put: (channel, message) => ({ method: 'POST', path: chan('pub', channel), headers: { 'Content-Type': 'text/plain' }, body: message }),
    // Nchan has no sync; a GET on the publisher location answers the channel's info, the nearest equivalent
    sync: (channel) => ({ path: chan('pub', channel), headers: { Accept: 'text/json' } }),
    get: (channel, cursor) =>
      cursor === null ? { path: chan('sub', channel) } : { path: chan('sub', channel), headers: nchanCursor(/** @type {NchanCursor} */ (cursor)) },
    async buffered(channel, call) {
      await call({ method: 'POST', path: chan('pub', channel), headers: { 'Content-Type': 'text/plain' }, body: 'first' });
      // the oldest buffered message, at once
      return { path: chan('sub', channel), headers: { 'If-Modified-Since': EPOCH, 'If-None-Match': '0' } };
    },
    readPut: (res) => ({ ok: res.status === 201 || res.status === 202 }),
    readGet(res) {
      if (res.status === 304 || res.status === 408) return { ok: true, messages: [], cursor: null, timedOut: true };
      if (res.status !== 200) return { ok: false, messages: [], cursor: null, timedOut: false };
      return { ok: true, messages: [res.body], cursor: { lastModified: res.headers['last-modified'], etag: res.headers.etag }, timedOut: false };
    },
    waiting,
    // the sub location also serves an EventSource (Accept: text/event-stream) and a WebSocket (an upgrade)
    streams: {
      sse: (channel) => ({ path: chan('sub', channel), headers: { Accept: 'text/event-stream' } }),
      sseMessage: (data) => data,
      ws: (channel) => ({ path: chan('sub', channel), subscribe: null }),
      wsFrame: (text) => ({ messages: [text] }),
      // Nchan counts every subscriber alike, whatever its transport
      waiting,
    },
  };
}

/** @typedef {{ lastModified: string, etag: string }} NchanCursor */

/** @param {NchanCursor} cursor */
const nchanCursor = (cursor) => ({ 'If-Modified-Since': cursor.lastModified, 'If-None-Match': cursor.etag });

/** @type {Record<string, AdapterFactory>} */
const BUILT_IN = { 'simple-comet': simpleComet, nchan };

/**
 * The adapter for a reference: a built-in name or a path to a module whose
 * default export is an adapter factory. Works in child processes too, which
 * receive the same reference.
 * @param {string} ref
 * @param {string | URL} url
 * @returns {Promise<Adapter>}
 */
export async function loadAdapter(ref, url) {
  const factory = BUILT_IN[ref] ?? (await import(pathToFileURL(path.resolve(ref)).href)).default;
  if (typeof factory !== 'function') throw new Error(`adapter ${ref}: its default export must be a function (url) => adapter`);
  const adapter = factory(new URL(url));
  for (const k of /** @type {const} */ (['put', 'sync', 'get', 'readPut', 'readGet'])) {
    if (typeof adapter[k] !== 'function') throw new Error(`adapter ${ref}: ${k} is missing`);
  }
  return adapter;
}

export const builtInAdapters = Object.keys(BUILT_IN);

/**
 * Sum of every sample of a metric in Prometheus text, NaN when absent.
 * @param {string} text
 * @param {string} name
 */
export function promSum(text, name) {
  let sum = NaN;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const rest = line.includes('}') ? line.slice(line.lastIndexOf('}') + 1) : line.slice(name.length);
    const value = Number(rest.trim().split(/\s+/)[0]);
    if (Number.isFinite(value)) sum = (Number.isNaN(sum) ? 0 : sum) + value;
  }
  return sum;
}
