/**
 * Tokens for development: `comet token` mints an HS256 JWT with the claims the
 * server's access control reads (`exp`, `channels`, `methods`), signed with one
 * of the server's `--auth-secret` entries. Production tokens come from the
 * application's own issuer; this only saves writing one by hand.
 */
import { Buffer } from 'node:buffer';
import { createHmac } from 'node:crypto';
import type { AuthMethod } from '../auth/grant.js';

export interface MintOptions {
  secret: string;
  /** Exact channel names and `prefix*` patterns; `*` is every channel. */
  channels: readonly string[];
  /** Absent: every method (the server's reading of a token without the claim). */
  methods?: readonly AuthMethod[];
  /** Seconds until `exp`. */
  ttl: number;
  /** Milliseconds since the epoch, as Date.now(); its default. */
  now?: number;
}

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

export function mintToken({ secret, channels, methods, ttl, now = Date.now() }: MintOptions): string {
  const exp = Math.floor(now / 1000) + ttl;
  const claims = methods === undefined ? { exp, channels } : { exp, channels, methods };
  const signed = `${HEADER}.${base64url(JSON.stringify(claims))}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
