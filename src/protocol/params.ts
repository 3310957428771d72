/**
 * Parsing and validation of protocol requests. Everything here is synchronous
 * and throws CometError, so a request is either fully valid before anything is
 * stored or it is refused with a 4xx answer and changes nothing.
 */
import { Buffer } from 'node:buffer';
import { refusals } from './errors.js';
import { callbackPattern, isValidCallback, reservedSegment } from './jsonp.js';

export const MAX_TIME = Number.MAX_SAFE_INTEGER;

export interface ParamLimits {
  maxChannelBytes: number;
  maxMessageBytes: number;
  maxCallbackLength: number;
  pollTimeout: number;
  /** 'off': every request with a callback is refused. */
  jsonp: string;
  /** An allow pattern every callback must match whole ('' : any identifier path); compiled once, not per request. */
  jsonpCallback: string;
}

interface Common {
  channel: string;
  /** A validated JSONP callback, or undefined for plain JSON. */
  callback: string | undefined;
}
export interface PutRequest extends Common {
  method: 'put';
  message: string;
  /** The message's length in UTF-8 bytes (the limit checked it; the metrics count it). */
  bytes: number;
}
export interface SyncRequest extends Common {
  method: 'sync';
}
export interface GetRequest extends Common {
  method: 'get';
  /** The client's cursor, or -1 when it sent none ("the next message"). */
  since: number;
  /** Seconds to wait, already clamped to the server's long-poll timeout. */
  timeout: number;
}
/** method=events: a stream of server-sent events (`since` as for get; the Last-Event-ID header, read by the front end, wins over it). */
export interface EventsRequest extends Common {
  method: 'events';
  since: number;
}
export type ProtocolRequest = PutRequest | SyncRequest | GetRequest | EventsRequest;

/** The raw values of the parameters we know; unknown parameters are ignored. */
export interface RawParams {
  method?: string;
  channel?: string;
  message?: string;
  time?: string;
  timeout?: string;
  callback?: string;
  /** An access token (--auth), for clients that cannot send an Authorization header (JSONP). */
  token?: string;
}

/**
 * What makes a parameter string more than slices: escapes to decode, or
 * U+FFFD to refuse. Three includes() are a third cheaper than one
 * /[%+\uFFFD]/ test (they search with memchr, and a one-byte string cannot
 * hold U+FFFD at all).
 */
function needsCare(encoded: string): boolean {
  return encoded.includes('%') || encoded.includes('+') || encoded.includes('\uFFFD');
}

/**
 * Reads `a=1&b=2` (a query string or an x-www-form-urlencoded body). The first
 * occurrence of a parameter wins, so a later duplicate cannot smuggle a
 * different value past a proxy that read the first.
 *
 * Every put goes through here, so it is written for the profile: one object
 * shape for every request and named stores (dynamic keys made V8 internalise
 * each parameter name), one scan for anything needing care, and a string with
 * nothing of the kind (the usual put) is only sliced, never decoded.
 */
export function readParams(encoded: string): RawParams {
  const plain = !needsCare(encoded);
  // uWS decodes the raw query as UTF-8, turning invalid bytes into U+FFFD; a
  // message must never be stored mangled, so a raw U+FFFD is refused (a
  // client that means the character percent-encodes it: %EF%BF%BD).
  if (!plain && encoded.indexOf('\uFFFD') !== -1) {
    throw refusals.paramsNotUtf8();
  }
  const params: RawParams = {
    method: undefined,
    channel: undefined,
    message: undefined,
    time: undefined,
    timeout: undefined,
    callback: undefined,
    token: undefined,
  };
  // The next '=' at or after `start`, searched again only once passed, so
  // that pairs without one cost no rescan to the end (linear, not quadratic).
  let nextEq = encoded.indexOf('=');
  let start = 0;
  while (start < encoded.length) {
    let end = encoded.indexOf('&', start);
    if (end === -1) end = encoded.length;
    if (nextEq !== -1 && nextEq < start) nextEq = encoded.indexOf('=', start);
    const eq = nextEq !== -1 && nextEq < end ? nextEq : end;
    const rawName = encoded.slice(start, eq);
    switch (plain ? rawName : decodeComponent(rawName)) {
      case 'method':
        params.method ??= valueOf(encoded, eq, end, plain);
        break;
      case 'channel':
        params.channel ??= valueOf(encoded, eq, end, plain);
        break;
      case 'message':
        params.message ??= valueOf(encoded, eq, end, plain);
        break;
      case 'time':
        params.time ??= valueOf(encoded, eq, end, plain);
        break;
      case 'timeout':
        params.timeout ??= valueOf(encoded, eq, end, plain);
        break;
      case 'callback':
        params.callback ??= valueOf(encoded, eq, end, plain);
        break;
      case 'token':
        params.token ??= valueOf(encoded, eq, end, plain);
        break;
    }
    start = end + 1;
  }
  return params;
}

