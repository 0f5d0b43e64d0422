import { sql, type Kysely, type Transaction } from 'kysely';
import type { IdentityTables, WebAuthnChallengeTable, WebAuthnCredentialTable } from './store.ts';
import { jsonList } from './store.ts';

// The SQL of WebAuthn credentials and their challenges.

type Executor = Kysely<IdentityTables> | Transaction<IdentityTables>;

/** A registered passkey or security key as the player sees it (never its key). */
export interface WebAuthnCredentialRecord {
  readonly id: string;
  readonly name: string;
  readonly deviceType: 'singleDevice' | 'multiDevice';
  readonly backedUp: boolean;
  readonly transports: string[];
  readonly aaguid: string;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
}

/** What verifying an assertion needs of a credential. */
export interface StoredCredential {
  readonly id: string;
  readonly publicKey: Uint8Array<ArrayBuffer>;
  readonly counter: number;
  readonly transports: string[];
}


export const toRecord = (row: WebAuthnCredentialTable): WebAuthnCredentialRecord => ({
  id: row.credential_id,
  name: row.name,
  deviceType: row.device_type,
  backedUp: row.backed_up,
  transports: jsonList(row.transports),
  aaguid: row.aaguid,
  createdAt: row.created_at.toISOString(),
  lastUsedAt: row.last_used_at ? row.last_used_at.toISOString() : null,
});

export async function listCredentials(db: Executor, accountId: string): Promise<WebAuthnCredentialRecord[]> {
  const rows = await db.selectFrom('identity.webauthn_credentials').selectAll().where('account_id', '=', accountId).orderBy('created_at').orderBy('credential_id').execute();
  return rows.map(toRecord);
}

export async function countCredentials(db: Executor, accountId: string): Promise<number> {
  const row = await db
    .selectFrom('identity.webauthn_credentials')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function findCredential(db: Executor, accountId: string, credentialId: string): Promise<StoredCredential | undefined> {
  const row = await db
    .selectFrom('identity.webauthn_credentials')
    .select(['credential_id', 'public_key', 'counter', 'transports'])
    .where('account_id', '=', accountId)
    .where('credential_id', '=', credentialId)
    .executeTakeFirst();
  if (!row) return undefined;
  return { id: row.credential_id, publicKey: new Uint8Array(row.public_key), counter: Number(row.counter), transports: jsonList(row.transports) };
}

export async function credentialExists(db: Executor, credentialId: string): Promise<boolean> {
  const row = await db.selectFrom('identity.webauthn_credentials').select('credential_id').where('credential_id', '=', credentialId).executeTakeFirst();
  return row !== undefined;
}

export async function insertCredential(db: Executor, row: Omit<WebAuthnCredentialTable, 'created_at' | 'last_used_at' | 'transports'> & { transports: string[] }) {
  const inserted = await db
    .insertInto('identity.webauthn_credentials')
    .values({ ...row, transports: JSON.stringify(row.transports), created_at: new Date(), last_used_at: null })
    .onConflict((oc) => oc.column('credential_id').doNothing())
    .returningAll()
    .executeTakeFirst();
  return inserted ? toRecord(inserted) : undefined;
}

/**
 * Records a use: the new counter, only over the counter the verification was made
 * against (a concurrent use of the same credential makes this one fail).
 */
export async function recordUse(db: Executor, accountId: string, credentialId: string, from: number, to: number, backedUp: boolean): Promise<boolean> {
  const done = await db
    .updateTable('identity.webauthn_credentials')
    .set({ counter: to, backed_up: backedUp, last_used_at: new Date() })
    .where('account_id', '=', accountId)
    .where('credential_id', '=', credentialId)
    .where('counter', '=', from)
    .executeTakeFirst();
  return Number(done.numUpdatedRows) === 1;
}

export async function deleteCredential(db: Executor, accountId: string, credentialId: string): Promise<WebAuthnCredentialRecord | undefined> {
  const row = await db
    .deleteFrom('identity.webauthn_credentials')
    .where('account_id', '=', accountId)
    .where('credential_id', '=', credentialId)
    .returningAll()
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Stores a challenge, replacing the subject's previous one; expired ones of any subject go. */
export async function putChallenge(db: Executor, challenge: WebAuthnChallengeTable): Promise<void> {
  await db.deleteFrom('identity.webauthn_challenges').where('expires_at', '<', sql<Date>`now()`).execute();
  await db
    .insertInto('identity.webauthn_challenges')
    .values(challenge)
    .onConflict((oc) =>
      oc.columns(['purpose', 'subject']).doUpdateSet({ account_id: challenge.account_id, challenge: challenge.challenge, expires_at: challenge.expires_at }),
    )
    .execute();
}

/** The subject's unexpired challenge, left in place. */
export async function peekChallenge(db: Executor, purpose: WebAuthnChallengeTable['purpose'], subject: string): Promise<WebAuthnChallengeTable | undefined> {
  return db
    .selectFrom('identity.webauthn_challenges')
    .selectAll()
    .where('purpose', '=', purpose)
    .where('subject', '=', subject)
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
}

/**
 * Uses up a challenge: deletes it and returns it when it was there and unexpired. Of
 * two requests racing with one challenge only one gets it.
 */
export async function takeChallenge(
  db: Executor,
  purpose: WebAuthnChallengeTable['purpose'],
  subject: string,
  challenge?: string,
): Promise<WebAuthnChallengeTable | undefined> {
  let q = db.deleteFrom('identity.webauthn_challenges').where('purpose', '=', purpose).where('subject', '=', subject);
  if (challenge !== undefined) q = q.where('challenge', '=', challenge);
  const row = await q.returningAll().executeTakeFirst();
  return row && row.expires_at.getTime() > Date.now() ? row : undefined;
}
