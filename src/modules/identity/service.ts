import { anonymous, type RequestContext } from '../../platform/auth/principal.ts';
import type { Kernel } from '../../platform/module.ts';
import type { Accounts, PasswordCheck } from './accounts.ts';
import type { TokenReuse } from './provider.ts';
import { ACR } from './scopes.ts';

/** Sign-in and token security events: checks credentials, audits and emits what happened. */
export class IdentityService {
  readonly #kernel: Kernel;
  readonly #accounts: Accounts;

  constructor(kernel: Kernel, accounts: Accounts) {
    this.#kernel = kernel;
    this.#accounts = accounts;
  }

  /** A password sign-in for a client's authorization request; every outcome is audited and emitted. */
  async signIn(ctx: RequestContext, clientId: string, loginOrEmail: string, password: string): Promise<PasswordCheck & { acr: string; amr: string[] }> {
    const check = await this.#accounts.checkPassword(loginOrEmail, password);
    const acr = ACR.password;
    const amr = ['pwd'];
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
