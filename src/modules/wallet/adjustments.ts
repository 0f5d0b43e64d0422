import { tablesOf } from '../../platform/db/database.ts';
import { actorOf, hasPermission, type RequestContext } from '../../platform/auth/principal.ts';
import { platformErrors } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { formatAmount, parseAmount } from '../../platform/money.ts';
import { fail } from './errors.ts';
import { adjustment, idempotency } from './operations.ts';
import { PERMISSIONS, outcomeError, type WalletService } from './service.ts';
import type { WalletTables } from './store.ts';

export interface AdjustmentView {
  id: string;
  playerId: string;
  wallet: string;
  currency: string;
  amount: string;
  reason: string;
  status: 'pending_approval' | 'applied' | 'rejected';
  requestedBy: string;
  approvedBy: string | null;
  transactionId: string | null;
  createdAt: string;
}

const view = (r: WalletTables['wallet.adjustments']): AdjustmentView => ({
  id: r.id,
  playerId: r.player_id,
  wallet: r.wallet,
  currency: r.currency.trim(),
  amount: formatAmount(BigInt(r.amount), r.currency.trim()),
  reason: r.reason,
  status: r.status,
  requestedBy: r.requested_by,
  approvedBy: r.approved_by,
  transactionId: r.transaction_id,
  createdAt: r.created_at.toISOString(),
});

/**
 * Manual balance adjustments by staff: permission, reason, audit. Above the configured
 * threshold a second staff member must approve before any money moves (four eyes).
 */
export class Adjustments {
  readonly #wallet: WalletService;

  constructor(wallet: WalletService) {
    this.#wallet = wallet;
  }

  /** `id` comes from the request's idempotency claim, so a retry after a crash finishes the first attempt. */
  async request(ctx: RequestContext, playerId: string, i: { wallet: string; currency: string; amount: bigint; reason: string }, id = newId()): Promise<AdjustmentView> {
    if (!hasPermission(ctx.principal, PERMISSIONS.adjust)) throw ctx.principal.kind === 'anonymous' ? platformErrors('UNAUTHENTICATED') : platformErrors('FORBIDDEN');
    if (!this.#wallet.isWallet(i.wallet)) throw fail('WALLET_UNKNOWN', { detail: `No wallet type "${i.wallet}".` });
    const profile = await this.#wallet.profile(playerId);
    if (!profile) throw fail('PLAYER_NOT_FOUND');
    if (profile.currency !== i.currency) throw fail('CURRENCY_MISMATCH', { detail: `The player's currency is ${profile.currency}.` });
    const threshold = parseAmount(this.#wallet.kernel.config.adjustmentApprovalThreshold, i.currency);
    const needsApproval = (i.amount < 0n ? -i.amount : i.amount) > threshold;
    const staff = actorOf(ctx.principal);
    const existing = await this.#wallet.db.selectFrom('wallet.adjustments').selectAll().where('id', '=', id).executeTakeFirst();
    if (existing) {
      const same = existing.player_id === playerId && existing.wallet === i.wallet && existing.currency.trim() === i.currency && BigInt(existing.amount) === i.amount && existing.reason === i.reason;
      if (!same) throw fail('IDEMPOTENCY_KEY_REUSED');
      // A retry of a request that died half-way: finish it (the ledger key is the adjustment id, so it moves money once).
      return !needsApproval && existing.status !== 'applied' ? this.#apply(ctx, existing, null) : view(existing);
    }
    const row: WalletTables['wallet.adjustments'] = {
      player_id: playerId,
      id,
      wallet: i.wallet,
      currency: i.currency,
      amount: i.amount,
      reason: i.reason,
      status: 'pending_approval',
      requested_by: `${staff.type}:${staff.id ?? '-'}`,
      approved_by: null,
      transaction_id: null,
      created_at: new Date(),
      decided_at: null,
    };
    await this.#wallet.kernel.transaction(ctx, async (uow) => {
      await tablesOf<WalletTables>(uow.trx).insertInto('wallet.adjustments').values(row).execute();
      await uow.audit({ action: 'wallet.adjustment.request', target: { type: 'player', id: playerId }, changes: { adjustmentId: row.id, wallet: i.wallet, currency: i.currency, amount: i.amount, reason: i.reason, needsApproval } });
    });
    return needsApproval ? view(row) : this.#apply(ctx, row, null);
  }

