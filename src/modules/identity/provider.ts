import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Kysely } from 'kysely';
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { KeyStore } from '../../platform/auth/keys.ts';
import { ACCESS_TOKEN_AUDIENCE } from '../../platform/auth/tokens.ts';
import type { AccountKind, Accounts } from './accounts.ts';
import { clientSecretMatches } from './clients.ts';
import { adapterFactory } from './oidc-adapter.ts';
import { messagePage, signOutPage } from './pages.ts';
import { ACR, API_RESOURCE, API_SCOPE_METADATA, apiScopes, OIDC_SCOPES } from './scopes.ts';
import type { IdentityTables } from './store.ts';
import type { SessionSighting } from './sessions-store.ts';
import { deviceLabel } from './device.ts';

/** Where the provider sends the browser to sign in; the sign-in routes serve it. */
export const SIGN_IN_PATH = '/sign-in';

/** The longest an access token may live, whatever ACCESS_TOKEN_TTL_SECONDS says (the issue's 15 minutes). */
export const MAX_ACCESS_TOKEN_TTL = 900;

export interface TokenReuse {
  readonly token: 'refresh_token' | 'authorization_code';
  readonly clientId: string;
  readonly grantId: string | null;
  readonly accountId: string | null;
  readonly requestId: string | null;
  readonly sourceIp: string | null;
}

/** What the provider asks of identity's session records (sessions.ts) and second factors. */
export interface SessionHooks {
  /** A client was authorized in a session (after a sign-in in it, or silently). */
  record(sighting: SessionSighting): Promise<void>;
  /** May the session be used now (not ended, not past a timeout)? `use` counts it as activity. */
  usable(sessionId: string, options: { use: boolean }): Promise<boolean>;
  /** The player signed out of the session at the provider. */
  signedOut(sessionId: string, requestId: string | null, sourceIp: string | null): Promise<void>;
  hasSecondFactor(accountId: string): Promise<boolean>;
}

export interface ProviderOptions {
  readonly issuer: string;
  readonly db: Kysely<IdentityTables>;
  readonly keys: KeyStore;
  readonly accounts: Accounts;
  /** Keys that sign the provider's cookies, the same in every process. */
  readonly cookieKeys: () => Promise<string[]>;
  readonly accessTokenTtl: number;
  readonly refreshTokenTtl: number;
  readonly sessionTtl: number;
  /** Trust X-Forwarded-* (the platform's TRUST_PROXY). */
  readonly proxy: boolean;
  readonly logger: Logger;
  readonly onTokenReuse: (reuse: TokenReuse) => void;
  readonly sessions?: SessionHooks;
  /** Which accounts a client signs in: players (default) or staff. */
  readonly clientKind?: (clientId: string) => Promise<AccountKind>;
}

const page = (ctx: KoaContextWithOIDC, built: { html: string; headers: Readonly<Record<string, string>> }) => {
  ctx.set(built.headers);
  ctx.body = built.html;
};

