import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { sql } from 'kysely';
import type { Db, Trx } from '../db/database.ts';
import { newId } from '../ids.ts';
import { actorOf, type RequestContext } from '../auth/principal.ts';
import { ConfigError } from '../config.ts';

/** What a service says about a state change; who and where come from the request context. */
export interface AuditEntry {
  /** What happened, `module.verb`: `player.register`, `staff.create`. */
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string };
  /** What changed. Never personal data: the log outlives GDPR erasure. */
  readonly changes?: Readonly<Record<string, unknown>>;
}

export const GENESIS_HASH = '0'.repeat(64);

/**
 * The chain an entry goes to: a hash of its target, so one target's history stays in
 * one chain (in order) while unrelated writes take different chain locks.
 */
export function chainOf(targetType: string, targetId: string, chains: number): number {
  const digest = createHash('sha256').update(`${targetType}:${targetId}`).digest();
  return digest.readUInt32BE(0) % chains;
}

/** JSON-safe copy: bigints become decimal strings, undefined fields vanish. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

export interface HashedFields {
  chain: number;
  seq: bigint;
  id: string;
  at: Date;
  actor_type: string;
  actor_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  changes: unknown;
  request_id: string | null;
  source_ip: string | null;
}

/** sha256(prev_hash || JCS(row)): RFC 8785 canonical JSON, so jsonb's key reordering changes nothing. */
export function entryHash(prevHash: string, row: HashedFields): string {
  const body = canonicalize({
    chain: row.chain,
    seq: row.seq.toString(),
    id: row.id,
    at: row.at.toISOString(),
    actor_type: row.actor_type,
    actor_id: row.actor_id,
    action: row.action,
    target_type: row.target_type,
    target_id: row.target_id,
    changes: row.changes,
    request_id: row.request_id,
    source_ip: row.source_ip,
  });
  return createHash('sha256').update(prevHash).update(body ?? '').digest('hex');
}

/** Creates the chain heads once; the number of chains is fixed from then on. */
export async function ensureChains(db: Db, chains: number): Promise<void> {
  const existing = await db.selectFrom('platform.audit_chain_heads').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
  const have = Number(existing.n);
  if (have > 0 && have !== chains) {
    // Entries are placed by hash modulo the chain count: changing it would send a
    // target's later entries to another chain and split its history.
    throw new ConfigError('AUDIT_CHAINS', `is ${chains} but this database has ${have} audit chains; it is fixed after the first start (set AUDIT_CHAINS=${have})`);
  }
  const values = Array.from({ length: chains }, (_, chain) => ({ chain, seq: 0n, hash: GENESIS_HASH }));
  await db
    .insertInto('platform.audit_chain_heads')
    .values(values)
    .onConflict((oc) => oc.column('chain').doNothing())
    .execute();
}

/** Appends one entry inside the caller's transaction; it commits or vanishes with the change it records. */
export async function appendAudit(trx: Trx, ctx: RequestContext, entry: AuditEntry, chains: number): Promise<void> {
  const chain = chainOf(entry.target.type, entry.target.id, chains);
  const head = await trx
    .selectFrom('platform.audit_chain_heads')
    .select(['seq', 'hash'])
    .where('chain', '=', chain)
    .forUpdate()
    .executeTakeFirst();
  if (!head) throw new Error(`audit chain ${chain} is missing; were the chains created?`);
  const actor = actorOf(ctx.principal);
  const row: HashedFields = {
    chain,
    seq: head.seq + 1n,
    id: newId(),
    at: new Date(),
    actor_type: actor.type,
    actor_id: actor.id,
    action: entry.action,
    target_type: entry.target.type,
    target_id: entry.target.id,
    changes: plain(entry.changes),
    request_id: ctx.requestId,
    source_ip: ctx.sourceIp,
  };
  const hash = entryHash(head.hash, row);
  await trx
    .insertInto('platform.audit_log')
    .values({ ...row, changes: JSON.stringify(row.changes), prev_hash: head.hash, hash })
    .execute();
  await trx.updateTable('platform.audit_chain_heads').set({ seq: row.seq, hash }).where('chain', '=', chain).execute();
}

/** Entries about one target, newest first (for the back office). */
export async function auditTrail(db: Db, targetType: string, targetId: string, limit = 100) {
  return db
    .selectFrom('platform.audit_log')
    .select(['id', 'at', 'actor_type', 'actor_id', 'action', 'changes', 'request_id', 'source_ip'])
    .where('target_type', '=', targetType)
    .where('target_id', '=', targetId)
    .orderBy('at', 'desc')
    .limit(limit)
    .execute();
}

export const auditRowCount = async (db: Db): Promise<number> =>
  Number((await sql<{ n: bigint }>`select count(*)::int8 as n from platform.audit_log`.execute(db)).rows[0]?.n ?? 0);
