import { defineErrors } from '../../platform/errors.ts';

export const fail = defineErrors({
  CLIENT_NOT_FOUND: { status: 404, message: 'No such OAuth client.' },
  CLIENT_SCOPE_NOT_HELD: { status: 403, message: 'A client can only be given permissions (scopes) its creator holds.' },
  CLIENT_STATUS_UNCHANGED: { status: 409, message: 'The client already has this status.' },
  CLIENT_IS_PUBLIC: { status: 409, message: 'A public client has no secret to rotate.' },
});

/** Field error codes of a client registration (reported together as VALIDATION_FAILED). */
export const fieldCodes = {
  GRANT_TYPES_INVALID: 'GRANT_TYPES_INVALID',
  REDIRECT_URI_INVALID: 'REDIRECT_URI_INVALID',
  REDIRECT_URI_REQUIRED: 'REDIRECT_URI_REQUIRED',
  SCOPE_INVALID: 'SCOPE_INVALID',
  SCOPE_REQUIRED: 'SCOPE_REQUIRED',
} as const;
