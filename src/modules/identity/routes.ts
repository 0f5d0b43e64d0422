import middie from '@fastify/middie';
import { Type } from 'typebox';
import type { Cache } from '../../platform/cache/cache.ts';
import { contextOf, requireAuthenticated, requirePermission, requireStepUp } from '../../platform/http/auth.ts';
import { decodeCursor, encodeCursor, Page, PageQuery, problems } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { GRANT_TYPES, PERMISSIONS, type ClientService } from './clients.ts';
import type { ProviderHost } from './provider.ts';
import { playerOf } from './errors.ts';
import type { IdentityService } from './service.ts';
import { signInRoutes, type SignInMfaDeps } from './sign-in-routes.ts';
import type { TotpService } from './totp.ts';
import { accountRoutes, type AccountRouteDeps } from './account-routes.ts';
import { webauthnRoutes } from './webauthn-routes.ts';
import type { WebAuthnService } from './webauthn.ts';

const tags = ['identity'];
const bearer = [{ bearer: [] }];

const Client = Type.Object(
  {
    clientId: Type.String(),
    name: Type.String(),
    tokenEndpointAuthMethod: Type.Enum(['client_secret_basic', 'client_secret_post', 'none'], { description: '`none`: a public client (no secret, PKCE only).' }),
    grantTypes: Type.Array(Type.String()),
    redirectUris: Type.Array(Type.String()),
    postLogoutRedirectUris: Type.Array(Type.String()),
    scope: Type.String(),
    status: Type.Enum(['active', 'disabled']),
    accountKind: Type.Enum(['player', 'staff'], { description: '`staff`: a back-office client; its sign-in takes staff only, with mandatory MFA.' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'OAuthClient' },
);

const NewClient = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    grantTypes: Type.Array(Type.Enum(GRANT_TYPES), { minItems: 1, maxItems: 3, uniqueItems: true }),
    public: Type.Optional(Type.Boolean({ description: 'A browser or mobile app: no secret; PKCE protects its codes.' })),
    staff: Type.Optional(Type.Boolean({ description: 'A back-office client: staff sign in with their email (and mandatory MFA); players cannot.' })),
    redirectUris: Type.Optional(Type.Array(Type.String({ maxLength: 2000 }), { maxItems: 20 })),
    postLogoutRedirectUris: Type.Optional(Type.Array(Type.String({ maxLength: 2000 }), { maxItems: 20 })),
    scope: Type.Optional(
      Type.String({
        maxLength: 2000,
        description: 'Space-separated. Default for sign-in clients: "openid offline_access profile email api". For client credentials: the permissions the service gets (you must hold them).',
      }),
    ),
  },
  { additionalProperties: false },
);

const ClientId = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

/**
 * The identity module's HTTP surface: the OpenID Connect provider under its issuer's
 * path (through middie), the hosted sign-in page, and the client registry.
 */
export interface IdentityRouteDeps {
  readonly host: ProviderHost;
  readonly issuerPath: string;
  readonly clients: ClientService;
  readonly identity: IdentityService;
  readonly totp: TotpService;
  readonly webauthn: WebAuthnService;
  readonly cache: Cache;
  /** The label of a player's entry in their authenticator app (their login). */
  readonly labelOf: (playerId: string) => Promise<string>;
  /** Sessions, password and email changes, password reset (account-routes.ts). */
  readonly account?: AccountRouteDeps;
  /** SMS codes, enrolment during sign-in, staff clients. */
  readonly signInMfa?: SignInMfaDeps;
}

