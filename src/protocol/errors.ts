/**
 * Every way a request can fail: one table of codes (with the HTTP status of
 * each, and whether the connection must close after the answer), and beside
 * it a factory per refusal, the one place each message is worded. Parsing
 * throws these; protocol/respond.ts writes them. Codes are also the `code`
 * label of the `comet_errors_total` metric, so they are part of the public
 * surface.
 */

/**
 * `closes`: what follows the request on its connection cannot be trusted to
 * start the next request (an unread body, or a body of ambiguous length), so
 * the connection closes after the answer. `retryAfter`: seconds a client is
 * told to wait (Retry-After) before trying an overloaded server again, so that
 * well-behaved clients back off instead of adding to the overload.
 */
const ERROR_TABLE = {
  COMET_ERR_BAD_METHOD: { status: 400, closes: false },
  COMET_ERR_BAD_CHANNEL: { status: 400, closes: false },
  COMET_ERR_MISSING_MESSAGE: { status: 400, closes: false },
  COMET_ERR_BAD_TIME: { status: 400, closes: false },
  COMET_ERR_BAD_TIMEOUT: { status: 400, closes: false },
  COMET_ERR_BAD_CALLBACK: { status: 400, closes: false },
  COMET_ERR_BAD_ENCODING: { status: 400, closes: false },
  COMET_ERR_BAD_FRAME: { status: 400, closes: false },
  COMET_ERR_BAD_FRAMING: { status: 400, closes: true },
  COMET_ERR_UNAUTHORIZED: { status: 401, closes: false },
  COMET_ERR_FORBIDDEN: { status: 403, closes: false },
  COMET_ERR_NOT_FOUND: { status: 404, closes: false },
  COMET_ERR_HTTP_METHOD: { status: 405, closes: false },
  COMET_ERR_MESSAGE_TOO_LARGE: { status: 413, closes: false },
  COMET_ERR_BODY_TOO_LARGE: { status: 413, closes: true },
  COMET_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, closes: true },
  COMET_ERR_RATE_LIMITED: { status: 429, closes: false, retryAfter: 1 },
  COMET_ERR_INTERNAL: { status: 500, closes: false },
  COMET_ERR_TOO_MANY_WAITING: { status: 503, closes: false, retryAfter: 1 },
  COMET_ERR_SHUTTING_DOWN: { status: 503, closes: false, retryAfter: 1 },
  COMET_ERR_STORE_UNAVAILABLE: { status: 503, closes: false, retryAfter: 1 },
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;
export const ERROR_CODE_LIST = Object.keys(ERROR_TABLE) as ErrorCode[];
/** Code to HTTP status (public: exported by the package). */
export const ERROR_CODES = Object.fromEntries(ERROR_CODE_LIST.map((code) => [code, ERROR_TABLE[code].status])) as {
  readonly [C in ErrorCode]: (typeof ERROR_TABLE)[C]['status'];
};

export class CometError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** Whether the connection closes after this answer (see ERROR_TABLE). */
  readonly closesConnection: boolean;
  /** The Retry-After header's value, for refusals by an overloaded server (see ERROR_TABLE). */
  readonly retryAfter: string | undefined;

  /**
   * `retryAfter` and `closes` replace the table's for this one refusal: a
   * rate-limited client is told when its next token comes, and a refused
   * POST's unread body must not be read as a request.
   */
  constructor(code: ErrorCode, message: string, overrides?: { retryAfter?: number; closes?: boolean }) {
    super(message);
    this.name = 'CometError';
    this.code = code;
    this.statusCode = ERROR_TABLE[code].status;
    this.closesConnection = overrides?.closes ?? ERROR_TABLE[code].closes;
    const entry = ERROR_TABLE[code];
    const retryAfter = overrides?.retryAfter ?? ('retryAfter' in entry ? entry.retryAfter : undefined);
    this.retryAfter = retryAfter === undefined ? undefined : String(retryAfter);
  }
}

const refusal = (code: ErrorCode, message: string) => new CometError(code, message);

