/**
 * Every answer this server writes: its body, and how it is written (status,
 * the headers the contract requires, JSON or JSONP framing, all corked so
 * that the whole answer leaves in one write); and the one refusal policy: how
 * a refusal is written, counted, and whether its connection closes.
 *
 * Message bodies arrive here already JSON-encoded (see jsonp.ts
 * scriptSafeJson), so an answer is concatenation, never a second
 * serialisation.
 */
import { Buffer } from 'node:buffer';
import type { HttpResponse } from '../uws.js';
import { type AnswerHeaders, CorsPolicy, OK } from './cors.js';
import type { CometError, ErrorCode } from './errors.js';
import { wrapJsonp } from './jsonp.js';
import { AnswerWriter, type SlowReaderCounters } from './slow-readers.js';
import { EVENT_STREAM_TYPE } from './streams.js';

const TIME_PREFIX = '{"time":';

export function timeAnswer(time: number): string {
  return `${TIME_PREFIX}${time}}`;
}

/** Times of 16 digits (the years 2001 to 2286) are written into one reused Buffer: TIME_PREFIX + digits + `}`. */
const TIME_DIGITS_FROM = 1e15;
const TIME_DIGITS_TO = 1e16;
/** The parts of a messages answer around its time and its messages' texts, and of its JSONP wrapping. */
const TIME_KEY = Buffer.from(TIME_PREFIX, 'latin1');
const MESSAGES_KEY = Buffer.from(',"messages":[', 'latin1');
const MESSAGES_END = Buffer.from(']}', 'latin1');
const MISSED_END = Buffer.from('],"missed":true}', 'latin1');
const JSONP_OPEN = Buffer.from('/**/', 'latin1');
const JSONP_CLOSE = Buffer.from(');', 'latin1');
/** Longest framing around the messages: a time of up to 21 characters (1e+21), and a callback's wrapping without the callback. */
const MESSAGES_FRAMING = JSONP_OPEN.length + 1 + TIME_KEY.length + 21 + MESSAGES_KEY.length + MISSED_END.length + JSONP_CLOSE.length;

export function messagesAnswer(time: number, bodies: readonly string[], start = 0, end = bodies.length, missed = false): string {
  let json = `{"time":${time},"messages":[`;
  for (let i = start; i < end; i++) json += i === start ? bodies[i] : ',' + bodies[i];
  return missed ? json + '],"missed":true}' : json + ']}';
}

export function errorAnswer(err: CometError): string {
  return `{"error":${JSON.stringify(err.message)},"code":"${err.code}"}`;
}

const STATUS: Record<number, string> = {
  200: OK,
  204: '204 No Content',
  301: '301 Moved Permanently',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};
interface PendingAnswer {
  res: HttpResponse | undefined;
  status: number;
  contentType: string;
  body: string | Buffer;
  close: boolean;
  headers: AnswerHeaders;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const SCRIPT_TYPE = 'application/javascript; charset=utf-8';
const ALLOW_ORIGIN = Buffer.from('Access-Control-Allow-Origin');

/**
 * Writes `time` (16 digits) at bytes[at..at+15]; returns the position after.
 * Two halves of 8 digits, each below 2^31: integer division by 10 is a
 * multiply and a shift, where dividing the 16-digit double took 70 ns a time
 * against 43 (microbenchmark).
 */
function writeTime(bytes: Buffer, at: number, time: number): number {
  const high = Math.floor(time / 1e8);
  writeEightDigits(bytes, at, high);
  writeEightDigits(bytes, at + 8, time - high * 1e8);
  return at + 16;
}

/** Writes `value` (below 10^8) as 8 ASCII digits, zero-padded, at bytes[at..at+7]. */
function writeEightDigits(bytes: Buffer, at: number, value: number): void {
  let rest = value;
  for (let i = at + 7; i >= at; i--) {
    const next = (rest / 10) | 0;
    bytes[i] = 48 + rest - next * 10;
    rest = next;
  }
}

export class Responder {
  /**
   * The status and headers every answer carries, per status and content
   * type, as one block (an AnswerHeaders, chosen per request from its
   * Origin, see cors.ts) that one writeStatus() writes: a call per header
   * line was the largest self time in a profile of puts. Each origin is a
   * single line (config/options.ts checks it).
   */
  readonly cors: CorsPolicy;

  /**
   * The response whose request handler is running (HttpFront sets it): uWS
   * already corks that one, and a cork() of its own, a native call back into
   * JavaScript, showed in profiles of puts answered inside their handler.
   */
  inHandler: HttpResponse | null = null;

  /**
   * Set once a graceful shutdown begins: every answer from then on closes its
   * connection, and the protocol's requests are refused.
   */
  closing = false;