export function identityRoutes({ host, issuerPath, clients, identity, totp, webauthn, cache, labelOf, account, signInMfa }: IdentityRouteDeps) {
  return async (app: HttpApp): Promise<void> => {
    app.addSchema(Client);

    // The provider is a Koa app: middie runs it in this scope's onRequest hook, before
    // Fastify parses anything, for the routes below. They exist only so that requests
    // under the issuer path reach this scope; the provider answers every one of them.
    await app.register(middie);
    app.use(issuerPath, host.middleware());
    const delegated = { schema: { hide: true }, config: { ownAuthorization: true } };
    const unreachable = async () => {
      throw new Error('the OpenID Connect provider did not answer');
    };
    app.all(issuerPath, delegated, unreachable);
    app.all(`${issuerPath}/*`, delegated, unreachable);

    await app.register(signInRoutes(host, identity, cache, { totp, webauthn }, signInMfa));
    if (account) await app.register(accountRoutes(account));
    await app.register(webauthnRoutes(webauthn, labelOf));

    app.post(
      '/v1/identity/mfa/totp',
      {
        // A fresh sign-in (with the second factor once one exists): a stolen token must not add its own factor.
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Start enrolling an authenticator app (TOTP) for the signed-in player.',
          description:
            'Returns a new secret as an otpauth URI and as a QR code (SVG). It is not asked for at sign-in until confirmed with a first code (POST /v1/identity/mfa/totp/confirm). Starting again replaces an unconfirmed secret.',
          security: bearer,
          response: {
            201: Type.Object({
              secret: Type.String({ description: 'Base32, for apps that cannot scan the QR code.' }),
              otpauthUri: Type.String(),
              qrSvg: Type.String({ description: 'The otpauth URI as a QR code, an SVG document.' }),
            }),
            ...problems(401, 403, 409),
          },
        },
      },
      async (request, reply) => {
        const playerId = playerOf(request);
        return reply.code(201).header('cache-control', 'no-store').send(await totp.begin(playerId, await labelOf(playerId)));
      },
    );

    app.post(
      '/v1/identity/mfa/totp/confirm',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Confirm the authenticator app with a first code; returns ten single-use recovery codes, shown only here.',
          security: bearer,
          body: Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ recoveryCodes: Type.Array(Type.String(), { minItems: 10, maxItems: 10 }) }), ...problems(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const playerId = playerOf(request);
        const recoveryCodes = await totp.confirm(contextOf(request), playerId, request.body.code);
        return reply.header('cache-control', 'no-store').send({ recoveryCodes });
      },
    );

    app.post(
      '/v1/identity/clients',
      {
        preHandler: requirePermission(PERMISSIONS.manageClients),
        schema: {
          tags,
          summary: 'Register an OAuth2 client (staff with identity.clients.manage). The secret is shown once.',
          description:
            'A confidential client authenticates with client_secret_basic; a public one (`public: true`) has no secret. PKCE is required of every client. A service (client_credentials) gets its scopes as permissions, and only permissions its creator holds.',
          security: bearer,
          body: NewClient,
          response: {
            201: Type.Object({ client: Type.Ref('OAuthClient'), clientSecret: Type.Optional(Type.String({ description: 'Only in this response.' })) }),
            ...problems(400, 401, 403),
          },
        },
      },
      async (request, reply) => {
        const created = await clients.create(contextOf(request), request.body);
        return reply.code(201).header('location', `/v1/identity/clients/${created.client.clientId}`).send(created);
      },
    );

    app.get(
      '/v1/identity/clients',
      {
        preHandler: requirePermission(PERMISSIONS.readClients),
        schema: { tags, summary: 'List OAuth2 clients, newest first.', security: bearer, querystring: Type.Object(PageQuery), response: { 200: Page(Type.Ref('OAuthClient')), ...problems(400, 401, 403) } },
      },
      async (request) => {
        const limit = request.query.limit ?? 50;
        const items = await clients.list(contextOf(request), { limit, before: request.query.cursor ? decodeCursor(request.query.cursor) : undefined });
        return { items, nextCursor: items.length === limit ? encodeCursor(items[items.length - 1]!.clientId) : null };
      },
    );

    app.get(
      '/v1/identity/clients/:id',
      {
        preHandler: requirePermission(PERMISSIONS.readClients),
        schema: { tags, summary: 'One OAuth2 client (never its secret).', security: bearer, params: ClientId, response: { 200: Type.Ref('OAuthClient'), ...problems(401, 403, 404) } },
      },
      async (request) => clients.get(contextOf(request), request.params.id),
    );

    app.patch(
      '/v1/identity/clients/:id',
      {
        preHandler: requirePermission(PERMISSIONS.manageClients),
        schema: {
          tags,
          summary: 'Disable or re-enable a client. A disabled client gets no tokens and its refresh tokens stop working.',
          security: bearer,
          params: ClientId,
          body: Type.Object({ status: Type.Enum(['active', 'disabled']) }, { additionalProperties: false }),
          response: { 200: Type.Ref('OAuthClient'), ...problems(400, 401, 403, 404, 409) },
        },
      },
      async (request) => clients.setStatus(contextOf(request), request.params.id, request.body.status),
    );

    app.post(
      '/v1/identity/clients/:id/secret',
      {
        preHandler: requirePermission(PERMISSIONS.manageClients),
        schema: {
          tags,
          summary: "Rotate a confidential client's secret; the old one stops working at once.",
          security: bearer,
          params: ClientId,
          response: { 200: Type.Object({ clientId: Type.String(), clientSecret: Type.String() }), ...problems(401, 403, 404, 409) },
        },
      },
      async (request) => clients.rotateSecret(contextOf(request), request.params.id),
    );
  };
}
