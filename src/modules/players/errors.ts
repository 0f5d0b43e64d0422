import { defineErrors } from '../../platform/errors.ts';

export const fail = defineErrors({
  PLAYER_EMAIL_TAKEN: { status: 409, message: 'A player with this email address already exists.' },
  PLAYER_EMAIL_UNCHANGED: { status: 409, message: 'This is already the email address of the player.' },
  PLAYER_LOGIN_TAKEN: { status: 409, message: 'A player with this login already exists.' },
  PLAYER_NOT_FOUND: { status: 404, message: 'No such player.' },
  PLAYER_STATUS_UNCHANGED: { status: 409, message: 'The player already has this status.' },
});

export const fieldCodes = {
  PASSWORD_TOO_SHORT: 'PASSWORD_TOO_SHORT',
  PASSWORD_TOO_LONG: 'PASSWORD_TOO_LONG',
  PASSWORD_TOO_COMMON: 'PASSWORD_TOO_COMMON',
  PASSWORD_CONTAINS_IDENTITY: 'PASSWORD_CONTAINS_IDENTITY',
  EMAIL_INVALID: 'EMAIL_INVALID',
  COUNTRY_UNKNOWN: 'COUNTRY_UNKNOWN',
  COUNTRY_RESTRICTED: 'COUNTRY_RESTRICTED',
  CURRENCY_NOT_SUPPORTED: 'CURRENCY_NOT_SUPPORTED',
  DATE_INVALID: 'DATE_INVALID',
  UNDER_MINIMUM_AGE: 'UNDER_MINIMUM_AGE',
} as const;
