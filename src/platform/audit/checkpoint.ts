import canonicalize from 'canonicalize';
import { CompactSign, compactVerify } from 'jose';
import type { Db } from '../db/database.ts';
import type { KeyStore } from '../auth/keys.ts';
import { SIGNING_ALG } from '../auth/keys.ts';

export type Heads = Record<string, { seq: string; hash: string }>;

/**
 * Binds every chain together: a signed statement of each chain's head at one moment.
 * Removing the newest entries of a chain (and rewinding its head) then contradicts
 * the last checkpoint.
 */
export async function writeCheckpoint(db: Db, keys: KeyStore): Promise<{ at: Date; heads: Heads }> {
  const rows = await db.selectFrom('platform.audit_chain_heads').select(['chain', 'seq', 'hash']).orderBy('chain').execute();
  const heads: Heads = {};
  for (const r of rows) heads[String(r.chain)] = { seq: r.seq.toString(), hash: r.hash };
  const at = new Date();
  const key = await keys.signingKey();
  const payload = new TextEncoder().encode(canonicalize({ at: at.toISOString(), heads }) ?? '');
  const signature = await new CompactSign(payload).setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid }).sign(key.privateKey);
  await db.insertInto('platform.audit_checkpoints').values({ at, heads: JSON.stringify(heads), kid: key.kid, signature }).execute();
  return { at, heads };
}

/** Checks a checkpoint's signature against the stored public key; returns the signed heads or a reason. */
export async function verifyCheckpoint(
  db: Db,
  checkpoint: { at: Date; heads: Heads; kid: string; signature: string },
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const row = await db.selectFrom('platform.signing_keys').select('public_jwk').where('kid', '=', checkpoint.kid).executeTakeFirst();
  if (!row) return { ok: false, reason: `signing key ${checkpoint.kid} is missing` };
  const { importJWK } = await import('jose');
  const key = await importJWK(row.public_jwk, SIGNING_ALG);
  try {
    const { payload } = await compactVerify(checkpoint.signature, key, { algorithms: [SIGNING_ALG] });
    const expected = canonicalize({ at: checkpoint.at.toISOString(), heads: checkpoint.heads });
    if (new TextDecoder().decode(payload) !== expected) return { ok: false, reason: 'signed content differs from the stored heads' };
    return { ok: true };
  } catch {
    return { ok: false, reason: 'signature does not verify' };
  }
}
