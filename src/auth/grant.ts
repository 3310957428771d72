/**
 * What a verified token allows (its claims, protocol.md "Access control"):
 * until when, from when, which methods, which channels. Built once per
 * token and kept in the thread's cache, so checking a request against it
 * allocates nothing.
 */
import { refusals } from '../protocol/errors.js';

export type AuthMethod = 'put' | 'get' | 'sync';

const METHOD_BITS: Record<AuthMethod, number> = { put: 1, get: 2, sync: 4 };
/** The names a token's `methods` claim may hold, as issuers (`comet token`) should write them. */
export const AUTH_METHODS = Object.keys(METHOD_BITS) as readonly AuthMethod[];
const ALL_METHODS = 7;

export class Grant {
  private constructor(
    /** Seconds since the epoch: refused from then on. */
    readonly exp: number,
    /** Seconds since the epoch: refused before then (0 when absent). */
    readonly nbf: number,
    private readonly methods: number,
    /** `"*"` among the channels: every channel. */
    private readonly anyChannel: boolean,
    private readonly exact: ReadonlySet<string>,
    private readonly prefixes: readonly string[],
  ) {}

  /**
   * From a token's claims (already known to be a JSON object). Unknown claims
   * are ignored, and so are unknown names in `methods`, which a token minted
   * for a later server's methods may hold; anything else malformed refuses
   * the token, rather than read as more or less than its issuer meant.
   */
  static fromClaims(claims: Record<string, unknown>): Grant {
    const { exp, nbf, channels, methods } = claims;
    if (!isSeconds(exp) || (nbf !== undefined && !isSeconds(nbf))) throw refusals.tokenClaims();
    if (!isStringList(channels) || (methods !== undefined && !isStringList(methods))) throw refusals.tokenClaims();
    let bits = methods === undefined ? ALL_METHODS : 0;
    for (const method of methods ?? []) if (Object.hasOwn(METHOD_BITS, method)) bits |= METHOD_BITS[method as AuthMethod];
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const pattern of channels) {
      if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
      else exact.add(pattern);
    }
    return new Grant(exp, nbf ?? 0, bits, prefixes.includes(''), exact, prefixes);
  }

  allowsMethod(method: AuthMethod): boolean {
    return (this.methods & methodBit(method)) !== 0;
  }

  coversChannel(channel: string): boolean {
    if (this.anyChannel || this.exact.has(channel)) return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }
}

/**
 * A switch, not METHOD_BITS[method]: a request's method is a fresh slice of its
 * query string, and a keyed load by a string V8 has not internalized looks it
 * up in the string table on every request.
 */
function methodBit(method: AuthMethod): number {
  switch (method) {
    case 'put':
      return METHOD_BITS.put;
    case 'get':
      return METHOD_BITS.get;
    case 'sync':
      return METHOD_BITS.sync;
  }
}

function isSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