/** The parameters of a form body over those of its query string: where both carry one, the body's wins. */
export function overlayParams(query: RawParams, body: RawParams): RawParams {
  return {
    method: body.method ?? query.method,
    channel: body.channel ?? query.channel,
    message: body.message ?? query.message,
    time: body.time ?? query.time,
    timeout: body.timeout ?? query.timeout,
    callback: body.callback ?? query.callback,
    token: body.token ?? query.token,
  };
}

/** The value of the pair whose '=' is at `eq` (`end` when it has none) and that ends at `end`. */
function valueOf(encoded: string, eq: number, end: number, plain: boolean): string {
  if (eq === end) return '';
  const raw = encoded.slice(eq + 1, end);
  return plain ? raw : decodeComponent(raw);
}

function decodeComponent(text: string): string {
  if (text.indexOf('%') === -1 && text.indexOf('+') === -1) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw refusals.paramsMalformed();
  }
}

export function parseProtocolRequest(raw: RawParams, limits: ParamLimits): ProtocolRequest {
  const method = raw.method;
  if (method !== 'put' && method !== 'get' && method !== 'sync' && method !== 'events') {
    throw method === undefined ? refusals.methodMissing() : refusals.methodUnknown();
  }
  const channel = raw.channel;
  if (channel === undefined || channel === '') throw refusals.channelMissing();
  if (Buffer.byteLength(channel) > limits.maxChannelBytes) {
    throw refusals.channelTooLong(limits.maxChannelBytes);
  }
  const callback = parseCallback(raw.callback, limits);
  if (method === 'put') {
    const message = raw.message;
    if (message === undefined) throw refusals.messageMissing();
    const bytes = Buffer.byteLength(message);
    if (bytes > limits.maxMessageBytes) throw refusals.messageTooLarge(limits.maxMessageBytes);
    return { method, channel, message, bytes, callback };
  }
  if (method === 'sync') return { method, channel, callback };
  const since = raw.time === undefined ? -1 : parseNonNegativeInteger(raw.time, 'time');
  // Checked for events too, which do not time out: the same parameters get the same answers as for get.
  const asked = raw.timeout === undefined ? limits.pollTimeout : parseNonNegativeInteger(raw.timeout, 'timeout');
  if (method === 'events') return { method, channel, since, callback };
  return { method, channel, since, timeout: Math.min(asked, limits.pollTimeout), callback };
}

/**
 * A callback, refused before anything is stored or waited on: JSONP off, too
 * long, not an identifier path, a reserved segment (jsonp.ts), or outside the
 * deployment's allow pattern. The pattern runs last, on at most
 * maxCallbackLength characters of identifier path; the reserved list applies
 * whatever the pattern allows.
 */
function parseCallback(callback: string | undefined, limits: ParamLimits): string | undefined {
  if (callback === undefined) return undefined;
  if (limits.jsonp === 'off') throw refusals.jsonpDisabled();
  if (callback.length > limits.maxCallbackLength) throw refusals.callbackTooLong(limits.maxCallbackLength);
  if (!isValidCallback(callback)) {
    throw refusals.callbackNotIdentifier();
  }
  const reserved = reservedSegment(callback);
  if (reserved !== undefined) throw refusals.callbackReserved(reserved);
  const allow = callbackPattern(limits.jsonpCallback);
  if (allow !== undefined && !allow.test(callback)) throw refusals.callbackNotAllowed();
  return callback;
}

/**
 * 1 to 16 ASCII digits (MAX_TIME has 16), at most MAX_TIME. A loop, not a
 * regular expression and Number(): every get parses two of these. A 16-digit
 * value past 2^53 rounds to 2^53 or above, which is past MAX_TIME too.
 */
function parseNonNegativeInteger(text: string, param: 'time' | 'timeout'): number {
  const length = text.length;
  let value = length === 0 || length > 16 ? NaN : 0;
  for (let i = 0; i < length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) {
      value = NaN;
      break;
    }
    value = value * 10 + digit;
  }
  if (!(value <= MAX_TIME)) throw refusals.badInteger(param, MAX_TIME);
  return value;
}

/**
 * The Last-Event-ID header of a reconnecting EventSource: the id of the last
 * event it received, which is a message's time. '' (absent) gives undefined.
 */
export function parseLastEventId(header: string): number | undefined {
  return header === '' ? undefined : parseNonNegativeInteger(header.trim(), 'time');
}
