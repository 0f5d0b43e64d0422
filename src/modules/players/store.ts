import type { Kysely, Transaction } from 'kysely';
import type { PlayerStatus } from './events.ts';

export interface PlayerTable {
  id: string;
  email: string;
  email_normalized: string;
  login: string;
  login_normalized: string;
  password_hash: string;
  country: string;
  currency: string;
  date_of_birth: string;
  status: PlayerStatus;
  affiliate_id: string | null;
  traffic_source: Record<string, string> | string;
  created_at: Date;
  updated_at: Date;
  email_verified_at?: Date | null;
}

export type PlayersTables = {
  'players.players': PlayerTable;
};

type Executor = Kysely<PlayersTables> | Transaction<PlayersTables>;

/** A player as the rest of the system sees it: no password hash. */
export interface PlayerRecord {
  id: string;
  email: string;
  login: string;
  country: string;
  currency: string;
  dateOfBirth: string;
  status: PlayerStatus;
  trafficSource: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  /** The player proved they read mail at `email` (a verification link). */
  emailVerified: boolean;
}

const columns = ['id', 'email', 'login', 'country', 'currency', 'date_of_birth', 'status', 'traffic_source', 'created_at', 'updated_at', 'email_verified_at'] as const;

function toRecord(row: Pick<PlayerTable, (typeof columns)[number]>): PlayerRecord {
  return {
    id: row.id,
    email: row.email,
    login: row.login,
    country: row.country,
    currency: row.currency,
    dateOfBirth: row.date_of_birth,
    status: row.status,
    trafficSource: (typeof row.traffic_source === 'string' ? JSON.parse(row.traffic_source) : row.traffic_source) as Record<string, string>,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    emailVerified: row.email_verified_at != null,
  };
}

export async function insertPlayer(db: Executor, row: PlayerTable): Promise<PlayerRecord> {
  const inserted = await db
    .insertInto('players.players')
    .values({ ...row, traffic_source: JSON.stringify(row.traffic_source) })
    .returning(columns)
    .executeTakeFirstOrThrow();
  return toRecord(inserted);
}

export async function findPlayer(db: Executor, id: string): Promise<PlayerRecord | undefined> {
  const row = await db.selectFrom('players.players').select(columns).where('id', '=', id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function findTaken(db: Executor, emailNormalized: string, loginNormalized: string): Promise<{ email: boolean; login: boolean }> {
  const rows = await db
    .selectFrom('players.players')
    .select(['email_normalized', 'login_normalized'])
    .where((eb) => eb.or([eb('email_normalized', '=', emailNormalized), eb('login_normalized', '=', loginNormalized)]))
    .limit(2)
    .execute();
  return {
    email: rows.some((r) => r.email_normalized === emailNormalized),
    login: rows.some((r) => r.login_normalized === loginNormalized),
  };
}

export interface PlayerFilter {
  country?: string;
  currency?: string;
  status?: PlayerStatus;
  emailNormalized?: string;
  loginNormalized?: string;
  affiliateId?: string;
  registeredFrom?: Date;
  registeredTo?: Date;
  /** Exclusive: ids sort by creation time (UUIDv7), newest first. */
  before?: string;
  limit: number;
}

export async function listPlayers(db: Executor, f: PlayerFilter): Promise<PlayerRecord[]> {
  let q = db.selectFrom('players.players').select(columns);
  if (f.country) q = q.where('country', '=', f.country);
  if (f.currency) q = q.where('currency', '=', f.currency);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.emailNormalized) q = q.where('email_normalized', '=', f.emailNormalized);
  if (f.loginNormalized) q = q.where('login_normalized', '=', f.loginNormalized);
  if (f.affiliateId) q = q.where('affiliate_id', '=', f.affiliateId);
  if (f.registeredFrom) q = q.where('created_at', '>=', f.registeredFrom);
  if (f.registeredTo) q = q.where('created_at', '<', f.registeredTo);
  if (f.before) q = q.where('id', '<', f.before);
  const rows = await q.orderBy('id', 'desc').limit(f.limit).execute();
  return rows.map(toRecord);
}

export async function updateStatus(db: Executor, id: string, status: PlayerStatus): Promise<PlayerRecord | undefined> {
  const row = await db
    .updateTable('players.players')
    .set({ status, updated_at: new Date() })
    .where('id', '=', id)
    .returning(columns)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Locks the row for a read-modify-write inside a transaction. */
export async function lockPlayer(db: Executor, id: string): Promise<PlayerRecord | undefined> {
  const row = await db.selectFrom('players.players').select(columns).where('id', '=', id).forUpdate().executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Id, status and password hash of the player with this normalised email or login (for sign-in only). */
export async function findCredentials(
  db: Executor,
  emailNormalized: string,
  loginNormalized: string,
): Promise<{ id: string; status: PlayerStatus; passwordHash: string } | undefined> {
  const rows = await db
    .selectFrom('players.players')
    .select(['id', 'status', 'password_hash', 'email_normalized'])
    .where((eb) => eb.or([eb('email_normalized', '=', emailNormalized), eb('login_normalized', '=', loginNormalized)]))
    .limit(2)
    .execute();
  // An email names its account before a login that happens to look the same.
  const row = rows.find((r) => r.email_normalized === emailNormalized) ?? rows[0];
  return row ? { id: row.id, status: row.status, passwordHash: row.password_hash } : undefined;
}

/** Id, login, email (normalised) and password hash of one player (password changes). */
export async function findCredentialsById(db: Executor, id: string): Promise<{ id: string; login: string; emailNormalized: string; status: PlayerStatus; passwordHash: string } | undefined> {
  const row = await db.selectFrom('players.players').select(['id', 'login_normalized', 'email_normalized', 'status', 'password_hash']).where('id', '=', id).executeTakeFirst();
  return row ? { id: row.id, login: row.login_normalized, emailNormalized: row.email_normalized, status: row.status, passwordHash: row.password_hash } : undefined;
}

export async function updatePasswordHash(db: Executor, id: string, passwordHash: string): Promise<boolean> {
  const result = await db.updateTable('players.players').set({ password_hash: passwordHash, updated_at: new Date() }).where('id', '=', id).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function updateEmail(db: Executor, id: string, email: string, emailNormalized: string): Promise<PlayerRecord | undefined> {
  const row = await db
    .updateTable('players.players')
    // A new address is unverified until the player opens the link sent to it.
    .set({ email, email_normalized: emailNormalized, email_verified_at: null, updated_at: new Date() })
    .where('id', '=', id)
    .returning(columns)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Marks the email verified if it is still the player's address; the record when it changed, undefined when not (another address, or verified already). */
export async function markEmailVerified(db: Executor, id: string, emailNormalized: string, at: Date): Promise<PlayerRecord | undefined> {
  const row = await db
    .updateTable('players.players')
    .set({ email_verified_at: at, updated_at: at })
    .where('id', '=', id)
    .where('email_normalized', '=', emailNormalized)
    .where('email_verified_at', 'is', null)
    .returning(columns)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function emailStateOf(db: Executor, id: string): Promise<{ email_normalized: string; email_verified_at: Date | null | undefined } | undefined> {
  return db.selectFrom('players.players').select(['email_normalized', 'email_verified_at']).where('id', '=', id).executeTakeFirst();
}
