import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { Kernel } from '../../platform/module.ts';
import { fail } from './errors.ts';
import type { IdentityTables } from './store.ts';

// SMS one-time codes as a second factor. A code is 6 random digits, kept as an
// HMAC-SHA-256 under its own random salt (a short-lived code needs no slow hash; the salt
// keeps equal codes from looking equal), one live code per account and purpose, dead
// after CODE_TTL, after MAX_ATTEMPTS wrong tries, or once used. A new code replaces the
// old one, no sooner than RESEND_AFTER after it.

export const CODE_TTL_SECONDS = 300;
export const RESEND_AFTER_SECONDS = 60;
export const MAX_ATTEMPTS = 5;

/** E.164: a plus, a country code not starting with 0, at most 15 digits in all. */
export const E164 = /^\+[1-9]\d{6,14}$/;

export type SmsPurpose = 'enrol' | 'sign_in';

/** A phone number as responses show it: the country prefix and the last two digits. */
export const maskPhone = (phone: string): string => (phone.length <= 6 ? '*'.repeat(phone.length) : `${phone.slice(0, 3)}${'*'.repeat(phone.length - 5)}${phone.slice(-2)}`);

const hmac = (salt: string, code: string): string => createHmac('sha256', Buffer.from(salt, 'base64url')).update(code).digest('base64url');

export interface SentCode {
  /** The number, masked. */
  readonly phone: string;
  readonly expiresAt: string;
  /** When a new code may be asked for. */
  readonly resendAfter: string;
}

export interface SmsFactorStatus {
  readonly enabled: boolean;
  /** Masked; null without a number. */
  readonly phone: string | null;
  /** A number is waiting for its first code. */
  readonly pending: boolean;
}

