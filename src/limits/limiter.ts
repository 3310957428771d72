/**
 * Per-client limits (--rate-limit, --rate-burst, --max-connections-per-ip,
 * --trust-proxy): prepared once by the main thread (the shared table, the
 * proxies' CIDRs, checked there so that a bad one stops the server with exit
 * 2), and applied by each worker thread's HTTP front end through a
 * ClientLimiter. With every limit off there is no ClientLimiter at all, and a
 * request pays nothing: no address is read, no header looked up.
 */
import type { Config } from '../config/options.js';
import { ConfigError } from '../config/parse.js';
import type { HttpRequest, HttpResponse } from '../uws.js';
import { type AddressWords, type Cidr, clientFromForwarded, inCidrs, parseCidrList, wordsOfBinary } from './address.js';
import { checkConnectionCounting } from './connection-count.js';
import { createLimitBuffer, LimitTable, sharedNow, UNTRACKED } from './table.js';

/** What the main thread hands each worker thread. */
export interface LimitsMaterial {
  table: SharedArrayBuffer;
  trustProxy: Cidr[];
}

/** The material for the per-client limits, or undefined when they are off. Throws a ConfigError for a bad --trust-proxy. */
export function prepareLimits(config: Config): LimitsMaterial | undefined {
  let trustProxy: Cidr[];
  try {
    trustProxy = parseCidrList(config.trustProxy);
  } catch (err) {
    throw new ConfigError(`--trust-proxy: ${(err as Error).message}`);
  }
  if (config.rateLimit === 0 && config.maxConnectionsPerIp === 0) return undefined;
  if (config.maxConnectionsPerIp > 0) checkConnectionCounting();
  return { table: createLimitBuffer(config.limitTableSize), trustProxy };
}

/** The bucket a --rate-burst of 0 stands for: a second's worth of --rate-limit. */
export function bucketOf(config: Config): { rate: number; burst: number } {
  return { rate: config.rateLimit, burst: config.rateBurst === 0 ? config.rateLimit : config.rateBurst };
}

export interface LimiterCounters {
  /** An address let through because the table had no entry free for it. */
  untracked(): void;
}

export class ClientLimiter {
  readonly table: LimitTable;
  private readonly trusted: readonly Cidr[];
  private readonly peer: AddressWords = [0, 0, 0, 0];
  private readonly maxConnections: number;
  /** Whether requests are rate-limited (the limiter may exist for connections only). */
  readonly rateLimited: boolean;

  constructor(
    material: LimitsMaterial,
    config: Config,
    private readonly counters: LimiterCounters,
  ) {
    this.table = new LimitTable(material.table, bucketOf(config));
    this.trusted = material.trustProxy;
    this.maxConnections = config.maxConnectionsPerIp;
    this.rateLimited = config.rateLimit > 0;
  }

  /**
   * Takes a token for this request's client: 0 when it may go on, else the
   * whole seconds until its next token (Retry-After). Called synchronously
   * in the request handler (the socket's address and the headers are read
   * here).
   */
  admit(res: HttpResponse, req: HttpRequest): number {
    const key = this.clientOf(res, req, this.peer);
    return key === undefined ? 0 : this.admitClient(key);
  }

  /**
   * The client a request counts against: its peer, or the address its
   * trusted proxies forwarded; undefined when the peer cannot be read.
   * `into` receives the peer's words (a WebSocket keeps its own).
   */
  clientOf(res: HttpResponse, req: HttpRequest, into: AddressWords = [0, 0, 0, 0]): AddressWords | undefined {
    if (!wordsOfBinary(new Uint8Array(res.getRemoteAddress()), into)) return undefined;
    if (this.trusted.length > 0 && inCidrs(this.trusted, into)) return clientFromForwarded(forwardedFor(req), this.trusted) ?? into;
    return into;
  }

  /** admit() for a client already known: a WebSocket's, read at its upgrade, for each of its request frames. */
  admitClient(key: AddressWords): number {
    const wait = this.table.take(key[0], key[1], key[2], key[3], sharedNow());
    if (wait === UNTRACKED) {
      this.counters.untracked();
      return 0;
    }
    return wait === 0 ? 0 : Math.max(1, Math.ceil(wait / 1000));
  }

  /**
   * A connection just opened (uWS's filter): false when its peer already
   * has --max-connections-per-ip open, and the connection must be closed.
   * Trusted proxies are not limited: every client behind them shares their
   * address.
   */
  connectionOpened(res: HttpResponse): boolean {
    const peer = this.peer;
    if (!wordsOfBinary(new Uint8Array(res.getRemoteAddress()), peer)) return true;
    if (this.trusted.length > 0 && inCidrs(this.trusted, peer)) return true;
    const opened = this.table.openConnection(peer[0], peer[1], peer[2], peer[3], this.maxConnections, sharedNow());
    if (opened === UNTRACKED) this.counters.untracked();
    return opened !== 0;
  }
}

/**
 * Every X-Forwarded-For header of the request, joined in order: a proxy
 * that adds its own header line (HAProxy's option forwardfor) puts it after
 * any the client sent, and reading only the first would read the client's.
 */
function forwardedFor(req: HttpRequest): string {
  let joined = '';
  req.forEach((name, value) => {
    if (name === 'x-forwarded-for') joined = joined === '' ? value : `${joined},${value}`;
  });
  return joined;
}