function configuration(options: ProviderOptions, jwks: Configuration['jwks'], cookieKeys: string[]): Configuration {
  const { accounts } = options;
  const accessTokenTtl = Math.min(options.accessTokenTtl, MAX_ACCESS_TOKEN_TTL);
  return {
    adapter: adapterFactory(options.db),
    jwks,
    cookies: { keys: cookieKeys },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    extraClientMetadata: { properties: [API_SCOPE_METADATA] },
    clientDefaults: { id_token_signed_response_alg: 'ES256', grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
    // The platform's keys are ES256; no HMAC anywhere (client secrets are stored hashed, so they cannot be MAC keys).
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
      userinfoSigningAlgValues: ['ES256'],
      introspectionSigningAlgValues: ['ES256'],
      authorizationSigningAlgValues: ['ES256'],
      requestObjectSigningAlgValues: ['ES256'],
      clientAuthSigningAlgValues: ['ES256'],
    },
    // The authorization-code flow only: no implicit or hybrid tokens in the front channel.
    responseTypes: ['code'],
    scopes: [...OIDC_SCOPES],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'updated_at'],
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
    },
    acrValues: [ACR.password, ACR.mfa],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // A DPoP-bound token would reach the API's bearer check unbound: off until the API verifies proofs.
      dPoP: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => page(ctx, signOutPage(form, ctx.host)),
        postLogoutSuccessSource: async (ctx) => page(ctx, messagePage('Signed out', 'You have signed out. You can close this page.')),
      },
      resourceIndicators: {
        enabled: true,
        // Clients need not know resource indicators: what they ask for is for the Pitboss API.
        defaultResource: async () => API_RESOURCE,
        // A token request that names no scopes gets the API token it was granted; naming
        // `scope=openid ...` on a refresh gets an access token for the userinfo endpoint.
        useGrantedResource: async (ctx) => ctx.oidc.params?.scope === undefined,
        getResourceServerInfo: async (_ctx, indicator, client) => {
          if (indicator !== API_RESOURCE) throw new errors.InvalidTarget(`unknown resource indicator; use ${API_RESOURCE}`);
          return {
            scope: typeof client[API_SCOPE_METADATA] === 'string' ? client[API_SCOPE_METADATA] : '',
            audience: ACCESS_TOKEN_AUDIENCE,
            accessTokenTTL: accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    // The claims every resource server's TokenService reads: who (kind, and permissions
    // for staff and services) and how they authenticated (auth_time, acr, amr).
    extraTokenClaims: async (ctx, token) => {
      if (token.kind === 'ClientCredentials') {
        return {
          kind: 'service',
          perm: apiScopes(token.scope),
          auth_time: token.iat ?? Math.floor(Date.now() / 1000),
          acr: ACR.client,
          amr: [ctx.oidc.client?.clientAuthMethod ?? 'client_secret_basic'],
        };
      }
      const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
      // `sid`: the Pitboss session id (the provider session's uid), which the session list marks as current.
      // Staff tokens carry their roles' permissions as they are now (a refresh picks up a changed role).
      const account = token.accountId ? await accounts.find(token.accountId) : undefined;
      if (account?.kind === 'staff') return { kind: 'staff', perm: [...(account.permissions ?? [])], auth_time: source?.authTime, acr: source?.acr, amr: source?.amr, sid: source?.sessionUid };
      return { kind: 'player', auth_time: source?.authTime, acr: source?.acr, amr: source?.amr, sid: source?.sessionUid };
    },
    findAccount: async (_ctx, sub, token) => {
      // A refresh is refused (invalid_grant) once its session has ended or timed out; it counts as use.
      if (options.sessions && token?.kind === 'RefreshToken' && typeof token.sessionUid === 'string') {
        if (!(await options.sessions.usable(token.sessionUid, { use: true }))) return undefined;
      }
      const account = await accounts.find(sub);
      if (!account) return undefined;
      return { accountId: account.id, claims: async () => ({ sub: account.id, ...account.claims }) };
    },
    // Every registered client is the casino's own (first party), registered by staff with
    // its scopes: what it asks for within them is granted without a consent screen.
    loadExistingGrant: async (ctx) => {
      const { client, session, account, provider } = ctx.oidc;
      if (!client || !session || !account) return undefined;
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      let grant = grantId ? await provider.Grant.find(grantId) : undefined;
      if (grant && (grant.accountId !== account.accountId || grant.clientId !== client.clientId)) grant = undefined;
      grant ??= new provider.Grant({ clientId: client.clientId, accountId: account.accountId });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
        const allowed = new Set(server.scope.split(' '));
        const asked = [...ctx.oidc.requestParamScopes].filter((s) => allowed.has(s));
        if (asked.length > 0) grant.addResourceScope(indicator, asked.join(' '));
      }
      const savedGrantId = await grant.save();
      if (options.sessions) {
        const userAgent = ctx.get('user-agent') || null;
        const login = ctx.oidc.result?.login;
        await options.sessions.record({
          id: session.uid,
          accountId: account.accountId,
          clientId: client.clientId,
          grantId: savedGrantId ?? null,
          userAgent: userAgent?.slice(0, 500) ?? null,
          device: deviceLabel(userAgent),
          sourceIp: ctx.ip,
          signedIn: login ? { at: new Date((session.loginTs ?? Math.floor(Date.now() / 1000)) * 1000), acr: session.acr ?? null, amr: session.amr ?? [] } : null,
        });
      }
      return grant;
    },
    interactions: { policy: policy(options), url: async (_ctx, interaction) => `${SIGN_IN_PATH}/${interaction.uid}` },
    renderError: async (ctx, out) => {
      page(ctx, messagePage('Sign-in failed', `${out.error}${out.error_description ? `: ${out.error_description}` : ''}. Go back to the app and try again.`));
    },
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 1800,
      Session: options.sessionTtl,
      // A refresh token family lives OIDC_REFRESH_TOKEN_TTL_SECONDS from sign-in: rotation
      // does not extend it.
      RefreshToken: (ctx) => ctx?.oidc.entities.RotatedRefreshToken?.remainingTTL ?? options.refreshTokenTtl,
      // A grant outlives every refresh token family started during its session.
      Grant: options.refreshTokenTtl + options.sessionTtl,
    },
  };
}

const { Check } = interactionPolicy;

/**
 * The provider's sign-in prompt, with two more reasons to ask for the password:
 * the browser's session has ended (revoked, signed out elsewhere, past its idle or
 * absolute timeout), and `acr_values` asks for two factors (a step-up) that the
 * session's sign-in did not have while the account has a second factor. `max_age` and
 * `prompt=login` are the provider's own checks.
 */
