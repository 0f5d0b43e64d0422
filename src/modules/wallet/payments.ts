import { createHmac, timingSafeEqual } from 'node:crypto';
import { tablesOf } from '../../platform/db/database.ts';
import { hasPermission, systemContext, type RequestContext } from '../../platform/auth/principal.ts';
import { platformErrors } from '../../platform/errors.ts';
import { isUuid, newId } from '../../platform/ids.ts';
import { formatAmount, parseAmount } from '../../platform/money.ts';
import { fail } from './errors.ts';
import { deposit, idempotency, releaseWithdrawal, reserveWithdrawal, settleWithdrawal } from './operations.ts';
import { PERMISSIONS, outcomeError, type WalletService } from './service.ts';
import { findPayment, insertPayment, setPaymentStatus, type PaymentStatus, type WalletTables } from './store.ts';

/** What a payment provider tells us about a payment, through its callback. */
export interface PaymentCallback {
  paymentId: string;
  status: 'completed' | 'failed';
  providerRef: string;
}

/**
 * A payment provider adapter (cards, e-wallets, bank transfer). The real ones call an
 * external API; the sandbox one is local and drives its own callbacks, so a newcomer
 * can fund a demo player from the API docs page.
 */
export interface PaymentProvider {
  readonly name: string;
  startDeposit(payment: PaymentView): Promise<void>;
  startPayout(payment: PaymentView): Promise<void>;
  /** Checks the callback's signature and parses it; throws SIGNATURE_INVALID. */
  parseCallback(headers: Record<string, string | string[] | undefined>, rawBody: string): PaymentCallback;
}

export interface PaymentView {
  id: string;
  playerId: string;
  kind: 'deposit' | 'withdrawal';
  provider: string;
  currency: string;
  amount: string;
  status: PaymentStatus;
  providerRef: string | null;
  reason: string | null;
  createdAt: string;
  updatedAt: string;
}

const view = (p: WalletTables['wallet.payments']): PaymentView => {
  const currency = p.currency.trim();
  return {
    id: p.id,
    playerId: p.player_id,
    kind: p.kind,
    provider: p.provider,
    currency,
    amount: formatAmount(BigInt(p.amount), currency),
    status: p.status,
    providerRef: p.provider_ref,
    reason: p.reason,
    createdAt: p.created_at.toISOString(),
    updatedAt: p.updated_at.toISOString(),
  };
};

/**
 * The local sandbox provider: settles every payment shortly after it starts, except
 * amounts whose minor part is 13 (e.g. "10.13"), which fail, so both paths can be
 * tried. Its callbacks are signed with HMAC-SHA256 like a real provider's.
 */
export class SandboxProvider implements PaymentProvider {
  readonly name = 'sandbox';
  readonly #secret: string;
  readonly #deliver: (callback: PaymentCallback) => Promise<void>;
  readonly #delayMs: number;

  constructor(secret: string, deliver: (callback: PaymentCallback) => Promise<void>, delayMs = 100) {
    this.#secret = secret;
    this.#deliver = deliver;
    this.#delayMs = delayMs;
  }

  sign(rawBody: string): string {
    return createHmac('sha256', this.#secret).update(rawBody).digest('hex');
  }

  async startDeposit(payment: PaymentView): Promise<void> {
    this.#later(payment);
  }

  async startPayout(payment: PaymentView): Promise<void> {
    this.#later(payment);
  }

  #later(payment: PaymentView): void {
    const status = payment.amount.endsWith('.13') ? 'failed' : 'completed';
    const timer = setTimeout(() => {
      this.#deliver({ paymentId: payment.id, status, providerRef: `sbx_${payment.id.slice(-12)}` }).catch(() => {
        // The provider retries in real life; here the payment stays open for an operator.
      });
    }, this.#delayMs);
    timer.unref();
  }

  parseCallback(headers: Record<string, string | string[] | undefined>, rawBody: string): PaymentCallback {
    const given = headers['x-sandbox-signature'];
    const expected = this.sign(rawBody);
    if (typeof given !== 'string' || given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
      throw fail('SIGNATURE_INVALID');
    }
    let body: Partial<PaymentCallback>;
    try {
      body = JSON.parse(rawBody) as Partial<PaymentCallback>;
    } catch {
      throw platformErrors('VALIDATION_FAILED', { detail: 'The callback body is not JSON.' });
    }
    if (body === null || typeof body !== 'object' || typeof body.paymentId !== 'string' || (body.status !== 'completed' && body.status !== 'failed') || typeof body.providerRef !== 'string') {
      throw platformErrors('VALIDATION_FAILED', { detail: 'paymentId, status (completed|failed) and providerRef are required.' });
    }
    return { paymentId: body.paymentId, status: body.status, providerRef: body.providerRef };
  }
}

