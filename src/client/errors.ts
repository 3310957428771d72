/**
 * What can go wrong talking to a comet server, as typed errors an application
 * can tell apart: the server refused the request (4xx: retrying the same
 * request will not help), the server could not serve it now (5xx: retry
 * later), or no answer arrived at all (network, timeout). `retryable` says
 * which; subscriptions retry exactly the retryable ones.
 */
export class CometClientError extends Error {
  constructor(
    message: string,
    /** The server's error code (COMET_ERR_...), or COMET_CLIENT_NETWORK / COMET_CLIENT_TIMEOUT. */
    readonly code: string,
    /** HTTP status, or 0 when no answer arrived. */
    readonly status: number,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A 4xx answer: the request itself was wrong (bad channel, message too large,
 * ...), or access control refused it: 401 COMET_ERR_UNAUTHORIZED (no token, or
 * a bad or expired one), 403 COMET_ERR_FORBIDDEN (the token does not cover it).
 * The one retryable 4xx is 429 COMET_ERR_RATE_LIMITED (the server's
 * --rate-limit): the same request will do once the client slowed down.
 */
export class CometRequestError extends CometClientError {}

/** A 5xx answer: the server is overloaded, shutting down, or its store is unavailable. */
export class CometServerError extends CometClientError {}

/** No answer: the connection failed or was cut, or the answer took too long. */
export class CometNetworkError extends CometClientError {}

/** The error for an HTTP answer with this status and body (`{"error":...,"code":...}` when the server wrote it). */
export function errorFromAnswer(status: number, body: unknown): CometClientError {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as { error?: unknown; code?: unknown };
  const message = typeof fields.error === 'string' ? fields.error : `HTTP ${status}`;
  const code = typeof fields.code === 'string' ? fields.code : `HTTP_${status}`;
  if (status >= 400 && status < 500) return new CometRequestError(message, code, status, status === 429);
  return new CometServerError(message, code, status, true);
}

export function networkError(message: string, code = 'COMET_CLIENT_NETWORK'): CometNetworkError {
  return new CometNetworkError(message, code, 0, true);
}

/**
 * The HTTP status each refusal code answers with over HTTP, for refusals that
 * come without one (a WebSocket frame `{"id":N,"error":...,"code":...}`), so
 * that they are the same errors, as retryable, over every transport.
 */
const STATUS_OF_CODE: Record<string, number> = {
  COMET_ERR_UNAUTHORIZED: 401,
  COMET_ERR_FORBIDDEN: 403,
  COMET_ERR_MESSAGE_TOO_LARGE: 413,
  COMET_ERR_RATE_LIMITED: 429,
  COMET_ERR_INTERNAL: 500,
  COMET_ERR_TOO_MANY_WAITING: 503,
  COMET_ERR_SHUTTING_DOWN: 503,
  COMET_ERR_STORE_UNAVAILABLE: 503,
};

/** The error for a refusal frame; a code not listed is a bad request (400), as every other COMET_ERR_BAD_... is. */
export function errorFromRefusal(frame: { code?: unknown; error?: unknown }): CometClientError {
  return errorFromAnswer((typeof frame.code === 'string' && STATUS_OF_CODE[frame.code]) || 400, frame);
}
