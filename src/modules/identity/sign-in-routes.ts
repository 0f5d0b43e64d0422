import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { contextOf } from '../../platform/http/auth.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { messagePage, signInPage, type Page } from './pages.ts';
import { SIGN_IN_PATH, type ProviderHost } from './provider.ts';
import type { IdentityService } from './service.ts';

const Params = Type.Object({ uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });
const Form = Type.Object({ login: Type.Optional(Type.String({ maxLength: 1000 })), password: Type.Optional(Type.String({ maxLength: 2000 })) });

// One answer for an unknown account and a wrong password: nothing tells them apart.
const INVALID_CREDENTIALS = 'The login or password is not correct.';
const NOT_ALLOWED = 'This account cannot sign in. Please contact support.';
const EXPIRED = 'This sign-in page has expired or was opened outside the app. Go back to the app and sign in again.';

const send = (reply: FastifyReply, status: number, built: Page) => reply.code(status).headers(built.headers).send(built.html);

type Details = Awaited<ReturnType<Awaited<ReturnType<ProviderHost['provider']>>['interactionDetails']>>;

/**
 * The hosted sign-in page of the authorization-code flow. The provider sends the browser
 * here with an interaction cookie bound to this path; a form posted from another site
 * arrives without it (SameSite=Lax) and is refused, which is the page's CSRF defence.
 */
export function signInRoutes(host: ProviderHost, service: IdentityService) {
  async function interaction(uid: string, request: FastifyRequest, reply: FastifyReply): Promise<Details | undefined> {
    const provider = await host.provider();
    try {
      const details = await provider.interactionDetails(request.raw, reply.raw);
      return details.uid === uid ? details : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Every client is the casino's own, registered by staff with its scopes, so consent is
   * not asked of the player: a client that asks for it explicitly (prompt=consent, which
   * OpenID Connect requires for offline_access) is granted what it asked for.
   */
  async function consent(request: FastifyRequest, reply: FastifyReply, details: Details): Promise<string> {
    const provider = await host.provider();
    const accountId = details.session?.accountId;
    const clientId = String(details.params.client_id);
    if (!accountId) throw new Error('consent prompt without a signed-in account');
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    return provider.interactionResult(request.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  async function clientName(clientId: unknown): Promise<string> {
    const client = typeof clientId === 'string' ? await (await host.provider()).Client.find(clientId) : undefined;
    return client?.clientName ?? 'the app';
  }

  return async (app: HttpApp): Promise<void> => {
    // The form posts application/x-www-form-urlencoded; only this module's routes parse it.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    const schema = { hide: true, params: Params };

    app.get(`${SIGN_IN_PATH}/:uid`, { schema }, async (request, reply) => {
      const details = await interaction(request.params.uid, request, reply);
      if (!details) return send(reply, 400, messagePage('Sign-in expired', EXPIRED));
      if (details.prompt.name === 'consent') return reply.redirect(await consent(request, reply, details), 303);
      const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
      return send(reply, 200, signInPage({ action: `${SIGN_IN_PATH}/${details.uid}`, clientName: await clientName(details.params.client_id), login: hint }));
    });

    app.post(`${SIGN_IN_PATH}/:uid`, { schema: { ...schema, body: Form } }, async (request, reply) => {
      const details = await interaction(request.params.uid, request, reply);
      if (!details) return send(reply, 400, messagePage('Sign-in expired', EXPIRED));
      const login = (request.body.login ?? '').trim();
      const password = request.body.password ?? '';
      const clientId = String(details.params.client_id);
      const form = { action: `${SIGN_IN_PATH}/${details.uid}`, clientName: await clientName(clientId), login };
      if (login === '' || password === '') return send(reply, 400, signInPage({ ...form, error: INVALID_CREDENTIALS }));
      const result = await service.signIn(contextOf(request), clientId, login, password);
      switch (result.outcome) {
        case 'invalid_credentials':
          return send(reply, 400, signInPage({ ...form, error: INVALID_CREDENTIALS }));
        case 'account_not_allowed':
          return send(reply, 403, signInPage({ ...form, error: NOT_ALLOWED }));
        case 'signed_in': {
          const provider = await host.provider();
          const returnTo = await provider.interactionResult(
            request.raw,
            reply.raw,
            { login: { accountId: result.accountId, acr: result.acr, amr: result.amr, remember: false } },
            { mergeWithLastSubmission: false },
          );
          return reply.code(303).header('cache-control', 'no-store').redirect(returnTo, 303);
        }
      }
    });
  };
}