  private readonly writer: AnswerWriter;
  private readonly timeBytes = Buffer.from(`${TIME_PREFIX}${'0'.repeat(16)}}`, 'latin1');
  /** Where messages answers are assembled, reused for every one; grown to the largest answer yet (--max-answer-bytes and one message bound it). */
  private answerBytes = Buffer.allocUnsafeSlow(4096);
  /** What corked() runs inside res.cork(), and its result: one function for every answer, not a closure each. */
  private writing: () => boolean = () => true;
  private kept = true;
  private readonly corkedWrite = (): void => {
    this.kept = this.writing();
  };
  /** The answer write() is writing, for writePending. */
  private readonly pending: PendingAnswer = { res: undefined, status: 200, contentType: '', body: '', close: false, headers: CorsPolicy.NONE };
  private readonly writePending = (): boolean => {
    const a = this.pending;
    return this.writeNow(a.res!, a.status, a.contentType, a.body, a.close, a.headers);
  };

  constructor(
    corsOrigin: string,
    /** Counts each refusal by its code (the comet_errors_total metric). */
    private readonly counted: (code: ErrorCode) => void,
    /** --max-connection-buffer, and what counts the answers waiting on slow readers. */
    maxUnsent: number,
    slowReaders: SlowReaderCounters,
  ) {
    this.cors = new CorsPolicy(corsOrigin);
    this.writer = new AnswerWriter(maxUnsent, slowReaders, (body) => body === this.timeBytes || body.buffer === this.answerBytes.buffer);
  }

  /**
   * A put's or a sync's answer. Without a callback, and for the times of
   * these centuries, its bytes are written into one Buffer reused for every
   * such answer, so a put allocates no answer: the string and the number's
   * conversion showed in profiles of puts (3% of the CPU), and uWS then
   * converted the string to bytes again. Safe to reuse: uWS copies what it
   * takes, and AnswerWriter copies what it leaves unsent.
   */
  time(res: HttpResponse, time: number, callback: string | undefined, headers: AnswerHeaders): void {
    if (callback !== undefined || !(time >= TIME_DIGITS_FROM && time < TIME_DIGITS_TO)) {
      this.answer(res, timeAnswer(time), callback, headers);
      return;
    }
    writeTime(this.timeBytes, TIME_PREFIX.length, time);
    this.write(res, 200, JSON_TYPE, this.timeBytes, this.closing, headers);
  }

  /**
   * A get's answer from a read: `json`, its messages' texts as the engine
   * holds them (engine.ts ReadResult), is copied once into bytes reused for
   * every such answer, between the time and the answer's end, and JSONP's
   * wrapping when there is a callback (ASCII, see jsonp.ts). From this
   * thread's own engine, nothing is decoded into strings and encoded again;
   * from another thread's, `json` came as a string (threads/messages.ts) and
   * is encoded here. Returns the body's length in bytes.
   */
  messages(res: HttpResponse, time: number, json: Buffer | string, missed: boolean, callback: string | undefined, headers: AnswerHeaders): number {
    // A UTF-16 unit is at most 3 UTF-8 bytes.
    const size = MESSAGES_FRAMING + (callback === undefined ? 0 : callback.length) + (typeof json === 'string' ? json.length * 3 : json.length);
    if (size > this.answerBytes.length) this.answerBytes = Buffer.allocUnsafeSlow(Math.max(size, this.answerBytes.length * 2));
    const bytes = this.answerBytes;
    let at = 0;
    if (callback !== undefined) {
      bytes.set(JSONP_OPEN, 0);
      at = JSONP_OPEN.length + bytes.write(callback, JSONP_OPEN.length, 'latin1');
      bytes[at++] = 0x28; // '('
    }
    bytes.set(TIME_KEY, at);
    at += TIME_KEY.length;
    if (time >= TIME_DIGITS_FROM && time < TIME_DIGITS_TO) at = writeTime(bytes, at, time);
    else at += bytes.write(String(time), at, 'latin1');
    bytes.set(MESSAGES_KEY, at);
    at += MESSAGES_KEY.length;
    if (typeof json === 'string') at += bytes.write(json, at);
    else {
      bytes.set(json, at);
      at += json.length;
    }
    const end = missed ? MISSED_END : MESSAGES_END;
    bytes.set(end, at);
    at += end.length;
    if (callback !== undefined) {
      bytes.set(JSONP_CLOSE, at);
      at += JSONP_CLOSE.length;
    }
    this.framed(res, bytes.subarray(0, at), callback !== undefined, headers);
    return at;
  }

  /** Writes a protocol answer given as text. */
  private answer(res: HttpResponse, json: string, callback: string | undefined, headers: AnswerHeaders): void {
    this.framed(res, callback === undefined ? json : wrapJsonp(callback, json), callback !== undefined, headers);
  }

