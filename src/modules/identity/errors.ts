import { defineErrors } from '../../platform/errors.ts';

export const fail = defineErrors({
  CLIENT_NOT_FOUND: { status: 404, message: 'No such OAuth client.' },
  CLIENT_SCOPE_NOT_HELD: { status: 403, message: 'A client can only be given permissions (scopes) its creator holds.' },
  CLIENT_STATUS_UNCHANGED: { status: 409, message: 'The client already has this status.' },
  CLIENT_IS_PUBLIC: { status: 409, message: 'A public client has no secret to rotate.' },
  MFA_PLAYERS_ONLY: { status: 403, message: 'Only a signed-in player can manage their own second factors.' },
  MFA_TOTP_ALREADY_ENABLED: { status: 409, message: 'An authenticator app is already enabled for this account.' },
  MFA_TOTP_NOT_STARTED: { status: 409, message: 'No authenticator app enrolment is waiting for confirmation; start one first.' },
  MFA_CODE_INVALID: { status: 400, message: 'The code is not correct or has expired.' },
  LOCAL_MESSAGES_OFF: { status: 404, message: 'The local message gateway is not in use for this channel (SMS_GATEWAY / EMAIL_GATEWAY).' },
});

/** Field error codes of a client registration (reported together as VALIDATION_FAILED). */
export const fieldCodes = {
  GRANT_TYPES_INVALID: 'GRANT_TYPES_INVALID',
  REDIRECT_URI_INVALID: 'REDIRECT_URI_INVALID',
  REDIRECT_URI_REQUIRED: 'REDIRECT_URI_REQUIRED',
  SCOPE_INVALID: 'SCOPE_INVALID',
  SCOPE_REQUIRED: 'SCOPE_REQUIRED',
} as const;
