import { createRequire } from 'node:module';
import type { FieldError } from '../../platform/errors.ts';
import { fieldCodes } from './errors.ts';

export const PASSWORD_MIN_LENGTH = 10;
// argon2id cost does not grow with length, but parsing and hashing megabytes does.
export const PASSWORD_MAX_LENGTH = 128;

let common: Set<string> | undefined;

/** The bundled list of ~49,000 common passwords (zxcvbn-ts's dictionary, MIT). Loaded once. */
function commonPasswords(): Set<string> {
  if (!common) {
    const require = createRequire(import.meta.url);
    const list = require('@zxcvbn-ts/language-common/src/passwords.json') as string[];
    common = new Set(list.map((p) => p.toLowerCase()));
  }
  return common;
}

/** NIST SP 800-63B style: length and a blocklist, no composition rules. */
export function checkPassword(password: string, identity: { login: string; email: string }): FieldError[] {
  const field = '/body/password';
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return [{ field, code: fieldCodes.PASSWORD_TOO_SHORT, message: `Use at least ${PASSWORD_MIN_LENGTH} characters.` }];
  if (length > PASSWORD_MAX_LENGTH) return [{ field, code: fieldCodes.PASSWORD_TOO_LONG, message: `Use at most ${PASSWORD_MAX_LENGTH} characters.` }];
  const lower = password.toLowerCase();
  if (commonPasswords().has(lower)) return [{ field, code: fieldCodes.PASSWORD_TOO_COMMON, message: 'This password is too common; choose another.' }];
  const localPart = identity.email.split('@')[0] ?? '';
  for (const part of [identity.login.toLowerCase(), localPart.toLowerCase()]) {
    if (part.length >= 4 && lower.includes(part)) {
      return [{ field, code: fieldCodes.PASSWORD_CONTAINS_IDENTITY, message: 'The password must not contain your login or email.' }];
    }
  }
  return [];
}

/** Warm the list at start-up rather than on the first registration. */
export const preloadPasswordList = (): void => void commonPasswords();
