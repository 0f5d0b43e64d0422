import { anonymous, type RequestContext } from '../../platform/auth/principal.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kernel } from '../../platform/module.ts';
import type { Accounts, PasswordCheck } from './accounts.ts';
import type { TokenReuse } from './provider.ts';
import { ACR } from './scopes.ts';
import type { Lock, SignInThrottle } from './throttle.ts';
import type { TotpService } from './totp.ts';
import type { WebAuthnService } from './webauthn.ts';

export type SignInResult =
  | (PasswordCheck & { acr: string; amr: string[] })
  | { readonly outcome: 'locked'; readonly lock: Lock }
  /** The password was right; the account has a second factor, asked for next. */
  | { readonly outcome: 'mfa_required'; readonly accountId: string };

/** Who passed the password step and must now give a second factor. */
export interface PendingMfa {
  readonly accountId: string;
  readonly loginOrEmail: string;
}

/** Sign-in and token security events: checks credentials, audits and emits what happened. */
export class IdentityService {
  readonly #kernel: Kernel;
  readonly #accounts: Accounts;
  readonly #throttle: SignInThrottle;
  readonly #totp: TotpService;
  readonly #webauthn: WebAuthnService;

  constructor(kernel: Kernel, accounts: Accounts, throttle: SignInThrottle, totp: TotpService, webauthn: WebAuthnService) {
    this.#kernel = kernel;
    this.#accounts = accounts;
    this.#throttle = throttle;
    this.#totp = totp;
    this.#webauthn = webauthn;
  }

  /**
   * A password sign-in for a client's authorization request; every outcome is audited
   * and emitted. A locked login or source address is refused before the password is
   * looked at (a correct one too); failures are counted, answered ever more slowly, and
   * lock the login or the address past their thresholds.
   */
  async signIn(ctx: RequestContext, clientId: string, loginOrEmail: string, password: string): Promise<SignInResult> {
    const lock = await this.#throttle.lockOf(loginOrEmail, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const check = await this.#accounts.checkPassword(loginOrEmail, password);
    if (check.outcome === 'signed_in' && ((await this.#totp.isEnabled(check.accountId)) || (await this.#webauthn.hasCredentials(check.accountId)))) {
      return { outcome: 'mfa_required', accountId: check.accountId };
    }
    return this.#finish(ctx, clientId, loginOrEmail, check, ACR.password, ['pwd']);
  }

  /**
   * The second step of a sign-in whose password was right: a TOTP code or a recovery
   * code. A wrong code counts as a failed sign-in of the login (towards its lock).
   */
  async completeMfa(ctx: RequestContext, clientId: string, pending: PendingMfa, code: string): Promise<SignInResult> {
    const lock = await this.#throttle.lockOf(pending.loginOrEmail, ctx.sourceIp);
    if (lock) return { outcome: 'locked', lock };
    const factor = await this.#totp.verify(pending.accountId, code);
    const check: PasswordCheck = factor ? { outcome: 'signed_in', accountId: pending.accountId } : { outcome: 'invalid_credentials', accountId: pending.accountId };
    // RFC 8176: `otp` for a one-time password; `mfa` for more than one factor.
    const amr = factor === 'otp' ? ['pwd', 'otp', 'mfa'] : ['pwd', 'mfa'];
    const result = await this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, amr);
    if (factor === 'recovery_code') {
      const left = await this.#totp.recoveryCodesLeft(pending.accountId);
      await this.#kernel.transaction(ctx, async (uow) => {
        await uow.audit({ action: 'identity.mfa.recovery_code_use', target: { type: 'player', id: pending.accountId }, changes: { clientId, left } });
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
    const outcome = await this.#webauthn.verifyAssertion(ctx, pending.accountId, interactionUid, assertion);
    const check: PasswordCheck = outcome === 'verified' ? { outcome: 'signed_in', accountId: pending.accountId } : { outcome: 'invalid_credentials', accountId: pending.accountId };
    // RFC 8176: `hwk` for a proof of possession of a hardware-secured key; `mfa` for more than one factor.
    return this.#finish(ctx, clientId, pending.loginOrEmail, check, ACR.mfa, ['pwd', 'hwk', 'mfa']);
  }

  /** Audits and emits the outcome, counts failures (delaying the answer, or locking). */
  async #finish(ctx: RequestContext, clientId: string, loginOrEmail: string, check: PasswordCheck, acr: string, amr: string[]): Promise<SignInResult> {
    await this.#kernel.transaction(ctx, async (uow) => {
      const target = { type: 'player', id: check.accountId ?? 'unknown' };
      if (check.outcome === 'signed_in') {
        await uow.emit({ type: 'identity.sign_in.succeeded', playerId: check.accountId, payload: { playerId: check.accountId, clientId, acr, amr } });
        await uow.audit({ action: 'identity.sign_in.succeed', target, changes: { clientId, acr, amr } });
      } else {
        await uow.emit({ type: 'identity.sign_in.failed', playerId: check.accountId, payload: { playerId: check.accountId, clientId, reason: check.outcome } });
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
            playerId: check.accountId,
            payload: { playerId: check.accountId, clientId, scope: l.scope, failures: l.failures, lockedUntil },
          });
          await uow.audit({
            action: 'identity.sign_in.lock',
            target: l.scope === 'account' ? { type: 'player', id: check.accountId ?? 'unknown' } : { type: 'source_address', id: ctx.sourceIp ?? 'unknown' },
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
