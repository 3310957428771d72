/**
 * Access control of one worker thread (--auth): which requests need a
 * token, and whether the one they carry allows them. Verified tokens are
 * remembered, up to --auth-cache-size, so a long-poll chain re-using one
 * token pays a single signature check; their exp and nbf are checked on
 * every use, so a remembered token expires when it would have unremembered.
 * No call leaves the thread: no other service is asked, per request or ever.
 */
import type { Config } from '../config/options.js';
import { type CometError, refusals } from '../protocol/errors.js';
import type { AuthMethod, Grant } from './grant.js';
import { verifyToken } from './jwt.js';
import { type AuthMaterial, type VerifyKeys, verifyKeys } from './keys.js';

export interface GateCounters {
  /** A token's signature was checked (not found in the cache). */
  verified(): void;
  /** A token was found in the cache. */
  remembered(): void;
}

/** A verified token and what it allows, kept under cacheKey(token). */
interface Remembered {
  token: string;
  grant: Grant;
}

export class AuthGate {
  private readonly keys: VerifyKeys;
  /**
   * Keyed by a number from the token's last characters, not by the token:
   * a request's token is a fresh string of some 200 characters, which a
   * Map keyed by strings hashes in full on every look-up (most of what a
   * remembered token cost). An entry is found only when its whole token
   * equals the request's; tokens sharing a key take each other's place.
   */
  private readonly cache = new Map<number, Remembered>();
  private readonly everyMethod: boolean;
  private readonly leewayMs: number;
  private readonly cacheSize: number;
  private readonly maxTokenBytes: number;

  private constructor(
    config: Config,
    material: AuthMaterial,
    private readonly counters: GateCounters,
  ) {
    this.keys = verifyKeys(material);
    this.everyMethod = config.auth === 'all';
    this.leewayMs = config.authLeeway * 1000;
    this.cacheSize = config.authCacheSize;
    this.maxTokenBytes = config.maxTokenBytes;
  }

  /** The gate for --auth put or all; undefined for off, where no request is looked at. */
  static create(config: Config, material: AuthMaterial, counters: GateCounters): AuthGate | undefined {
    return config.auth === 'off' ? undefined : new AuthGate(config, material, counters);
  }

  /**
   * Why this request is refused, or undefined when it may go on. `token` is
   * the Authorization header's bearer token when it has one, else the token
   * parameter, else undefined.
   */
  check(token: string | undefined, method: AuthMethod, channel: string): CometError | undefined {
    if (!this.everyMethod && method !== 'put') return undefined;
    if (token === undefined || token === '') return refusals.tokenMissing();
    // Characters, not bytes: a token is ASCII, and anything longer in characters is longer in bytes.
    if (token.length > this.maxTokenBytes) return refusals.tokenTooLarge(this.maxTokenBytes);
    const key = cacheKey(token);
    const found = this.cache.get(key);
    let grant: Grant;
    if (found !== undefined && found.token === token) {
      grant = found.grant;
      this.counters.remembered();
    } else {
      try {
        grant = verifyToken(token, this.keys);
      } catch (err) {
        return err as CometError;
      }
      this.counters.verified();
      this.remember(key, token, grant);
    }
    const now = Date.now();
    if (now >= grant.exp * 1000 + this.leewayMs) {
      if (this.cache.get(key)?.token === token) this.cache.delete(key);
      return refusals.tokenExpired();
    }
    if (now < grant.nbf * 1000 - this.leewayMs) return refusals.tokenNotYetValid();
    if (!grant.allowsMethod(method)) return refusals.forbiddenMethod(method);
    if (!grant.coversChannel(channel)) return refusals.forbiddenChannel();
    return undefined;
  }

  /** Oldest first out: a Map iterates in insertion order. */
  private remember(key: number, token: string, grant: Grant): void {
    if (this.cacheSize === 0) return;
    // a token of the same key gives way (and the newcomer goes last); else the oldest does
    if (!this.cache.delete(key) && this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { token, grant });
  }
}

/**
 * 30 bits (a small integer, which a Map hashes at once) from a token's last
 * eight characters: signature bytes in a well-formed token. FNV-1a.
 */
function cacheKey(token: string): number {
  let hash = 0x811c9dc5;
  for (let i = Math.max(0, token.length - 8); i < token.length; i++) hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193);
  return hash & 0x3fffffff;
}

/** The token a request carries: the Authorization header's bearer token wins over the token parameter. */
export function bearerToken(authorization: string): string | undefined {
  // RFC 7235: the scheme is case-insensitive. Other schemes (Basic, for a proxy) are not ours.
  // The usual spelling is tested first, without the two strings lower-casing a copy allocates:
  // garbage on every request makes scavenges come sooner (BENCHMARKS.md, Access control).
  if (!authorization.startsWith('Bearer ') && (authorization.length < 7 || authorization.slice(0, 7).toLowerCase() !== 'bearer ')) return undefined;
  return authorization.slice(7).trim();
}
