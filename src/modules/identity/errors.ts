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
  MFA_SMS_PHONE_INVALID: { status: 400, message: 'The phone number must be in E.164 form: a plus, the country code and the number, e.g. +447700900123.' },
  MFA_SMS_ALREADY_ENABLED: { status: 409, message: 'A phone number is already enabled as a second factor; remove it first.' },
  MFA_SMS_NOT_STARTED: { status: 409, message: 'No phone number is waiting for confirmation; start an enrolment first.' },
  MFA_SMS_NOT_ENABLED: { status: 404, message: 'No phone number is enrolled as a second factor.' },
  MFA_SMS_RESEND_TOO_SOON: { status: 429, message: 'A code was sent less than a minute ago; wait before asking for another (see retryAfter).' },
  MFA_SMS_NOT_SENT: { status: 502, message: 'The SMS gateway did not accept the message; try again later.' },
  MFA_POLICY_PLAYER_NOT_FOUND: { status: 404, message: 'No such player.' },
  EMAIL_ALREADY_VERIFIED: { status: 409, message: 'The email address is already verified.' },
  EMAIL_VERIFICATION_TOO_SOON: { status: 429, message: 'A verification email was sent less than a minute ago; wait before asking for another (see retryAfter).' },
  EMAIL_VERIFICATION_INVALID: { status: 400, message: 'The verification link is not valid: unknown, already used or expired. Ask for a new one.' },
  EMAIL_VERIFICATION_STALE: { status: 409, message: 'The verification link is for an address the player no longer uses. Ask for a new one.' },
  EMAIL_NOT_SENT: { status: 502, message: 'The email gateway did not accept the message; try again later.' },
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

/** The signed-in player's id, for endpoints about a player's own factors and settings: anyone else is refused with MFA_PLAYERS_ONLY. */
export const playerOf = (request: { principal: { kind: string; id?: string } }): string => {
  if (request.principal.kind !== 'player' || !request.principal.id) throw fail('MFA_PLAYERS_ONLY');
  return request.principal.id;
};