function policy(options: ProviderOptions) {
  const prompts = interactionPolicy.base();
  const login = prompts.get('login')!;
  const { clientKind, accounts } = options;
  // A session of the wrong kind of account for the client (a staff member's session at a
  // player app, or the reverse) asks for a sign-in again instead of issuing tokens for it.
  if (clientKind) {
    login.checks.add(
      new Check('account_kind', 'The signed-in account is not one this client serves', 'login_required', async (ctx) => {
        const { session, client } = ctx.oidc;
        if (!session?.accountId || !client) return Check.NO_NEED_TO_PROMPT;
        const account = await accounts.find(session.accountId);
        return account?.kind === (await clientKind(client.clientId)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
      }),
    );
  }
  const hooks = options.sessions;
  if (!hooks) return prompts;
  login.checks.add(
    new Check('session_ended', 'The sign-in session has ended', 'login_required', async (ctx) => {
      const { session } = ctx.oidc;
      if (!session?.accountId || ctx.oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      if (await hooks.usable(session.uid, { use: true })) return Check.NO_NEED_TO_PROMPT;
      // The browser starts a new session: this one's record stays ended, and the sign-in
      // that follows gets a new session id (and no grant of the old one).
      for (const key of ['accountId', 'loginTs', 'acr', 'amr', 'transient'] as const) delete (session as unknown as Record<string, unknown>)[key];
      session.authorizations = {};
      session.uid = randomUUID();
      return Check.REQUEST_PROMPT;
    }),
    0,
  );
  login.checks.add(
    new Check('acr_2fa', 'Two factors were asked for (acr_values)', 'login_required', async (ctx) => {
      const { session, params } = ctx.oidc;
      const asked = typeof params?.acr_values === 'string' ? params.acr_values.split(' ') : [];
      if (!asked.includes(ACR.mfa) || !session?.accountId || ctx.oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      if (session.acr === ACR.mfa) return Check.NO_NEED_TO_PROMPT;
      return (await hooks.hasSecondFactor(session.accountId)) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  return prompts;
}

/** Builds a provider signing with the platform's current keys. */
async function build(options: ProviderOptions): Promise<Provider> {
  const jwks = await options.keys.signingJwks();
  const provider = new Provider(options.issuer, configuration(options, { keys: jwks }, await options.cookieKeys()));
  provider.proxy = options.proxy;
  // Client secrets are stored as SHA-256 hashes; the provider compares what the client presents against the hash.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return clientSecretMatches(this.clientSecret, actual);
  };
  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error_detail?: string }) => {
    const detail = error.error_detail ?? '';
    const reused = /refresh token already used|RefreshToken already used/.test(detail)
      ? 'refresh_token'
      : /authorization code already consumed|AuthorizationCode already used/.test(detail)
        ? 'authorization_code'
        : undefined;
    if (!reused || !ctx.oidc.client) return;
    const token = ctx.oidc.entities.RefreshToken;
    options.onTokenReuse({
      token: reused,
      clientId: ctx.oidc.client.clientId,
      grantId: token?.grantId ?? null,
      accountId: token?.accountId ?? null,
      requestId: (ctx.req as IncomingMessage & { id?: string }).id ?? null,
      sourceIp: ctx.ip,
    });
  });
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const uid = ctx.oidc.session?.uid;
    if (!uid || !options.sessions) return;
    const requestId = (ctx.req as IncomingMessage & { id?: string }).id ?? null;
    options.sessions.signedOut(uid, requestId, ctx.ip).catch((err: unknown) => options.logger.error({ err }, 'recording a sign-out failed'));
  });
  provider.on('server_error', (_ctx: KoaContextWithOIDC, err: Error) => options.logger.error({ err }, 'OpenID Connect provider error'));
  return provider;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * The provider, rebuilt when the platform's keys change: it takes its key set at
 * construction, while the key store rotates. The rebuilt provider signs with the new
 * key and still publishes the retired ones until their tokens expire. All its state is
 * in the database, so a rebuild loses nothing.
 */
export class ProviderHost {
  readonly #options: ProviderOptions;
  #current: { provider: Provider; handler: Handler; keys: string } | undefined;
  #building: Promise<{ provider: Provider; handler: Handler; keys: string }> | undefined;

  constructor(options: ProviderOptions) {
    this.#options = options;
  }

  // Both key store calls are answered from memory almost always (the current key until
  // it retires, the published set for ten seconds), so every request can ask.
  async #instance() {
    const signing = await this.#options.keys.signingKey();
    const published = await this.#options.keys.jwks();
    const keys = [signing.kid, ...published.keys.map((k) => String(k.kid))].join(' ');
    if (this.#current?.keys === keys) return this.#current;
    this.#building ??= build(this.#options)
      .then((provider) => {
        this.#current = { provider, handler: provider.callback(), keys };
        return this.#current;
      })
      .finally(() => {
        this.#building = undefined;
      });
    return this.#building;
  }

  async provider(): Promise<Provider> {
    return (await this.#instance()).provider;
  }

  /** Connect-style middleware for @fastify/middie. */
  middleware(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return (req, res, next) => {
      // Koa answers its own errors; a failure here is building the provider (the database).
      this.#instance()
        .then(({ handler }) => handler(req, res))
        .catch((err: unknown) => next(err));
    };
  }
}
