/**
 * HTTP clients built on node built-ins only: `node:http` for well-formed
 * requests, raw `node:net` sockets for malformed and aborted ones.
 */
import http from 'node:http';
import net from 'node:net';

export type ParamValue = string | number | boolean | undefined | null;
export type Params = Record<string, ParamValue>;

/** Query string with every key and value percent-encoded (a space is %20). */
export function encodeQuery(params: Params): string {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
}

/** application/x-www-form-urlencoded body, as a browser form sends it (a space is '+'). */
export function encodeForm(params: Params): string {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) form.append(k, String(v));
  return form.toString();
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Body decoded as UTF-8. */
  body: string;
  raw: Buffer;
  /** Parsed body when it is JSON, else undefined. */
  json: any;
  /** Milliseconds from sending the request to the end of the answer. */
  ms: number;
}

export interface RequestOptions {
  /** HTTP method, default GET (POST when `form` or `body` is given). */
  method?: string;
  /** Path without query, default '/'. */
  path?: string;
  /** Query parameters, or a ready-made query string (sent verbatim, without '?'). */
  query?: Params | string;
  /** Form parameters sent as an application/x-www-form-urlencoded body. */
  form?: Params;
  /** Raw body. */
  body?: string | Buffer;
  headers?: Record<string, string | number>;
  /** Client-side deadline for the whole exchange (default 15000 ms). */
  timeoutMs?: number;
  agent?: http.Agent;
  signal?: AbortSignal;
}

export interface Endpoint {
  host: string;
  port: number;
}

export const FORM_TYPE = 'application/x-www-form-urlencoded';

function buildPath(opts: RequestOptions): string {
  const path = opts.path ?? '/';
  if (opts.query === undefined) return path;
  const qs = typeof opts.query === 'string' ? opts.query : encodeQuery(opts.query);
  return qs === '' ? path : `${path}?${qs}`;
}

function parseJson(body: string): any {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function once(ep: Endpoint, opts: RequestOptions): Promise<{ res?: HttpResponse; err?: Error; reused: boolean }> {
  return new Promise((resolve) => {
    let body: string | Buffer | undefined = opts.body;
    const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
    if (opts.form !== undefined) {
      body = encodeForm(opts.form);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = FORM_TYPE;
    }
    const method = opts.method ?? (body !== undefined ? 'POST' : 'GET');
    const started = performance.now();
    const timeoutMs = opts.timeoutMs ?? 15000;
    let done = false;
    const finish = (r: { res?: HttpResponse; err?: Error }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, reused: req.reusedSocket });
    };
    const req = http.request({
      host: ep.host,
      port: ep.port,
      method,
      path: buildPath(opts),
      headers,
      agent: opts.agent,
      signal: opts.signal,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`client timeout: no complete answer within ${timeoutMs} ms for ${method} ${buildPath(opts).slice(0, 200)}`));
    }, timeoutMs);
    req.on('error', (err) => finish({ err }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => finish({ err }));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        finish({
          res: {
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text,
            raw,
            json: parseJson(text),
            ms: performance.now() - started,
          },
        });
      });
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/**
 * One HTTP exchange. Rejects on network errors and on the client-side
 * deadline. A request that failed with ECONNRESET on a reused keep-alive
 * socket before any answer (the server closed an idle connection) is retried
 * once on a fresh socket, as the node:http docs recommend.
 */
export async function httpRequest(ep: Endpoint, opts: RequestOptions = {}): Promise<HttpResponse> {
  let r = await once(ep, opts);
  if (r.err && r.reused && (r.err as NodeJS.ErrnoException).code === 'ECONNRESET') r = await once(ep, opts);
  if (r.err) throw r.err;
  return r.res!;
}

/** Keep-alive agent with no socket cap, for the many concurrent long polls of a test. */
export function makeAgent(keepAlive = true): http.Agent {
  return new http.Agent({ keepAlive, maxSockets: Infinity, maxFreeSockets: 256, timeout: 4000 });
}

// ---------------------------------------------------------------------------
// Raw sockets

export interface RawResult {
  /** Everything the server sent. */
  data: Buffer;
  text: string;
  /** Status code of the first response in `data`, if any. */
  status?: number;
  /** True when the server closed (or reset) the connection before our deadline. */
  closed: boolean;
  /** Socket error, e.g. ECONNRESET. */
  error?: string;
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long; default 3000 ms. */
  timeoutMs?: number;
  /** After the first bytes arrive, resolve once the server is quiet this long (default 300 ms). */
  idleMs?: number;
  /** Half-close our side after writing (default false). */
  end?: boolean;
  /** Pause between chunks (default 0). */
  chunkDelayMs?: number;
}

export function statusOf(text: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Splits raw response bytes (latin1 text) into status, lower-cased headers, and what follows them. */
export function parseRawResponse(text: string): { status?: number; headers: Record<string, string>; rest: string } {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: statusOf(text), headers, rest: end < 0 ? '' : text.slice(end + 4) };
}

/** Sends bytes over a fresh TCP connection and collects what comes back. */
export function rawExchange(ep: Endpoint, chunks: Array<string | Buffer>, opts: RawOptions = {}): Promise<RawResult> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const idleMs = opts.idleMs ?? 300;
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let error: string | undefined;
    let done = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const sock = net.connect({ host: ep.host, port: ep.port });
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(idleTimer);
      sock.destroy();
      const data = Buffer.concat(received);
      const text = data.toString('latin1');
      resolve({ data, text, status: statusOf(text), closed, error });
    };
    const deadline = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (c: Buffer) => {
      received.push(c);
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => finish(false), idleMs);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    sock.on('close', () => finish(true));
    sock.on('end', () => finish(true));
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (done || sock.destroyed) return;
        // A server may legitimately close mid-upload (e.g. 431, 413): ignore write errors.
        sock.write(c, () => undefined);
        if (opts.chunkDelayMs) await new Promise((r) => setTimeout(r, opts.chunkDelayMs));
      }
      if (opts.end && !sock.destroyed) sock.end();
    });
  });
}

/** Opens a connection and sends one GET request; resolves with the socket once written. */
export function rawSend(ep: Endpoint, requestText: string, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: ep.host, port: ep.port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw connect/write not done within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('connect', () => {
      sock.write(requestText, (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(sock);
      });
    });
  });
}

/** A minimal HTTP/1.1 GET request line plus headers. */
export function rawGet(path: string, extraHeaders = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}\r\n`;
}

/** Resolves true when a TCP connection to the endpoint is refused (nobody listens). */
export function connectionRefused(ep: Endpoint, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: ep.host, port: ep.port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.on('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(false);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED');
    });
  });
}