  /** Writes an already framed body shared by many answers (fan-out); the headers are each answer's own. */
  framed(res: HttpResponse, body: string | Buffer, jsonp: boolean, headers: AnswerHeaders): void {
    this.write(res, 200, jsonp ? SCRIPT_TYPE : JSON_TYPE, body, this.closing, headers);
  }

  /**
   * Refuses a request with its error's status and code. The connection
   * closes after the answer when the server is closing, or when what follows
   * on it cannot be trusted to start a request (see protocol/errors.ts). A
   * refused HEAD gets the status and headers only: uWS would send the body.
   */
  refuse(res: HttpResponse, err: CometError, headers: AnswerHeaders, extraHeader?: [string, string], head = false): void {
    this.counted(err.code);
    this.corked(res, () => {
      res.writeStatus(headers.head(STATUS[err.statusCode]!, JSON_TYPE));
      if (extraHeader) res.writeHeader(extraHeader[0], extraHeader[1]);
      if (err.retryAfter !== undefined) res.writeHeader('Retry-After', err.retryAfter);
      if (head) res.endWithoutBody();
      else if (this.closing || err.closesConnection) res.end(errorAnswer(err), true);
      else return this.writer.end(res, errorAnswer(err), res !== this.inHandler);
      return true;
    });
  }

  /** HEAD: the headers a GET would carry, no body, nothing executed; `events`: those of an event stream. */
  head(res: HttpResponse, callback: string | undefined, headers: AnswerHeaders, events = false): void {
    this.corked(res, () => {
      res.writeStatus(headers.head(OK, events ? EVENT_STREAM_TYPE : callback === undefined ? JSON_TYPE : SCRIPT_TYPE));
      res.endWithoutBody();
      return true;
    });
  }

  /**
   * An OPTIONS preflight: the allowed methods and the fixed list of headers
   * the protocol reads (never what Access-Control-Request-Headers asks for),
   * or, for an Origin not on the list, no CORS header at all.
   */
  preflight(res: HttpResponse, headers: AnswerHeaders): void {
    this.corked(res, () => {
      res.writeStatus(STATUS[204]!);
      if (headers.preflight !== undefined) res.writeHeader(ALLOW_ORIGIN, headers.preflight);
      res.endWithoutBody(0);
      return true;
    });
  }

  /** An operations answer (/metrics, /healthz, fault injection): no CORS header. */
  plain(res: HttpResponse, status: number, contentType: string, body: string): void {
    this.write(res, status, contentType, body, false, CorsPolicy.NONE);
  }

  /**
   * A static file (the demo's): revalidated on every load (no-cache), since
   * a server restarted with a newer build serves new files at the same paths.
   */
  file(res: HttpResponse, status: number, contentType: string, body: Buffer | string, head: boolean, extraHeader?: [string, string]): void {
    this.corked(res, () => {
      if (status !== 200) res.writeStatus(STATUS[status]!);
      res.writeHeader('Content-Type', contentType);
      res.writeHeader('Cache-Control', 'no-cache');
      res.writeHeader('X-Content-Type-Options', 'nosniff');
      if (extraHeader) res.writeHeader(extraHeader[0], extraHeader[1]);
      // endWithoutBody(length) leaves the response unended in this uWS build (the process aborts).
      if (head) res.endWithoutBody();
      else return this.writer.end(res, body, res !== this.inHandler);
      return true;
    });
  }

  /**
   * Every protocol and operations answer: a put's on every put, so no
   * closure per call. Its parts wait in `pending` while corked() runs the
   * one writePending bound at construction.
   */
  private write(res: HttpResponse, status: number, contentType: string, body: string | Buffer, close: boolean, headers: AnswerHeaders): void {
    const a = this.pending;
    a.res = res;
    a.status = status;
    a.contentType = contentType;
    a.body = body;
    a.close = close;
    a.headers = headers;
    this.corked(res, this.writePending);
    a.res = undefined;
    a.body = '';
  }

  private writeNow(res: HttpResponse, status: number, contentType: string, body: string | Buffer, close: boolean, headers: AnswerHeaders): boolean {
    res.writeStatus(headers.head(status === 200 ? OK : STATUS[status]!, contentType));
    if (!close) return this.writer.end(res, body, res !== this.inHandler);
    // Closing after it anyway: at most this one answer waits in uWS's buffer.
    res.end(body, true);
    return true;
  }

  /**
   * Runs `write` corked; closes the connection once out of the cork when
   * `write` says so (an answer too large to leave unsent, see slow-readers.ts).
   */
  private corked(res: HttpResponse, write: () => boolean): void {
    let keep: boolean;
    if (res === this.inHandler) keep = write();
    else {
      this.writing = write;
      res.cork(this.corkedWrite);
      keep = this.kept;
    }
    if (!keep) res.close();
  }
}
