import { anonymous, type RequestContext } from '../../platform/auth/principal.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kernel } from '../../platform/module.ts';
import type { AccountKind, Accounts, PasswordCheck } from './accounts.ts';
import type { MfaPolicyService } from './policy.ts';
import type { SentCode, SmsService } from './sms.ts';
import type { TokenReuse } from './provider.ts';
import { ACR } from './scopes.ts';
import type { Lock, SignInThrottle } from './throttle.ts';
import type { TotpService } from './totp.ts';
import type { WebAuthnService } from './webauthn.ts';

export type SignInResult =
  | (PasswordCheck & { acr: string; amr: string[] })
  | { readonly outcome: 'locked'; readonly lock: Lock }
  /** The password was right; the account has a second factor, asked for next. */
  | { readonly outcome: 'mfa_required'; readonly accountId: string; readonly methods?: readonly MfaMethod[]; readonly kind?: AccountKind; readonly throttleKey?: string }
  /**
   * The password was right, MFA is required (always for staff; for a player whose policy
   * says so) and no factor is enrolled: an authenticator app is enrolled on the page first.
   */
  | { readonly outcome: 'mfa_enrolment_required'; readonly accountId: string; readonly reason: 'staff' | 'policy'; readonly kind?: AccountKind; readonly throttleKey?: string };

export type MfaMethod = 'totp' | 'webauthn' | 'sms';

/** Who passed the password step and must now give a second factor. */
export interface PendingMfa {
  readonly accountId: string;
  /** What the sign-in throttle counts (the login or email as typed; `staff:` + email for staff). */
  readonly loginOrEmail: string;
  /** Absent: a player. */
  readonly kind?: AccountKind;
  /** `sms`: a code was sent by SMS and the next code is checked against it. */
  readonly method?: 'sms';
  /** The account enrols an authenticator app in this sign-in; `enrolled` once confirmed (recovery codes shown). */
  readonly enrol?: 'staff' | 'policy';
  readonly enrolled?: boolean;
}

export interface MfaDeps {
  readonly sms: SmsService;
  readonly policy: MfaPolicyService;
}

/** Sign-in and token security events: checks credentials, audits and emits what happened. */
export class IdentityService {
  readonly #kernel: Kernel;
  readonly #accounts: Accounts;
  readonly #throttle: SignInThrottle;
  readonly #totp: TotpService;
  readonly #webauthn: WebAuthnService;
  readonly #mfa: MfaDeps | undefined;

  constructor(kernel: Kernel, accounts: Accounts, throttle: SignInThrottle, totp: TotpService, webauthn: WebAuthnService, mfa?: MfaDeps) {
    this.#kernel = kernel;
    this.#accounts = accounts;
    this.#throttle = throttle;
    this.#totp = totp;
    this.#webauthn = webauthn;
    this.#mfa = mfa;
  }

