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
import type { HttpResponse } from '../uws.js';
import { type AnswerHeaders, CorsPolicy } from './cors.js';
import type { CometError, ErrorCode } from './errors.js';
import { wrapJsonp } from './jsonp.js';

export function timeAnswer(time: number): string {
  return `{"time":${time}}`;
}

export function messagesAnswer(time: number, bodies: readonly string[], start = 0, end = bodies.length, missed = false): string {
  let json = `{"time":${time},"messages":[`;
  for (let i = start; i < end; i++) json += i === start ? bodies[i] : ',' + bodies[i];
  return missed ? json + '],"missed":true}' : json + ']}';
}

export function errorAnswer(err: CometError): string {
  return `{"error":${JSON.stringify(err.message)},"code":"${err.code}"}`;
}

const STATUS: Record<number, string> = {
  200: '200 OK',
  204: '204 No Content',
  301: '301 Moved Permanently',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};
const JSON_TYPE = 'application/json; charset=utf-8';
const SCRIPT_TYPE = 'application/javascript; charset=utf-8';
const CONTENT_TYPE = Buffer.from('Content-Type');
const ALLOW_ORIGIN = Buffer.from('Access-Control-Allow-Origin');

export class Responder {
  /**
   * The headers every answer carries, per content type, as one block (an
   * AnswerHeaders, chosen per request from its Origin, see cors.ts): uWS
   * writes a header as `key: value\r\n`, so a value holding the other lines
   * costs one native call and no string conversion instead of four of each
   * (the four calls were the largest self time in a profile of puts). Each
   * origin is a single line (config/options.ts checks it).
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

  constructor(
    corsOrigin: string,
    /** Counts each refusal by its code (the comet_errors_total metric). */
    private readonly counted: (code: ErrorCode) => void,
  ) {
    this.cors = new CorsPolicy(corsOrigin);
  }

  /** Writes a protocol answer; returns the body's length. */
  answer(res: HttpResponse, json: string, callback: string | undefined, headers: AnswerHeaders): number {
    const body = callback === undefined ? json : wrapJsonp(callback, json);
    this.framed(res, body, callback !== undefined, headers);
    return body.length;
  }

  /** Writes an already framed body shared by many answers (fan-out); the headers are each answer's own. */
  framed(res: HttpResponse, body: string, jsonp: boolean, headers: AnswerHeaders): void {
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
      res.writeStatus(STATUS[err.statusCode]!);
      res.writeHeader(CONTENT_TYPE, headers.block(JSON_TYPE));
      if (extraHeader) res.writeHeader(extraHeader[0], extraHeader[1]);
      if (err.retryAfter !== undefined) res.writeHeader('Retry-After', err.retryAfter);
      if (head) res.endWithoutBody();
      else res.end(errorAnswer(err), this.closing || err.closesConnection);
    });
  }

  /** HEAD: the headers a GET would carry, no body, nothing executed. */
  head(res: HttpResponse, callback: string | undefined, headers: AnswerHeaders): void {
    this.corked(res, () => {
      res.writeHeader(CONTENT_TYPE, headers.block(callback === undefined ? JSON_TYPE : SCRIPT_TYPE));
      res.endWithoutBody();
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
      else res.end(body);
    });
  }

  private write(res: HttpResponse, status: number, contentType: string, body: string, close: boolean, headers: AnswerHeaders): void {
    this.corked(res, () => {
      if (status !== 200) res.writeStatus(STATUS[status]!); // uWS answers 200 OK unless told otherwise
      res.writeHeader(CONTENT_TYPE, headers.block(contentType));
      res.end(body, close);
    });
  }

  private corked(res: HttpResponse, write: () => void): void {
    if (res === this.inHandler) write();
    else res.cork(write);
  }
}
