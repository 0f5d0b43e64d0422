import type { Kysely } from 'kysely';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { Kernel } from '../../platform/module.ts';
import type { IdentityTables } from './store.ts';

export const MFA_POLICY_PERMISSION = 'identity.mfa_policy.manage';

export interface MfaPolicy {
  /** The player asked for MFA on their account. */
  readonly requiredByPlayer: boolean;
  /** Staff require MFA for this player; the player cannot lift it. */
  readonly requiredByStaff: boolean;
  /** Either of them: sign-in needs a second factor, and enrols one first when there is none. */
  readonly required: boolean;
}

/**
 * Per-account MFA requirement. Two switches, so that a player turning their own off does
 * not undo what staff decided. Staff accounts need no policy row: their MFA is always
 * mandatory (the sign-in enforces it by kind).
 */
export class MfaPolicyService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>) {
    this.#kernel = kernel;
    this.#db = db;
  }

  async get(accountId: string): Promise<MfaPolicy> {
    const row = await this.#db.selectFrom('identity.mfa_policies').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    const requiredByPlayer = row?.required_by_player ?? false;
    const requiredByStaff = row?.required_by_staff ?? false;
    return { requiredByPlayer, requiredByStaff, required: requiredByPlayer || requiredByStaff };
  }

  /** Sets one switch (the player's own, or staff's), audited and emitted with who set it. */
  async set(ctx: RequestContext, playerId: string, by: 'player' | 'staff', required: boolean): Promise<MfaPolicy> {
    const column = by === 'player' ? 'required_by_player' : 'required_by_staff';
    return this.#kernel.transaction(ctx, async (uow) => {
      const trx = tablesOf<IdentityTables>(uow.trx);
      const before = await trx.selectFrom('identity.mfa_policies').selectAll().where('account_id', '=', playerId).forUpdate().executeTakeFirst();
      const now = new Date();
      const row = await trx
        .insertInto('identity.mfa_policies')
        .values({ account_id: playerId, required_by_player: false, required_by_staff: false, [column]: required, updated_at: now })
        .onConflict((oc) => oc.column('account_id').doUpdateSet({ [column]: required, updated_at: now }))
        .returningAll()
        .executeTakeFirstOrThrow();
      const from = before?.[column] ?? false;
      if (from !== required) {
        await uow.emit({ type: 'identity.mfa.policy_changed', playerId, payload: { playerId, by, required, effective: row.required_by_player || row.required_by_staff } });
        await uow.audit({ action: 'identity.mfa.policy.change', target: { type: 'player', id: playerId }, changes: { by, from, to: required } });
      }
      return { requiredByPlayer: row.required_by_player, requiredByStaff: row.required_by_staff, required: row.required_by_player || row.required_by_staff };
    });
  }
}
