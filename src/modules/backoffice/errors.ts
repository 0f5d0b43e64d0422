import { defineErrors } from '../../platform/errors.ts';

export const fail = defineErrors({
  STAFF_EMAIL_TAKEN: { status: 409, message: 'A staff member with this email already exists.' },
  STAFF_NOT_FOUND: { status: 404, message: 'No such staff member.' },
  STAFF_EMAIL_INVALID: { status: 400, message: 'The staff email address is not valid.' },
  STAFF_DISABLED: { status: 403, message: 'This staff account is disabled.' },
  ROLE_NOT_FOUND: { status: 400, message: 'No such role.' },
});
