/**
 * Request-smuggling guard. uWebSockets.js frames a body by the first
 * Content-Length header it meets and accepts a second one that disagrees; a
 * proxy in front that reads the other one would then see a different request
 * boundary than this server. A request that can be framed two ways is refused
 * (and its connection closed) instead of guessed at.
 */
import type { HttpRequest } from '../uws.js';

// Module state rather than a closure per call: forEach takes a callback.
let lengths = 0;
let chunked = false;
const count = (key: string): void => {
  if (key === 'content-length') lengths++;
  else if (key === 'transfer-encoding') chunked = true;
};

/** True when the request carries two Content-Length headers, or one with Transfer-Encoding. */
export function ambiguousFraming(req: HttpRequest): boolean {
  lengths = 0;
  chunked = false;
  req.forEach(count);
  return lengths > 1 || (lengths === 1 && chunked);
}
