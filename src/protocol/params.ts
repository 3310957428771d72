/**
 * Parsing and validation of protocol requests. Everything here is synchronous
 * and throws CometError, so a request is either fully valid before anything is
 * stored or it is refused with a 4xx answer and changes nothing.
 */
import { CometError } from './errors.js';
import { isValidCallback } from './jsonp.js';

export const MAX_TIME = Number.MAX_SAFE_INTEGER;

export interface ParamLimits {
  maxChannelBytes: number;
  maxMessageBytes: number;
  maxCallbackLength: number;
  pollTimeout: number;
}

interface Common {
  channel: string;
  /** A validated JSONP callback, or undefined for plain JSON. */
  callback: string | undefined;
}
export interface PutRequest extends Common {
  method: 'put';
  message: string;
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
export type ProtocolRequest = PutRequest | SyncRequest | GetRequest;

/** The raw values of the parameters we know; unknown parameters are ignored. */
export interface RawParams {
  method?: string;
  channel?: string;
  message?: string;
  time?: string;
  timeout?: string;
  callback?: string;
}
const KNOWN = new Set(['method', 'channel', 'message', 'time', 'timeout', 'callback']);

/**
 * Reads `a=1&b=2` (a query string or an x-www-form-urlencoded body). The first
 * occurrence of a parameter wins, so a later duplicate cannot smuggle a
 * different value past a proxy that read the first.
 */
export function readParams(encoded: string): RawParams {
  // uWS decodes the raw query as UTF-8, turning invalid bytes into U+FFFD; a
  // message must never be stored mangled, so a raw U+FFFD is refused (a
  // client that means the character percent-encodes it: %EF%BF%BD).
  if (encoded.indexOf('\uFFFD') !== -1) {
    throw new CometError('COMET_ERR_BAD_ENCODING', 'invalid UTF-8 in the parameters (percent-encode non-ASCII characters)');
  }
  const params: RawParams = {};
  let start = 0;
  while (start < encoded.length) {
    let end = encoded.indexOf('&', start);
    if (end === -1) end = encoded.length;
    const pair = encoded.slice(start, end);
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    if (KNOWN.has(name) && params[name as keyof RawParams] === undefined) {
      params[name as keyof RawParams] = eq === -1 ? '' : decodeComponent(pair.slice(eq + 1));
    }
    start = end + 1;
  }
  return params;
}

function decodeComponent(text: string): string {
  if (text.indexOf('%') === -1 && text.indexOf('+') === -1) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw new CometError('COMET_ERR_BAD_ENCODING', 'malformed percent-encoding or invalid UTF-8 in the parameters');
  }
}

export function parseProtocolRequest(raw: RawParams, limits: ParamLimits): ProtocolRequest {
  const method = raw.method;
  if (method !== 'put' && method !== 'get' && method !== 'sync') {
    throw new CometError('COMET_ERR_BAD_METHOD', method === undefined ? 'method is required (put, get or sync)' : 'method must be one of put, get, sync');
  }
  const channel = raw.channel;
  if (channel === undefined || channel === '') throw new CometError('COMET_ERR_BAD_CHANNEL', 'channel is required');
  if (utf8Length(channel) > limits.maxChannelBytes) {
    throw new CometError('COMET_ERR_BAD_CHANNEL', `channel is longer than ${limits.maxChannelBytes} bytes`);
  }
  const callback = parseCallback(raw.callback, limits.maxCallbackLength);
  if (method === 'put') {
    const message = raw.message;
    if (message === undefined) throw new CometError('COMET_ERR_MISSING_MESSAGE', 'message is required for put');
    if (utf8Length(message) > limits.maxMessageBytes) {
      throw new CometError('COMET_ERR_MESSAGE_TOO_LARGE', `message is larger than ${limits.maxMessageBytes} bytes`);
    }
    return { method, channel, message, callback };
  }
  if (method === 'sync') return { method, channel, callback };
  const since = raw.time === undefined ? -1 : parseNonNegativeInteger(raw.time, 'COMET_ERR_BAD_TIME', 'time');
  const asked = raw.timeout === undefined ? limits.pollTimeout : parseNonNegativeInteger(raw.timeout, 'COMET_ERR_BAD_TIMEOUT', 'timeout');
  return { method, channel, since, timeout: Math.min(asked, limits.pollTimeout), callback };
}

function parseCallback(callback: string | undefined, maxLength: number): string | undefined {
  if (callback === undefined) return undefined;
  if (callback.length > maxLength) throw new CometError('COMET_ERR_BAD_CALLBACK', `callback is longer than ${maxLength} characters`);
  if (!isValidCallback(callback)) {
    throw new CometError('COMET_ERR_BAD_CALLBACK', 'callback must be a JavaScript identifier or a dotted path of identifiers');
  }
  return callback;
}

const DIGITS = /^[0-9]{1,16}$/;

function parseNonNegativeInteger(text: string, code: 'COMET_ERR_BAD_TIME' | 'COMET_ERR_BAD_TIMEOUT', name: string): number {
  const value = DIGITS.test(text) ? Number(text) : NaN;
  if (!(value <= MAX_TIME)) throw new CometError(code, `${name} must be a non-negative integer of at most ${MAX_TIME}`);
  return value;
}

/** UTF-8 length without allocating; strings here are well-formed (decodeURIComponent checks). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 2; // a surrogate pair: two UTF-16 units, four UTF-8 bytes
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}
