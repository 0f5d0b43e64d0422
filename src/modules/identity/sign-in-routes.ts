import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { contextOf } from '../../platform/http/auth.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import type { Cache } from '../../platform/cache/cache.ts';
import { DomainError } from '../../platform/errors.ts';
import type { AccountKind } from './accounts.ts';
import { codePage, enrolTotpPage, messagePage, PASSKEY_SCRIPT_PATH, recoveryCodesPage, secondFactorPage, signInPage, smsCodePage, type Page } from './pages.ts';
import { acceptForms, sendPage } from './page-replies.ts';
import { PASSKEY_SCRIPT } from './passkey-script.ts';
import { SIGN_IN_PATH, type ProviderHost } from './provider.ts';
import type { IdentityService, MfaMethod, PendingMfa, SignInResult } from './service.ts';
import type { SmsFactorStatus } from './sms.ts';
import type { TotpEnrolment, TotpService } from './totp.ts';
import type { WebAuthnService } from './webauthn.ts';

const Params = Type.Object({ uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });
const Form = Type.Object({
  login: Type.Optional(Type.String({ maxLength: 1000 })),
  password: Type.Optional(Type.String({ maxLength: 2000 })),
  code: Type.Optional(Type.String({ maxLength: 100 })),
  /** `send`: send the second-factor code by SMS. */
  sms: Type.Optional(Type.String({ maxLength: 10 })),
  /** The first code of an authenticator app enrolled during this sign-in. */
  enrol_code: Type.Optional(Type.String({ maxLength: 100 })),
  /** After the recovery codes of a new authenticator app were shown: complete the sign-in. */
  continue: Type.Optional(Type.String({ maxLength: 10 })),
  /** The passkey step's assertion (AuthenticationResponseJSON), posted by its script. */
  assertion: Type.Optional(Type.String({ maxLength: 6000 })),
});

/** What the second-factor steps need beyond the service: the client's account kind, the app being enrolled, the SMS number. */
export interface SignInMfaDeps {
  readonly clientKind: (clientId: string) => Promise<AccountKind>;
  readonly totpEnrolment: (accountId: string, restart: boolean) => Promise<TotpEnrolment>;
  readonly smsStatus: (accountId: string) => Promise<SmsFactorStatus>;
}

// One answer for an unknown account and a wrong password: nothing tells them apart.
const INVALID_CREDENTIALS = 'The login or password is not correct.';
// The same for every login, known or not, so a lock tells nothing about the account.
const LOCKED = 'Too many failed attempts. Sign-in is paused for this account or network; try again later.';
const INVALID_CODE = 'The code is not correct. Enter the current code from your app, or a recovery code.';
const INVALID_PASSKEY = 'The passkey or security key was not accepted. Try again with one registered for this account.';
const NOT_ALLOWED = 'This account cannot sign in. Please contact support.';
const EXPIRED = 'This sign-in page has expired or was opened outside the app. Go back to the app and sign in again.';
const INVALID_SMS_CODE = 'The code is not correct or has expired. Enter the latest code we sent, or ask for a new one.';
const INVALID_ENROL_CODE = 'The code is not correct. Check the time on your phone and enter the code the app shows now.';
const SMS_NOT_SENT = 'We could not send the SMS just now. Try again in a moment, or use your authenticator app.';

type Details = Awaited<ReturnType<Awaited<ReturnType<ProviderHost['provider']>>['interactionDetails']>>;

/**
 * The hosted sign-in page of the authorization-code flow. The provider sends the browser
 * here with an interaction cookie bound to this path; a form posted from another site
 * arrives without it (SameSite=Lax) and is refused, which is the page's CSRF defence.
 */