  /** The second factors an account has enabled. */
  async mfaMethods(accountId: string): Promise<MfaMethod[]> {
    const methods: MfaMethod[] = [];
    if (await this.#totp.isEnabled(accountId)) methods.push('totp');
    if (await this.#webauthn.hasCredentials(accountId)) methods.push('webauthn');
    if (this.#mfa && (await this.#mfa.sms.isEnabled(accountId))) methods.push('sms');
    return methods;
  }

  /**
   * After a right password: a second factor when one is enrolled; enrolment first when
   * MFA is required without one (staff always, players by policy); else signed in.
   */
  async #afterPassword(check: PasswordCheck & { outcome: 'signed_in' }, kind: AccountKind, throttleKey: string): Promise<SignInResult | undefined> {
    // Staff have authenticator apps only (passkeys and SMS codes are players' factors).
    const methods = (await this.mfaMethods(check.accountId)).filter((m) => kind === 'player' || m === 'totp');
    if (methods.length > 0) return { outcome: 'mfa_required', accountId: check.accountId, methods, kind, throttleKey };
    if (kind === 'staff') return { outcome: 'mfa_enrolment_required', accountId: check.accountId, reason: 'staff', kind, throttleKey };
    if (this.#mfa && (await this.#mfa.policy.get(check.accountId)).required) {
      return { outcome: 'mfa_enrolment_required', accountId: check.accountId, reason: 'policy', kind, throttleKey };
    }
    return undefined;
  }

  /** A staff sign-in (a staff client's form): email and password, then TOTP, enrolled on the page the first time. */
  async signInStaff(ctx: RequestContext, clientId: string, email: string, password: string): Promise<SignInResult> {
    return this.#passwordStep(ctx, clientId, 'staff', `staff:${email}`, () => this.#accounts.checkStaffPassword(email, password));
  }

  /** The lock in force for a pending sign-in's account or source address, if any. */
  lockOf(ctx: RequestContext, pending: PendingMfa): Promise<Lock | undefined> {
    return this.#throttle.lockOf(pending.loginOrEmail, ctx.sourceIp);
  }

  /** Sends the pending sign-in's SMS code (throttled: MFA_SMS_RESEND_TOO_SOON). */
  async sendSignInSms(ctx: RequestContext, pending: PendingMfa): Promise<SentCode> {
    if (!this.#mfa || (pending.kind ?? 'player') !== 'player') throw new Error('SMS codes are for players');
    return this.#mfa.sms.sendSignInCode(ctx, pending.accountId);
  }

  /**
   * The enrolment step of a sign-in that requires MFA without a factor: the first code
   * of the new authenticator app. Right: the recovery codes (shown once), and the
   * sign-in completes when the page is continued. Wrong: counted like a wrong password.
   */
  async enrolTotp(ctx: RequestContext, clientId: string, pending: PendingMfa, code: string): Promise<{ outcome: 'enrolled'; recoveryCodes: string[] } | SignInResult> {
    const lock = await this.#throttle.lockOf(pending.loginOrEmail, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const kind = pending.kind ?? 'player';
    try {
      return { outcome: 'enrolled', recoveryCodes: await this.#totp.confirm(ctx, pending.accountId, code, kind) };
    } catch (error) {
      if ((error as { code?: string }).code !== 'MFA_CODE_INVALID') throw error;
      const check: PasswordCheck = { outcome: 'invalid_credentials', accountId: pending.accountId, kind };
      return this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, ['pwd', 'otp', 'mfa']);
    }
  }

  /** The sign-in of an account that has just enrolled (and proved) its authenticator app. */
  async completeEnrolment(ctx: RequestContext, clientId: string, pending: PendingMfa): Promise<SignInResult> {
    if (!pending.enrolled) throw new Error('the enrolment was not confirmed');
    const check: PasswordCheck = { outcome: 'signed_in', accountId: pending.accountId, kind: pending.kind ?? 'player' };
    return this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, ['pwd', 'otp', 'mfa']);
  }

  /**
   * A password sign-in for a client's authorization request; every outcome is audited
   * and emitted. A locked login or source address is refused before the password is
   * looked at (a correct one too); failures are counted, answered ever more slowly, and
   * lock the login or the address past their thresholds.
   */
  async signIn(ctx: RequestContext, clientId: string, loginOrEmail: string, password: string): Promise<SignInResult> {
    return this.#passwordStep(ctx, clientId, 'player', loginOrEmail, () => this.#accounts.checkPassword(loginOrEmail, password));
  }

  /**
   * The password step of either kind of account, counted under `throttleKey`: a locked
   * key or address is refused before the password is looked at; a right password goes on
   * to the second factor (or its enrolment) when the account needs one.
   */
  async #passwordStep(ctx: RequestContext, clientId: string, kind: AccountKind, throttleKey: string, check: () => Promise<PasswordCheck>): Promise<SignInResult> {
    const lock = await this.#throttle.lockOf(throttleKey, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const checked = await check();
    if (checked.outcome === 'signed_in') {
      const next = await this.#afterPassword(checked, kind, throttleKey);
      if (next) return next;
    }
    return this.#finish(ctx, clientId, throttleKey, checked, ACR.password, ['pwd']);
  }

  /**
   * The second step of a sign-in whose password was right: a TOTP code or a recovery
   * code. A wrong code counts as a failed sign-in of the login (towards its lock).
   */
  async completeMfa(ctx: RequestContext, clientId: string, pending: PendingMfa, code: string): Promise<SignInResult> {
    const lock = await this.#throttle.lockOf(pending.loginOrEmail, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const kind = pending.kind ?? 'player';
    const factor = pending.method === 'sms' ? ((await this.#mfa?.sms.verifySignIn(pending.accountId, code)) ? 'sms' : undefined) : await this.#totp.verify(pending.accountId, code);
    const check: PasswordCheck = factor ? { outcome: 'signed_in', accountId: pending.accountId, kind } : { outcome: 'invalid_credentials', accountId: pending.accountId, kind };
    // RFC 8176: `otp` for a one-time password, `sms` for a code sent by SMS; `mfa` for more than one factor.
    const amr = factor === 'otp' ? ['pwd', 'otp', 'mfa'] : factor === 'sms' ? ['pwd', 'sms', 'mfa'] : ['pwd', 'mfa'];
    const result = await this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, amr);
    if (factor === 'recovery_code') {
      const left = await this.#totp.recoveryCodesLeft(pending.accountId);
      await this.#kernel.transaction(ctx, async (uow) => {
        await uow.audit({ action: 'identity.mfa.recovery_code_use', target: { type: kind, id: pending.accountId }, changes: { clientId, left } });
      });
    }
    return result;
  }