  async approve(ctx: RequestContext, id: string): Promise<AdjustmentView> {
    if (!hasPermission(ctx.principal, PERMISSIONS.approveAdjustment)) throw platformErrors('FORBIDDEN');
    const row = await this.#wallet.db.selectFrom('wallet.adjustments').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw fail('ADJUSTMENT_NOT_FOUND');
    if (row.status !== 'pending_approval') throw fail('ADJUSTMENT_STATE_INVALID', { detail: `The adjustment is ${row.status}.` });
    const approver = actorOf(ctx.principal);
    const approvedBy = `${approver.type}:${approver.id ?? '-'}`;
    if (approvedBy === row.requested_by) throw fail('ADJUSTMENT_SELF_APPROVAL');
    return this.#apply(ctx, row, approvedBy);
  }

  async reject(ctx: RequestContext, id: string, reason: string): Promise<AdjustmentView> {
    if (!hasPermission(ctx.principal, PERMISSIONS.approveAdjustment)) throw platformErrors('FORBIDDEN');
    return this.#wallet.kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<WalletTables>(uow.trx);
      const row = await db.selectFrom('wallet.adjustments').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) throw fail('ADJUSTMENT_NOT_FOUND');
      if (row.status !== 'pending_approval') throw fail('ADJUSTMENT_STATE_INVALID', { detail: `The adjustment is ${row.status}.` });
      const actor = actorOf(ctx.principal);
      await db.updateTable('wallet.adjustments').set({ status: 'rejected', approved_by: `${actor.type}:${actor.id ?? '-'}`, decided_at: new Date() }).where('id', '=', id).execute();
      await uow.audit({ action: 'wallet.adjustment.reject', target: { type: 'player', id: row.player_id }, changes: { adjustmentId: id, reason } });
      return view({ ...row, status: 'rejected' });
    });
  }

  async #apply(ctx: RequestContext, row: WalletTables['wallet.adjustments'], approvedBy: string | null): Promise<AdjustmentView> {
    const result = await this.#wallet.submit(
      adjustment({
        playerId: row.player_id,
        currency: row.currency.trim(),
        amount: BigInt(row.amount),
        wallet: row.wallet,
        reason: row.reason,
        adjustmentId: row.id,
        staff: [row.requested_by, ...(approvedBy ? [approvedBy] : [])],
        idempotency: idempotency('adjustment', row.id, { amount: row.amount, wallet: row.wallet }),
      }),
    );
    if (!result.outcome.ok) {
      await this.#wallet.kernel.transaction(ctx, async (uow) => {
        await tablesOf<WalletTables>(uow.trx).updateTable('wallet.adjustments').set({ status: 'rejected', decided_at: new Date() }).where('id', '=', row.id).execute();
        await uow.audit({ action: 'wallet.adjustment.fail', target: { type: 'player', id: row.player_id }, changes: { adjustmentId: row.id, code: result.outcome.ok ? null : result.outcome.code } });
      });
      throw outcomeError(result.outcome);
    }
    const transactionId = result.outcome.transactionId;
    await this.#wallet.kernel.transaction(ctx, async (uow) => {
      await tablesOf<WalletTables>(uow.trx).updateTable('wallet.adjustments').set({ status: 'applied', approved_by: approvedBy, transaction_id: transactionId, decided_at: new Date() }).where('id', '=', row.id).execute();
      await uow.audit({ action: 'wallet.adjustment.apply', target: { type: 'player', id: row.player_id }, changes: { adjustmentId: row.id, transactionId, approvedBy } });
    });
    return view({ ...row, status: 'applied', approved_by: approvedBy, transaction_id: transactionId });
  }
}