export function signInRoutes(host: ProviderHost, service: IdentityService, cache: Cache, factors: { totp: TotpService; webauthn: WebAuthnService }, mfa?: SignInMfaDeps) {
  // Who passed the password step of an interaction and owes a second factor. The
  // interaction itself is bound to the browser by its cookie; this lives in the cache
  // (Redis when configured, shared by every process) as long as the step may take.
  const pendingKey = (uid: string) => `identity:sign-in:mfa:${uid}`;
  const PENDING_TTL = 600;
  async function pendingOf(uid: string): Promise<PendingMfa | undefined> {
    const raw = await cache.get(pendingKey(uid)).catch(() => undefined);
    return raw === undefined ? undefined : (JSON.parse(raw) as PendingMfa);
  }
  const savePending = (uid: string, pending: PendingMfa) => cache.set(pendingKey(uid), JSON.stringify(pending), PENDING_TTL);

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
   * The second step's page for what the account has (players: authenticator app, passkeys,
   * SMS; staff: the authenticator app): the code form, or with passkeys the passkey button
   * (options with a new challenge for this interaction) and, with an authenticator app, the
   * code form; with a phone number, the offer to send a code by SMS. `known`: the factors
   * this request has already read (the password step's); a later request reads them again,
   * since one may have been removed while the page was open and must not be offered.
   */
  async function secondStep(
    uid: string,
    pending: PendingMfa,
    action: string,
    name: string,
    { error, failed, known }: { error?: string; failed?: 'passkey' | 'code'; known?: readonly MfaMethod[] } = {},
  ): Promise<Page> {
    const player = (pending.kind ?? 'player') === 'player';
    const methods = (known ?? (await service.mfaMethods(pending.accountId))).filter((m) => player || m === 'totp');
    const smsPhone = methods.includes('sms') ? ((await mfa?.smsStatus(pending.accountId))?.phone ?? undefined) : undefined;
    if (!methods.includes('webauthn')) return codePage({ action, clientName: name, error, smsPhone });
    const options = await factors.webauthn.authenticationOptions(pending.accountId, uid);
    return secondFactorPage({ action, clientName: name, error, failed, smsPhone, totp: methods.includes('totp'), passkeyOptions: JSON.stringify(options) });
  }

  async function clientName(clientId: unknown): Promise<string> {
    const client = typeof clientId === 'string' ? await (await host.provider()).Client.find(clientId) : undefined;
    return client?.clientName ?? 'the app';
  }

  return async (app: HttpApp): Promise<void> => {
    // The form posts application/x-www-form-urlencoded; only this module's routes parse it.
    acceptForms(app);

    const schema = { hide: true, params: Params };

    app.get(PASSKEY_SCRIPT_PATH, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .headers({ 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=300', 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' })
        .send(PASSKEY_SCRIPT),
    );

    app.get(`${SIGN_IN_PATH}/:uid`, { schema }, async (request, reply) => {
      const details = await interaction(request.params.uid, request, reply);
      if (!details) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
      if (details.prompt.name === 'consent') return reply.redirect(await consent(request, reply, details), 303);
      const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
      const staff = (await mfa?.clientKind(String(details.params.client_id))) === 'staff';
      return sendPage(reply, 200, signInPage({ action: `${SIGN_IN_PATH}/${details.uid}`, clientName: await clientName(details.params.client_id), login: hint, staff }));
    });

    app.post(`${SIGN_IN_PATH}/:uid`, { schema: { ...schema, body: Form } }, async (request, reply) => {
      const details = await interaction(request.params.uid, request, reply);
      if (!details) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
      const clientId = String(details.params.client_id);
      const action = `${SIGN_IN_PATH}/${details.uid}`;
      const name = await clientName(clientId);
      const ctx = contextOf(request);

      const kind: AccountKind = (await mfa?.clientKind(clientId)) ?? 'player';

      /** Sends the SMS code of a pending sign-in and shows its page (or why it was not sent); `known` as for secondStep. */
      const sendSms = async (pending: PendingMfa, known?: readonly MfaMethod[]): Promise<unknown> => {
        // A locked account gets no more codes either.
        const lock = await service.lockOf(ctx, pending);
        if (lock) return answer({ outcome: 'locked', lock }, (error) => messagePage('Sign-in paused', error), LOCKED);
        const phone = (await mfa?.smsStatus(pending.accountId))?.phone ?? '';
        try {
          const sent = await service.sendSignInSms(ctx, pending);
          await savePending(details.uid, { ...pending, method: 'sms' });
          return sendPage(reply, 200, smsCodePage({ action, clientName: name, phone: sent.phone, notice: `We sent a code to ${sent.phone}.` }));
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          const retryAfter = typeof error.extra?.retryAfter === 'number' ? error.extra.retryAfter : undefined;
          if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
          const message = retryAfter !== undefined ? `A code was sent less than a minute ago. You can ask for a new one in ${retryAfter} seconds.` : SMS_NOT_SENT;
          if (pending.method === 'sms') return sendPage(reply, retryAfter !== undefined ? 429 : 503, smsCodePage({ action, clientName: name, phone, error: message }));
          const methods = known ?? (await service.mfaMethods(pending.accountId));
          // Another factor (authenticator app, passkey): its step, with the reason.
          if (methods.some((m) => m !== 'sms')) return sendPage(reply, retryAfter !== undefined ? 429 : 503, await secondStep(details.uid, pending, action, name, { error: message, known: methods }));
          // Only SMS: a code sent moments ago is still live; enter it.
          await savePending(details.uid, { ...pending, method: 'sms' });
          return sendPage(reply, retryAfter !== undefined ? 429 : 503, smsCodePage({ action, clientName: name, phone, error: message }));
        }
      };

      const enrolPage = async (pending: PendingMfa, restart: boolean, error?: string) => {
        const enrolment = await mfa!.totpEnrolment(pending.accountId, restart);
        return enrolTotpPage({ action, clientName: name, qrSvg: enrolment.qrSvg, secret: enrolment.secret, reason: pending.enrol ?? 'policy', error });
      };

      const answer = async (result: SignInResult, retry: (error: string) => Page | Promise<Page>, invalid: string) => {
        switch (result.outcome) {
          case 'invalid_credentials':
            return sendPage(reply, 400, await retry(invalid));
          case 'locked': {
            await cache.del(pendingKey(details.uid)).catch(() => {});
            const retryAfter = Math.max(1, Math.ceil((result.lock.until.getTime() - Date.now()) / 1000));
            return sendPage(reply.header('retry-after', String(retryAfter)), 429, await retry(LOCKED));
          }
          case 'account_not_allowed':
            return sendPage(reply, 403, await retry(NOT_ALLOWED));
          case 'mfa_required': {
            const pending = await pendingOf(details.uid);
            if (!pending) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
            // Only SMS: the code is sent straight away.
            if (result.methods?.length === 1 && result.methods[0] === 'sms') return sendSms(pending, result.methods);
            return sendPage(reply, 200, await secondStep(details.uid, pending, action, name, { known: result.methods }));
          }
          case 'mfa_enrolment_required': {
            const pending = await pendingOf(details.uid);
            if (!pending || !mfa) return sendPage(reply, 403, await retry(NOT_ALLOWED));
            return sendPage(reply, 200, await enrolPage(pending, true));
          }
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

      if (request.body.continue !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending?.enrolled) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
        return answer(await service.completeEnrolment(ctx, clientId, pending), () => messagePage('Sign-in failed', NOT_ALLOWED), NOT_ALLOWED);
      }

      if (request.body.enrol_code !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending?.enrol || pending.enrolled || !mfa) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
        const code = request.body.enrol_code.trim();
        if (!/^\d{6}$/.test(code)) return sendPage(reply, 400, await enrolPage(pending, false, INVALID_ENROL_CODE));
        const result = await service.enrolTotp(ctx, clientId, pending, code);
        if (result.outcome === 'enrolled') {
          await savePending(details.uid, { ...pending, enrolled: true });
          return sendPage(reply, 200, recoveryCodesPage({ action, clientName: name, codes: result.recoveryCodes }));
        }
        const page = await enrolPage(pending, false, INVALID_ENROL_CODE);
        return answer(result, () => page, INVALID_ENROL_CODE);
      }

      if (request.body.sms !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending || pending.enrol || (pending.kind ?? 'player') !== 'player') return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
        return sendSms(pending);
      }

      if (request.body.assertion !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending || pending.enrol || (pending.kind ?? 'player') !== 'player') return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
        const retry = (error: string) => secondStep(details.uid, pending, action, name, { error, failed: 'passkey' });
        return answer(await service.completeWebAuthn(ctx, clientId, pending, details.uid, request.body.assertion), retry, INVALID_PASSKEY);
      }

      if (request.body.code !== undefined) {
        const pending = await pendingOf(details.uid);
        if (!pending || pending.enrol) return sendPage(reply, 400, messagePage('Sign-in expired', EXPIRED));
        const code = request.body.code.trim();
        const sms = pending.method === 'sms';
        const phone = sms ? ((await mfa?.smsStatus(pending.accountId))?.phone ?? '') : '';
        const retry = sms ? (error: string) => smsCodePage({ action, clientName: name, phone, error }) : (error: string) => secondStep(details.uid, pending, action, name, { error, failed: 'code' });
        const invalid = sms ? INVALID_SMS_CODE : INVALID_CODE;
        if (code === '') return sendPage(reply, 400, await retry(invalid));
        return answer(await service.completeMfa(ctx, clientId, pending, code), retry, invalid);
      }

      const login = (request.body.login ?? '').trim();
      const password = request.body.password ?? '';
      const retry = (error: string) => signInPage({ action, clientName: name, login, error, staff: kind === 'staff' });
      if (login === '' || password === '') return sendPage(reply, 400, retry(INVALID_CREDENTIALS));
      const result = kind === 'staff' ? await service.signInStaff(ctx, clientId, login, password) : await service.signIn(ctx, clientId, login, password);
      if (result.outcome === 'mfa_required') {
        await savePending(details.uid, { accountId: result.accountId, loginOrEmail: result.throttleKey ?? login, kind: result.kind } satisfies PendingMfa);
      }
      if (result.outcome === 'mfa_enrolment_required') {
        await savePending(details.uid, { accountId: result.accountId, loginOrEmail: result.throttleKey ?? login, kind: result.kind, enrol: result.reason } satisfies PendingMfa);
      }
      return answer(result, retry, INVALID_CREDENTIALS);
    });
  };
}
