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
  method: Type.Enum(['totp', 'webauthn', 'sms']),
});

const MfaRemoved = Type.Object({
  playerId: Type.String({ format: 'uuid', description: "The account's id (a staff member's when the envelope's playerId is null)." }),
  method: Type.Enum(['totp', 'webauthn', 'sms']),
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

const By = Type.Enum(['player', 'staff'], { description: 'Who ended it: the player, or staff on their behalf.' });

const SessionRevoked = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  sessionId: Type.String(),
  reason: Type.Enum(['revoked', 'revoked_by_staff']),
  by: By,
});

const SessionsRevokedAll = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  sessionIds: Type.Array(Type.String()),
  keptSessionId: Type.Union([Type.String(), Type.Null()], { description: 'The session that asked, when it asked to stay signed in.' }),
  by: By,
});

const PasswordChanged = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  endedSessionIds: Type.Array(Type.String(), { description: 'Every other session of the player, ended with its refresh tokens.' }),
});

const PasswordResetRequested = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  expiresAt: Type.String({ format: 'date-time' }),
});

const PasswordResetCompleted = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  endedSessionIds: Type.Array(Type.String(), { description: 'Every session of the player, ended with its refresh tokens.' }),
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
    'identity.session.revoked': Static<typeof SessionRevoked>;
    'identity.sessions.revoked_all': Static<typeof SessionsRevokedAll>;
    'identity.password.changed': Static<typeof PasswordChanged>;
    'identity.password.reset_requested': Static<typeof PasswordResetRequested>;
    'identity.password.reset_completed': Static<typeof PasswordResetCompleted>;
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
      'A player (or, with a null envelope playerId, a staff member) enabled a second factor: an authenticator app (`totp`, confirmed with a first code), a passkey or security key (`webauthn`, one event per credential) or a phone number for SMS codes (`sms`, confirmed with a first code); one is asked for at every sign-in from now on.',
    payload: MfaEnrolled,
  },
  'identity.mfa.removed': {
    version: 1,
    description: 'A second factor was removed: one passkey or security key (`webauthn`), or an SMS phone number (`sms`). The account\'s other factors stay.',
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
  'identity.session.revoked': {
    version: 1,
    description: 'A sign-in session was ended by the player (or staff): the provider session and its refresh tokens are gone, its access tokens are refused.',
    payload: SessionRevoked,
  },
  'identity.sessions.revoked_all': {
    version: 1,
    description: 'A player (or staff) signed the player out everywhere, the current session kept when asked.',
    payload: SessionsRevokedAll,
  },
  'identity.password.changed': { version: 1, description: 'A signed-in player changed their password; their other sessions ended.', payload: PasswordChanged },
  'identity.password.reset_requested': {
    version: 1,
    description: 'A password reset link was emailed to a player (requests for unknown accounts, and throttled ones, emit nothing).',
    payload: PasswordResetRequested,
  },
  'identity.password.reset_completed': { version: 1, description: 'A player set a new password with a reset link; every session of theirs ended.', payload: PasswordResetCompleted },
};
