import type { Kernel } from '../../platform/module.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { newId } from '../../platform/ids.ts';
import { fail } from './errors.ts';
import { existingRoles, findStaff, insertStaff, listRoles, type BackofficeTables, type StaffRecord } from './store.ts';

const normalizeEmail = (email: string): string => email.trim().normalize('NFC').toLowerCase();

export class StaffService {
  readonly #kernel: Kernel;

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  get #db() {
    return tablesOf<BackofficeTables>(this.#kernel.database.db);
  }

  async createStaff(ctx: RequestContext, input: { email: string; displayName?: string; roles: readonly string[] }): Promise<StaffRecord> {
    const email = normalizeEmail(input.email);
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw fail('STAFF_EMAIL_INVALID', { detail: `"${input.email}" is not an email address.` });
    const roles = [...new Set(input.roles)];
    const known = await existingRoles(this.#db, roles);
    const unknown = roles.filter((r) => !known.includes(r));
    if (unknown.length > 0) throw fail('ROLE_NOT_FOUND', { detail: `Unknown role(s): ${unknown.join(', ')}.` });
    if (await findStaff(this.#db, { email })) throw fail('STAFF_EMAIL_TAKEN');
    const id = newId();
    try {
      await this.#kernel.transaction(ctx, async (uow) => {
        await insertStaff(tablesOf<BackofficeTables>(uow.trx), { id, email, displayName: input.displayName ?? email, roles });
        await uow.audit({ action: 'staff.create', target: { type: 'staff', id }, changes: { roles } });
      });
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw fail('STAFF_EMAIL_TAKEN');
      throw error;
    }
    return (await findStaff(this.#db, { id }))!;
  }

  async findByEmail(email: string): Promise<StaffRecord | undefined> {
    return findStaff(this.#db, { email: normalizeEmail(email) });
  }

  /** An active staff member's access token, for operators' scripts (`pitboss token`). */
  async issueToken(email: string, ttlSeconds: number): Promise<{ token: string; expiresAt: Date; staff: StaffRecord }> {
    const staff = await this.findByEmail(email);
    if (!staff) throw fail('STAFF_NOT_FOUND', { detail: `No staff member ${email}.` });
    if (staff.status !== 'active') throw fail('STAFF_DISABLED');
    const { token, expiresAt } = await this.#kernel.tokens.issue({ kind: 'staff', id: staff.id, permissions: staff.permissions }, ttlSeconds);
    return { token, expiresAt, staff };
  }

  roles() {
    return listRoles(this.#db);
  }
}
