/**
 * CORS (--cors-origin): which headers an answer carries, decided once per
 * request from its Origin and written as one precomputed head per status
 * and content type (see Responder), so that no answer builds a header string.
 *
 * `*` (the default): every protocol answer carries
 * `Access-Control-Allow-Origin: *`, and the Origin header is not even read.
 * A list: an Origin equal to one of its entries is echoed, with
 * `Vary: Origin`; any other Origin, or none, gets no CORS header, so a
 * browser keeps the answer from the page. Every answer in list mode carries
 * `Vary: Origin` (the answer depends on it, Fetch standard, "CORS protocol
 * and HTTP caches"), though answers are no-store anyway.
 *
 * The preflight allows only the request headers the protocol reads, never
 * those asked for (Access-Control-Request-Headers is not read at all).
 */
import { Buffer } from 'node:buffer';

export const ALLOWED_METHODS = 'GET, POST, HEAD, OPTIONS';
export const ALLOWED_HEADERS = 'Content-Type, Authorization, Last-Event-ID';

/** The status of nearly every answer: uWS writes it itself when told no other. */
export const OK = '200 OK';

/**
 * What an answer's head holds before uWS's own headers (Date,
 * Content-Length): the status, Content-Type, Cache-Control,
 * X-Content-Type-Options and the CORS lines, as one block per status and
 * content type, built on first use. uWS writes a status as
 * `HTTP/1.1 <status>\r\n`, so one writeStatus() of the block writes them all:
 * one native call, and one argument to convert, where a status and a
 * header line took two and three (every native argument cost 40-50 ns in a
 * profile of puts).
 */
export class AnswerHeaders {
  /** By content type: the blocks of `200 OK`, looked up on every answer. */
  private readonly ok = new Map<string, Buffer>();
  /** By status and content type: refusals and redirects. */
  private readonly others = new Map<string, Buffer>();

  constructor(
    /** The CORS lines, each preceded by CRLF; empty for none. */
    private readonly cors: string,
    /** The whole preflight answer's headers after Access-Control-Allow-Origin's name, or undefined for a preflight without CORS headers. */
    readonly preflight: Buffer | undefined,
  ) {}

  /** The argument of writeStatus() that writes `status` and every common header; `status` as STATUS texts it (`200 OK`). */
  head(status: string, contentType: string): Buffer {
    const blocks = status === OK ? this.ok : this.others;
    const key = status === OK ? contentType : `${status}\n${contentType}`;
    let block = blocks.get(key);
    if (block === undefined) {
      block = Buffer.from(`${status}\r\nContent-Type: ${contentType}\r\nCache-Control: no-store${this.cors}\r\nX-Content-Type-Options: nosniff`);
      blocks.set(key, block);
    }
    return block;
  }
}

function preflightBlock(origin: string, vary: boolean): Buffer {
  return Buffer.from(
    `${origin}${vary ? '\r\nVary: Origin' : ''}\r\nAccess-Control-Allow-Methods: ${ALLOWED_METHODS}\r\nAccess-Control-Allow-Headers: ${ALLOWED_HEADERS}\r\nAccess-Control-Max-Age: 86400`,
  );
}

export class CorsPolicy {
  /** No CORS header at all: operations answers, and list mode without a matching Origin. */
  static readonly NONE = new AnswerHeaders('', undefined);
  /** `*`: every answer the same, whatever the Origin. */
  readonly wildcard: AnswerHeaders | undefined;
  private readonly allowed = new Map<string, AnswerHeaders>();
  private readonly unmatched: AnswerHeaders;

  constructor(corsOrigin: string) {
    if (corsOrigin === '*') {
      this.wildcard = new AnswerHeaders('\r\nAccess-Control-Allow-Origin: *', preflightBlock('*', false));
      this.unmatched = this.wildcard;
      return;
    }
    for (const origin of corsOrigin.split(',').map((o) => o.trim())) {
      this.allowed.set(origin, new AnswerHeaders(`\r\nAccess-Control-Allow-Origin: ${origin}\r\nVary: Origin`, preflightBlock(origin, true)));
    }
    this.unmatched = new AnswerHeaders('\r\nVary: Origin', undefined);
  }

  /**
   * Whether a WebSocket may be opened from this Origin ('' when absent: not
   * a browser's page). CORS does not cover WebSockets, so the list is
   * checked here: a page elsewhere must not open one with its visitor's
   * access.
   */
  allowsOrigin(origin: string): boolean {
    return this.wildcard !== undefined || origin === '' || this.allowed.has(origin);
  }

  /** The headers for a request with this Origin header ('' when absent); list mode only. */
  forOrigin(origin: string): AnswerHeaders {
    return this.allowed.get(origin) ?? this.unmatched;
  }
}
