import { hasPermission, type RequestContext } from '../../platform/auth/principal.ts';
import { canSeePii, maskText } from '../../platform/auth/pii.ts';
import { platformErrors } from '../../platform/errors.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { Kernel, UnitOfWork } from '../../platform/module.ts';
import { sql, type Kysely, type Transaction } from 'kysely';
import { fail } from './errors.ts';
import { MAX_ACCESS_TOKEN_TTL } from './provider.ts';
import {
  deleteProviderState,
  findSession,
  grantIdsOf,
  listSessions,
  liveSessionIds,
  markEnded,
  recordSession,
  touchSession,
  type SessionRecord,
  type SessionSighting,
} from './sessions-store.ts';
import type { IdentityTables, SessionEndReason } from './store.ts';

// Sign-in sessions (the player's devices): recorded when the provider authorizes a
// client in them, checked for idle and absolute timeouts at every refresh and every
// authorization, listed and ended by the player (or staff). Ending one deletes the
// provider session and every grant it started, so its refresh tokens fail at once, and
// marks it ended in the cache, where the API's bearer check looks (see AuthPolicy):
// its access tokens stop at once too, in every process sharing the cache (Redis).

export const SESSION_PERMISSIONS = {
  read: 'identity.sessions.read',
  manage: 'identity.sessions.manage',
} as const;

export type SessionState = 'active' | 'unknown' | 'ended' | 'idle_timeout' | 'absolute_timeout';

export interface SessionView {
  id: string;
  current: boolean;
  device: string | null;
  userAgent: string | null;
  sourceIp: string | null;
  clients: string[];
  acr: string | null;
  amr: string[];
  signedInAt: string;
  createdAt: string;
  lastUsedAt: string;
  endedAt: string | null;
  endReason: SessionEndReason | null;
}

const endedKey = (id: string) => `identity:session:ended:${id}`;
// Longer than any access token of the session can live (they are refused until they expire).
const ENDED_MARK_TTL = MAX_ACCESS_TOKEN_TTL + 120;

