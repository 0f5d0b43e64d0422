import type { FastifyReply, FastifyRequest } from 'fastify';
import { platformErrors } from '../errors.ts';
import { anonymous, hasPermission, type Principal, type RequestContext } from '../auth/principal.ts';
import type { TokenService } from '../auth/tokens.ts';

declare module 'fastify' {
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

/** onRequest hook: a bearer token, when present, must verify; without one the caller is anonymous. */
export function authenticate(tokens: TokenService) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (!header || request.routeOptions.config.ownAuthorization === true) {
      request.principal = anonymous;
      return;
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw platformErrors('UNAUTHENTICATED', { detail: 'Authorization must be "Bearer <token>".' });
    request.principal = await tokens.verify(match[1]!);
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

export const contextOf = (request: FastifyRequest): RequestContext => ({
  principal: request.principal,
  requestId: request.id,
  sourceIp: request.ip,
});
