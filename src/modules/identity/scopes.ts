// Scopes and resources of the provider, shared by the client registry and the provider.
import { ACR_2FA } from '../../platform/auth/step-up.ts';

/** The resource indicator (RFC 8707) of the Pitboss API; its access tokens are JWTs with `aud: pitboss`. */
export const API_RESOURCE = 'urn:pitboss:api';

/** Calling the Pitboss API as the signed-in player (or staff member). */
export const API_SCOPE = 'api';

/** OpenID Connect's own scopes: about the account, not permissions at the API. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

export const DEFAULT_USER_SCOPE = ['openid', 'offline_access', 'profile', 'email', API_SCOPE].join(' ');

/** Authentication context classes (`acr`). */
export const ACR = {
  /** One factor: a password. */
  password: 'urn:pitboss:acr:1fa',
  /** Two factors: a password and a one-time code (TOTP or a recovery code) or a passkey or security key (WebAuthn). */
  mfa: ACR_2FA,
  /** A service authenticated with its client credentials. */
  client: 'urn:pitboss:acr:client',
} as const;

const oidc = new Set<string>(OIDC_SCOPES);

export const splitScope = (scope: string | undefined): string[] => [...new Set((scope ?? '').split(' ').filter((s) => s !== ''))];

/** The scopes of a client's that are about the API (everything but OpenID Connect's). */
export const apiScopes = (scope: string | undefined): string[] => splitScope(scope).filter((s) => !oidc.has(s));

/** The OpenID Connect scopes among a client's. */
export const oidcScopes = (scope: string | undefined): string[] => splitScope(scope).filter((s) => oidc.has(s));

/** The provider's client metadata property that carries a client's API scopes. */
export const API_SCOPE_METADATA = 'pitboss_api_scope';