export class SmsService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #now: () => number;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>, now: () => number = Date.now) {
    this.#kernel = kernel;
    this.#db = db;
    this.#now = now;
  }

  async status(accountId: string): Promise<SmsFactorStatus> {
    const row = await this.#db.selectFrom('identity.sms_factors').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    return { enabled: row?.confirmed_at != null, phone: row ? maskPhone(row.phone) : null, pending: row !== undefined && row.confirmed_at === null };
  }

  async isEnabled(accountId: string): Promise<boolean> {
    return (await this.status(accountId)).enabled;
  }

  /** Starts (or restarts) enrolling a phone number: a code goes to it; the number is not asked for at sign-in until confirmed. */
  async begin(ctx: RequestContext, accountId: string, phone: string): Promise<SentCode> {
    if (!E164.test(phone)) throw fail('MFA_SMS_PHONE_INVALID');
    if (await this.isEnabled(accountId)) throw fail('MFA_SMS_ALREADY_ENABLED');
    // The throttle first: restarting with another number is no way around it.
    await this.#throttle(accountId, 'enrol');
    const now = new Date(this.#now());
    await this.#db
      .insertInto('identity.sms_factors')
      .values({ account_id: accountId, phone, confirmed_at: null, created_at: now })
      .onConflict((oc) => oc.column('account_id').doUpdateSet({ phone, confirmed_at: null, created_at: now }))
      .execute();
    return this.#send(ctx, accountId, 'enrol', phone);
  }

  /** Confirms the number with the code sent to it. */
  async confirm(ctx: RequestContext, accountId: string, code: string, kind: 'player' | 'staff' = 'player'): Promise<SmsFactorStatus> {
    const factor = await this.#db.selectFrom('identity.sms_factors').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!factor || factor.confirmed_at) throw fail(factor ? 'MFA_SMS_ALREADY_ENABLED' : 'MFA_SMS_NOT_STARTED');
    if (!(await this.#check(accountId, 'enrol', code, factor.phone))) throw fail('MFA_CODE_INVALID');
    await this.#kernel.transaction(ctx, async (uow) => {
      const trx = tablesOf<IdentityTables>(uow.trx);
      const done = await trx
        .updateTable('identity.sms_factors')
        .set({ confirmed_at: new Date(this.#now()) })
        .where('account_id', '=', accountId)
        .where('phone', '=', factor.phone)
        .where('confirmed_at', 'is', null)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) !== 1) throw fail('MFA_SMS_NOT_STARTED');
      await uow.emit({ type: 'identity.mfa.enrolled', playerId: kind === 'player' ? accountId : null, payload: { playerId: accountId, method: 'sms' } });
      await uow.audit({ action: 'identity.mfa.enroll', target: { type: kind, id: accountId }, changes: { method: 'sms', phone: maskPhone(factor.phone) } });
    });
    return { enabled: true, phone: maskPhone(factor.phone), pending: false };
  }

  /** Removes the phone factor (confirmed or pending) and any live code. */
  async remove(ctx: RequestContext, accountId: string, kind: 'player' | 'staff' = 'player'): Promise<void> {
    await this.#kernel.transaction(ctx, async (uow) => {
      const trx = tablesOf<IdentityTables>(uow.trx);
      const removed = await trx.deleteFrom('identity.sms_factors').where('account_id', '=', accountId).returningAll().executeTakeFirst();
      if (!removed) throw fail('MFA_SMS_NOT_ENABLED');
      await trx.deleteFrom('identity.sms_codes').where('account_id', '=', accountId).execute();
      if (removed.confirmed_at) {
        await uow.emit({ type: 'identity.mfa.removed', playerId: kind === 'player' ? accountId : null, payload: { playerId: accountId, method: 'sms' } });
      }
      await uow.audit({ action: 'identity.mfa.remove', target: { type: kind, id: accountId }, changes: { method: 'sms', phone: maskPhone(removed.phone), confirmed: removed.confirmed_at !== null } });
    });
  }

  /** Sends a sign-in code to the confirmed number (throttled like enrolment codes). */
  async sendSignInCode(ctx: RequestContext, accountId: string): Promise<SentCode> {
    const factor = await this.#db.selectFrom('identity.sms_factors').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!factor?.confirmed_at) throw fail('MFA_SMS_NOT_ENABLED');
    await this.#throttle(accountId, 'sign_in');
    return this.#send(ctx, accountId, 'sign_in', factor.phone);
  }

  /** Checks a sign-in code; a right one is used up, a wrong one counts towards the cap. */
  async verifySignIn(accountId: string, code: string): Promise<boolean> {
    const factor = await this.#db.selectFrom('identity.sms_factors').select(['phone', 'confirmed_at']).where('account_id', '=', accountId).executeTakeFirst();
    if (!factor?.confirmed_at) return false;
    return this.#check(accountId, 'sign_in', code, factor.phone);
  }

  async #throttle(accountId: string, purpose: SmsPurpose): Promise<void> {
    const live = await this.#db.selectFrom('identity.sms_codes').select('sent_at').where('account_id', '=', accountId).where('purpose', '=', purpose).executeTakeFirst();
    if (!live) return;
    const wait = Math.ceil((live.sent_at.getTime() + RESEND_AFTER_SECONDS * 1000 - this.#now()) / 1000);
    if (wait > 0) throw fail('MFA_SMS_RESEND_TOO_SOON', { detail: `Ask for a new code in ${wait} s.`, extra: { retryAfter: wait } });
  }

  async #send(ctx: RequestContext, accountId: string, purpose: SmsPurpose, phone: string): Promise<SentCode> {
    const code = randomInt(0, 1_000_000).toString().padStart(6, '0');
    const salt = randomBytes(16).toString('base64url');
    const now = this.#now();
    const sentAt = new Date(now);
    const expiresAt = new Date(now + CODE_TTL_SECONDS * 1000);
    const row = { account_id: accountId, purpose, phone, code_hash: hmac(salt, code), salt, attempts: 0, sent_at: sentAt, expires_at: expiresAt };
    await this.#db
      .insertInto('identity.sms_codes')
      .values(row)
      .onConflict((oc) => oc.columns(['account_id', 'purpose']).doUpdateSet({ phone, code_hash: row.code_hash, salt, attempts: 0, sent_at: sentAt, expires_at: expiresAt }))
      .execute();
    try {
      await this.#kernel.messages.send({
        channel: 'sms',
        to: phone,
        text: `${code} is your Pitboss ${purpose === 'enrol' ? 'confirmation' : 'sign-in'} code. It expires in ${CODE_TTL_SECONDS / 60} minutes. Never share it.`,
        purpose: purpose === 'enrol' ? 'mfa.sms_enrol' : 'mfa.sms_sign_in',
        accountId,
      });
    } catch (err) {
      // Not sent: no code is live, and the next request is not throttled.
      await this.#db.deleteFrom('identity.sms_codes').where('account_id', '=', accountId).where('purpose', '=', purpose).execute();
      this.#kernel.logger.error({ err, requestId: ctx.requestId }, 'sending an SMS code failed');
      throw fail('MFA_SMS_NOT_SENT');
    }
    return { phone: maskPhone(phone), expiresAt: expiresAt.toISOString(), resendAfter: new Date(now + RESEND_AFTER_SECONDS * 1000).toISOString() };
  }

  /**
   * One try against the live code: counted first (one conditional UPDATE, so racing tries
   * cannot exceed the cap), then compared; the right code is deleted by the try that
   * counted it (a second request with the same code finds nothing).
   */
  async #check(accountId: string, purpose: SmsPurpose, input: string, phone: string): Promise<boolean> {
    const code = input.trim();
    if (!/^\d{6}$/.test(code)) {
      // A malformed try still counts: the cap is on tries, not on well-formed ones.
      await this.#count(accountId, purpose, phone);
      return false;
    }
    const live = await this.#count(accountId, purpose, phone);
    if (!live) return false;
    const expected = Buffer.from(live.code_hash);
    const actual = Buffer.from(hmac(live.salt, code));
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return false;
    const used = await this.#db
      .deleteFrom('identity.sms_codes')
      .where('account_id', '=', accountId)
      .where('purpose', '=', purpose)
      .where('code_hash', '=', live.code_hash)
      .executeTakeFirst();
    return Number(used.numDeletedRows) === 1;
  }

  async #count(accountId: string, purpose: SmsPurpose, phone: string) {
    return this.#db
      .updateTable('identity.sms_codes')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('account_id', '=', accountId)
      .where('purpose', '=', purpose)
      .where('phone', '=', phone)
      .where('attempts', '<', MAX_ATTEMPTS)
      .where('expires_at', '>', new Date(this.#now()))
      .returning(['code_hash', 'salt', 'attempts'])
      .executeTakeFirst();
  }
}
