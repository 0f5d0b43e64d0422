import { Type } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { contextOf, requireAuthenticated, requireStepUp } from '../../platform/http/auth.ts';
import { problems } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { playerOf } from './errors.ts';
import { MAX_CREDENTIALS, RegistrationResponse, type WebAuthnService } from './webauthn.ts';

// The signed-in player's passkeys and security keys over the API (a player's bearer
// token): register one (options, then the browser's response), list them, remove one.

const tags = ['identity'];
const bearer = [{ bearer: [] }];

const Credential = Type.Object(
  {
    id: Type.String({ description: 'The credential id (base64url), as the browser reports it.' }),
    name: Type.String(),
    deviceType: Type.Enum(['singleDevice', 'multiDevice'], { description: '`multiDevice`: a synced passkey; `singleDevice`: bound to one authenticator (a security key).' }),
    backedUp: Type.Boolean(),
    transports: Type.Array(Type.String()),
    aaguid: Type.String({ description: "The authenticator model's AAGUID (all zeros when it does not say)." }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'WebAuthnCredential' },
);

const CredentialParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{16,1400}$' }) });

const Options = Type.Object(
  {
    rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
    user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
    challenge: Type.String(),
    pubKeyCredParams: Type.Array(Type.Object({ type: Type.String(), alg: Type.Integer() })),
    timeout: Type.Optional(Type.Integer()),
    excludeCredentials: Type.Optional(Type.Array(Type.Object({ id: Type.String(), type: Type.String(), transports: Type.Optional(Type.Array(Type.String())) }))),
    authenticatorSelection: Type.Optional(
      Type.Object({
        authenticatorAttachment: Type.Optional(Type.String()),
        residentKey: Type.Optional(Type.String()),
        requireResidentKey: Type.Optional(Type.Boolean()),
        userVerification: Type.Optional(Type.String()),
      }),
    ),
    attestation: Type.Optional(Type.String()),
    extensions: Type.Optional(Type.Object({ credProps: Type.Optional(Type.Boolean()) })),
    hints: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'PublicKeyCredentialCreationOptionsJSON: pass to navigator.credentials.create (binary fields base64url; `PublicKeyCredential.parseCreationOptionsFromJSON` reads it).' },
);

export function webauthnRoutes(webauthn: WebAuthnService, labelOf: (playerId: string) => Promise<string>) {
  return async (app: HttpApp): Promise<void> => {
    app.addSchema(Credential);
    app.addSchema(RegistrationResponse);

    app.post(
      '/v1/identity/mfa/webauthn/registration/options',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Start registering a passkey or security key for the signed-in player: options for navigator.credentials.create.',
          description: `The challenge is kept for this account for 5 minutes and used once; asking again replaces it. User verification is required; the account's registered credentials are excluded. The ceremony must run on PUBLIC_URL's origin (the RP ID is its hostname). At most ${MAX_CREDENTIALS} credentials per account.`,
          security: bearer,
          response: { 200: Options, ...problems(401, 403, 409) },
        },
      },
      async (request, reply) => {
        const playerId = playerOf(request);
        return reply.header('cache-control', 'no-store').send(await webauthn.registrationOptions(playerId, await labelOf(playerId)));
      },
    );

    app.post(
      '/v1/identity/mfa/webauthn/registration/verify',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: "Finish registering a passkey or security key with the browser's response; from then on it is asked for at sign-in.",
          description:
            'A response that fails verification (wrong challenge or origin, no user verification) is refused with WEBAUTHN_RESPONSE_INVALID and changes nothing; a registered one uses the challenge up. A credential already registered (to any account) is refused.',
          security: bearer,
          body: Type.Object(
            {
              response: Type.Ref('WebAuthnRegistrationResponse'),
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '\\S', description: 'What the player calls it ("YubiKey", "Phone"). Default: Passkey or Security key.' })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Ref('WebAuthnCredential'), ...problems(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const playerId = playerOf(request);
        const body = request.body as { response: RegistrationResponseJSON; name?: string };
        const credential = await webauthn.register(contextOf(request), playerId, body.response, body.name?.trim());
        return reply.code(201).header('location', `/v1/identity/mfa/webauthn/credentials/${credential.id}`).send(credential);
      },
    );

    app.get(
      '/v1/identity/mfa/webauthn/credentials',
      {
        preHandler: requireAuthenticated,
        schema: {
          tags,
          summary: "The signed-in player's passkeys and security keys, oldest first.",
          security: bearer,
          response: { 200: Type.Object({ items: Type.Array(Type.Ref('WebAuthnCredential')) }), ...problems(401, 403) },
        },
      },
      async (request) => ({ items: await webauthn.list(playerOf(request)) }),
    );

    app.delete(
      '/v1/identity/mfa/webauthn/credentials/:id',
      {
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Remove one of the signed-in player\'s passkeys or security keys; it no longer signs in.',
          security: bearer,
          params: CredentialParams,
          response: { 204: Type.Null({ description: 'Removed.' }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await webauthn.remove(contextOf(request), playerOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );
  };
}
