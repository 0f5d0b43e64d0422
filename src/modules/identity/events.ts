import { Type, type Static } from 'typebox';
import type { EventCatalogue } from '../../platform/events/types.ts';

// Security events: no personal data (no login names or emails), only ids, the client
// and the reason, so they can fan out to risk and analytics.

const SignInSucceeded = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  clientId: Type.String(),
  acr: Type.String(),
  amr: Type.Array(Type.String()),
});

const SignInFailed = Type.Object({
  playerId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Null when the login or email names no account.' }),
  clientId: Type.String(),
  reason: Type.Enum(['invalid_credentials', 'account_not_allowed']),
});

const SignInLocked = Type.Object({
  playerId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The account whose failure set the lock; null when the login or email names no account.' }),
  clientId: Type.String(),
  scope: Type.Enum(['account', 'source'], { description: '`account`: the login or email is locked; `source`: the source address is.' }),
  failures: Type.Integer({ minimum: 1 }),
  lockedUntil: Type.String({ format: 'date-time' }),
});

const MfaEnrolled = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  method: Type.Enum(['totp', 'webauthn']),
});

const MfaRemoved = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  method: Type.Enum(['webauthn']),
});

const TokenReuseDetected = Type.Object({
  clientId: Type.String(),
  accountId: Type.Union([Type.String(), Type.Null()]),
  grantId: Type.Union([Type.String(), Type.Null()], { description: 'Null for a replayed authorization code (its grant is revoked with it).' }),
  token: Type.Enum(['refresh_token', 'authorization_code']),
});

declare module '../../platform/events/types.ts' {
  interface EventMap {
    'identity.sign_in.succeeded': Static<typeof SignInSucceeded>;
    'identity.sign_in.failed': Static<typeof SignInFailed>;
    'identity.sign_in.locked': Static<typeof SignInLocked>;
    'identity.mfa.enrolled': Static<typeof MfaEnrolled>;
    'identity.mfa.removed': Static<typeof MfaRemoved>;
    'identity.token.reuse_detected': Static<typeof TokenReuseDetected>;
  }
}

export const events: EventCatalogue = {
  'identity.sign_in.succeeded': { version: 1, description: 'A player signed in on the hosted sign-in page.', payload: SignInSucceeded },
  'identity.sign_in.failed': {
    version: 1,
    description: 'A sign-in failed: unknown account or wrong password (`invalid_credentials`), or an account that may not sign in.',
    payload: SignInFailed,
  },
  'identity.sign_in.locked': {
    version: 1,
    description: 'Too many failed sign-ins: the login or email, or the source address, is locked out of the hosted sign-in page until `lockedUntil`.',
    payload: SignInLocked,
  },
  'identity.mfa.enrolled': {
    version: 1,
    description:
      'A player enabled a second factor: an authenticator app (`totp`, confirmed with a first code) or a passkey or security key (`webauthn`, one event per credential); one is asked for at every sign-in from now on.',
    payload: MfaEnrolled,
  },
  'identity.mfa.removed': {
    version: 1,
    description: 'A player removed a second factor: one passkey or security key (`webauthn`). Their other factors stay.',
    payload: MfaRemoved,
  },
  'identity.token.reuse_detected': {
    version: 1,
    description: 'A used refresh token or authorization code was presented again; everything issued under its grant was revoked.',
    payload: TokenReuseDetected,
  },
};