/** The refusals, by what went wrong. */
export const refusals = {
  methodMissing: () => refusal('COMET_ERR_BAD_METHOD', 'method is required (put, get, sync or events)'),
  methodUnknown: () => refusal('COMET_ERR_BAD_METHOD', 'method must be one of put, get, sync, events'),
  frameMethodMissing: () => refusal('COMET_ERR_BAD_METHOD', 'method is required (subscribe, unsubscribe, put or sync)'),
  frameMethodUnknown: () => refusal('COMET_ERR_BAD_METHOD', 'method must be one of subscribe, unsubscribe, put, sync'),
  frameNotJson: () => refusal('COMET_ERR_BAD_FRAME', 'a frame must be a JSON object: {"id":..., "method":..., ...}'),
  frameId: (maxLength: number) => refusal('COMET_ERR_BAD_FRAME', `id must be a number or a string, of at most ${maxLength} characters as JSON`),
  frameNotUnicode: () => refusal('COMET_ERR_BAD_ENCODING', 'lone surrogate in the frame: channel and message must be well-formed Unicode'),
  frameBinary: () => refusal('COMET_ERR_BAD_FRAME', 'binary frames are not accepted: send JSON text frames'),
  tooManySubscriptions: (max: number) =>
    refusal('COMET_ERR_TOO_MANY_WAITING', `this connection already has ${max} subscriptions (--max-subscriptions): unsubscribe first`),
  channelMissing: () => refusal('COMET_ERR_BAD_CHANNEL', 'channel is required'),
  channelTooLong: (maxBytes: number) => refusal('COMET_ERR_BAD_CHANNEL', `channel is longer than ${maxBytes} bytes`),
  messageMissing: () => refusal('COMET_ERR_MISSING_MESSAGE', 'message is required for put'),
  messageTooLarge: (maxBytes: number) => refusal('COMET_ERR_MESSAGE_TOO_LARGE', `message is larger than ${maxBytes} bytes`),
  badInteger: (param: 'time' | 'timeout', max: number) =>
    refusal(param === 'time' ? 'COMET_ERR_BAD_TIME' : 'COMET_ERR_BAD_TIMEOUT', `${param} must be a non-negative integer of at most ${max}`),
  callbackTooLong: (maxLength: number) => refusal('COMET_ERR_BAD_CALLBACK', `callback is longer than ${maxLength} characters`),
  callbackNotIdentifier: () => refusal('COMET_ERR_BAD_CALLBACK', 'callback must be a JavaScript identifier or a dotted path of identifiers'),
  /** `segment` passed the identifier grammar, so it is safe to echo. */
  callbackReserved: (segment: string) =>
    refusal('COMET_ERR_BAD_CALLBACK', `callback must not name ${segment}: built-ins and page objects are reserved (a callback could drive the page)`),
  callbackNotAllowed: () => refusal('COMET_ERR_BAD_CALLBACK', "callback does not match this server's allowed callback names (--jsonp-callback)"),
  jsonpDisabled: () => refusal('COMET_ERR_BAD_CALLBACK', 'JSONP is disabled on this server (--jsonp off): send no callback and read the JSON answer'),
  paramsNotUtf8: () => refusal('COMET_ERR_BAD_ENCODING', 'invalid UTF-8 in the parameters (percent-encode non-ASCII characters)'),
  paramsMalformed: () => refusal('COMET_ERR_BAD_ENCODING', 'malformed percent-encoding or invalid UTF-8 in the parameters'),
  bodyNotUtf8: () => refusal('COMET_ERR_BAD_ENCODING', 'request body is not valid UTF-8'),
  ambiguousFraming: () => refusal('COMET_ERR_BAD_FRAMING', 'conflicting Content-Length headers, or Content-Length with Transfer-Encoding'),
  tokenMissing: () => refusal('COMET_ERR_UNAUTHORIZED', 'a token is required: send Authorization: Bearer <token> or the token parameter'),
  tokenTooLarge: (maxBytes: number) => refusal('COMET_ERR_UNAUTHORIZED', `the token is longer than ${maxBytes} bytes`),
  tokenMalformed: () => refusal('COMET_ERR_UNAUTHORIZED', 'the token is not a well-formed JWT (three base64url parts, a JSON header and claims)'),
  tokenAlgorithm: () =>
    refusal('COMET_ERR_UNAUTHORIZED', "the token's alg is not accepted: HS256, RS256 or ES256, with a key of that kind configured on this server"),
  tokenSignature: () => refusal('COMET_ERR_UNAUTHORIZED', "the token's signature does not verify with any key of this server"),
  tokenClaims: () =>
    refusal(
      'COMET_ERR_UNAUTHORIZED',
      'the token needs exp (seconds since the epoch) and channels (a list of names); nbf and methods, when present, must be valid',
    ),
  tokenExpired: () => refusal('COMET_ERR_UNAUTHORIZED', 'the token has expired (exp)'),
  tokenNotYetValid: () => refusal('COMET_ERR_UNAUTHORIZED', 'the token is not valid yet (nbf)'),
  forbiddenChannel: () => refusal('COMET_ERR_FORBIDDEN', "the token's channels do not cover this channel"),
  forbiddenMethod: (method: string) => refusal('COMET_ERR_FORBIDDEN', `the token's methods do not include ${method}`),
  originNotAllowed: () => refusal('COMET_ERR_FORBIDDEN', 'WebSocket connections are not accepted from this Origin (--cors-origin)'),
  noSuchPath: (url: string) => refusal('COMET_ERR_NOT_FOUND', `no such path: ${url}`),
  noSuchThread: (thread: number) => refusal('COMET_ERR_NOT_FOUND', `no thread ${thread}`),
  httpMethod: (method: string, where = '') => refusal('COMET_ERR_HTTP_METHOD', `HTTP method ${method.toUpperCase()} is not allowed${where}`),
  bodyTooLarge: (maxBytes: number) => refusal('COMET_ERR_BODY_TOO_LARGE', `request body is larger than ${maxBytes} bytes`),
  unsupportedMediaType: () => refusal('COMET_ERR_UNSUPPORTED_MEDIA_TYPE', 'POST bodies must be application/x-www-form-urlencoded'),
  internal: () => refusal('COMET_ERR_INTERNAL', 'internal error'),
  /** `seconds` until this address's next token; `closes` for a POST, whose body is left unread. */
  rateLimited: (seconds: number, closes: boolean) =>
    new CometError('COMET_ERR_RATE_LIMITED', `too many requests from this address (--rate-limit): try again in ${seconds} s`, { retryAfter: seconds, closes }),
  tooManyWaiting: () => refusal('COMET_ERR_TOO_MANY_WAITING', 'too many waiting gets, try again later'),
  shuttingDown: () => refusal('COMET_ERR_SHUTTING_DOWN', 'the server is shutting down'),
  /** The store's own words, which say which store and why. */
  storeUnavailable: (reason: string) => refusal('COMET_ERR_STORE_UNAVAILABLE', reason),
  storeRefused: (reason: string) => refusal('COMET_ERR_INTERNAL', reason),
  storeFailed: (reason: string) => refusal('COMET_ERR_INTERNAL', `the channel store failed: ${reason}`),
} as const;
