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
export const ALLOWED_METHODS = 'GET, POST, HEAD, OPTIONS';

export class Responder {
  /**
   * The headers every answer carries, per content type, as one block: uWS
   * writes a header as `key: value\r\n`, so a value holding the other lines
   * costs one native call and no string conversion instead of four of each
   * (the four calls were the largest self time in a profile of puts).
   * corsOrigin is a single line (config/options.ts checks it).
   */
  private readonly headerBlocks = new Map<string, Buffer>();

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
    private readonly corsOrigin: string,
    /** Counts each refusal by its code (the comet_errors_total metric). */
    private readonly counted: (code: ErrorCode) => void,
  ) {}

  /** Writes a protocol answer; returns the body's length. */
  answer(res: HttpResponse, json: string, callback: string | undefined): number {
    const body = callback === undefined ? json : wrapJsonp(callback, json);
    this.framed(res, body, callback !== undefined);
    return body.length;
  }

  /** Writes an already framed body shared by many answers (fan-out). */
  framed(res: HttpResponse, body: string, jsonp: boolean): void {
    this.write(res, 200, jsonp ? SCRIPT_TYPE : JSON_TYPE, body, this.closing);
  }

  /**
   * Refuses a request with its error's status and code. The connection
   * closes after the answer when the server is closing, or when what follows
   * on it cannot be trusted to start a request (see protocol/errors.ts).
   */
  refuse(res: HttpResponse, err: CometError, extraHeader?: [string, string]): void {
    this.counted(err.code);
    this.corked(res, () => {
      res.writeStatus(STATUS[err.statusCode]!);
      this.commonHeaders(res, JSON_TYPE);
      if (extraHeader) res.writeHeader(extraHeader[0], extraHeader[1]);
      res.end(errorAnswer(err), this.closing || err.closesConnection);
    });
  }

  /** HEAD: the headers a GET would carry, no body, nothing executed. */
  head(res: HttpResponse, callback: string | undefined): void {
    this.corked(res, () => {
      this.commonHeaders(res, callback === undefined ? JSON_TYPE : SCRIPT_TYPE);
      res.endWithoutBody();
    });
  }

  preflight(res: HttpResponse, requestHeaders: string): void {
    this.corked(res, () => {
      res.writeStatus(STATUS[204]!);
      res.writeHeader('Access-Control-Allow-Origin', this.corsOrigin);
      res.writeHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      res.writeHeader('Access-Control-Allow-Headers', requestHeaders === '' ? 'Content-Type' : requestHeaders);
      res.writeHeader('Access-Control-Max-Age', '86400');
      res.endWithoutBody(0);
    });
  }

  plain(res: HttpResponse, status: number, contentType: string, body: string): void {
    this.write(res, status, contentType, body, false);
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

  private write(res: HttpResponse, status: number, contentType: string, body: string, close: boolean): void {
    this.corked(res, () => {
      if (status !== 200) res.writeStatus(STATUS[status]!); // uWS answers 200 OK unless told otherwise
      this.commonHeaders(res, contentType);
      res.end(body, close);
    });
  }

  private corked(res: HttpResponse, write: () => void): void {
    if (res === this.inHandler) write();
    else res.cork(write);
  }

  private commonHeaders(res: HttpResponse, contentType: string): void {
    let block = this.headerBlocks.get(contentType);
    if (block === undefined) {
      block = Buffer.from(`${contentType}\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: ${this.corsOrigin}\r\nX-Content-Type-Options: nosniff`);
      this.headerBlocks.set(contentType, block);
    }
    res.writeHeader(CONTENT_TYPE, block);
  }
}
