/**
 * Tokens for the access-control tests, signed here with node:crypto rather
 * than by the code under test, including the ones a hostile client would
 * forge: unsigned, with a foreign key, with a public key as an HMAC secret.
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

export type Claims = Record<string, unknown>;

const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Seconds since the epoch, as exp and nbf count them. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Claims valid for five minutes on every channel and method, with `extra` over them. */
export function claims(extra: Claims = {}): Claims {
  return { exp: nowSeconds() + 300, channels: ['*'], ...extra };
}

/** header.payload, unsigned. */
export function unsigned(header: Claims, payload: Claims): string {
  return `${part(header)}.${part(payload)}`;
}

export function hs256(secret: string | Buffer, payload: Claims, header: Claims = {}): string {
  const input = unsigned({ alg: 'HS256', typ: 'JWT', ...header }, payload);
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function rs256(privateKey: KeyObject, payload: Claims): string {
  const input = unsigned({ alg: 'RS256', typ: 'JWT' }, payload);
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}

export function es256(privateKey: KeyObject, payload: Claims): string {
  const input = unsigned({ alg: 'ES256', typ: 'JWT' }, payload);
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

export interface KeyPair {
  privateKey: KeyObject;
  /** The public key as PEM (SPKI), what the server is given. */
  publicPem: string;
}

export function rsaPair(bits = 2048): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

export function ecPair(namedCurve = 'prime256v1'): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}
