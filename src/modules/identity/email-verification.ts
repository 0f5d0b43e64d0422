import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { maskEmail } from '../../platform/auth/pii.ts';
import { systemContext, type RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf, type Trx } from '../../platform/db/database.ts';
import type { Kernel } from '../../platform/module.ts';
import type { PlayerRecord, PlayerService } from '../players/index.ts';
import { fail } from './errors.ts';
import type { IdentityTables } from './store.ts';
import { sha256Hex } from '../../platform/hash.ts';

// Email verification: a link with a 256-bit single-use token, kept as its SHA-256 (at that
// entropy a slow hash adds nothing), valid LINK_TTL_HOURS, for the address it was sent to.
// Sent after registration and after an email change (queued by a consumer of
// player.registered and player.email_changed, sent after its transaction commits) and when
// the signed-in player asks (at most once a minute).

/** Why a queued email is sent. */
export type VerificationReason = 'registration' | 'email_changed';

export const LINK_TTL_HOURS = 24;
export const RESEND_AFTER_SECONDS = 60;
/** Where the link points, at the server root beside the sign-in page. */
export const VERIFY_PATH = '/verify-email';
export const TOKEN_PATTERN = '^[A-Za-z0-9_-]{43}$';


export interface SentVerification {
  /** The address, masked. */
  readonly sentTo: string;
  readonly expiresAt: string;
  readonly resendAfter: string;
}

export class EmailVerificationService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #players: PlayerService;
  readonly #publicUrl: string;
  #draining: Promise<void> | undefined;
  #again = false;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>, players: PlayerService) {
    this.#kernel = kernel;
    this.#db = db;
    this.#players = players;
    this.#publicUrl = (kernel.config.publicUrl ?? 'http://localhost:8080').replace(/\/+$/, '');
  }

  /** The signed-in player asks for a (new) link. */
  async request(ctx: RequestContext, playerId: string): Promise<SentVerification> {
    const player = await this.#players.find(playerId);
    if (!player) throw fail('MFA_PLAYERS_ONLY');
    if (player.emailVerified) throw fail('EMAIL_ALREADY_VERIFIED');
    const last = await this.#db
      .selectFrom('identity.email_verifications')
      .select('created_at')
      .where('player_id', '=', playerId)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    const wait = last ? Math.ceil((last.created_at.getTime() + RESEND_AFTER_SECONDS * 1000 - Date.now()) / 1000) : 0;
    if (wait > 0) throw fail('EMAIL_VERIFICATION_TOO_SOON', { detail: `Ask again in ${wait} s.`, extra: { retryAfter: wait } });
    return this.#send(ctx, player, true, 'request');
  }

  /** A new link; audited when the player asked (the one after registration follows from the audited registration). */
  async #send(ctx: RequestContext, player: PlayerRecord, audited: boolean, reason: VerificationReason | 'request'): Promise<SentVerification> {
    const token = randomBytes(32).toString('base64url');
    const now = Date.now();
    const expiresAt = new Date(now + LINK_TTL_HOURS * 3_600_000);
    await this.#kernel.transaction(ctx, async (uow) => {
      await tablesOf<IdentityTables>(uow.trx)
        .insertInto('identity.email_verifications')
        .values({ token_hash: sha256Hex(token), player_id: player.id, email: player.email, created_at: new Date(now), expires_at: expiresAt, used_at: null })
        .execute();
      if (!audited) return;
      await uow.audit({ action: 'identity.email_verification.send', target: { type: 'player', id: player.id }, changes: { sentTo: maskEmail(player.email), expiresAt: expiresAt.toISOString() } });
    });
    const link = `${this.#publicUrl}${VERIFY_PATH}/${token}`;
    try {
      await this.#kernel.messages.send({
        channel: 'email',
        to: player.email,
        subject: 'Confirm your email address',
        text: `Hello ${player.login},\n\nPlease confirm that this is your email address by opening this link:\n\n${link}\n\nThe link works once and expires in ${LINK_TTL_HOURS} hours. ${
          reason === 'email_changed' ? 'If you did not change the email address of your account, ignore this email.' : 'If you did not create an account, ignore this email.'
        }\n`,
        purpose: 'email.verification',
        accountId: player.id,
      });
    } catch (err) {
      this.#kernel.logger.error({ err, requestId: ctx.requestId }, 'sending a verification email failed');
      throw fail('EMAIL_NOT_SENT');
    }
    return { sentTo: maskEmail(player.email), expiresAt: expiresAt.toISOString(), resendAfter: new Date(now + RESEND_AFTER_SECONDS * 1000).toISOString() };
  }

  /**
   * The player.registered and player.email_changed consumer: queues the email in the
   * consumer's transaction (sent once it commits). A later request replaces an earlier one
   * (sent or not): the email goes to the address the player has when it is sent.
   */
  async queue(trx: Trx, playerId: string, reason: VerificationReason = 'registration'): Promise<void> {
    await tablesOf<IdentityTables>(trx)
      .insertInto('identity.email_verification_requests')
      .values({ player_id: playerId, reason, created_at: new Date(), claimed_at: null })
      .onConflict((oc) => oc.column('player_id').doUpdateSet({ reason, created_at: new Date(), claimed_at: null }))
      .execute();
  }

  /**
   * Sends the queued emails. Each request is claimed by one process (SKIP LOCKED) and sent
   * once; a failed send is logged, and the player can ask again.
   */
  drain(): Promise<void> {
    if (this.#draining) {
      // A request queued while a drain runs may have missed its last look: look again after it.
      this.#again = true;
      return this.#draining;
    }
    this.#draining = (async () => {
      do {
        this.#again = false;
        await this.#drain();
      } while (this.#again);
    })().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  /** Resolves when no drain is running (at shutdown). */
  async settled(): Promise<void> {
    await this.#draining?.catch(() => {});
  }

  async #drain(): Promise<void> {
    for (;;) {
      const claimed = await sql<{ player_id: string; reason: VerificationReason }>`
        update identity.email_verification_requests set claimed_at = now()
        where player_id in (
          select player_id from identity.email_verification_requests where claimed_at is null order by created_at limit 10 for update skip locked
        )
        returning player_id, reason`.execute(this.#db);
      if (claimed.rows.length === 0) return;
      for (const { player_id: playerId, reason } of claimed.rows) {
        const player = await this.#players.find(playerId);
        if (!player || player.emailVerified) continue;
        await this.#send(systemContext('email-verification'), player, false, reason).catch((err: unknown) => this.#kernel.logger.error({ err, playerId, reason }, 'queued verification email not sent'));
      }
    }
  }

  /** Opens a link: the token (single use, unexpired) marks its address verified, if it is still the player's. */
  async verify(ctx: RequestContext, token: string): Promise<{ playerId: string }> {
    if (!new RegExp(TOKEN_PATTERN).test(token)) throw fail('EMAIL_VERIFICATION_INVALID');
    const used = await this.#db
      .updateTable('identity.email_verifications')
      .set({ used_at: new Date() })
      .where('token_hash', '=', sha256Hex(token))
      .where('used_at', 'is', null)
      .where('expires_at', '>', new Date())
      .returning(['player_id', 'email'])
      .executeTakeFirst();
    if (!used) throw fail('EMAIL_VERIFICATION_INVALID');
    const outcome = await this.#players.markEmailVerified(ctx, used.player_id, used.email);
    if (outcome === 'email_changed') throw fail('EMAIL_VERIFICATION_STALE');
    if (outcome === 'not_found') throw fail('EMAIL_VERIFICATION_INVALID');
    return { playerId: used.player_id };
  }
}
