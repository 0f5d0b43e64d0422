import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { contextOf } from '../../platform/http/auth.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import type { Cache } from '../../platform/cache/cache.ts';
import { codePage, messagePage, PASSKEY_SCRIPT_PATH, secondFactorPage, signInPage, type Page } from './pages.ts';
import { PASSKEY_SCRIPT } from './passkey-script.ts';
import { SIGN_IN_PATH, type ProviderHost } from './provider.ts';
import type { IdentityService, PendingMfa, SignInResult } from './service.ts';
import type { TotpService } from './totp.ts';
import type { WebAuthnService } from './webauthn.ts';

const Params = Type.Object({ uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });
const Form = Type.Object({
  login: Type.Optional(Type.String({ maxLength: 1000 })),
  password: Type.Optional(Type.String({ maxLength: 2000 })),
  code: Type.Optional(Type.String({ maxLength: 100 })),
  /** The passkey step's assertion (AuthenticationResponseJSON), posted by its script. */
  assertion: Type.Optional(Type.String({ maxLength: 6000 })),
});

// One answer for an unknown account and a wrong password: nothing tells them apart.
const INVALID_CREDENTIALS = 'The login or password is not correct.';
// The same for every login, known or not, so a lock tells nothing about the account.
const LOCKED = 'Too many failed attempts. Sign-in is paused for this account or network; try again later.';
const INVALID_CODE = 'The code is not correct. Enter the current code from your app, or a recovery code.';
const INVALID_PASSKEY = 'The passkey or security key was not accepted. Try again with one registered for this account.';
const NOT_ALLOWED = 'This account cannot sign in. Please contact support.';
const EXPIRED = 'This sign-in page has expired or was opened outside the app. Go back to the app and sign in again.';

const send = (reply: FastifyReply, status: number, built: Page) => reply.code(status).headers(built.headers).send(built.html);

type Details = Awaited<ReturnType<Awaited<ReturnType<ProviderHost['provider']>>['interactionDetails']>>;

/**
 * The hosted sign-in page of the authorization-code flow. The provider sends the browser
 * here with an interaction cookie bound to this path; a form posted from another site
 * arrives without it (SameSite=Lax) and is refused, which is the page's CSRF defence.
 */
export function signInRoutes(host: ProviderHost, service: IdentityService, cache: Cache, factors: { totp: TotpService; webauthn: WebAuthnService }) {
  // Who passed the password step of an interaction and owes a second factor. The
  // interaction itself is bound to the browser by its cookie; this lives in the cache
  // (Redis when configured, shared by every process) as long as the step may take.
  const pendingKey = (uid: string) => `identity:sign-in:mfa:${uid}`;
  const PENDING_TTL = 600;
  async function pendingOf(uid: string): Promise<PendingMfa | undefined> {
    const raw = await cache.get(pendingKey(uid)).catch(() => undefined);
    return raw === undefined ? undefined : (JSON.parse(raw) as PendingMfa);
  }

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

  /**
   * The second step's page: the code form, or with passkeys the passkey button (options
   * with a new challenge for this interaction) and, with an authenticator app, the code form.
   */
  async function secondStep(uid: string, accountId: string, action: string, name: string, error?: string, failed?: 'passkey' | 'code'): Promise<Page> {
    if (!(await factors.webauthn.hasCredentials(accountId))) return codePage({ action, clientName: name, error });
    const options = await factors.webauthn.authenticationOptions(accountId, uid);
    return secondFactorPage({ action, clientName: name, error, failed, totp: await factors.totp.isEnabled(accountId), passkeyOptions: JSON.stringify(options) });
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

    app.get(PASSKEY_SCRIPT_PATH, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .headers({ 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=300', 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' })
        .send(PASSKEY_SCRIPT),
    );

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
      const clientId = String(details.params.client_id);
      const action = `${SIGN_IN_PATH}/${details.uid}`;
      const name = await clientName(clientId);
      const ctx = contextOf(request);

      const answer = async (result: SignInResult, retry: (error: string) => Page | Promise<Page>, invalid: string) => {
        switch (result.outcome) {
          case 'invalid_credentials':
            return send(reply, 400, await retry(invalid));
          case 'locked': {
            await cache.del(pendingKey(details.uid)).catch(() => {});
            const retryAfter = Math.max(1, Math.ceil((result.lock.until.getTime() - Date.now()) / 1000));
            return send(reply.header('retry-after', String(retryAfter)), 429, await retry(LOCKED));
          }
          case 'account_not_allowed':
            return send(reply, 403, await retry(NOT_ALLOWED));
          case 'mfa_required':
            return send(reply, 200, await secondStep(details.uid, result.accountId, action, name));
          case 'signed_in': {
            await cache.del(pendingKey(details.uid)).catch(() => {});
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
      };

      if (request.body.assertion !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending) return send(reply, 400, messagePage('Sign-in expired', EXPIRED));
        const retry = (error: string) => secondStep(details.uid, pending.accountId, action, name, error, 'passkey');
        return answer(await service.completeWebAuthn(ctx, clientId, pending, details.uid, request.body.assertion), retry, INVALID_PASSKEY);
      }

      if (request.body.code !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending) return send(reply, 400, messagePage('Sign-in expired', EXPIRED));
        const code = request.body.code.trim();
        const retry = (error: string) => secondStep(details.uid, pending.accountId, action, name, error, 'code');
        if (code === '') return send(reply, 400, await retry(INVALID_CODE));
        return answer(await service.completeMfa(ctx, clientId, pending, code), retry, INVALID_CODE);
      }

      const login = (request.body.login ?? '').trim();
      const password = request.body.password ?? '';
      const retry = (error: string) => signInPage({ action, clientName: name, login, error });
      if (login === '' || password === '') return send(reply, 400, retry(INVALID_CREDENTIALS));
      const result = await service.signIn(ctx, clientId, login, password);
      if (result.outcome === 'mfa_required') {
        await cache.set(pendingKey(details.uid), JSON.stringify({ accountId: result.accountId, loginOrEmail: login } satisfies PendingMfa), PENDING_TTL);
      }
      return answer(result, retry, INVALID_CREDENTIALS);
    });
  };
}
