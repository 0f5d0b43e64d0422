import { createPublicKey, sign, verify, type KeyLike, type KeyObject } from 'node:crypto';
import { ConfigError } from '../../../../platform/config.ts';

// Hub88 signs every Wallet API call with RSA-SHA256 (PKCS#1 v1.5) over the exact bytes
// of the request body and sends the signature base64-encoded in X-Hub88-Signature.

export const SIGNATURE_HEADER = 'x-hub88-signature';

/**
 * Parses HUB88_PUBLIC_KEY once at start-up. Environments that cannot hold newlines
 * carry the PEM with literal "\n" escapes; both forms are accepted. An empty value
 * gives null: every call is then refused as unsigned. A value that is not an RSA public
 * key stops the start-up instead of refusing every call in silence.
 */
export function loadPublicKey(pem: string): KeyObject | null {
  const text = pem.replace(/\\n/g, '\n').trim();
  if (text === '') return null;
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch (error) {
    throw new ConfigError('HUB88_PUBLIC_KEY', `is not a PEM public key (${error instanceof Error ? error.message : String(error)})`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new ConfigError('HUB88_PUBLIC_KEY', `must be an RSA key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/**
 * True when `signature` (base64) is Hub88's RSA-SHA256 signature of exactly `body`.
 * Verified on the event loop: an RSA-2048 verification takes about 16 µs of one core
 * here (`openssl speed rsa2048`), while handing it to libuv's thread pool cost a thread
 * wake-up there and another back, about 40 µs of CPU per call in all on 2 cores, and
 * the thread competed with PostgreSQL for them. Measured against the thread pool
 * (`bench:wallet-ab`): 1.13x bets/s at 64 callers, 0.91x server CPU per call at 1,000
 * bets/s.
 */
export function verifyHub88(key: KeyObject | null, body: Buffer, signature: string | string[] | undefined): boolean {
  if (!key || typeof signature !== 'string' || signature.length === 0 || signature.length > 4096) return false;
  const base64 = signature.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return false;
  try {
    return verify('sha256', body, key, Buffer.from(base64, 'base64'));
  } catch {
    return false;
  }
}

/** The X-Hub88-Signature value for a body: what Hub88 sends, and what tests and the bench send. */
export function signHub88(privateKey: KeyLike, body: string | Buffer): string {
  return sign('sha256', typeof body === 'string' ? Buffer.from(body, 'utf8') : body, privateKey).toString('base64');
}
