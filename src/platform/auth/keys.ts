import { sql } from 'kysely';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Db } from '../db/database.ts';
import { newId } from '../ids.ts';

export const SIGNING_ALG = 'ES256';
const KEY_LOCK = 7_344_003;
const CACHE_MS = 10_000;

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  retiresAt: Date;
}

export interface KeyStoreOptions {
  /** A key signs new tokens for this long, then a new one takes over. */
  rotationDays: number;
  /** The longest lifetime of anything signed: a retired key stays published this long. */
  maxTokenTtlSeconds: number;
}

/**
 * Asymmetric signing keys (ES256) kept in the database, so every process of a
 * deployment signs with the same current key and publishes the same JWKS. Rotation
 * needs no downtime: the next key is created when the current one retires, and a
 * retired key stays in the JWKS until every token it signed has expired.
 */
export class KeyStore {
  readonly #db: Db;
  readonly #opts: KeyStoreOptions;
  #current: SigningKey | undefined;
  #jwks: { jwk: JWK; expiresAt: number }[] | undefined;
  #jwksAt = 0;
  readonly #publicKeys = new Map<string, { key: CryptoKey; expiresAt: number; checkedAt: number }>();

  constructor(db: Db, options: KeyStoreOptions) {
    this.#db = db;
    this.#opts = options;
  }

  /** The key that signs now; creates or rotates it when needed. */
  async signingKey(): Promise<SigningKey> {
    const now = Date.now();
    if (this.#current && this.#current.retiresAt.getTime() > now) return this.#current;
    const row = await this.#activeRow();
    const active = row ?? (await this.#rotate());
    // Publish a key from the moment this process signs with it.
    if (active.kid !== this.#current?.kid) this.#jwksAt = 0;
    this.#current = {
      kid: active.kid,
      privateKey: (await importJWK(active.private_jwk as JWK, SIGNING_ALG)) as CryptoKey,
      retiresAt: active.retires_at,
    };
    return this.#current;
  }

  async #activeRow() {
    return this.#db
      .selectFrom('platform.signing_keys')
      .selectAll()
      .where('retires_at', '>', new Date())
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  /** Creates the next key, unless another process just did. */
  async #rotate() {
    return this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${KEY_LOCK})`.execute(trx);
      const existing = await trx
        .selectFrom('platform.signing_keys')
        .selectAll()
        .where('retires_at', '>', new Date())
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (existing) return existing;
      const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
      const kid = newId();
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: 'sig' };
      const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALG };
      const now = Date.now();
      const retiresAt = new Date(now + this.#opts.rotationDays * 86_400_000);
      const expiresAt = new Date(retiresAt.getTime() + this.#opts.maxTokenTtlSeconds * 1000);
      return trx
        .insertInto('platform.signing_keys')
        .values({
          kid,
          alg: SIGNING_ALG,
          public_jwk: JSON.stringify(publicJwk),
          private_jwk: JSON.stringify(privateJwk),
          retires_at: retiresAt,
          expires_at: expiresAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
  }

  /** Retires the current key now (the next signature creates a new one); for operators and tests. */
  async retireCurrent(): Promise<void> {
    await this.#db.updateTable('platform.signing_keys').set({ retires_at: new Date() }).where('retires_at', '>', new Date()).execute();
    this.#current = undefined;
    this.#jwksAt = 0;
  }

  /**
   * The private JWKs of every key whose tokens may still be valid, the current signing
   * key first: for an in-process signer that needs them as a key set (the identity
   * module's OpenID Connect provider), so that it signs with the same current key and
   * publishes the same set as `jwks()`.
   */
  async signingJwks(): Promise<JWK[]> {
    const current = await this.signingKey();
    const rows = await this.#db
      .selectFrom('platform.signing_keys')
      .select(['kid', 'private_jwk'])
      .where('expires_at', '>', new Date())
      .orderBy('created_at', 'desc')
      .execute();
    const jwks = rows.map((r) => ({ ...(r.private_jwk as JWK), kid: r.kid, alg: SIGNING_ALG, use: 'sig' }));
    return [...jwks.filter((k) => k.kid === current.kid), ...jwks.filter((k) => k.kid !== current.kid)];
  }

  /** The public keys of every key whose tokens may still be valid. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const now = Date.now();
    if (!this.#jwks || now - this.#jwksAt >= CACHE_MS) {
      const rows = await this.#db
        .selectFrom('platform.signing_keys')
        .select(['public_jwk', 'expires_at'])
        .where('expires_at', '>', new Date(now))
        .orderBy('created_at', 'desc')
        .execute();
      this.#jwks = rows.map((r) => ({ jwk: r.public_jwk, expiresAt: r.expires_at.getTime() }));
      this.#jwksAt = now;
    }
    // The cache must not publish a key past its expiry.
    return { keys: this.#jwks.filter((k) => k.expiresAt > now).map((k) => k.jwk) };
  }

  /** The public key for a kid, or undefined when unknown or expired. */
  async publicKey(kid: string): Promise<CryptoKey | undefined> {
    const now = Date.now();
    // A cached key is trusted only until its expiry, and re-read now and then so an
    // expiry shortened in the database (a revoked key) reaches every process.
    const cached = this.#publicKeys.get(kid);
    if (cached && cached.expiresAt > now && now - cached.checkedAt < CACHE_MS) return cached.key;
    this.#publicKeys.delete(kid);
    const row = await this.#db
      .selectFrom('platform.signing_keys')
      .select(['public_jwk', 'expires_at'])
      .where('kid', '=', kid)
      .where('expires_at', '>', new Date(now))
      .executeTakeFirst();
    if (!row) return undefined;
    const key = (await importJWK(row.public_jwk as JWK, SIGNING_ALG)) as CryptoKey;
    this.#publicKeys.set(kid, { key, expiresAt: row.expires_at.getTime(), checkedAt: now });
    return key;
  }
}
