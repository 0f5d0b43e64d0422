import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import * as oidc from 'openid-client';
import { sql } from 'kysely';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { Browser, field, formAction, freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi, type NewClient } from './index.ts';

const REDIRECT = 'https://game.casino.test/callback';
const OTHER_REDIRECT = 'https://game.casino.test/other';
const AFTER_LOGOUT = 'https://game.casino.test/bye';

/** The error a failed openid-client call carries from the server (`invalid_grant`, ...). */
async function oauthError(promise: Promise<unknown>): Promise<{ error: string; description: string | undefined }> {
  try {
    await promise;
  } catch (e) {
    // A token endpoint error body, or a 401's WWW-Authenticate challenge.
    const error = e as { error?: string; error_description?: string; cause?: { parameters?: { error?: string; error_description?: string } }[] };
    const challenge = Array.isArray(error.cause) ? error.cause[0]?.parameters : undefined;
    return { error: error.error ?? challenge?.error ?? String(e), description: error.error_description ?? challenge?.error_description };
  }
  assert.fail('expected the request to fail');
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`OpenID Connect provider, as a client sees it (${kind})`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let issuer: string;
    let identity: IdentityApi;
    let jwks: ReturnType<typeof createRemoteJWKSet>;
    let player: { id: string; login: string; email: string; password: string };

    const api = (path: string, token: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const client = (input: Partial<NewClient> & Pick<NewClient, 'grantTypes'>) => identity.clients.create(systemContext('test'), { name: 'Test client', ...input });
    const insecure = { execute: [oidc.allowInsecureRequests] };

    /** A player client (confidential unless `public`) and its openid-client configuration. */
    async function playerClient(options: { public?: boolean } = {}) {
      const created = await client({
        grantTypes: ['authorization_code', 'refresh_token'],
        redirectUris: [REDIRECT, OTHER_REDIRECT],
        postLogoutRedirectUris: [AFTER_LOGOUT],
        public: options.public,
      });
      const auth = options.public ? oidc.None() : oidc.ClientSecretBasic(created.clientSecret);
      const config = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, auth, insecure);
      return { id: created.client.clientId, config };
    }

    /** Starts an authorization request with PKCE; returns where the browser goes and the checks. */
    async function authorize(config: oidc.Configuration, extra: Record<string, string> = {}) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid offline_access profile email api',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        // OpenID Connect grants offline_access (a refresh token) only with prompt=consent.
        prompt: 'consent',
        state,
        ...extra,
      });
      return { url, verifier, state };
    }

    /** Drives the hosted sign-in page: GET the authorization URL, fill the form, follow to the redirect URI. */
    async function signIn(browser: Browser, url: URL, login: string, password: string): Promise<URL> {
      const page = await browser.follow(url.href, REDIRECT);
      assert.equal(page.status, 200, page.body);
      assert.match(page.url, /\/sign-in\/[\w-]+$/);
      const action = formAction(page.body);
      assert.ok(action);
      const done = await browser.follow(new URL(action, base).href, REDIRECT, { form: { login, password } });
      assert.ok(done.location?.startsWith(REDIRECT), `expected a redirect to the client, got ${done.status} ${done.location ?? ''}\n${done.body.slice(0, 500)}`);
      return new URL(done.location!);
    }

    async function codeFlow(config: oidc.Configuration, browser = new Browser()) {
      const { url, verifier, state } = await authorize(config);
      const callback = await signIn(browser, url, player.login, player.password);
      const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
      return { tokens, callback, verifier, state, browser };
    }

    const verifyAccessToken = (token: string) => jwtVerify(token, jwks, { issuer, audience: 'pitboss', algorithms: ['ES256'], typ: 'at+jwt' });

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, { PUBLIC_URL: base });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      issuer = identity.issuer;
      jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201, await res.clone().text());
      player = { id: ((await res.json()) as { id: string }).id, login: String(body.login), email: String(body.email), password: String(body.password) };
    });
    after(async () => app?.close());

    it('discovery: issuer under PUBLIC_URL, code flow with S256 PKCE only, ES256, and the same keys as the platform JWKS', async () => {
      assert.equal(issuer, `${base}/oidc`);
      const { config } = await playerClient();
      const meta = config.serverMetadata();
      assert.equal(meta.issuer, issuer);
      assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
      assert.deepEqual(meta.response_types_supported, ['code']);
      assert.deepEqual(meta.id_token_signing_alg_values_supported, ['ES256']);
      for (const endpoint of ['token_endpoint', 'userinfo_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'end_session_endpoint', 'jwks_uri'] as const) {
        assert.ok(meta[endpoint]?.startsWith(`${issuer}/`), endpoint);
      }
      const provider = (await (await fetch(meta.jwks_uri!)).json()) as { keys: { kid: string; d?: string }[] };
      const platform = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      assert.deepEqual(provider.keys.map((k) => k.kid).sort(), platform.keys.map((k) => k.kid).sort());
      assert.ok(provider.keys.every((k) => k.d === undefined), 'no private key material is published');
      // Development interactions are off: the provider has no built-in login pages.
      assert.equal((await fetch(`${issuer}/interaction/anything`)).status, 404);
    });

    it('client credentials: a service gets a short-lived ES256 JWT with its scopes as permissions, which the API accepts', async () => {
      const created = await client({ grantTypes: ['client_credentials'], scope: 'players.read' });
      const config = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.ClientSecretBasic(created.clientSecret), insecure);
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'players.read' });
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.expires_in! <= 900);
      const { payload, protectedHeader } = await verifyAccessToken(tokens.access_token);
      assert.equal(protectedHeader.alg, 'ES256');
      assert.equal(payload.sub, created.client.clientId);
      assert.equal(payload.scope, 'players.read');
      assert.equal(payload.kind, 'service');
      assert.deepEqual(payload.perm, ['players.read']);
      assert.equal(payload.acr, 'urn:pitboss:acr:client');
      assert.deepEqual(payload.amr, ['client_secret_basic']);
      assert.equal(typeof payload.auth_time, 'number');
      assert.ok(payload.exp! - payload.iat! <= 900);
      assert.equal((await api('/v1/players?limit=1', tokens.access_token)).status, 200);
      // A permission it was not given stays closed.
      assert.equal((await api(`/v1/players/${player.id}/balance`, tokens.access_token)).status, 403);
      // A scope outside its registration is not granted.
      const narrowed = await oidc.clientCredentialsGrant(config, { scope: 'players.read players.manage' });
      assert.deepEqual((await verifyAccessToken(narrowed.access_token)).payload.perm, ['players.read']);
      // A wrong secret is refused (the registry keeps only its hash).
      const wrong = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.ClientSecretBasic('not-the-secret'), insecure);
      assert.equal((await oauthError(oidc.clientCredentialsGrant(wrong))).error, 'invalid_client');
      const stored = await sql<{ secret_hash: string }>`select secret_hash from identity.clients where id = ${created.client.clientId}`.execute(app.server.runtime.database.db);
      assert.notEqual(stored.rows[0]!.secret_hash, created.clientSecret);
      assert.match(stored.rows[0]!.secret_hash, /^[0-9a-f]{64}$/);
    });

    it('authorization code + PKCE: the player signs in on the hosted page and gets an API token, an ID token and a refresh token', async () => {
      const { config } = await playerClient();
      const { tokens } = await codeFlow(config);
      const { payload } = await verifyAccessToken(tokens.access_token);
      assert.equal(payload.sub, player.id);
      assert.equal(payload.kind, 'player');
      assert.equal(payload.scope, 'api');
      assert.equal(payload.acr, 'urn:pitboss:acr:1fa');
      assert.deepEqual(payload.amr, ['pwd']);
      assert.ok(Math.abs((payload.auth_time as number) - Date.now() / 1000) < 60);
      assert.ok(payload.exp! - payload.iat! <= 900);
      // The API trusts it as the player: their own record, nobody else's.
      const self = await api(`/v1/players/${player.id}`, tokens.access_token);
      assert.equal(self.status, 200);
      assert.equal(((await self.json()) as { email: string }).email, player.email.trim());
      // openid-client validated the ID token (issuer, audience, signature, nonce-free code flow).
      const claims = tokens.claims()!;
      assert.equal(claims.sub, player.id);
      assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'ES256');
      assert.ok(tokens.refresh_token, JSON.stringify(tokens));
    });

    it('a public client (no secret) completes the same flow with PKCE', async () => {
      const { config } = await playerClient({ public: true });
      const { tokens } = await codeFlow(config);
      assert.equal((await verifyAccessToken(tokens.access_token)).payload.sub, player.id);
    });

    it('refresh rotates the refresh token; a reused one revokes the whole family, audited and emitted', async () => {
      const { config, id } = await playerClient();
      const { tokens } = await codeFlow(config);
      const first = tokens.refresh_token!;
      const second = await oidc.refreshTokenGrant(config, first);
      assert.ok(second.refresh_token && second.refresh_token !== first);
      const { payload } = await verifyAccessToken(second.access_token);
      assert.equal(payload.sub, player.id);
      assert.deepEqual(payload.amr, ['pwd'], 'a refreshed token keeps how the player authenticated');
      // With scope=openid... the refresh gets a token for the userinfo endpoint.
      const third = await oidc.refreshTokenGrant(config, second.refresh_token, { scope: 'openid email profile' });
      const info = await oidc.fetchUserInfo(config, third.access_token, player.id);
      assert.equal(info.email, player.email.trim());
      assert.equal(info.preferred_username, player.login);
      // Replaying the first refresh token: refused, and the live one dies with it.
      const replay = await oauthError(oidc.refreshTokenGrant(config, first));
      assert.equal(replay.error, 'invalid_grant');
      assert.equal((await oauthError(oidc.refreshTokenGrant(config, third.refresh_token!))).error, 'invalid_grant');
      assert.equal((await oidc.tokenIntrospection(config, third.refresh_token!)).active, false);
      const db = app.server.runtime.database.db;
      for (let i = 0; i < 50; i++) {
        const rows = await sql<{ n: bigint }>`select count(*)::int8 as n from platform.audit_log where action = 'identity.token.reuse_detected' and target_id = ${id}`.execute(db);
        if (Number(rows.rows[0]!.n) > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const event = await sql<{ payload: { token: string; accountId: string } }>`select payload from platform.outbox where type = 'identity.token.reuse_detected' and payload->>'clientId' = ${id}`.execute(db);
      assert.equal(event.rows.length, 1);
      assert.equal(event.rows[0]!.payload.token, 'refresh_token');
      assert.equal(event.rows[0]!.payload.accountId, player.id);
    });

    it('introspection and revocation of refresh tokens; JWT access tokens are not introspected', async () => {
      const { config, id } = await playerClient();
      const { tokens } = await codeFlow(config);
      const live = await oidc.tokenIntrospection(config, tokens.refresh_token!);
      assert.equal(live.active, true);
      assert.equal(live.sub, player.id);
      assert.equal(live.client_id, id);
      assert.ok(live.scope?.split(' ').includes('offline_access'));
      // JWT access tokens are verified locally against the JWKS; the provider does not introspect them.
      assert.equal((await oauthError(oidc.tokenIntrospection(config, tokens.access_token))).error, 'unsupported_token_type');
      await oidc.tokenRevocation(config, tokens.refresh_token!);
      assert.equal((await oidc.tokenIntrospection(config, tokens.refresh_token!)).active, false);
      assert.equal((await oauthError(oidc.refreshTokenGrant(config, tokens.refresh_token!))).error, 'invalid_grant');
      // Another client cannot learn about this client's tokens by revoking them.
      const other = await playerClient();
      const again = await codeFlow(config);
      await oidc.tokenRevocation(other.config, again.tokens.refresh_token!).catch(() => undefined);
      assert.equal((await oidc.tokenIntrospection(config, again.tokens.refresh_token!)).active, true);
    });

    it('end-session signs the player out: the next authorization asks for the password again', async () => {
      const { config } = await playerClient();
      const { tokens, browser } = await codeFlow(config);
      // Still signed in: a second authorization goes straight back to the client.
      const silent = await authorize(config);
      assert.ok((await browser.follow(silent.url.href, REDIRECT)).location?.startsWith(REDIRECT));
      const end = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: AFTER_LOGOUT });
      const confirm = await browser.request(end.href);
      assert.equal(confirm.status, 200);
      assert.match(confirm.body, /Sign out/);
      const xsrf = field(confirm.body, 'xsrf');
      assert.ok(xsrf);
      const out = await browser.request(new URL(formAction(confirm.body)!, base).href, { form: { xsrf, logout: 'yes' } });
      assert.equal(out.status, 303);
      assert.ok(out.location?.startsWith(AFTER_LOGOUT));
      const next = await authorize(config);
      const page = await browser.follow(next.url.href, REDIRECT);
      assert.equal(page.status, 200);
      assert.match(page.url, /\/sign-in\//);
    });

    describe('the sign-in page', () => {
      it('is accessible HTML with no external assets, scripts or framing', async () => {
        const { config } = await playerClient();
        const { url } = await authorize(config);
        const page = await new Browser().follow(url.href, REDIRECT);
        assert.equal(page.status, 200);
        assert.match(page.body, /<html lang="en">/);
        assert.match(page.body, /<main>/);
        assert.match(page.body, /<label for="login">/);
        assert.match(page.body, /<input type="text" id="login" name="login" autocomplete="username"/);
        assert.match(page.body, /<label for="password">/);
        assert.match(page.body, /autocomplete="current-password"/);
        assert.doesNotMatch(page.body, /<script|https?:\/\/[^"]*\.(css|js)|@import|<link/);
        const res = await fetch(page.url, { headers: { cookie: '' } });
        assert.equal(res.status, 400, 'without its interaction cookie the page is a dead end');
      });

      it('gives the same answer for an unknown account and a wrong password', async () => {
        const { config } = await playerClient();
        const attempt = async (login: string, password: string) => {
          const browser = new Browser();
          const { url } = await authorize(config);
          const page = await browser.follow(url.href, REDIRECT);
          const res = await browser.request(new URL(formAction(page.body)!, base).href, { form: { login, password } });
          // The uid, the style nonce and the echoed login are the only parts that may differ.
          return { status: res.status, body: res.body.replace(/\/sign-in\/[\w-]+/g, '').replace(/nonce="[^"]+"/g, '').replace(/value="[^"]*"/g, '') };
        };
        const unknown = await attempt('nobody-here-at-all', 'whatever-password-1');
        const wrong = await attempt(player.login, 'whatever-password-1');
        assert.equal(unknown.status, 400);
        assert.deepEqual(unknown, wrong);
        assert.match(unknown.body, /role="alert">The login or password is not correct\./);
        const db = app.server.runtime.database.db;
        const failed = await sql<{ payload: { playerId: string | null; reason: string } }>`select payload from platform.outbox where type = 'identity.sign_in.failed' order by seq`.execute(db);
        assert.ok(failed.rows.some((r) => r.payload.playerId === null && r.payload.reason === 'invalid_credentials'));
        assert.ok(failed.rows.some((r) => r.payload.playerId === player.id && r.payload.reason === 'invalid_credentials'));
      });

      it('signs in with the email address too; a blocked player who knows the password is told to contact support', async () => {
        const { config } = await playerClient();
        const { url, verifier, state } = await authorize(config);
        const callback = await signIn(new Browser(), url, player.email.toUpperCase(), player.password);
        const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
        assert.equal(decodeJwt(tokens.access_token).sub, player.id);

        const body = registration();
        const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const blocked = ((await res.json()) as { id: string }).id;
        await app.server.runtime.players.changeStatus(systemContext('test'), blocked, 'blocked', 'test: blocked');
        const browser = new Browser();
        const next = await authorize(config);
        const page = await browser.follow(next.url.href, REDIRECT);
        const answer = await browser.request(new URL(formAction(page.body)!, base).href, { form: { login: String(body.login), password: String(body.password) } });
        assert.equal(answer.status, 403);
        assert.match(answer.body, /cannot sign in/);
      });
    });

    describe('attacks', () => {
      it('a wrong PKCE verifier gets no tokens', async () => {
        const { config } = await playerClient();
        const { url, state } = await authorize(config);
        const callback = await signIn(new Browser(), url, player.login, player.password);
        const result = await oauthError(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: state }));
        assert.equal(result.error, 'invalid_grant');
      });

      it('an authorization request without PKCE is refused, even from a confidential client', async () => {
        const { config } = await playerClient();
        const url = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid api', state: 'x' });
        const hop = await new Browser().request(url.href);
        assert.ok(hop.location?.startsWith(REDIRECT));
        const back = new URL(hop.location!);
        assert.equal(back.searchParams.get('error'), 'invalid_request');
        assert.match(back.searchParams.get('error_description') ?? '', /PKCE/);
      });

      it('a reused authorization code is refused and revokes what the first redemption got', async () => {
        const { config } = await playerClient();
        const { url, verifier, state } = await authorize(config);
        const callback = await signIn(new Browser(), url, player.login, player.password);
        const first = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
        const replay = await oauthError(oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }));
        assert.equal(replay.error, 'invalid_grant');
        assert.equal((await oidc.tokenIntrospection(config, first.refresh_token!)).active, false);
      });

      it('a redirect URI that is not registered gets an error page, never a redirect', async () => {
        const { config } = await playerClient();
        const { url } = await authorize(config, { redirect_uri: 'https://evil.example/steal' });
        const hop = await new Browser().request(url.href);
        assert.equal(hop.status, 400);
        assert.equal(hop.location, undefined);
        assert.match(hop.body, /redirect_uri/);
      });

      it('a code issued for one redirect URI is refused at the token endpoint with another', async () => {
        const { config } = await playerClient();
        const { url, verifier, state } = await authorize(config);
        const callback = await signIn(new Browser(), url, player.login, player.password);
        const code = callback.searchParams.get('code')!;
        const res = await oauthError(oidc.genericGrantRequest(config, 'authorization_code', { code, code_verifier: verifier, redirect_uri: OTHER_REDIRECT }));
        assert.equal(res.error, 'invalid_grant');
        void state;
      });

      it('alg none, HMAC with the public key, a forged payload and an ID token are all refused by the API and by jose', async () => {
        const { config } = await playerClient();
        const { tokens } = await codeFlow(config);
        const real = decodeJwt(tokens.access_token);
        const claims: JWTPayload = { ...real, kind: 'staff', perm: ['*'] };
        const none = new UnsecuredJWT(claims).encode();
        const jwk = ((await (await fetch(`${issuer}/jwks`)).json()) as { keys: Record<string, string>[] }).keys[0]!;
        const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: jwk.kid, typ: 'at+jwt' }).sign(new TextEncoder().encode(JSON.stringify(jwk)));
        const [header, , signature] = tokens.access_token.split('.');
        const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
        for (const [name, token] of [
          ['alg none', none],
          ['HS256 keyed with the public key', hmac],
          ['forged payload', forged],
          ['ID token', tokens.id_token!],
        ] as const) {
          assert.equal((await api(`/v1/players/${player.id}`, token)).status, 401, name);
          await assert.rejects(verifyAccessToken(token), name);
        }
        assert.equal((await api(`/v1/players/${player.id}`, tokens.access_token)).status, 200);
      });
    });

    // Last: it retires the key every other test's tokens were signed with, and a real
    // verifier refetches a key set at most every 30 seconds.
    it('key rotation: new tokens are signed with the new key, tokens of the retired key still verify until they expire', async () => {
      const created = await client({ grantTypes: ['client_credentials'], scope: 'players.read' });
      const config = await oidc.discovery(new URL(issuer), created.client.clientId, undefined, oidc.ClientSecretBasic(created.clientSecret), insecure);
      const before = (await oidc.clientCredentialsGrant(config, { scope: 'players.read' })).access_token;
      await app.server.runtime.kernel.keys.retireCurrent();
      const after = (await oidc.clientCredentialsGrant(config, { scope: 'players.read' })).access_token;
      const oldKid = decodeProtectedHeader(before).kid;
      const newKid = decodeProtectedHeader(after).kid;
      assert.notEqual(oldKid, newKid);
      const published = ((await (await fetch(`${issuer}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      assert.ok(published.includes(oldKid!) && published.includes(newKid!));
      // A fresh verifier (no cached key set) checks both against the published keys.
      const fresh = createRemoteJWKSet(new URL(`${issuer}/jwks`));
      for (const token of [before, after]) {
        await jwtVerify(token, fresh, { issuer, audience: 'pitboss', algorithms: ['ES256'] });
        assert.equal((await api('/v1/players?limit=1', token)).status, 200);
      }
    });
  });
}
