/**
 * The keys tokens are verified with: read and checked once by the main
 * thread at start (a bad key stops the server there, with a message naming
 * the option, never its value), handed to every worker thread as text, and
 * turned into KeyObjects there once.
 *
 * Each key belongs to one algorithm: secrets to HS256, RSA keys to RS256,
 * P-256 keys to ES256. A token's alg picks the family it is checked against
 * and nothing else, so a public key can never be used as an HMAC secret
 * (algorithm confusion).
 */
import { Buffer } from 'node:buffer';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/options.js';
import { ConfigError } from '../config/parse.js';

/** What the worker threads receive: secrets and PEM texts, already checked. */
export interface AuthMaterial {
  secrets: string[];
  publicKeys: string[];
}

export interface VerifyKeys {
  hs256: KeyObject[];
  rs256: KeyObject[];
  es256: KeyObject[];
}

/** RFC 7518 3.2: an HS256 key should hold at least as many bytes as the hash. */
export const MIN_SECRET_BYTES = 32;
const MIN_RSA_BITS = 2048;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * Reads --auth-secret, --auth-secret-file and --auth-public-key. Throws a
 * ConfigError for a key that could never verify anything, or a secret that
 * is a PEM key (the configuration algorithm confusion attacks rely on).
 */
export function loadAuthMaterial(config: Config): AuthMaterial {
  const secrets = config.authSecret === '' ? [] : config.authSecret.split(',');
  if (config.authSecretFile !== '') {
    secrets.push(
      ...readOption(config.authSecretFile, '--auth-secret-file')
        .split(/\r?\n/)
        .filter((line) => line !== ''),
    );
  }
  for (const secret of secrets) {
    if (secret === '') throw new ConfigError('--auth-secret holds an empty secret (two commas in a row, or one at an end)');
    if (secret.includes('-----BEGIN')) {
      throw new ConfigError('an --auth-secret is a PEM key: give public keys to --auth-public-key, never as an HS256 secret');
    }
  }
  const publicKeys = config.authPublicKey === '' ? [] : pemBlocks(config.authPublicKey);
  for (const pem of publicKeys) checkPublicKey(pem);
  if (config.auth !== 'off' && secrets.length === 0 && publicKeys.length === 0) {
    throw new ConfigError(`--auth ${config.auth} needs a key to verify tokens with: --auth-secret, --auth-secret-file or --auth-public-key`);
  }
  return { secrets, publicKeys };
}

/** The material as KeyObjects, sorted by the algorithm each verifies. */
export function verifyKeys(material: AuthMaterial): VerifyKeys {
  const keys: VerifyKeys = { hs256: material.secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8'))), rs256: [], es256: [] };
  for (const pem of material.publicKeys) {
    const key = createPublicKey(pem);
    (key.asymmetricKeyType === 'rsa' ? keys.rs256 : keys.es256).push(key);
  }
  return keys;
}

/** PEM text given inline, or comma-separated paths of PEM files. */
function pemBlocks(value: string): string[] {
  const texts = value.includes('-----BEGIN') ? [value] : value.split(',').map((path) => readOption(path.trim(), '--auth-public-key'));
  return texts.flatMap((text) => {
    const blocks = text.match(PEM_BLOCK);
    if (blocks === null) throw new ConfigError('--auth-public-key holds no PEM block (-----BEGIN PUBLIC KEY-----)');
    return blocks;
  });
}

function checkPublicKey(pem: string): void {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError('--auth-public-key holds a private key: give the server the public key only (openssl pkey -pubout)');
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`--auth-public-key holds a PEM block that is not a public key or certificate (${(err as Error).message})`);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) throw new ConfigError(`--auth-public-key holds an RSA key of fewer than ${MIN_RSA_BITS} bits`);
  } else if (key.asymmetricKeyType !== 'ec' || details.namedCurve !== 'prime256v1') {
    throw new ConfigError('--auth-public-key holds a key that is neither RSA (RS256) nor EC P-256 (ES256)');
  }
}

function readOption(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${option}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
