import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import { platformErrors } from '../../platform/errors.ts';
import type { Kernel } from '../../platform/module.ts';
import type { PlayerService } from '../players/index.ts';
import { fail } from './errors.ts';
import type { SessionService } from './sessions.ts';
import type { IdentityTables } from './store.ts';
import { sha256Hex } from '../../platform/hash.ts';

// Password change (signed in, step-up at the edge), and reset by an emailed link.
//
// A reset link carries 256 random bits; only their SHA-256 is stored (at that entropy a
// slow hash adds nothing). It works once, for PASSWORD_RESET_TTL_SECONDS, and a newer
// request supersedes it. Asking for one gives the same answer whether the login or
// email names an account or not, and the work for a real account (the token, the
// email) happens after the answer, so the timing tells nothing either. Requests are
// limited per account (further ones are answered the same, with no email) and per
// source address (further ones get RATE_LIMITED, which says nothing about accounts).

/** Players in these states get reset links: the same as may sign in (accounts.ts). */
const MAY_RESET: ReadonlySet<string> = new Set(['active', 'suspended', 'suspended_may_withdraw', 'self_excluded']);


export const RESET_PAGE_PATH = '/password-reset';

export class PasswordService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #players: PlayerService;
  readonly #sessions: SessionService;
  readonly #publicUrl: string;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>, players: PlayerService, sessions: SessionService) {
    this.#kernel = kernel;
    this.#db = db;
    this.#players = players;
    this.#sessions = sessions;
    this.#publicUrl = (kernel.config.publicUrl ?? 'http://localhost:8080').replace(/\/+$/, '');
  }

  /** The signed-in player changes their password; every other session of theirs ends (the current one, `keepSession`, stays). */
  async change(ctx: RequestContext, playerId: string, current: string, next: string, keepSession: string | null): Promise<{ endedSessions: number }> {
    const check = await this.#players.checkPasswordChange(playerId, current, next, '/body/newPassword');
    if (!check.matches) throw fail('PASSWORD_INCORRECT');
    if (current === next) throw fail('PASSWORD_UNCHANGED');
    if (check.problems.length > 0) throw platformErrors('VALIDATION_FAILED', { errors: check.problems });
    const ended = await this.#kernel.transaction(ctx, async (uow) => {
      await this.#players.setPassword(uow, playerId, next);
      const ids = await this.#sessions.endForPassword(uow, playerId, 'password_changed', keepSession);
      await uow.emit({ type: 'identity.password.changed', playerId, payload: { playerId, endedSessionIds: ids } });
      await uow.audit({ action: 'identity.password.change', target: { type: 'player', id: playerId }, changes: { endedSessions: ids, keptSession: keepSession } });
      return ids;
    });
    await this.#sessions.markEndedInCache(ended);
    return { endedSessions: ended.length };
  }

  async #count(key: string, windowSeconds: number): Promise<number> {
    try {
      const n = Number((await this.#kernel.cache.get(key)) ?? '0') + 1;
      await this.#kernel.cache.set(key, String(n), windowSeconds);
      return n;
    } catch {
      return 1;
    }
  }

  /**
   * Asks for a reset link by login or email. Resolves the same way for every account,
   * known or not; only the source address limit is an error (RATE_LIMITED).
   */
  async requestReset(ctx: RequestContext, loginOrEmail: string): Promise<void> {
    const { config } = this.#kernel;
    if (ctx.sourceIp && (await this.#count(`identity:password-reset:source:${sha256Hex(ctx.sourceIp)}`, config.passwordResetWindowSeconds)) > config.passwordResetSourceLimit) {
      throw platformErrors('RATE_LIMITED', { detail: 'Too many password reset requests from this network; try again later.' });
    }
    // After the answer: a known account costs no more time to answer than an unknown one.
    setImmediate(() => {
      this.#deliver(ctx, loginOrEmail.trim()).catch((err: unknown) => this.#kernel.logger.error({ err }, 'sending a password reset link failed'));
    });
  }

  async #deliver(ctx: RequestContext, loginOrEmail: string): Promise<void> {
    const { config } = this.#kernel;
    const player = loginOrEmail === '' ? undefined : await this.#players.findByLoginOrEmail(loginOrEmail);
    if (!player || !MAY_RESET.has(player.status)) return;
    if ((await this.#count(`identity:password-reset:account:${player.id}`, config.passwordResetWindowSeconds)) > config.passwordResetAccountLimit) {
      this.#kernel.logger.info({ playerId: player.id }, 'password reset request over the account limit: no email sent');
      return;
    }
    const record = await this.#players.find(player.id);
    if (!record) return;
    const token = randomBytes(32).toString('base64url');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + config.passwordResetTtlSeconds * 1000);
    await this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<IdentityTables>(uow.trx);
      await db
        .updateTable('identity.password_resets')
        .set({ superseded_at: now })
        .where('account_id', '=', player.id)
        .where('used_at', 'is', null)
        .where('superseded_at', 'is', null)
        .execute();
      await db.insertInto('identity.password_resets').values({ token_hash: sha256Hex(token), account_id: player.id, created_at: now, expires_at: expiresAt, used_at: null, superseded_at: null }).execute();
      await uow.emit({ type: 'identity.password.reset_requested', playerId: player.id, payload: { playerId: player.id, expiresAt: expiresAt.toISOString() } });
      await uow.audit({ action: 'identity.password.reset_request', target: { type: 'player', id: player.id }, changes: { expiresAt: expiresAt.toISOString() } });
    });
    const minutes = Math.round(config.passwordResetTtlSeconds / 60);
    const link = `${this.#publicUrl}${RESET_PAGE_PATH}?token=${token}`;
    await this.#kernel.messages.send({
      channel: 'email',
      to: record.email,
      subject: 'Reset your password',
      text: [
        'Someone (hopefully you) asked to reset the password of your account.',
        '',
        `Choose a new password here (the link works once, for ${minutes} minutes):`,
        link,
        '',
        'Resetting your password signs you out on every device.',
        'If you did not ask for this, ignore this email: your password stays as it is.',
      ].join('\n'),
      purpose: 'password.reset',
      accountId: player.id,
    });
  }

  /** Whether a reset token is usable now (the hosted page checks before showing its form). */
  async checkToken(token: string): Promise<void> {
    await this.#usableToken(this.#db, token);
  }

  async #usableToken(db: Kysely<IdentityTables>, token: string): Promise<{ accountId: string; tokenHash: string }> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) throw fail('PASSWORD_RESET_TOKEN_INVALID');
    const row = await db.selectFrom('identity.password_resets').selectAll().where('token_hash', '=', sha256Hex(token)).executeTakeFirst();
    if (!row || row.used_at || row.superseded_at) throw fail('PASSWORD_RESET_TOKEN_INVALID');
    if (row.expires_at.getTime() <= Date.now()) throw fail('PASSWORD_RESET_TOKEN_EXPIRED');
    return { accountId: row.account_id, tokenHash: row.token_hash };
  }

  /**
   * Sets a new password with a reset token: once (two requests racing with one token:
   * one wins), and every session of the player ends with its refresh tokens. A password
   * the policy refuses leaves the token usable.
   */
  async reset(ctx: RequestContext, token: string, password: string, field = '/body/newPassword'): Promise<void> {
    const { accountId, tokenHash } = await this.#usableToken(this.#db, token);
    const problems = await this.#players.newPasswordProblems(accountId, password, field);
    if (problems.length > 0) throw platformErrors('VALIDATION_FAILED', { errors: problems });
    const ended = await this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<IdentityTables>(uow.trx);
      const claimed = await db
        .updateTable('identity.password_resets')
        .set({ used_at: new Date() })
        .where('token_hash', '=', tokenHash)
        .where('used_at', 'is', null)
        .where('superseded_at', 'is', null)
        .returning('account_id')
        .executeTakeFirst();
      if (!claimed) throw fail('PASSWORD_RESET_TOKEN_INVALID');
      await this.#players.setPassword(uow, accountId, password);
      const ids = await this.#sessions.endForPassword(uow, accountId, 'password_reset', null);
      await uow.emit({ type: 'identity.password.reset_completed', playerId: accountId, payload: { playerId: accountId, endedSessionIds: ids } });
      await uow.audit({ action: 'identity.password.reset', target: { type: 'player', id: accountId }, changes: { endedSessions: ids } });
      return ids;
    });
    await this.#sessions.markEndedInCache(ended);
  }
}
