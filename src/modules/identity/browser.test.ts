import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { chromiumSuite, oathtoolTotp } from '../../../test/support/chromium.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { api, Authorization, newPlayer, startServer, type Player, type Server } from './chromium.test-support.ts';

// The hosted sign-in as a real client and a real browser use it: openid-client does
// discovery, builds the authorization request (PKCE) and exchanges the code; headless
// Chromium (Debian's, through playwright-core) fills the pages by their labels; jose
// verifies the access token against the published JWKS. TOTP codes come from Debian's
// oathtool, computed independently of the server.

const { noChromium, noOathtool, browser } = await chromiumSuite();

for (const { kind, skip } of await databaseKinds()) {
  describe(`hosted sign-in in Chromium (${kind})`, { skip: skip || noChromium }, () => {
    let server: Server;
    let jwks: ReturnType<typeof createRemoteJWKSet>;

    const verify = (token: string) => jwtVerify(token, jwks, { issuer: server.issuer, audience: 'pitboss', algorithms: ['ES256'], typ: 'at+jwt' });

    before(async () => {
      server = await startServer(kind);
      jwks = createRemoteJWKSet(new URL(server.config.serverMetadata().jwks_uri!));
    });
    after(async () => server?.close());

    it('password sign-in: authorization code with PKCE, an ES256 access token valid against the JWKS, refresh tokens that rotate', async () => {
      const player = await newPlayer(server);
      const context = await browser().newContext();
      try {
        const flow = await Authorization.start(server, context);
        // The page is the server's: its CSP allows no script, and its fields are labelled.
        assert.equal(await flow.page.title(), 'Sign in');
        await flow.password(player.login, 'not-the-password-1');
        assert.equal(await flow.page.getByRole('alert').textContent(), 'The login or password is not correct.');
        assert.equal(await flow.page.getByLabel('Login or email').getAttribute('aria-invalid'), 'true');
        await flow.password(player.login, player.password);
        const tokens = await flow.tokens();

        const { payload, protectedHeader } = await verify(tokens.access_token);
        assert.equal(protectedHeader.alg, 'ES256');
        assert.equal(payload.sub, player.id);
        assert.equal(payload.kind, 'player');
        assert.equal(payload.acr, 'urn:pitboss:acr:1fa');
        assert.deepEqual(payload.amr, ['pwd']);
        assert.equal(tokens.claims()?.sub, player.id);
        assert.ok(tokens.refresh_token);

        // The API takes the token.
        const me = await fetch(`${server.base}/v1/players/${player.id}`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
        assert.equal(me.status, 200);

        // Each refresh gives a new refresh token; the used one is refused (and revokes the grant).
        const refreshed = await oidc.refreshTokenGrant(server.config, tokens.refresh_token);
        assert.ok(refreshed.refresh_token);
        assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
        assert.equal((await verify(refreshed.access_token)).payload.sub, player.id);
        await assert.rejects(oidc.refreshTokenGrant(server.config, tokens.refresh_token), (e: { error?: string }) => e.error === 'invalid_grant');
        await assert.rejects(oidc.refreshTokenGrant(server.config, refreshed.refresh_token), (e: { error?: string }) => e.error === 'invalid_grant');
      } finally {
        await context.close();
      }
    });

    describe('a player with an authenticator app (codes from oathtool)', { skip: noOathtool }, () => {
      let player: Player;
      let secret: string;

      before(async () => {
        player = await newPlayer(server);
        const started = await api(server, player.token, 'POST', '/v1/identity/mfa/totp');
        assert.equal(started.status, 201);
        secret = (started.json as { secret: string }).secret;
        const confirmed = await api(server, player.token, 'POST', '/v1/identity/mfa/totp/confirm', { code: await oathtoolTotp(secret) });
        assert.equal(confirmed.status, 200, JSON.stringify(confirmed.json));
      });

      it('after the password, the code page; a wrong code is refused, the right one signs in with acr 2fa and amr otp', async () => {
        const context = await browser().newContext();
        try {
          const flow = await Authorization.start(server, context);
          await flow.password(player.login, player.password);
          assert.equal(await flow.page.title(), 'Enter your code');
          const field = flow.page.getByLabel('Authentication code');
          assert.equal(await field.getAttribute('autocomplete'), 'one-time-code');
          // The code of the confirmation's time step is used: one step later (accepted) is not.
          const next = await oathtoolTotp(secret, new Date(Date.now() + 30_000));
          const wrong = next === '000000' ? '111111' : '000000';
          await field.fill(wrong);
          await flow.page.getByRole('button', { name: 'Continue' }).click();
          await flow.page.waitForLoadState();
          assert.match((await flow.page.getByRole('alert').textContent()) ?? '', /The code is not correct/);
          await flow.page.getByLabel('Authentication code').fill(next);
          await flow.page.getByRole('button', { name: 'Continue' }).click();
          const tokens = await flow.tokens();
          const { payload } = await verify(tokens.access_token);
          assert.equal(payload.sub, player.id);
          assert.equal(payload.acr, 'urn:pitboss:acr:2fa');
          assert.deepEqual(payload.amr, ['pwd', 'otp', 'mfa']);
        } finally {
          await context.close();
        }
      });
    });
  });
}
