import { Type, type Static } from 'typebox';
import type { EventCatalogue } from '../../platform/events/types.ts';

// Security events: no personal data (no login names or emails), only ids, the client
// and the reason, so they can fan out to risk and analytics.

const SignInSucceeded = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  clientId: Type.String(),
  acr: Type.String(),
  amr: Type.Array(Type.String()),
  accountKind: Type.Optional(Type.Enum(['player', 'staff'], { description: "`staff` for a staff member's sign-in (then `playerId` is the staff member's id and the envelope's playerId is null); absent for players." })),
});

const SignInFailed = Type.Object({
  playerId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Null when the login or email names no account.' }),
  clientId: Type.String(),
  reason: Type.Enum(['invalid_credentials', 'account_not_allowed']),
  accountKind: Type.Optional(Type.Enum(['player', 'staff'], { description: "`staff` for a staff member's sign-in (then `playerId` is the staff member's id and the envelope's playerId is null); absent for players." })),
});

const SignInLocked = Type.Object({
  playerId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The account whose failure set the lock; null when the login or email names no account.' }),
  clientId: Type.String(),
  scope: Type.Enum(['account', 'source'], { description: '`account`: the login or email is locked; `source`: the source address is.' }),
  failures: Type.Integer({ minimum: 1 }),
  lockedUntil: Type.String({ format: 'date-time' }),
  accountKind: Type.Optional(Type.Enum(['player', 'staff'], { description: "`staff` for a staff member's sign-in (then `playerId` is the staff member's id and the envelope's playerId is null); absent for players." })),
});

const MfaEnrolled = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  method: Type.Enum(['totp', 'sms']),
});

const MfaRemoved = Type.Object({
  playerId: Type.String({ format: 'uuid', description: "The account's id (a staff member's when the envelope's playerId is null)." }),
  method: Type.Enum(['totp', 'sms']),
});

const MfaPolicyChanged = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  by: Type.Enum(['player', 'staff'], { description: "Whose switch changed: the player's own, or staff's (which the player cannot lift)." }),
  required: Type.Boolean({ description: 'The new value of that switch.' }),
  effective: Type.Boolean({ description: 'Whether MFA is now required for the account (either switch).' }),
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
    'identity.mfa.policy_changed': Static<typeof MfaPolicyChanged>;
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
    description: 'A player (or, with a null envelope playerId, a staff member) enabled a second factor, confirmed with a first code: an authenticator app (`totp`) or a phone number for SMS codes (`sms`); it is asked for at every sign-in from now on.',
    payload: MfaEnrolled,
  },
  'identity.mfa.removed': {
    version: 1,
    description: 'A second factor was removed (an SMS phone number); it is no longer asked for at sign-in.',
    payload: MfaRemoved,
  },
  'identity.mfa.policy_changed': {
    version: 1,
    description: 'A player, or staff, switched the requirement of MFA for the player\'s account; with it on and no factor enrolled, the next sign-in enrols an authenticator app first.',
    payload: MfaPolicyChanged,
  },
  'identity.token.reuse_detected': {
    version: 1,
    description: 'A used refresh token or authorization code was presented again; everything issued under its grant was revoked.',
    payload: TokenReuseDetected,
  },
};