/** Deposits and withdrawals: the payment record follows the provider, the ledger moves the money. */
export class Payments {
  readonly #wallet: WalletService;
  readonly #providers = new Map<string, PaymentProvider>();

  constructor(wallet: WalletService) {
    this.#wallet = wallet;
  }

  register(provider: PaymentProvider): void {
    this.#providers.set(provider.name, provider);
  }

  /**
   * Hands payments still waiting on a provider back to it after a restart: the sandbox
   * keeps its pending work in memory, so without this a deposit started just before a
   * crash would stay pending for ever. (Real providers call back on their own.)
   */
  async resume(providerName: string): Promise<number> {
    const provider = this.#providers.get(providerName);
    if (!provider) return 0;
    const open = await this.#wallet.db
      .selectFrom('wallet.payments')
      .selectAll()
      .where('provider', '=', providerName)
      .where((eb) => eb.or([eb.and([eb('kind', '=', 'deposit'), eb('status', '=', 'pending')]), eb.and([eb('kind', '=', 'withdrawal'), eb('status', '=', 'approved')])]))
      .execute();
    for (const row of open) {
      const payment = view(row);
      if (payment.kind === 'deposit') await provider.startDeposit(payment);
      else await provider.startPayout(payment);
    }
    // A cancel or reject records its status before it returns the money; a crash in
    // between left the money reserved. Releasing again is a replay when it was done.
    const stopped = await this.#wallet.db
      .selectFrom('wallet.payments')
      .selectAll()
      .where('provider', '=', providerName)
      .where('kind', '=', 'withdrawal')
      .where('status', 'in', ['cancelled', 'rejected', 'failed'])
      .where('updated_at', '>', new Date(Date.now() - 7 * 86_400_000))
      .execute();
    for (const row of stopped) {
      // Only money that was reserved goes back (a refused request reserved nothing).
      const reserve = await this.#wallet.db
        .selectFrom('wallet.idempotency')
        .select('outcome')
        .where('scope', '=', 'payment')
        .where('key', '=', `${row.id}:reserve`)
        .executeTakeFirst();
      const outcome = (typeof reserve?.outcome === 'string' ? JSON.parse(reserve.outcome) : reserve?.outcome) as { ok?: boolean } | null | undefined;
      if (outcome?.ok === true) await this.#release(view(row), row.reason ?? 'released after restart');
    }
    return open.length;
  }

  provider(name: string): PaymentProvider {
    const p = this.#providers.get(name);
    if (!p) throw platformErrors('NOT_FOUND', { detail: `No payment provider "${name}".` });
    return p;
  }

