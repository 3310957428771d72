/**
 * Every way a request can fail, as typed values with a stable code and an HTTP
 * status. Parsing throws these; the HTTP front end maps them to an answer in
 * one place (see protocol/respond.ts). Codes are also the `code` label of the
 * `comet_errors_total` metric, so they are part of the public surface.
 */
export const ERROR_CODES = {
  COMET_ERR_BAD_METHOD: 400,
  COMET_ERR_BAD_CHANNEL: 400,
  COMET_ERR_MISSING_MESSAGE: 400,
  COMET_ERR_BAD_TIME: 400,
  COMET_ERR_BAD_TIMEOUT: 400,
  COMET_ERR_BAD_CALLBACK: 400,
  COMET_ERR_BAD_ENCODING: 400,
  COMET_ERR_BAD_FRAMING: 400,
  COMET_ERR_NOT_FOUND: 404,
  COMET_ERR_HTTP_METHOD: 405,
  COMET_ERR_MESSAGE_TOO_LARGE: 413,
  COMET_ERR_BODY_TOO_LARGE: 413,
  COMET_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  COMET_ERR_INTERNAL: 500,
  COMET_ERR_TOO_MANY_WAITING: 503,
  COMET_ERR_SHUTTING_DOWN: 503,
  COMET_ERR_STORE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export class CometError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'CometError';
    this.code = code;
    this.statusCode = ERROR_CODES[code];
  }
}
