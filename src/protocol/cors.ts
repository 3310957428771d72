/**
 * CORS (--cors-origin): which headers an answer carries, decided once per
 * request from its Origin and written as one precomputed block per content
 * type (see Responder), so that no answer builds a header string.
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

/**
 * The headers one answer carries besides Content-Type, Cache-Control and
 * X-Content-Type-Options, as one block per content type, built on first use.
 */
export class AnswerHeaders {
  private readonly blocks = new Map<string, Buffer>();

  constructor(
    /** The CORS lines, each preceded by CRLF; empty for none. */
    private readonly cors: string,
    /** The whole preflight answer's headers after Access-Control-Allow-Origin's name, or undefined for a preflight without CORS headers. */
    readonly preflight: Buffer | undefined,
  ) {}

  /** The value of a Content-Type header line that writes every common header at once. */
  block(contentType: string): Buffer {
    let block = this.blocks.get(contentType);
    if (block === undefined) {
      block = Buffer.from(`${contentType}\r\nCache-Control: no-store${this.cors}\r\nX-Content-Type-Options: nosniff`);
      this.blocks.set(contentType, block);
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

  /** The headers for a request with this Origin header ('' when absent); list mode only. */
  forOrigin(origin: string): AnswerHeaders {
    return this.allowed.get(origin) ?? this.unmatched;
  }
}