  /**
   * The second step with a passkey or security key: the assertion the sign-in page's
   * script posted for the interaction's challenge. A failure counts as a failed sign-in
   * of the login (towards its lock), like a wrong code.
   */
  async completeWebAuthn(ctx: RequestContext, clientId: string, pending: PendingMfa, interactionUid: string, assertion: string): Promise<SignInResult> {
    const lock = await this.#throttle.lockOf(pending.loginOrEmail, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const kind = pending.kind ?? 'player';
    if (kind !== 'player') throw new Error('passkeys are for players');
    const outcome = await this.#webauthn.verifyAssertion(ctx, pending.accountId, interactionUid, assertion);
    const check: PasswordCheck = outcome === 'verified' ? { outcome: 'signed_in', accountId: pending.accountId, kind } : { outcome: 'invalid_credentials', accountId: pending.accountId, kind };
    // RFC 8176: `hwk` for a proof of possession of a hardware-secured key; `mfa` for more than one factor.
    return this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, ['pwd', 'hwk', 'mfa']);
  }

  /** Audits and emits the outcome, counts failures (delaying the answer, or locking). */
  async #finish(ctx: RequestContext, clientId: string, loginOrEmail: string, check: PasswordCheck, acr: string, amr: string[]): Promise<SignInResult> {
    // Staff sign-ins are the same events, marked `accountKind: staff`, outside any player's partition.
    const staff = check.kind === 'staff';
    const marked = staff ? { accountKind: 'staff' as const } : {};
    const partition = staff ? null : check.accountId;
    await this.#kernel.transaction(ctx, async (uow) => {
      const target = { type: staff ? 'staff' : 'player', id: check.accountId ?? 'unknown' };
      if (check.outcome === 'signed_in') {
        await uow.emit({ type: 'identity.sign_in.succeeded', playerId: partition, payload: { playerId: check.accountId, clientId, acr, amr, ...marked } });
        await uow.audit({ action: 'identity.sign_in.succeed', target, changes: { clientId, acr, amr } });
      } else {
        await uow.emit({ type: 'identity.sign_in.failed', playerId: partition, payload: { playerId: check.accountId, clientId, reason: check.outcome, ...marked } });
        await uow.audit({ action: 'identity.sign_in.fail', target, changes: { clientId, reason: check.outcome } });
      }
    });
    if (check.outcome === 'signed_in') {
      await this.#throttle.recordSuccess(loginOrEmail);
      return { ...check, acr, amr };
    }
    const { delayMs, locked } = await this.#throttle.recordFailure(loginOrEmail, ctx.sourceIp);
    if (locked.length > 0) {
      await this.#kernel.transaction(ctx, async (uow) => {
        for (const l of locked) {
          const lockedUntil = l.until.toISOString();
          await uow.emit({
            type: 'identity.sign_in.locked',
            playerId: partition,
            payload: { playerId: check.accountId, clientId, scope: l.scope, failures: l.failures, lockedUntil, ...marked },
          });
          await uow.audit({
            action: 'identity.sign_in.lock',
            target: l.scope === 'account' ? { type: staff ? 'staff' : 'player', id: check.accountId ?? 'unknown' } : { type: 'source_address', id: ctx.sourceIp ?? 'unknown' },
            changes: { clientId, scope: l.scope, failures: l.failures, lockedUntil },
          });
        }
      });
      return { outcome: 'locked', lock: locked[0]! };
    }
    if (delayMs > 0) await sleep(delayMs);
    return { ...check, acr, amr };
  }

  /** A replayed refresh token or authorization code: the provider has already revoked its grant. */
  async recordTokenReuse(reuse: TokenReuse): Promise<void> {
    const ctx: RequestContext = { principal: anonymous, requestId: reuse.requestId, sourceIp: reuse.sourceIp };
    await this.#kernel.transaction(ctx, async (uow) => {
      await uow.emit({
        type: 'identity.token.reuse_detected',
        playerId: reuse.accountId,
        payload: { clientId: reuse.clientId, accountId: reuse.accountId, grantId: reuse.grantId, token: reuse.token },
      });
      await uow.audit({
        action: 'identity.token.reuse_detected',
        target: { type: 'oauth_client', id: reuse.clientId },
        changes: { token: reuse.token, grantId: reuse.grantId, accountId: reuse.accountId },
      });
    });
  }
}
