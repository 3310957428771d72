/**
 * A JWT in compact form (RFC 7519 over RFC 7515), verified with node:crypto
 * alone: three base64url parts, a header naming HS256, RS256 or ES256, a
 * signature over the first two parts by a key of that algorithm, claims
 * that make a Grant. Anything else is refused: `alg: none` and every other
 * algorithm, a `crit` header (extensions this server cannot honour), loose
 * base64 (so that one token has one spelling).
 */
import { Buffer } from 'node:buffer';
import { createHmac, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import { refusals } from '../protocol/errors.js';
import { Grant } from './grant.js';
import type { VerifyKeys } from './keys.js';

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HS256_BYTES = 32;

/**
 * The token's Grant once its signature verifies with one of `keys`; throws
 * the 401 refusal saying what was wrong. Time claims are the caller's to
 * check (a cached Grant is checked on every use).
 */
export function verifyToken(token: string, keys: VerifyKeys): Grant {
  const headerEnd = token.indexOf('.');
  const payloadEnd = token.indexOf('.', headerEnd + 1);
  if (headerEnd < 0 || payloadEnd < 0 || token.indexOf('.', payloadEnd + 1) !== -1) throw refusals.tokenMalformed();
  const header = decodeJsonPart(token.slice(0, headerEnd));
  const signature = decodePart(token.slice(payloadEnd + 1));
  if (header.crit !== undefined) throw refusals.tokenAlgorithm();
  const signed = token.slice(0, payloadEnd);
  if (!signatureVerifies(header.alg, signed, signature, keys)) throw refusals.tokenSignature();
  return Grant.fromClaims(decodeJsonPart(token.slice(headerEnd + 1, payloadEnd)));
}

function signatureVerifies(alg: unknown, signed: string, signature: Buffer, keys: VerifyKeys): boolean {
  switch (alg) {
    case 'HS256':
      return keys.hs256.length > 0 ? keys.hs256.some((key) => hmacMatches(key, signed, signature)) : refuseAlgorithm();
    case 'RS256':
      return keys.rs256.length > 0 ? keys.rs256.some((key) => verify('sha256', Buffer.from(signed), key, signature)) : refuseAlgorithm();
    case 'ES256':
      // JWS carries ES256 as r || s, 32 bytes each (RFC 7518 3.4), not DER.
      return keys.es256.length > 0
        ? keys.es256.some((key) => verify('sha256', Buffer.from(signed), { key, dsaEncoding: 'ieee-p1363' }, signature))
        : refuseAlgorithm();
    default:
      return refuseAlgorithm();
  }
}

function refuseAlgorithm(): never {
  throw refusals.tokenAlgorithm();
}

/** Constant time: how much of a forged signature matched never shows in the answer's timing. */
function hmacMatches(key: KeyObject, signed: string, signature: Buffer): boolean {
  if (signature.length !== HS256_BYTES) return false;
  return timingSafeEqual(createHmac('sha256', key).update(signed).digest(), signature);
}

/**
 * Buffer decodes leniently (a stray character dropped, padding bits ignored):
 * a part must encode back to itself, or one token would have many spellings.
 */
function decodePart(part: string): Buffer {
  if (!BASE64URL.test(part)) throw refusals.tokenMalformed();
  const bytes = Buffer.from(part, 'base64url');
  if (bytes.toString('base64url') !== part) throw refusals.tokenMalformed();
  return bytes;
}

function decodeJsonPart(part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodePart(part).toString('utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw refusals.tokenMalformed();
    throw err;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refusals.tokenMalformed();
  return value as Record<string, unknown>;
}
