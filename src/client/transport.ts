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
      const deadline = watchdog(deadlineMs, () => networkError(`no answer within ${deadlineMs} ms`, 'COMET_CLIENT_TIMEOUT'));
      const [both, release] = signal ? anySignal([signal, deadline.signal]) : [deadline.signal, () => undefined];
      try {
        const res = await protocolFetch(url, params, { post, signal: both, token });
        let body: unknown;
        try {
          body = await res.json();
        } catch (err) {
          if (both.aborted) throw failure(err, both);
          body = undefined;
        }
        if (!res.ok) throw errorFromAnswer(res.status, body);
        if (body === undefined) throw networkError(`the answer (HTTP ${res.status}) is not JSON`);
        return body;
      } finally {
        deadline.clear();
        // A subscription's signal outlives thousands of requests: each must take its listener off it.
        release();
      }
    },
  };
}

/**
 * One fetch of the endpoint, as a GET with the parameters in the query string
 * or as a POST with them in a form body; a failure to get an answer is a
 * CometNetworkError (or the reason of the signal that cut it).
 */
export async function protocolFetch(
  url: string,
  params: Params,
  { post, signal, token, accept }: { post: boolean; signal: AbortSignal; token: string | undefined; accept?: string },
): Promise<Response> {
  const form = new URLSearchParams(params).toString();
  // Only what is needed: without a token or an Accept a request costs what it did before them.
  const headers: Record<string, string> = {};
  if (post) headers['content-type'] = 'application/x-www-form-urlencoded';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (accept !== undefined) headers.accept = accept;
  try {
    return post
      ? await fetch(url, { method: 'POST', body: form, headers, signal, cache: 'no-store' })
      : await fetch(`${url}${url.includes('?') ? '&' : '?'}${form}`, { signal, cache: 'no-store', headers });
  } catch (err) {
    throw failure(err, signal);
  }
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
export function anySignal(signals: AbortSignal[]): [AbortSignal, () => void] {
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

/**
 * A signal that fires `ms` after it was made or last reset, with `reason()`
 * as its reason: the deadline of a request, or the silence after which an
 * event stream counts as dead. clear() must be called when it is no longer
 * needed, or its timer keeps running.
 */
export function watchdog(ms: number, reason: () => CometClientError): { signal: AbortSignal; reset(): void; clear(): void } {
  const controller = new AbortController();
  let timer = setTimeout(fire, ms);
  function fire(): void {
    controller.abort(reason());
  }
  return {
    signal: controller.signal,
    reset() {
      clearTimeout(timer);
      timer = setTimeout(fire, ms);
    },
    clear() {
      clearTimeout(timer);
    },
  };
}

/** What a failed fetch or body read means: the reason of the signal that cut it, else a network error. */
export function failure(err: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  if (err instanceof CometClientError) return err;
  // Node's fetch says only "fetch failed"; what failed (ECONNREFUSED, ...) is in its cause.
  const cause = (err as { cause?: { message?: string } })?.cause?.message;
  return networkError(`the request failed: ${(err as Error)?.message ?? String(err)}${cause ? ` (${cause})` : ''}`);
}
