import type { Kernel } from '../../platform/module.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { platformErrors } from '../../platform/errors.ts';
import { isUuid, newId } from '../../platform/ids.ts';
import { checkPasswordPolicy, dummyPasswordHash, hashPassword, PASSWORD_MAX_LENGTH, verifyPassword } from '../players/index.ts';
import { fail } from './errors.ts';
import { existingRoles, findStaff, findStaffCredentials, insertStaff, listRoles, updateStaffPassword, type BackofficeTables, type StaffRecord } from './store.ts';

const normalizeEmail = (email: string): string => email.trim().normalize('NFC').toLowerCase();

export class StaffService {
  readonly #kernel: Kernel;

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  get #db() {
    return tablesOf<BackofficeTables>(this.#kernel.database.db);
  }

  async createStaff(ctx: RequestContext, input: { email: string; displayName?: string; roles: readonly string[]; password?: string }): Promise<StaffRecord> {
    const email = normalizeEmail(input.email);
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw fail('STAFF_EMAIL_INVALID', { detail: `"${input.email}" is not an email address.` });
    if (input.password !== undefined) this.#checkPassword(email, input.password);
    const roles = [...new Set(input.roles)];
    const known = await existingRoles(this.#db, roles);
    const unknown = roles.filter((r) => !known.includes(r));
    if (unknown.length > 0) throw fail('ROLE_NOT_FOUND', { detail: `Unknown role(s): ${unknown.join(', ')}.` });
    if (await findStaff(this.#db, { email })) throw fail('STAFF_EMAIL_TAKEN');
    const id = newId();
    const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
    try {
      await this.#kernel.transaction(ctx, async (uow) => {
        await insertStaff(tablesOf<BackofficeTables>(uow.trx), { id, email, displayName: input.displayName ?? email, roles, passwordHash });
        await uow.audit({ action: 'staff.create', target: { type: 'staff', id }, changes: { roles, password: passwordHash !== null } });
      });
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw fail('STAFF_EMAIL_TAKEN');
      throw error;
    }
    return (await findStaff(this.#db, { id }))!;
  }

  /** The players' password policy (length, common passwords, not the email's local part). */
  #checkPassword(email: string, password: string): void {
    const errors = checkPasswordPolicy(password, { login: email, email });
    if (errors.length > 0) throw platformErrors('VALIDATION_FAILED', { errors });
  }

  /** Sets (or replaces) a staff member's password: argon2id with the players' parameters and policy. Audited. */
  async setPassword(ctx: RequestContext, email: string, password: string): Promise<StaffRecord> {
    const staff = await this.findByEmail(email);
    if (!staff) throw fail('STAFF_NOT_FOUND', { detail: `No staff member ${email}.` });
    this.#checkPassword(staff.email, password);
    const passwordHash = await hashPassword(password);
    await this.#kernel.transaction(ctx, async (uow) => {
      await updateStaffPassword(tablesOf<BackofficeTables>(uow.trx), staff.id, passwordHash);
      await uow.audit({ action: 'staff.password.set', target: { type: 'staff', id: staff.id }, changes: {} });
    });
    return staff;
  }

  /**
   * Checks a staff sign-in by email: null when no staff member has it; otherwise the id,
   * status and whether the password is theirs. An unknown email, or a staff member
   * without a password, costs the same argon2id verification as a wrong password.
   */
  async verifyCredentials(email: string, password: string): Promise<{ staffId: string; status: 'active' | 'disabled'; passwordValid: boolean } | null> {
    if (email.length > 320 || password.length > 4 * PASSWORD_MAX_LENGTH) return null;
    const found = await findStaffCredentials(this.#db, normalizeEmail(email));
    const valid = await verifyPassword(found?.passwordHash ?? (await dummyPasswordHash()), password).catch(() => false);
    return found ? { staffId: found.id, status: found.status, passwordValid: found.passwordHash !== null && valid } : null;
  }

  /** A staff member by id (roles and permissions read fresh), for token issuance. */
  async find(id: string): Promise<StaffRecord | undefined> {
    return isUuid(id) ? findStaff(this.#db, { id }) : undefined;
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
