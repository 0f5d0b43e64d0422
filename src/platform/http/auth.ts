import type { FastifyReply, FastifyRequest } from 'fastify';
import { platformErrors } from '../errors.ts';
import { anonymous, hasPermission, type Principal, type RequestContext } from '../auth/principal.ts';
import type { TokenService } from '../auth/tokens.ts';
import { ACR_2FA, type AuthPolicy } from '../auth/step-up.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Step-up and session hooks (decorated on the root instance, so every module sees them). */
    authPolicy: AuthPolicy;
  }
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /**
     * The route reads the Authorization header itself (the OAuth2 provider's endpoints:
     * Basic client authentication, its own bearer tokens), so this hook leaves it alone
     * and the caller is anonymous to the platform.
     */
    ownAuthorization?: boolean;
  }
}

/**
 * onRequest hook: a bearer token, when present, must verify; without one the caller is
 * anonymous. A player's token from a session that has ended (revoked, timed out) is
 * refused at once, though it has not expired: the policy's check is a cache lookup.
 */
export function authenticate(tokens: TokenService, policy?: AuthPolicy) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (!header || request.routeOptions.config.ownAuthorization === true) {
      request.principal = anonymous;
      return;
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw platformErrors('UNAUTHENTICATED', { detail: 'Authorization must be "Bearer <token>".' });
    const principal = await tokens.verify(match[1]!);
    if (policy && (principal.kind === 'player' || principal.kind === 'staff') && principal.sid && (await policy.sessionEnded(principal.sid))) {
      throw platformErrors('UNAUTHENTICATED', { detail: 'The session this token belongs to has ended; sign in again.' });
    }
    request.principal = principal;
  };
}

/** preHandler guard: the one place a permission is checked at the edge. */
export function requirePermission(permission: string) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    if (request.principal.kind === 'anonymous') throw platformErrors('UNAUTHENTICATED');
    if (!hasPermission(request.principal, permission)) {
      throw platformErrors('FORBIDDEN', { detail: `Requires the permission "${permission}".` });
    }
  };
}

/** preHandler guard: any authenticated caller; services decide the rest. */
export async function requireAuthenticated(request: FastifyRequest): Promise<void> {
  if (request.principal.kind === 'anonymous') throw platformErrors('UNAUTHENTICATED');
}

export interface StepUpOptions {
  /** How old the sign-in may be (seconds); STEP_UP_MAX_AGE_SECONDS by default. */
  readonly maxAgeSeconds?: number;
  /**
   * `if-enrolled` (the default): the second factor too when the player has one; `true`:
   * a second factor always (a player without one cannot pass).
   */
  readonly mfa?: 'if-enrolled' | true;
}

const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;

/**
 * preHandler guard for what a stolen token must not do (withdraw, change the password,
 * the email or a second factor): a player's token must come from a fresh sign-in
 * (auth_time within the max age) with two factors (acr urn:pitboss:acr:2fa or amr
 * `mfa`) when the player has a second factor. Anything else is 401 STEP_UP_REQUIRED
 * with RFC 9470's challenge, which tells the client what to ask the provider for.
 * Staff and services pass: they act on a player's behalf with their own permissions
 * (which the route checks) and cannot perform the player's authentication.
 */
export function requireStepUp(options: StepUpOptions = {}) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const principal = request.principal;
    switch (principal.kind) {
      case 'anonymous':
        throw platformErrors('UNAUTHENTICATED');
      case 'staff':
      case 'service':
      case 'system':
        return;
      case 'player':
        break;
    }
    const policy = request.server.authPolicy;
    const maxAge = options.maxAgeSeconds ?? policy.stepUpMaxAgeSeconds;
    const now = Math.floor(Date.now() / 1000);
    const age = principal.authTime === undefined ? undefined : now - principal.authTime;
    const fresh = age !== undefined && age <= maxAge && age >= -60;
    // A fresh sign-in with two factors passes whatever the account has: no need to ask.
    const twoFactors = principal.acr === ACR_2FA || (principal.amr ?? []).includes('mfa');
    if (fresh && twoFactors) return;
    const needsMfa = options.mfa === true || (await policy.hasSecondFactor(principal.id));
    if (fresh && !needsMfa) return;
    const description = !fresh
      ? `A sign-in within the last ${maxAge} seconds is required${needsMfa ? ', with the second factor' : ''}.`
      : 'A sign-in with the second factor is required.';
    const challenge = [`error="insufficient_user_authentication"`, `error_description=${quoted(description)}`, `max_age=${maxAge}`];
    if (needsMfa) challenge.push(`acr_values=${quoted(ACR_2FA)}`);
    reply.header('www-authenticate', `Bearer ${challenge.join(', ')}`);
    throw platformErrors('STEP_UP_REQUIRED', {
      detail: description,
      extra: { maxAge, acrValues: needsMfa ? ACR_2FA : null, authTime: principal.authTime ?? null },
    });
  };
}


export const contextOf = (request: FastifyRequest): RequestContext => ({
  principal: request.principal,
  requestId: request.id,
  sourceIp: request.ip,
});
