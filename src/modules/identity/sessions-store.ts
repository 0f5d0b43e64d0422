import { sql, type Kysely, type Transaction } from 'kysely';
import type { IdentityTables, SessionEndReason, SessionTable } from './store.ts';
import { jsonList } from './store.ts';

// SQL of identity.sessions, and of ending a session's provider state in
// identity.oidc_payloads (the provider's own table, which oidc-adapter.ts otherwise owns).

type Executor = Kysely<IdentityTables> | Transaction<IdentityTables>;

export interface SessionRecord {
  id: string;
  accountId: string;
  clientIds: string[];
  userAgent: string | null;
  device: string | null;
  sourceIp: string | null;
  acr: string | null;
  amr: string[];
  signedInAt: Date;
  createdAt: Date;
  lastUsedAt: Date;
  endedAt: Date | null;
  endReason: SessionEndReason | null;
}


function toRecord(row: SessionTable): SessionRecord {
  return {
    id: row.id,
    accountId: row.account_id,
    clientIds: jsonList(row.client_ids),
    userAgent: row.user_agent,
    device: row.device,
    sourceIp: row.source_ip,
    acr: row.acr,
    amr: jsonList(row.amr),
    signedInAt: row.signed_in_at,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    endedAt: row.ended_at,
    endReason: row.end_reason,
  };
}

export async function findSession(db: Executor, id: string): Promise<SessionRecord | undefined> {
  const row = await db.selectFrom('identity.sessions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function grantIdsOf(db: Executor, id: string): Promise<string[]> {
  const row = await db.selectFrom('identity.sessions').select('grant_ids').where('id', '=', id).executeTakeFirst();
  return row ? jsonList(row.grant_ids) : [];
}

export interface SessionSighting {
  id: string;
  accountId: string;
  clientId: string;
  grantId: string | null;
  userAgent: string | null;
  device: string | null;
  sourceIp: string | null;
  /** A sign-in just happened in this session (not a silent authorization). */
  signedIn: { at: Date; acr: string | null; amr: string[] } | null;
}

/**
 * Records a session seen at the authorization endpoint: a new one, or a client (and its
 * grant) added to a live one; a sign-in in it also counts as use and updates how the
 * player authenticated. An ended session is left as it is.
 */
export async function recordSession(db: Executor, s: SessionSighting, now: Date): Promise<void> {
  const signedInAt = s.signedIn?.at ?? now;
  await db
    .insertInto('identity.sessions')
    .values({
      id: s.id,
      account_id: s.accountId,
      client_ids: JSON.stringify([s.clientId]),
      grant_ids: JSON.stringify(s.grantId ? [s.grantId] : []),
      user_agent: s.userAgent,
      device: s.device,
      source_ip: s.sourceIp,
      acr: s.signedIn?.acr ?? null,
      amr: JSON.stringify(s.signedIn?.amr ?? []),
      signed_in_at: signedInAt,
      created_at: now,
      last_used_at: now,
      ended_at: null,
      end_reason: null,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const addClient = sql<string>`case when client_ids @> ${JSON.stringify([s.clientId])}::jsonb then client_ids else client_ids || ${JSON.stringify([s.clientId])}::jsonb end`;
  const addGrant = s.grantId
    ? sql<string>`case when grant_ids @> ${JSON.stringify([s.grantId])}::jsonb then grant_ids else grant_ids || ${JSON.stringify([s.grantId])}::jsonb end`
    : sql<string>`grant_ids`;
  await db
    .updateTable('identity.sessions')
    .set({
      client_ids: addClient,
      grant_ids: addGrant,
      ...(s.signedIn
        ? {
            acr: s.signedIn.acr,
            amr: JSON.stringify(s.signedIn.amr),
            signed_in_at: s.signedIn.at,
            last_used_at: now,
            user_agent: s.userAgent,
            device: s.device,
            source_ip: s.sourceIp,
          }
        : {}),
    })
    .where('id', '=', s.id)
    .where('account_id', '=', s.accountId)
    .where('ended_at', 'is', null)
    .execute();
}

export async function touchSession(db: Executor, id: string, now: Date): Promise<void> {
  await db.updateTable('identity.sessions').set({ last_used_at: now }).where('id', '=', id).where('ended_at', 'is', null).execute();
}

export async function listSessions(db: Executor, accountId: string, options: { includeEnded: boolean; limit: number }): Promise<SessionRecord[]> {
  let q = db.selectFrom('identity.sessions').selectAll().where('account_id', '=', accountId);
  if (!options.includeEnded) q = q.where('ended_at', 'is', null);
  const rows = await q.orderBy('last_used_at', 'desc').limit(options.limit).execute();
  return rows.map(toRecord);
}

/** Live sessions of an account, the one to keep left out. */
export async function liveSessionIds(db: Executor, accountId: string, except: string | null): Promise<string[]> {
  let q = db.selectFrom('identity.sessions').select('id').where('account_id', '=', accountId).where('ended_at', 'is', null);
  if (except) q = q.where('id', '<>', except);
  return (await q.execute()).map((r) => r.id);
}

/** Marks a session ended, once: its grant ids, or undefined when it had ended already. */
export async function markEnded(db: Executor, id: string, reason: SessionEndReason, now: Date): Promise<string[] | undefined> {
  const row = await db
    .updateTable('identity.sessions')
    .set({ ended_at: now, end_reason: reason })
    .where('id', '=', id)
    .where('ended_at', 'is', null)
    .returning('grant_ids')
    .executeTakeFirst();
  return row ? jsonList(row.grant_ids) : undefined;
}

/**
 * Ends a session at the provider: the session itself (its cookie then names nothing),
 * and every grant it started, with everything issued under them (refresh tokens,
 * codes); any other token that names the session goes too.
 */
export async function deleteProviderState(db: Executor, sessionId: string, grantIds: readonly string[]): Promise<void> {
  const bySession = db
    .selectFrom('identity.oidc_payloads')
    .select('grant_id')
    .where(sql<string>`payload->>'sessionUid'`, '=', sessionId)
    .where('grant_id', 'is not', null);
  await db
    .deleteFrom('identity.oidc_payloads')
    .where((eb) =>
      eb.or([
        eb.and([eb('model', '=', 'Session'), eb('uid', '=', sessionId)]),
        eb(sql<string>`payload->>'sessionUid'`, '=', sessionId),
        ...(grantIds.length > 0 ? [eb('grant_id', 'in', [...grantIds]), eb.and([eb('model', '=', 'Grant'), eb('id', 'in', [...grantIds])])] : []),
        eb('grant_id', 'in', bySession),
        eb.and([eb('model', '=', 'Grant'), eb('id', 'in', bySession)]),
      ]),
    )
    .execute();
}
