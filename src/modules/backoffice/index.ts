import { defineModule } from '../../platform/module.ts';
import { fail } from './errors.ts';
import { migrations } from './migrations.ts';
import { StaffService } from './service.ts';

export type { StaffRecord } from './store.ts';
export type { StaffService } from './service.ts';

/** Staff accounts, roles and their permissions (permissions are data, granted through roles). */
export const backofficeModule = defineModule<StaffService>({
  name: 'backoffice',
  description: 'Staff accounts, roles and permissions.',
  migrations,
  errors: fail.catalogue,
  events: {},
  permissions: {
    'staff.read': 'See staff accounts and roles.',
    'staff.manage': 'Create staff accounts and change their roles.',
    'audit.read': 'Read the audit log.',
    'pii.read': 'See personal data unmasked.',
  },
  create: (kernel) => ({ api: new StaffService(kernel) }),
});
