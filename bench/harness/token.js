// Access tokens for the auth scenario: a random HS256 secret per started
// target and a token signed with it, made with node:crypto alone (a JWT in
// compact form, RFC 7519: base64url header, claims and HMAC-SHA256 signature).

import { createHmac, randomBytes } from 'node:crypto';

/** A fresh HS256 secret: 32 random bytes (the server's minimum), as hex. */
export const randomSecret = () => randomBytes(32).toString('hex');

/**
 * An HS256 JWT signed with secret, allowing every method on channels until
 * expS seconds from now.
 * @param {string} secret
 * @param {{ channels?: string[], expS?: number }} [claims]
 */
export function mintToken(secret, { channels = ['*'], expS = 3600 } = {}) {
  /** @param {object} o */
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ exp: Math.floor(Date.now() / 1000) + expS, channels })}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}
