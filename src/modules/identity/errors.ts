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
  SESSION_NOT_FOUND: { status: 404, message: 'No such session of this player.' },
  SESSION_ALREADY_ENDED: { status: 409, message: 'The session has already ended.' },
  SESSIONS_PLAYERS_ONLY: { status: 403, message: "Only a signed-in player has their own sessions; staff name the player (/v1/identity/players/{id}/sessions)." },
  SESSION_CURRENT_UNKNOWN: { status: 409, message: 'The token names no session to keep (it was not issued by the sign-in flow); ask without keepCurrent.' },
  PASSWORD_PLAYERS_ONLY: { status: 403, message: 'Only a signed-in player can change their own password or email.' },
  PASSWORD_INCORRECT: { status: 400, message: 'The current password is not correct.' },
  PASSWORD_UNCHANGED: { status: 409, message: 'The new password is the current one.' },
  PASSWORD_RESET_TOKEN_INVALID: { status: 400, message: 'This password reset link is not valid: it was mistyped, replaced by a newer one, or already used. Ask for a new one.' },
  PASSWORD_RESET_TOKEN_EXPIRED: { status: 410, message: 'This password reset link has expired. Ask for a new one.' },
  WEBAUTHN_CHALLENGE_INVALID: { status: 400, message: 'No passkey registration is waiting, or it has expired or been used; ask for new options.' },
  WEBAUTHN_RESPONSE_INVALID: { status: 400, message: 'The passkey or security key response could not be verified.' },
  WEBAUTHN_CREDENTIAL_EXISTS: { status: 409, message: 'This passkey or security key is already registered.' },
  WEBAUTHN_CREDENTIAL_LIMIT: { status: 409, message: 'This account has as many passkeys and security keys as it may have; remove one first.' },
  WEBAUTHN_CREDENTIAL_NOT_FOUND: { status: 404, message: 'No such passkey or security key on this account.' },
});

/** Field error codes of a client registration (reported together as VALIDATION_FAILED). */
export const fieldCodes = {
  GRANT_TYPES_INVALID: 'GRANT_TYPES_INVALID',
  REDIRECT_URI_INVALID: 'REDIRECT_URI_INVALID',
  REDIRECT_URI_REQUIRED: 'REDIRECT_URI_REQUIRED',
  SCOPE_INVALID: 'SCOPE_INVALID',
  SCOPE_REQUIRED: 'SCOPE_REQUIRED',
} as const;
