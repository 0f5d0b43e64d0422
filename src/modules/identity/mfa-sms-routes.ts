import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { contextOf, requireAuthenticated, requireStepUp } from '../../platform/http/auth.ts';
import { problems } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { DomainError } from '../../platform/errors.ts';
import { playerOf } from './errors.ts';
import { CODE_TTL_SECONDS, MAX_ATTEMPTS, RESEND_AFTER_SECONDS, type SmsService } from './sms.ts';

const tags = ['identity'];
const bearer = [{ bearer: [] }];

const SentCode = Type.Object({
  phone: Type.String({ description: 'The number, masked (personal data).' }),
  expiresAt: Type.String({ format: 'date-time' }),
  resendAfter: Type.String({ format: 'date-time', description: 'No new code is sent before this.' }),
});

const Status = Type.Object({
  enabled: Type.Boolean(),
  phone: Type.Union([Type.String(), Type.Null()], { description: 'Masked.' }),
  pending: Type.Boolean({ description: 'A number waits for confirmation with its code.' }),
});

/** A throttled resend answers 429 with Retry-After as well as `retryAfter` in the problem. */
async function withRetryAfter<T>(reply: FastifyReply, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof DomainError && typeof error.extra?.retryAfter === 'number') reply.header('retry-after', String(error.extra.retryAfter));
    throw error;
  }
}

/** The signed-in player's SMS second factor: enrol a number, confirm it, read it, remove it. */
export function smsRoutes(sms: SmsService) {
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/v1/identity/mfa/sms',
      {
        preHandler: requireAuthenticated,
        schema: { tags, summary: "The signed-in player's SMS second factor (the number masked).", security: bearer, response: { 200: Status, ...problems(401, 403) } },
      },
      async (request, reply) => reply.header('cache-control', 'no-store').send(await sms.status(playerOf(request))),
    );

    app.post(
      '/v1/identity/mfa/sms',
      {
        // A fresh sign-in (with the second factor once one exists): a stolen token must not add its own factor.
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Start enrolling a phone number for SMS codes: a 6-digit code is sent to it.',
          description: `The number must be E.164 (\`+447700900123\`). The code expires in ${CODE_TTL_SECONDS / 60} minutes and dies after ${MAX_ATTEMPTS} wrong tries; a new one can be asked for ${RESEND_AFTER_SECONDS} s after the last (429 MFA_SMS_RESEND_TOO_SOON with Retry-After). Starting again replaces an unconfirmed number.`,
          security: bearer,
          body: Type.Object({ phone: Type.String({ minLength: 1, maxLength: 20 }) }, { additionalProperties: false }),
          response: { 202: SentCode, ...problems(400, 401, 403, 409, 429, 502) },
        },
      },
      async (request, reply) => {
        const playerId = playerOf(request);
        const sent = await withRetryAfter(reply, () => sms.begin(contextOf(request), playerId, request.body.phone.trim()));
        return reply.code(202).header('cache-control', 'no-store').send(sent);
      },
    );

    app.post(
      '/v1/identity/mfa/sms/confirm',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Confirm the phone number with the code sent to it; from then on sign-in may ask for an SMS code.',
          security: bearer,
          body: Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false }),
          response: { 200: Status, ...problems(400, 401, 403, 409) },
        },
      },
      async (request) => sms.confirm(contextOf(request), playerOf(request), request.body.code),
    );

    app.delete(
      '/v1/identity/mfa/sms',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: { tags, summary: 'Remove the phone number (enrolled or pending) as a second factor.', security: bearer, response: { 204: Type.Null(), ...problems(401, 403, 404) } },
      },
      async (request, reply) => {
        await sms.remove(contextOf(request), playerOf(request));
        return reply.code(204).send(null);
      },
    );
  };
}
