import type { Kysely, Transaction } from 'kysely';

export interface StaffTable {
  id: string;
  email: string;
  display_name: string;
  status: 'active' | 'disabled';
  created_at: Date;
  password_hash: string | null;
}

export type BackofficeTables = {
  'backoffice.staff': StaffTable;
  'backoffice.roles': { name: string; description: string };
  'backoffice.role_permissions': { role: string; permission: string };
  'backoffice.staff_roles': { staff_id: string; role: string };
};

type Executor = Kysely<BackofficeTables> | Transaction<BackofficeTables>;

export interface StaffRecord {
  id: string;
  email: string;
  displayName: string;
  status: 'active' | 'disabled';
  roles: string[];
  permissions: string[];
  createdAt: Date;
}

export async function insertStaff(db: Executor, staff: { id: string; email: string; displayName: string; roles: readonly string[]; passwordHash?: string | null }): Promise<void> {
  await db
    .insertInto('backoffice.staff')
    .values({ id: staff.id, email: staff.email, display_name: staff.displayName, status: 'active', created_at: new Date(), password_hash: staff.passwordHash ?? null })
    .execute();
  if (staff.roles.length > 0) {
    await db.insertInto('backoffice.staff_roles').values(staff.roles.map((role) => ({ staff_id: staff.id, role }))).execute();
  }
}

export async function existingRoles(db: Executor, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db.selectFrom('backoffice.roles').select('name').where('name', 'in', names).execute();
  return rows.map((r) => r.name);
}

export async function findStaff(db: Executor, by: { email: string } | { id: string }): Promise<StaffRecord | undefined> {
  let query = db.selectFrom('backoffice.staff').selectAll();
  query = 'email' in by ? query.where('email', '=', by.email) : query.where('id', '=', by.id);
  const row = await query.executeTakeFirst();
  if (!row) return undefined;
  const roles = await db.selectFrom('backoffice.staff_roles').select('role').where('staff_id', '=', row.id).orderBy('role').execute();
  const perms = roles.length
    ? await db
        .selectFrom('backoffice.role_permissions')
        .select('permission')
        .distinct()
        .where(
          'role',
          'in',
          roles.map((r) => r.role),
        )
        .orderBy('permission')
        .execute()
    : [];
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    status: row.status,
    roles: roles.map((r) => r.role),
    permissions: perms.map((p) => p.permission),
    createdAt: row.created_at,
  };
}

export async function listRoles(db: Executor) {
  const roles = await db.selectFrom('backoffice.roles').selectAll().orderBy('name').execute();
  const perms = await db.selectFrom('backoffice.role_permissions').selectAll().orderBy('permission').execute();
  return roles.map((r) => ({ name: r.name, description: r.description, permissions: perms.filter((p) => p.role === r.name).map((p) => p.permission) }));
}

/** Id, status and password hash of the staff member with this (normalised) email, for sign-in only. */
export async function findStaffCredentials(db: Executor, email: string): Promise<{ id: string; status: 'active' | 'disabled'; passwordHash: string | null } | undefined> {
  const row = await db.selectFrom('backoffice.staff').select(['id', 'status', 'password_hash']).where('email', '=', email).executeTakeFirst();
  return row ? { id: row.id, status: row.status, passwordHash: row.password_hash } : undefined;
}

export async function updateStaffPassword(db: Executor, id: string, passwordHash: string): Promise<boolean> {
  const done = await db.updateTable('backoffice.staff').set({ password_hash: passwordHash }).where('id', '=', id).executeTakeFirst();
  return Number(done.numUpdatedRows) === 1;
}
