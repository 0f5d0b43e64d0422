import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { contextOf, requireAuthenticated, requirePermission, requireStepUp } from '../../platform/http/auth.ts';
import { problems, Uuid } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { DomainError } from '../../platform/errors.ts';
import type { PlayerService } from '../players/index.ts';
import { fail } from './errors.ts';
import { acceptForms, sendPage } from './page-replies.ts';
import { messagePage } from './pages.ts';
import { RESET_PAGE_PATH, type PasswordService } from './passwords.ts';
import { resetPage } from './reset-pages.ts';
import { SESSION_PERMISSIONS, type SessionService } from './sessions.ts';

// The signed-in player's account security: sessions (devices), password and email
// changes; password reset (API and hosted page); staff access to a player's sessions.

const tags = ['identity'];
const bearer = [{ bearer: [] }];

const Session = Type.Object(
  {
    id: Type.String({ description: 'The session id (the `sid` claim of its access tokens).' }),
    current: Type.Boolean({ description: 'The session of the token that asked.' }),
    device: Type.Union([Type.String(), Type.Null()], { description: 'A label from the user agent of the sign-in ("Firefox on Windows").' }),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    sourceIp: Type.Union([Type.String(), Type.Null()], { description: 'The address of the sign-in.' }),
    clients: Type.Array(Type.String(), { description: 'OAuth clients authorized in this session.' }),
    acr: Type.Union([Type.String(), Type.Null()]),
    amr: Type.Array(Type.String()),
    signedInAt: Type.String({ format: 'date-time', description: 'The latest sign-in (password, and second factor) in this session.' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.String({ format: 'date-time', description: 'The latest sign-in, authorization or token refresh.' }),
    endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    endReason: Type.Union([
      Type.Enum(['signed_out', 'revoked', 'revoked_all', 'revoked_by_staff', 'password_changed', 'password_reset', 'idle_timeout', 'absolute_timeout']),
      Type.Null(),
    ]),
  },
  { $id: 'IdentitySession' },
);

const SessionsQuery = Type.Object({
  includeEnded: Type.Optional(Type.Boolean({ default: false, description: 'Ended sessions too (with when and why).' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
});
const SessionsAnswer = Type.Object({ items: Type.Array(Type.Ref('IdentitySession')) });
const SessionId = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' });
const RevokeAll = Type.Object(
  { keepCurrent: Type.Optional(Type.Boolean({ default: false, description: 'Keep the session of the token that asks (log out everywhere else).' })) },
  { additionalProperties: false },
);
const RevokedAll = Type.Object({ ended: Type.Integer({ minimum: 0, description: 'How many sessions ended.' }) });
const Password = Type.String({ minLength: 1, maxLength: 512 });

export interface AccountRouteDeps {
  readonly sessions: SessionService;
  readonly passwords: PasswordService;
  readonly players: PlayerService;
}

const playerOf = (request: FastifyRequest): { id: string; sid: string | null } => {
  const { principal } = request;
  if (principal.kind !== 'player') throw fail('PASSWORD_PLAYERS_ONLY');
  return { id: principal.id, sid: principal.sid ?? null };
};

export function accountRoutes({ sessions, passwords, players }: AccountRouteDeps) {
  return async (app: HttpApp): Promise<void> => {
    app.addSchema(Session);
    // The hosted reset page's form posts application/x-www-form-urlencoded (this plugin's routes only).
    acceptForms(app);

    // --- sessions of the signed-in player ---

    app.get(
      '/v1/identity/sessions',
      {
        preHandler: requireAuthenticated,
        schema: {
          tags,
          summary: "The signed-in player's sessions (devices): where and when they signed in, last use; the current one marked.",
          security: bearer,
          querystring: SessionsQuery,
          response: { 200: SessionsAnswer, ...problems(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const items = await sessions.list(contextOf(request), undefined, { includeEnded: request.query.includeEnded ?? false, limit: request.query.limit ?? 50 });
        return reply.header('cache-control', 'no-store').send({ items });
      },
    );

    app.delete(
      '/v1/identity/sessions/:id',
      {
        preHandler: requireAuthenticated,
        schema: {
          tags,
          summary: 'Sign one session out: its refresh tokens stop working at once, and so do its access tokens.',
          security: bearer,
          params: Type.Object({ id: SessionId }),
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        await sessions.revoke(contextOf(request), undefined, request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/v1/identity/sessions/revoke-all',
      {
        preHandler: requireAuthenticated,
        schema: {
          tags,
          summary: 'Log out everywhere: every session of the signed-in player ends, the current one too unless keepCurrent.',
          security: bearer,
          body: RevokeAll,
          response: { 200: RevokedAll, ...problems(400, 401, 403, 409) },
        },
      },
      async (request) => {
        const ctx = contextOf(request);
        let keep: string | null = null;
        if (request.body.keepCurrent === true) {
          keep = ctx.principal.kind === 'player' ? (ctx.principal.sid ?? null) : null;
          if (keep === null && ctx.principal.kind === 'player') throw fail('SESSION_CURRENT_UNKNOWN');
        }
        return { ended: await sessions.revokeAll(ctx, undefined, keep) };
      },
    );

    // --- staff, on a player's behalf ---

    const PlayerParams = Type.Object({ playerId: Uuid() });

    app.get(
      '/v1/identity/players/:playerId/sessions',
      {
        preHandler: requirePermission(SESSION_PERMISSIONS.read),
        schema: {
          tags,
          summary: "A player's sessions (staff with identity.sessions.read).",
          security: bearer,
          params: PlayerParams,
          querystring: SessionsQuery,
          response: { 200: SessionsAnswer, ...problems(400, 401, 403) },
        },
      },
      async (request) => ({
        items: await sessions.list(contextOf(request), request.params.playerId, { includeEnded: request.query.includeEnded ?? false, limit: request.query.limit ?? 50 }),
      }),
    );

    app.delete(
      '/v1/identity/players/:playerId/sessions/:id',
      {
        preHandler: requirePermission(SESSION_PERMISSIONS.manage),
        schema: {
          tags,
          summary: "End one of a player's sessions (staff with identity.sessions.manage).",
          security: bearer,
          params: Type.Object({ playerId: Uuid(), id: SessionId }),
          response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        await sessions.revoke(contextOf(request), request.params.playerId, request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/v1/identity/players/:playerId/sessions/revoke-all',
      {
        preHandler: requirePermission(SESSION_PERMISSIONS.manage),
        schema: {
          tags,
          summary: 'Sign a player out everywhere (staff with identity.sessions.manage).',
          security: bearer,
          params: PlayerParams,
          response: { 200: RevokedAll, ...problems(400, 401, 403) },
        },
      },
      async (request) => ({ ended: await sessions.revokeAll(contextOf(request), request.params.playerId, null) }),
    );

    // --- password and email of the signed-in player (step-up) ---

    app.put(
      '/v1/identity/password',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Change the password (the signed-in player, fresh sign-in required); every other session ends.',
          description:
            'The new password goes through the registration policy. The current session stays; every other one ends with its refresh tokens. A token that is not fresh enough is answered 401 STEP_UP_REQUIRED (see WWW-Authenticate).',
          security: bearer,
          body: Type.Object({ currentPassword: Password, newPassword: Password }, { additionalProperties: false }),
          response: { 200: Type.Object({ endedSessions: Type.Integer({ minimum: 0 }) }), ...problems(400, 401, 403, 409) },
        },
      },
      async (request) => {
        const player = playerOf(request);
        return passwords.change(contextOf(request), player.id, request.body.currentPassword, request.body.newPassword, player.sid);
      },
    );

    app.put(
      '/v1/identity/email',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Change the email address (the signed-in player, fresh sign-in required); it must not be another account’s.',
          security: bearer,
          body: Type.Object({ email: Type.String({ minLength: 3, maxLength: 320 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ email: Type.String() }), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const player = playerOf(request);
        const updated = await players.changeEmail(contextOf(request), player.id, request.body.email);
        return { email: updated.email };
      },
    );

    // --- password reset ---

    app.post(
      '/v1/identity/password/reset-requests',
      {
        schema: {
          tags,
          summary: 'Ask for a password reset link by login or email. The same answer whether an account exists or not.',
          description:
            'A known account gets an email with a single-use link valid for PASSWORD_RESET_TTL_SECONDS; a newer request replaces older links. Limited per account (silently) and per source address (429 RATE_LIMITED).',
          security: [],
          body: Type.Object({ login: Type.String({ minLength: 1, maxLength: 320, description: 'Login or email.' }) }, { additionalProperties: false }),
          response: { 202: Type.Object({ message: Type.String() }), ...problems(400, 429) },
        },
      },
      async (request, reply) => {
        await passwords.requestReset(contextOf(request), request.body.login);
        return reply.code(202).send({ message: 'If an account has this login or email, a link to reset its password is on its way.' });
      },
    );

    app.post(
      '/v1/identity/password/reset',
      {
        schema: {
          tags,
          summary: 'Set a new password with the token from a reset link; every session of the account ends.',
          security: [],
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }), newPassword: Password }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...problems(400, 410) },
        },
      },
      async (request, reply) => {
        await passwords.reset(contextOf(request), request.body.token, request.body.newPassword);
        return reply.code(204).send(null);
      },
    );

    // The hosted page the email links to. The token is the form's only authority: a
    // forged cross-site post has no token of its victim, so no other CSRF token is
    // needed; the page is no-store, unframeable and sends no Referer (the token is in its URL).
    const expiredPage = (error: DomainError) =>
      messagePage(
        error.code === 'PASSWORD_RESET_TOKEN_EXPIRED' ? 'Link expired' : 'Link not valid',
        `${error.title} You can ask for a new link from the sign-in page of the app.`,
      );
    const ResetForm = Type.Object({
      token: Type.Optional(Type.String({ maxLength: 200 })),
      password: Type.Optional(Type.String({ maxLength: 2000 })),
      confirm: Type.Optional(Type.String({ maxLength: 2000 })),
    });

    app.get(RESET_PAGE_PATH, { schema: { hide: true, querystring: Type.Object({ token: Type.Optional(Type.String({ maxLength: 200 })) }) } }, async (request, reply) => {
      const token = request.query.token ?? '';
      try {
        await passwords.checkToken(token);
      } catch (error) {
        if (error instanceof DomainError) return sendPage(reply, error.status, expiredPage(error));
        throw error;
      }
      return sendPage(reply, 200, resetPage({ action: RESET_PAGE_PATH, token }));
    });

    app.post(RESET_PAGE_PATH, { schema: { hide: true, body: ResetForm } }, async (request, reply) => {
      const token = request.body.token ?? '';
      const password = request.body.password ?? '';
      const again = (error: string) => sendPage(reply, 400, resetPage({ action: RESET_PAGE_PATH, token, error }));
      if (password === '') return again('Enter a new password.');
      if (password !== (request.body.confirm ?? '')) return again('The two passwords are not the same.');
      try {
        await passwords.reset(contextOf(request), token, password, '/body/password');
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        if (error.code === 'VALIDATION_FAILED') return again(error.errors?.map((e) => e.message).join(' ') ?? error.title);
        return sendPage(reply, error.status, expiredPage(error));
      }
      return sendPage(reply, 200, messagePage('Password changed', 'Your password has been changed and you have been signed out everywhere. Sign in again in the app with the new password.'));
    });
  };
}
