import { Type } from 'typebox';
import { contextOf, requirePermission } from '../../platform/http/auth.ts';
import { cursorId, Page, PageQuery, pageOf, problems, Uuid } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { PLAYER_STATUSES, PlayerStatus, TrafficSource } from './events.ts';
import { PERMISSIONS, type PlayerService } from './service.ts';

const tags = ['players'];

const Player = Type.Object(
  {
    id: Uuid('UUIDv7 player id.'),
    email: Type.String({ description: 'Masked unless the caller is the player or holds pii.read.' }),
    login: Type.String(),
    country: Type.String({ description: 'ISO 3166-1 alpha-2.' }),
    currency: Type.String({ description: 'ISO 4217.' }),
    dateOfBirth: Type.String({ description: 'YYYY-MM-DD; masked to the year unless the caller may see personal data.' }),
    status: PlayerStatus,
    trafficSource: TrafficSource,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    emailVerified: Type.Boolean({ description: 'The player confirmed the address with the link emailed to it.' }),
  },
  { $id: 'Player' },
);

const Registration = Type.Object(
  {
    email: Type.String({ minLength: 3, maxLength: 254 }),
    login: Type.String({ minLength: 3, maxLength: 32, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    country: Type.String({ pattern: '^[A-Za-z]{2}$', description: 'ISO 3166-1 alpha-2.' }),
    currency: Type.String({ pattern: '^[A-Za-z]{3}$', description: 'ISO 4217.' }),
    dateOfBirth: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD.' }),
    trafficSource: Type.Optional(TrafficSource),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: Uuid() });

export function playerRoutes(service: PlayerService) {
  return async (app: HttpApp): Promise<void> => {
    app.addSchema(Player);

    app.post(
      '/v1/players',
      {
        schema: {
          tags,
          summary: 'Register a player.',
          description:
            'Email is unique case-insensitively, login is unique. Password: at least 10 characters and not a common password; stored as argon2id. Minimum age is 18, or the country\'s own. All field errors come back together as VALIDATION_FAILED; a duplicate is 409 PLAYER_EMAIL_TAKEN or PLAYER_LOGIN_TAKEN. Nothing is written in either case.',
          body: Registration,
          response: { 201: Type.Ref('Player'), ...problems(400, 409, 415) },
        },
      },
      async (request, reply) => {
        const player = await service.register(contextOf(request), request.body);
        return reply.code(201).header('location', `/v1/players/${player.id}`).send(player);
      },
    );

    app.get(
      '/v1/players/:id',
      {
        schema: {
          tags,
          summary: 'A player: the player themself, or staff with players.read.',
          security: [{ bearer: [] }],
          params: IdParams,
          response: { 200: Type.Ref('Player'), ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => service.get(contextOf(request), request.params.id),
    );

    app.get(
      '/v1/players',
      {
        preHandler: requirePermission(PERMISSIONS.read),
        schema: {
          tags,
          summary: 'Search players (staff). Newest first, cursor-paginated.',
          security: [{ bearer: [] }],
          querystring: Type.Object(
            {
              ...PageQuery,
              country: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2}$' })),
              currency: Type.Optional(Type.String({ pattern: '^[A-Za-z]{3}$' })),
              status: Type.Optional(PlayerStatus),
              email: Type.Optional(Type.String({ maxLength: 254 })),
              login: Type.Optional(Type.String({ maxLength: 32 })),
              affiliateId: Type.Optional(Type.String({ maxLength: 100 })),
              registeredFrom: Type.Optional(Type.String({ format: 'date-time' })),
              registeredTo: Type.Optional(Type.String({ format: 'date-time' })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(Type.Ref('Player')), ...problems(400, 401, 403) },
        },
      },
      async (request) => {
        const q = request.query;
        const limit = q.limit ?? 50;
        const before = cursorId(q.cursor);
        const items = await service.list(contextOf(request), {
          limit,
          before,
          country: q.country?.toUpperCase(),
          currency: q.currency?.toUpperCase(),
          status: q.status,
          email: q.email,
          login: q.login,
          affiliateId: q.affiliateId,
          registeredFrom: q.registeredFrom ? new Date(q.registeredFrom) : undefined,
          registeredTo: q.registeredTo ? new Date(q.registeredTo) : undefined,
        });
        return pageOf(items, limit);
      },
    );

    app.put(
      '/v1/players/:id/status',
      {
        preHandler: requirePermission(PERMISSIONS.manage),
        schema: {
          tags,
          summary: "Change a player's status (staff with players.manage); audited, emits player.status_changed.",
          security: [{ bearer: [] }],
          params: IdParams,
          body: Type.Object({ status: PlayerStatus, reason: Type.String({ minLength: 3, maxLength: 500 }) }, { additionalProperties: false }),
          response: { 200: Type.Ref('Player'), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => service.changeStatus(contextOf(request), request.params.id, request.body.status, request.body.reason),
    );
  };
}

export { PLAYER_STATUSES };
