import { Type } from 'typebox';
import { DomainError } from '../../platform/errors.ts';
import { contextOf, requireAuthenticated } from '../../platform/http/auth.ts';
import { problems } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { fail } from './errors.ts';
import { LINK_TTL_HOURS, RESEND_AFTER_SECONDS, TOKEN_PATTERN, VERIFY_PATH, type EmailVerificationService } from './email-verification.ts';
import { sendPage } from './page-replies.ts';
import { confirmEmailPage, messagePage } from './pages.ts';

const tags = ['identity'];
const bearer = [{ bearer: [] }];

/**
 * Email verification: the signed-in player asks for a link; the link opens a page at
 * VERIFY_PATH whose button (a POST) verifies. A GET never verifies: mail scanners open
 * links before people do. Apps that handle the link themselves POST the token to the API.
 */
export function emailVerificationRoutes(service: EmailVerificationService) {
  return async (app: HttpApp): Promise<void> => {
    app.post(
      '/v1/identity/email-verification',
      {
        preHandler: requireAuthenticated,
        schema: {
          tags,
          summary: 'Email the signed-in player a link that verifies their address.',
          description: `The link works once and expires in ${LINK_TTL_HOURS} hours; a new one can be asked for ${RESEND_AFTER_SECONDS} s after the last (429 EMAIL_VERIFICATION_TOO_SOON with Retry-After).`,
          security: bearer,
          response: {
            202: Type.Object({ sentTo: Type.String({ description: 'The address, masked.' }), expiresAt: Type.String({ format: 'date-time' }), resendAfter: Type.String({ format: 'date-time' }) }),
            ...problems(401, 403, 409, 429, 502),
          },
        },
      },
      async (request, reply) => {
        if (request.principal.kind !== 'player') throw fail('MFA_PLAYERS_ONLY');
        try {
          return reply.code(202).send(await service.request(contextOf(request), request.principal.id));
        } catch (error) {
          if (error instanceof DomainError && typeof error.extra?.retryAfter === 'number') reply.header('retry-after', String(error.extra.retryAfter));
          throw error;
        }
      },
    );

    app.post(
      '/v1/identity/email-verification/confirm',
      {
        schema: {
          tags,
          summary: 'Verify an email address with the token of its link (for apps that open the link themselves).',
          body: Type.Object({ token: Type.String({ pattern: TOKEN_PATTERN }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ emailVerified: Type.Literal(true) }), ...problems(400, 409) },
        },
      },
      async (request) => {
        await service.verify(contextOf(request), request.body.token);
        return { emailVerified: true as const };
      },
    );

    // The link's page, in its own scope: the button posts an (empty) HTML form.
    await app.register(async (scope: HttpApp) => {
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 }, (_request, _body, done) => done(null, {}));
      const schema = { hide: true, params: Type.Object({ token: Type.String({ maxLength: 100 }) }) };
      const invalid = () => messagePage('Link not valid', 'This link is not valid: it was already used, has expired, or was copied incompletely. Ask for a new one in the app.');

      scope.get(`${VERIFY_PATH}/:token`, { schema }, async (request, reply) => {
        const valid = new RegExp(TOKEN_PATTERN).test(request.params.token);
        const built = valid ? confirmEmailPage(`${VERIFY_PATH}/${request.params.token}`) : invalid();
        return sendPage(reply, valid ? 200 : 400, built);
      });

      scope.post(`${VERIFY_PATH}/:token`, { schema }, async (request, reply) => {
        try {
          await service.verify(contextOf(request), request.params.token);
          return sendPage(reply, 200, messagePage('Email address confirmed', 'Thank you: your email address is confirmed. You can close this page.'));
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          const page =
            error.code === 'EMAIL_VERIFICATION_STALE'
              ? messagePage('Link out of date', 'This link was sent to an address that is no longer on your account. Ask for a new one in the app.')
              : invalid();
          return sendPage(reply, error.status, page);
        }
      });
    });
  };
}