  #assertPlayerOrStaff(ctx: RequestContext, playerId: string): void {
    const p = ctx.principal;
    if (p.kind === 'player' && p.id === playerId) return;
    if (hasPermission(p, PERMISSIONS.pay)) return;
    throw p.kind === 'anonymous' ? platformErrors('UNAUTHENTICATED') : p.kind === 'player' ? fail('PLAYER_NOT_FOUND') : platformErrors('FORBIDDEN');
  }

  async #checkPlayer(playerId: string, currency: string, action: 'deposit' | 'withdraw') {
    const profile = await this.#wallet.profile(playerId);
    if (!profile) throw fail('PLAYER_NOT_FOUND');
    if (profile.currency !== currency) throw fail('CURRENCY_MISMATCH', { detail: `The player's currency is ${profile.currency}.` });
    const refused = await this.#wallet.gate(playerId, action);
    if (refused) throw fail('PLAYER_BLOCKED', { detail: refused });
  }

  async get(ctx: RequestContext, id: string): Promise<PaymentView> {
    const p = await findPayment(this.#wallet.db, id);
    if (!p) throw fail('PAYMENT_NOT_FOUND');
    this.#assertPlayerOrStaff(ctx, p.player_id);
    return view(p);
  }

  /** Starts a deposit: pending until the provider's callback settles or fails it. */
  async requestDeposit(ctx: RequestContext, playerId: string, i: { amount: bigint; currency: string; provider: string }, id = newId()): Promise<PaymentView> {
    this.#assertPlayerOrStaff(ctx, playerId);
    const provider = this.provider(i.provider);
    await this.#checkPlayer(playerId, i.currency, 'deposit');
    const existing = await this.#existing(id, playerId, 'deposit', provider.name, i);
    if (existing && existing.status !== 'pending') return existing;
    const payment = existing ?? (await this.#create(ctx, playerId, 'deposit', provider.name, i.currency, i.amount, 'pending', id));
    await provider.startDeposit(payment);
    return payment;
  }

  /**
   * The payment an earlier attempt of the same request created (the id comes from the
   * request's idempotency claim), so a retry after a crash finishes it instead of
   * starting a second payment.
   */
  async #existing(id: string, playerId: string, kind: 'deposit' | 'withdrawal', provider: string, i: { amount: bigint; currency: string }): Promise<PaymentView | undefined> {
    const p = await findPayment(this.#wallet.db, id);
    if (!p) return undefined;
    if (p.player_id !== playerId || p.kind !== kind || p.provider !== provider || p.currency.trim() !== i.currency || BigInt(p.amount) !== i.amount) throw fail('IDEMPOTENCY_KEY_REUSED');
    return view(p);
  }

  /** Reserves the amount at once (it cannot be spent), then waits for staff approval. */
  async requestWithdrawal(ctx: RequestContext, playerId: string, i: { amount: bigint; currency: string; provider: string }, id = newId()): Promise<PaymentView> {
    this.#assertPlayerOrStaff(ctx, playerId);
    const provider = this.provider(i.provider);
    await this.#checkPlayer(playerId, i.currency, 'withdraw');
    const existing = await this.#existing(id, playerId, 'withdrawal', provider.name, i);
    if (existing && existing.status !== 'pending') return existing;
    // The reservation's ledger key is the payment id: an earlier attempt's reservation is replayed, not repeated.
    const payment = existing ?? (await this.#create(ctx, playerId, 'withdrawal', provider.name, i.currency, i.amount, 'pending', id));
    const result = await this.#wallet.submit(
      reserveWithdrawal({ playerId, currency: i.currency, amount: i.amount, paymentId: payment.id, idempotency: idempotency('payment', `${payment.id}:reserve`, { amount: i.amount }) }),
    );
    if (!result.outcome.ok) {
      await setPaymentStatus(this.#wallet.db, payment.id, 'failed', { reason: result.outcome.code });
      throw outcomeError(result.outcome);
    }
    await setPaymentStatus(this.#wallet.db, payment.id, 'requested');
    return { ...payment, status: 'requested' };
  }

  /** Staff approval sends the payout to the provider; its callback settles it. */
  async approveWithdrawal(ctx: RequestContext, id: string): Promise<PaymentView> {
    if (!hasPermission(ctx.principal, PERMISSIONS.pay)) throw platformErrors('FORBIDDEN');
    const payment = await this.#transition(ctx, id, 'withdrawal', ['requested'], 'approved', 'wallet.withdrawal.approve');
    await this.provider(payment.provider).startPayout(payment);
    return payment;
  }

  /** Staff reject, or the player cancels while it is still requested: the reserved amount returns. */
  async cancelWithdrawal(ctx: RequestContext, id: string, reason: string): Promise<PaymentView> {
    const existing = await findPayment(this.#wallet.db, id);
    if (!existing) throw fail('PAYMENT_NOT_FOUND');
    this.#assertPlayerOrStaff(ctx, existing.player_id);
    const byStaff = ctx.principal.kind !== 'player';
    const payment = await this.#transition(ctx, id, 'withdrawal', ['requested'], byStaff ? 'rejected' : 'cancelled', 'wallet.withdrawal.cancel', reason);
    await this.#release(payment, reason);
    return payment;
  }

  async #release(payment: PaymentView, reason: string): Promise<void> {
    const result = await this.#wallet.submit(
      releaseWithdrawal({ playerId: payment.playerId, currency: payment.currency, amount: minor(payment), paymentId: payment.id, reason, idempotency: idempotency('payment', `${payment.id}:release`, { amount: payment.amount }) }),
    );
    if (!result.outcome.ok) throw new Error(`releasing withdrawal ${payment.id} failed: ${result.outcome.code}`);
  }

  /** A provider callback (verified by the route), or the sandbox's own. Idempotent. */
  async handleCallback(providerName: string, callback: PaymentCallback): Promise<PaymentView> {
    // A signed callback may still name garbage; the database would refuse a non-uuid with a 500.
    const existing = isUuid(callback.paymentId) ? await findPayment(this.#wallet.db, callback.paymentId) : undefined;
    if (!existing || existing.provider !== providerName) throw fail('PAYMENT_NOT_FOUND');
    const ctx = systemContext(`payments:${providerName}`);
    const payment = view(existing);
    if (existing.kind === 'deposit') {
      if (existing.status !== 'pending') return payment;
      if (callback.status === 'completed') {
        const result = await this.#wallet.submit(
          deposit({ playerId: payment.playerId, currency: payment.currency, amount: minor(payment), provider: providerName, paymentId: payment.id, idempotency: idempotency('payment', `${payment.id}:settle`, { amount: payment.amount }) }),
        );
        if (!result.outcome.ok) throw new Error(`crediting deposit ${payment.id} failed: ${result.outcome.code}`);
      }
      return this.#transition(ctx, payment.id, 'deposit', ['pending'], callback.status === 'completed' ? 'completed' : 'failed', `wallet.deposit.${callback.status}`, undefined, callback.providerRef);
    }
    if (existing.status !== 'approved') return payment;
    if (callback.status === 'completed') {
      const result = await this.#wallet.submit(
        settleWithdrawal({ playerId: payment.playerId, currency: payment.currency, amount: minor(payment), provider: providerName, paymentId: payment.id, idempotency: idempotency('payment', `${payment.id}:settle`, { amount: payment.amount }) }),
      );
      if (!result.outcome.ok) throw new Error(`settling withdrawal ${payment.id} failed: ${result.outcome.code}`);
      return this.#transition(ctx, payment.id, 'withdrawal', ['approved'], 'completed', 'wallet.withdrawal.settle', undefined, callback.providerRef);
    }
    // Money first, then the status: whoever sees "failed" sees the money back. (Nothing
    // else can move an approved payout, and a crash in between is finished by the
    // provider's retried callback: the release replays.)
    await this.#release(payment, 'provider failed the payout');
    return this.#transition(ctx, payment.id, 'withdrawal', ['approved'], 'failed', 'wallet.withdrawal.fail', 'provider failed the payout', callback.providerRef);
  }

  async #create(ctx: RequestContext, playerId: string, kind: 'deposit' | 'withdrawal', provider: string, currency: string, amount: bigint, status: PaymentStatus, id: string): Promise<PaymentView> {
    const now = new Date();
    const row: WalletTables['wallet.payments'] = { player_id: playerId, id, kind, provider, currency, amount, status, provider_ref: null, reason: null, created_at: now, updated_at: now };
    await this.#wallet.kernel.transaction(ctx, async (uow) => {
      await insertPayment(tablesOf<WalletTables>(uow.trx), row);
      await uow.audit({ action: `wallet.${kind}.request`, target: { type: 'payment', id: row.id }, changes: { playerId, provider, currency, amount } });
    });
    return view(row);
  }

  async #transition(
    ctx: RequestContext,
    id: string,
    kind: 'deposit' | 'withdrawal',
    from: PaymentStatus[],
    to: PaymentStatus,
    action: string,
    reason?: string,
    providerRef?: string,
  ): Promise<PaymentView> {
    return this.#wallet.kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<WalletTables>(uow.trx);
      const p = await findPayment(db, id, true);
      if (!p || p.kind !== kind) throw fail('PAYMENT_NOT_FOUND');
      if (!from.includes(p.status)) throw fail('PAYMENT_STATE_INVALID', { detail: `The payment is ${p.status}.` });
      await setPaymentStatus(db, id, to, { ...(reason ? { reason } : {}), ...(providerRef ? { provider_ref: providerRef } : {}) });
      await uow.audit({ action, target: { type: 'payment', id }, changes: { from: p.status, to, reason: reason ?? null } });
      return view({ ...p, status: to, reason: reason ?? p.reason, provider_ref: providerRef ?? p.provider_ref, updated_at: new Date() });
    });
  }
}

const minor = (p: PaymentView): bigint => parseAmount(p.amount, p.currency);
