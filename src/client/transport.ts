/**
 * How a request reaches the server. `fetch` (the default) works in browsers
 * and in Node.js and sends puts as a form body, so a message of any allowed
 * size fits; `jsonp` loads the answer as a <script> from the server's origin,
 * for pages that can load nothing else, and can only send GETs (a put's
 * message then travels in the URL). A JSONP request cannot read an error
 * answer (browsers do not run a script answered 4xx or 5xx), so its failures
 * are network errors, retried by subscriptions like any other.
 *
 * A token travels as `Authorization: Bearer` over fetch (the server's CORS
 * preflight allows that header), and as the `token` parameter over JSONP,
 * which cannot set headers.
 */
import { CometClientError, errorFromAnswer, networkError } from './errors.js';

export type Params = Record<string, string>;

export interface Transport {
  /** One request; resolves with the parsed JSON answer, rejects with a CometClientError or the signal's reason. */
  request(params: Params, options: { post: boolean; signal?: AbortSignal; deadlineMs: number }, token?: string): Promise<unknown>;
}

export function fetchTransport(url: string): Transport {
  return {
    async request(params, { post, signal, deadlineMs }, token) {
      const deadline = AbortSignal.timeout(deadlineMs);
      const [both, release] = signal ? anySignal([signal, deadline]) : [deadline, () => undefined];
      try {
        const form = new URLSearchParams(params).toString();
        // Built only with a token: without one a request costs what it did before tokens.
        const authorization = token === undefined ? undefined : `Bearer ${token}`;
        let res: Response;
        try {
          res = post
            ? await fetch(url, {
                method: 'POST',
                body: form,
                headers:
                  authorization === undefined
                    ? { 'content-type': 'application/x-www-form-urlencoded' }
                    : { 'content-type': 'application/x-www-form-urlencoded', authorization },
                signal: both,
                cache: 'no-store',
              })
            : await fetch(`${url}${url.includes('?') ? '&' : '?'}${form}`, {
                signal: both,
                cache: 'no-store',
                headers: authorization === undefined ? undefined : { authorization },
              });
        } catch (err) {
          throw failure(err, signal, deadline, deadlineMs);
        }
        let body: unknown;
        try {
          body = await res.json();
        } catch (err) {
          if (signal?.aborted || deadline.aborted) throw failure(err, signal, deadline, deadlineMs);
          body = undefined;
        }
        if (!res.ok) throw errorFromAnswer(res.status, body);
        if (body === undefined) throw networkError(`the answer (HTTP ${res.status}) is not JSON`);
        return body;
      } finally {
        // A subscription's signal outlives thousands of requests: each must take its listener off it.
        release();
      }
    },
  };
}

let jsonpSequence = 0;

export function jsonpTransport(url: string): Transport {
  return {
    request(params, { signal, deadlineMs }, token) {
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const name = `__comet_jsonp_${Date.now().toString(36)}_${jsonpSequence++}`;
        const callbacks = globalThis as unknown as Record<string, ((body: unknown) => void) | undefined>;
        const script = document.createElement('script');
        const finish = (outcome: () => void) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          script.remove();
          // A late answer must still find a function: it becomes a no-op.
          callbacks[name] = () => delete callbacks[name];
          outcome();
        };
        const onAbort = () => finish(() => reject(signal!.reason));
        const timer = setTimeout(() => finish(() => reject(networkError(`no answer within ${deadlineMs} ms`, 'COMET_CLIENT_TIMEOUT'))), deadlineMs);
        callbacks[name] = (body) => finish(() => resolve(body));
        script.onerror = () => finish(() => reject(networkError('the JSONP request failed (network error, or an error answer)')));
        signal?.addEventListener('abort', onAbort, { once: true });
        script.src = `${url}${url.includes('?') ? '&' : '?'}${new URLSearchParams(token === undefined ? { ...params, callback: name } : { ...params, token, callback: name }).toString()}`;
        document.head.appendChild(script);
      });
    },
  };
}

/**
 * Aborts when any of the signals does (AbortSignal.any is not in every runtime
 * this supports); release() takes its listeners off them, which the request
 * must do when it ends: they would otherwise stay until a signal fires.
 */
function anySignal(signals: AbortSignal[]): [AbortSignal, () => void] {
  const controller = new AbortController();
  const unhook = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true, signal: unhook.signal });
  }
  return [controller.signal, () => unhook.abort()];
}

function failure(err: unknown, signal: AbortSignal | undefined, deadline: AbortSignal, deadlineMs: number): unknown {
  if (signal?.aborted) return signal.reason;
  if (deadline.aborted) return networkError(`no answer within ${deadlineMs} ms`, 'COMET_CLIENT_TIMEOUT');
  if (err instanceof CometClientError) return err;
  // Node's fetch says only "fetch failed"; what failed (ECONNREFUSED, ...) is in its cause.
  const cause = (err as { cause?: { message?: string } })?.cause?.message;
  return networkError(`the request failed: ${(err as Error)?.message ?? String(err)}${cause ? ` (${cause})` : ''}`);
}
