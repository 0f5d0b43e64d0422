import { sql, type Generated, type Kysely, type Transaction } from 'kysely';
import { PREPARED } from '../../platform/db/database.ts';
import { deleteOlderThan } from '../../platform/db/prune.ts';
import type { Outcome, TransactionType } from './types.ts';

export type WalletTables = {
  'wallet.wallet_types': { name: string; description: string; bet_priority: number | null };
  'wallet.accounts': { holder: string; name: string; currency: string; kind: 'player' | 'house'; balance: bigint; last_seq: bigint; last_hash: string; created_at: Date; updated_at: Date };
  'wallet.transactions': {
    player_id: string;
    id: string;
    type: TransactionType;
    currency: string;
    amount: bigint;
    split: Record<string, string>;
    round_id: string | null;
    provider: string | null;
    external_ref: string | null;
    reference_id: string | null;
    idempotency_scope: string | null;
    idempotency_key: string | null;
    meta: Record<string, unknown>;
    created_at: Date;
  };
  'wallet.postings': { holder: string; name: string; currency: string; seq: bigint; transaction_id: string; player_id: string; amount: bigint; balance_after: bigint; created_at: Date; hash: string };
  'wallet.idempotency': { scope: string; key: string; request_hash: string; player_id: string | null; outcome: Outcome | null | string; created_at: Generated<Date> };
  'wallet.payments': {
    player_id: string;
    id: string;
    kind: 'deposit' | 'withdrawal';
    provider: string;
    currency: string;
    amount: bigint;
    status: PaymentStatus;
    provider_ref: string | null;
    reason: string | null;
    created_at: Date;
    updated_at: Date;
  };
  'wallet.adjustments': {
    player_id: string;
    id: string;
    wallet: string;
    currency: string;
    amount: bigint;
    reason: string;
    status: 'pending_approval' | 'applied' | 'rejected';
    requested_by: string;
    approved_by: string | null;
    transaction_id: string | null;
    created_at: Date;
    decided_at: Date | null;
  };
  'wallet.game_sessions': { token: string; player_id: string; game_code: string; currency: string; created_at: Date; expires_at: Date };
  'wallet.ledger_checks': { id: bigint; at: Date; ok: boolean; transactions: bigint; postings: bigint; accounts: bigint; problems: unknown };
};

export type PaymentStatus = 'pending' | 'requested' | 'approved' | 'completed' | 'failed' | 'cancelled' | 'rejected';

export type WalletDb = Kysely<WalletTables> | Transaction<WalletTables>;

export async function walletTypes(db: WalletDb): Promise<{ name: string; betPriority: number | null }[]> {
  const rows = await db.selectFrom('wallet.wallet_types').select(['name', 'bet_priority']).orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, betPriority: r.bet_priority }));
}

/** A player's wallets: a prepared statement, since every balance read (REST and providers') runs it. */
export async function playerAccounts(db: WalletDb, playerId: string) {
  const { rows } = await sql<{ name: string; currency: string; balance: bigint; updated_at: Date }>`${sql.raw(PREPARED)}
    select name, currency, balance, updated_at from wallet.accounts where holder = ${playerId}::uuid and kind = 'player' order by currency, name`.execute(db);
  return rows;
}

export interface TransactionFilter {
  wallet?: string;
  type?: TransactionType;
  roundId?: string;
  from?: Date;
  to?: Date;
  before?: string;
  limit: number;
}

/** A player's transactions, newest first, with each wallet's balance after it. */
export async function listTransactions(db: WalletDb, playerId: string, f: TransactionFilter) {
  let q = db.selectFrom('wallet.transactions').selectAll().where('player_id', '=', playerId);
  if (f.type) q = q.where('type', '=', f.type);
  if (f.roundId) q = q.where('round_id', '=', f.roundId);
  if (f.from) q = q.where('created_at', '>=', f.from);
  if (f.to) q = q.where('created_at', '<', f.to);
  if (f.before) q = q.where('id', '<', f.before);
  if (f.wallet) q = q.where(sql<boolean>`split ? ${f.wallet}`);
  const rows = await q.orderBy('id', 'desc').limit(f.limit).execute();
  if (rows.length === 0) return [];
  const postings = await ownPostings(
    db,
    rows.map((r) => r.id),
  ).execute();
  // The holder as PostgreSQL spells it (the caller's id may differ in case).
  const player = rows[0]!.player_id;
  const own = postings.filter((p) => p.holder === player).map(({ holder: _, ...p }) => p);
  return rows.map((r) => ({ ...r, postings: own.filter((p) => p.transaction_id === r.id) }));
}

/**
 * The postings of these transactions on their players' own accounts, in the terms of the
 * partial index postings_player_transaction: with no player_id = $1 (see its migration),
 * so the caller keeps the rows of its player's holder.
 */
export function ownPostings(db: WalletDb, transactionIds: readonly string[]) {
  return db.selectFrom('wallet.postings').select(['holder', 'transaction_id', 'name', 'amount', 'balance_after']).whereRef('holder', '=', 'player_id').where('transaction_id', 'in', transactionIds);
}

export async function insertPayment(db: WalletDb, p: WalletTables['wallet.payments']): Promise<void> {
  await db.insertInto('wallet.payments').values(p).execute();
}

export async function findPayment(db: WalletDb, id: string, lock = false) {
  let q = db.selectFrom('wallet.payments').selectAll().where('id', '=', id);
  if (lock) q = q.forUpdate();
  return q.executeTakeFirst();
}

export async function setPaymentStatus(db: WalletDb, id: string, status: PaymentStatus, extra: { provider_ref?: string | null; reason?: string | null } = {}): Promise<void> {
  await db.updateTable('wallet.payments').set({ status, updated_at: new Date(), ...extra }).where('id', '=', id).execute();
}

/**
 * Forgets idempotency keys (and their answers) older than the retention, a chunk at a
 * time so no long lock blocks the ledger. A replay after that is treated as new: the
 * retention must outlast every provider's and client's retry window (4 months minimum).
 */
export async function pruneIdempotency(db: WalletDb, olderThan: Date, chunk = 10_000): Promise<number> {
  return deleteOlderThan(db, 'wallet.idempotency', 'created_at', olderThan, chunk);
}