export class SessionService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #idle: number;
  readonly #absolute: number;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>) {
    this.#kernel = kernel;
    this.#db = db;
    this.#idle = kernel.config.sessionIdleTimeoutSeconds;
    this.#absolute = kernel.config.sessionAbsoluteTimeoutSeconds;
  }

  async record(sighting: SessionSighting): Promise<void> {
    await recordSession(this.#db, sighting, new Date());
  }

  /** The state of a session now: timeouts are computed, not waited for. */
  async state(id: string, now = new Date()): Promise<{ state: SessionState; record: SessionRecord | undefined }> {
    const record = await findSession(this.#db, id);
    if (!record) return { state: 'unknown', record };
    if (record.endedAt) return { state: 'ended', record };
    if (now.getTime() - record.createdAt.getTime() > this.#absolute * 1000) return { state: 'absolute_timeout', record };
    if (now.getTime() - record.lastUsedAt.getTime() > this.#idle * 1000) return { state: 'idle_timeout', record };
    return { state: 'active', record };
  }

  /**
   * May this session be used now (a refresh, an authorization)? A session past a
   * timeout is ended here, with its grants, and audited. An unknown one (from before
   * sessions were recorded) may. `use` counts the check as activity (a refresh).
   */
  async usable(id: string, options: { use: boolean }): Promise<boolean> {
    const { state, record } = await this.state(id);
    switch (state) {
      case 'unknown':
        return true;
      case 'active':
        if (options.use) await touchSession(this.#db, id, new Date());
        return true;
      case 'ended':
        return false;
      case 'idle_timeout':
      case 'absolute_timeout':
        await this.#end({ principal: { kind: 'system', id: 'identity.sessions' }, requestId: null, sourceIp: null }, record!.accountId, [id], state, null);
        return false;
    }
  }

  /** For the API's bearer check: a cache lookup, no database. */
  async isEnded(id: string): Promise<boolean> {
    try {
      return (await this.#kernel.cache.get(endedKey(id))) !== undefined;
    } catch {
      // A cache outage must not lock every player out; refresh tokens are still checked in the database.
      return false;
    }
  }

  #accountFor(ctx: RequestContext, accountId: string | undefined, permission: string): string {
    const { principal } = ctx;
    if (principal.kind === 'player') {
      if (accountId !== undefined && accountId !== principal.id) throw fail('SESSION_NOT_FOUND');
      return principal.id;
    }
    if (principal.kind === 'anonymous') throw platformErrors('UNAUTHENTICATED');
    if (accountId === undefined) throw fail('SESSIONS_PLAYERS_ONLY');
    if (!hasPermission(principal, permission)) throw platformErrors('FORBIDDEN', { detail: `Requires the permission "${permission}".` });
    return accountId;
  }

  async list(ctx: RequestContext, accountId: string | undefined, options: { includeEnded: boolean; limit: number }): Promise<SessionView[]> {
    const account = this.#accountFor(ctx, accountId, SESSION_PERMISSIONS.read);
    const current = ctx.principal.kind === 'player' ? ctx.principal.sid : undefined;
    const records = await listSessions(this.#db, account, options);
    const now = new Date();
    // Addresses and user agents are personal data: staff without pii.read see them masked.
    const pii = canSeePii(ctx.principal, account);
    const masked = (value: string | null) => (value === null || pii ? value : maskText(value));
    // A session past a timeout that nobody has touched since is shown as ended (it is ended at its next use).
    return records.map((r) => {
      const timedOut = r.endedAt
        ? null
        : now.getTime() - r.createdAt.getTime() > this.#absolute * 1000
          ? 'absolute_timeout'
          : now.getTime() - r.lastUsedAt.getTime() > this.#idle * 1000
            ? 'idle_timeout'
            : null;
      return {
        id: r.id,
        current: r.id === current,
        device: r.device,
        userAgent: masked(r.userAgent),
        sourceIp: masked(r.sourceIp),
        clients: r.clientIds,
        acr: r.acr,
        amr: r.amr,
        signedInAt: r.signedInAt.toISOString(),
        createdAt: r.createdAt.toISOString(),
        lastUsedAt: r.lastUsedAt.toISOString(),
        endedAt: r.endedAt?.toISOString() ?? (timedOut ? new Date(timedOut === 'absolute_timeout' ? r.createdAt.getTime() + this.#absolute * 1000 : r.lastUsedAt.getTime() + this.#idle * 1000).toISOString() : null),
        endReason: r.endReason ?? timedOut,
      };
    }).filter((v) => options.includeEnded || v.endedAt === null);
  }

  /** Ends one session of the player (their own), or of any player (staff with identity.sessions.manage). */
  async revoke(ctx: RequestContext, accountId: string | undefined, id: string): Promise<void> {
    const account = this.#accountFor(ctx, accountId, SESSION_PERMISSIONS.manage);
    const record = await findSession(this.#db, id);
    if (!record || record.accountId !== account) throw fail('SESSION_NOT_FOUND');
    if (record.endedAt) throw fail('SESSION_ALREADY_ENDED');
    await this.#end(ctx, account, [id], ctx.principal.kind === 'player' ? 'revoked' : 'revoked_by_staff', null);
  }

  /** Ends every live session of the player but `keep` (the caller's own, when asked to keep it); returns how many ended. */
  async revokeAll(ctx: RequestContext, accountId: string | undefined, keep: string | null): Promise<number> {
    const account = this.#accountFor(ctx, accountId, SESSION_PERMISSIONS.manage);
    const ids = await liveSessionIds(this.#db, account, keep);
    return this.#end(ctx, account, ids, ctx.principal.kind === 'player' ? 'revoked_all' : 'revoked_by_staff', keep, true);
  }

  /**
   * Ends sessions for a password change or reset, inside the caller's transaction (the
   * password and the end of the sessions commit together).
   */
  async endForPassword(uow: UnitOfWork, accountId: string, reason: 'password_changed' | 'password_reset', keep: string | null): Promise<string[]> {
    const db = tablesOf<IdentityTables>(uow.trx);
    const ids = await liveSessionIds(db, accountId, keep);
    const ended = await this.#endIn(uow, accountId, ids, reason);
    // Tokens of sessions that were never recorded (older than this table) still go: every grant of the account but the kept session's.
    const keepGrants = keep ? await grantIdsOf(db, keep) : [];
    await deleteAccountGrants(db, accountId, keepGrants);
    return ended;
  }

  /** Marks sessions ended in the cache, after their transaction committed. */
  async markEndedInCache(ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.#kernel.cache.set(endedKey(id), '1', ENDED_MARK_TTL).catch(() => {});
  }

  async #endIn(uow: UnitOfWork, accountId: string, ids: readonly string[], reason: SessionEndReason): Promise<string[]> {
    const db = tablesOf<IdentityTables>(uow.trx);
    const ended: string[] = [];
    const now = new Date();
    for (const id of ids) {
      const grants = await markEnded(db, id, reason, now);
      if (!grants) continue;
      await deleteProviderState(db, id, grants);
      ended.push(id);
      if (reason === 'idle_timeout' || reason === 'absolute_timeout') {
        await uow.audit({ action: 'identity.session.timeout', target: { type: 'player', id: accountId }, changes: { sessionId: id, reason } });
      }
    }
    return ended;
  }

  async #end(ctx: RequestContext, accountId: string, ids: readonly string[], reason: SessionEndReason, kept: string | null, all = false): Promise<number> {
    const ended = await this.#kernel.transaction(ctx, async (uow) => {
      const done = await this.#endIn(uow, accountId, ids, reason);
      if (reason === 'idle_timeout' || reason === 'absolute_timeout') return done;
      if (all) {
        await uow.emit({ type: 'identity.sessions.revoked_all', playerId: accountId, payload: { playerId: accountId, sessionIds: done, keptSessionId: kept, by: ctx.principal.kind === 'player' ? 'player' : 'staff' } });
        await uow.audit({ action: 'identity.sessions.revoke_all', target: { type: 'player', id: accountId }, changes: { sessionIds: done, kept } });
      } else {
        for (const id of done) {
          await uow.emit({ type: 'identity.session.revoked', playerId: accountId, payload: { playerId: accountId, sessionId: id, reason, by: ctx.principal.kind === 'player' ? 'player' : 'staff' } });
          await uow.audit({ action: 'identity.session.revoke', target: { type: 'player', id: accountId }, changes: { sessionId: id, reason } });
        }
      }
      return done;
    });
    await this.markEndedInCache(ended);
    return ended.length;
  }

  /** The provider signed the player out of a session (RP-initiated logout). */
  async signedOut(ctx: RequestContext, id: string): Promise<void> {
    const record = await findSession(this.#db, id);
    if (!record || record.endedAt) return;
    const ended = await this.#kernel.transaction(ctx, async (uow) => {
      const done = await this.#endIn(uow, record.accountId, [id], 'signed_out');
      if (done.length > 0) await uow.audit({ action: 'identity.session.sign_out', target: { type: 'player', id: record.accountId }, changes: { sessionId: id } });
      return done;
    });
    await this.markEndedInCache(ended);
  }
}

/** Every grant of an account (and what was issued under it) but those kept. */
async function deleteAccountGrants(db: Kysely<IdentityTables> | Transaction<IdentityTables>, accountId: string, keep: readonly string[]): Promise<void> {
  const grants = await db
    .selectFrom('identity.oidc_payloads')
    .select('id')
    .where('model', '=', 'Grant')
    .where(sql<string>`payload->>'accountId'`, '=', accountId)
    .execute();
  const ids = grants.map((g) => g.id).filter((id) => !keep.includes(id));
  if (ids.length === 0) return;
  await db
    .deleteFrom('identity.oidc_payloads')
    .where((eb) => eb.or([eb('grant_id', 'in', ids), eb.and([eb('model', '=', 'Grant'), eb('id', 'in', ids)])]))
    .execute();
}
