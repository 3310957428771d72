/**
 * The streaming transports' wire formats (protocol.md, "Streaming
 * transports"): server-sent events, and the WebSocket's JSON frames both
 * ways. Message bodies arrive already JSON-encoded (jsonp.ts
 * scriptSafeJson), so an event's `data` or a delivery's `messages` is
 * concatenation: a message is serialised once, whichever transport carries it.
 */
import { Buffer } from 'node:buffer';
import { CometError, refusals } from './errors.js';
import { MAX_TIME, type ParamLimits } from './params.js';

export const EVENT_STREAM_TYPE = 'text/event-stream';
/** The first bytes of a stream: a comment, so that the headers leave at once and a client knows the stream is open. */
export const SSE_OPENING = ': comet\n\n';
/** What keeps a quiet stream open through proxies (a comment, which clients ignore). */
export const SSE_HEARTBEAT = ':\n\n';

/** Events for the messages bodies[start..end), each with its time as its id: `id: T`, `data: <JSON string>`, a blank line. */
export function sseEvents(times: readonly number[], bodies: readonly string[], start = 0, end = bodies.length): string {
  let events = '';
  for (let i = start; i < end; i++) events += `id: ${times[i]}\ndata: ${bodies[i]}\n\n`;
  return events;
}

/** The server cannot vouch for everything after `time` (get's `missed` rule). */
export function sseMissed(time: number): string {
  return `event: missed\ndata: {"time":${time}}\n\n`;
}

/**
 * The messages of a read, whose texts it gives joined by commas (engine.ts
 * ReadResult), one text each. Every message is a JSON string literal: a
 * comma inside one is always inside its quotes, where only an escaped quote
 * can stand.
 */
export function splitMessages(json: string, count: number): string[] {
  const bodies: string[] = [];
  let start = 0;
  for (let n = 0; n < count; n++) {
    let i = start + 1;
    for (;;) {
      const c = json.charCodeAt(i);
      if (c === 0x5c) i += 2;
      else if (c === 0x22) break;
      else i++;
    }
    bodies.push(json.slice(start, i + 1));
    start = i + 2;
  }
  return bodies;
}

/** A WebSocket delivery: `messages` the texts joined by commas, `time` the last one's. */
export function wsDelivery(quotedChannel: string, time: number, json: string, missed: boolean): string {
  return `{"channel":${quotedChannel},"time":${time},"messages":[${json}]${missed ? ',"missed":true' : ''}}`;
}

/** The answer to a request frame: `{"id":N,"time":T}`, or `{"id":N}` when it has no time (unsubscribe). */
export function wsAnswer(id: string, time?: number): string {
  return time === undefined ? `{"id":${id}}` : `{"id":${id},"time":${time}}`;
}

export function wsRefusal(id: string, err: CometError): string {
  return `{"id":${id},"error":${JSON.stringify(err.message)},"code":"${err.code}"}`;
}

/** A request frame from a WebSocket client, validated as the same request over HTTP would be. */
export type FrameRequest =
  | { method: 'subscribe'; id: string; channel: string; since: number; token: string | undefined }
  | { method: 'unsubscribe'; id: string; channel: string; token: string | undefined }
  | { method: 'put'; id: string; channel: string; message: string; bytes: number; token: string | undefined }
  | { method: 'sync'; id: string; channel: string; token: string | undefined };

/** A frame refused: `id` the request's own, as JSON text (`null` when the frame had none to read). */
export class FrameRefusal {
  constructor(
    readonly id: string,
    readonly error: CometError,
  ) {}
}

/** With the u flag, a surrogate pair is one code point, so only a lone surrogate matches. */
const LONE_SURROGATE = /\p{Cs}/u;
/** Longest `id` a client may send, as JSON text: it is echoed in the answer. */
const MAX_ID_LENGTH = 64;

/**
 * Parses one text frame. Throws a FrameRefusal for anything that is not a
 * request this server would carry out; nothing is done for a refused frame.
 */
export function parseFrame(text: string, limits: Pick<ParamLimits, 'maxChannelBytes' | 'maxMessageBytes'>): FrameRequest {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new FrameRefusal('null', refusals.frameNotJson());
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new FrameRefusal('null', refusals.frameNotJson());
  const fields = frame as Record<string, unknown>;
  const rawId = fields.id;
  const id = typeof rawId === 'number' && Number.isFinite(rawId) ? String(rawId) : typeof rawId === 'string' ? JSON.stringify(rawId) : undefined;
  if (id === undefined || id.length > MAX_ID_LENGTH) throw new FrameRefusal('null', refusals.frameId(MAX_ID_LENGTH));
  const refuse = (err: CometError): never => {
    throw new FrameRefusal(id, err);
  };
  const { method, channel, token } = fields;
  if (method !== 'subscribe' && method !== 'unsubscribe' && method !== 'put' && method !== 'sync') {
    return refuse(method === undefined ? refusals.frameMethodMissing() : refusals.frameMethodUnknown());
  }
  if (typeof channel !== 'string' || channel === '') return refuse(refusals.channelMissing());
  // Over HTTP, text is UTF-8 that was checked; JSON can escape a lone surrogate, which UTF-8 cannot carry.
  if (LONE_SURROGATE.test(channel)) return refuse(refusals.frameNotUnicode());
  if (Buffer.byteLength(channel) > limits.maxChannelBytes) return refuse(refusals.channelTooLong(limits.maxChannelBytes));
  if (token !== undefined && typeof token !== 'string') return refuse(refusals.tokenMalformed());
  switch (method) {
    case 'subscribe': {
      const time = fields.time;
      if (time !== undefined && !(typeof time === 'number' && Number.isInteger(time) && time >= 0 && time <= MAX_TIME)) {
        return refuse(refusals.badInteger('time', MAX_TIME));
      }
      return { method, id, channel, since: time === undefined ? -1 : time, token };
    }
    case 'put': {
      const message = fields.message;
      if (typeof message !== 'string') return refuse(refusals.messageMissing());
      if (LONE_SURROGATE.test(message)) return refuse(refusals.frameNotUnicode());
      const bytes = Buffer.byteLength(message);
      if (bytes > limits.maxMessageBytes) return refuse(refusals.messageTooLarge(limits.maxMessageBytes));
      return { method, id, channel, message, bytes, token };
    }
    default:
      return { method, id, channel, token };
  }
}
