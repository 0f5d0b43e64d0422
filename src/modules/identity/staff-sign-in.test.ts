import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { DomainError } from '../../platform/errors.ts';
import { freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';
import { base32Decode, SignIn, stepNow, totpAt } from './mfa.test-support.ts';

const STAFF_REDIRECT = 'https://backoffice.casino.test/callback';
const PLAYER_REDIRECT = 'https://game.casino.test/callback';

for (const { kind, skip } of await databaseKinds()) {
  describe(`staff sign-in through the provider, MFA mandatory (${kind})`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let identity: IdentityApi;
    let staffConfig: oidc.Configuration;
    let playerConfig: oidc.Configuration;
    const staff = { email: `support.${Date.now()}@casino.test`, password: 'quiet-harbour-lantern-71', id: '' };
    let player: { id: string; login: string; password: string };
    let key: Buffer;
    let refreshToken: string;
    let recoveryCodes: string[];

    const db = () => app.server.runtime.database.db;

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, { PUBLIC_URL: base, SIGN_IN_DELAY_MS: '20', SIGN_IN_MAX_DELAY_MS: '40' });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      const insecure = { execute: [oidc.allowInsecureRequests] };
      const backoffice = await identity.clients.create(systemContext('test'), {
        name: 'Back office',
        grantTypes: ['authorization_code', 'refresh_token'],
        redirectUris: [STAFF_REDIRECT],
        staff: true,
      });
      assert.equal(backoffice.client.accountKind, 'staff');
      staffConfig = await oidc.discovery(new URL(identity.issuer), backoffice.client.clientId, undefined, oidc.ClientSecretBasic(backoffice.clientSecret), insecure);
      const game = await identity.clients.create(systemContext('test'), { name: 'Game', grantTypes: ['authorization_code'], redirectUris: [PLAYER_REDIRECT], public: true });
      assert.equal(game.client.accountKind, 'player');
      playerConfig = await oidc.discovery(new URL(identity.issuer), game.client.clientId, undefined, oidc.None(), insecure);
      staff.id = (await app.server.runtime.staff.createStaff(systemContext('test'), { email: staff.email, roles: ['support'], password: staff.password })).id;
      const body = registration({ email: staff.email.replace('support.', 'player.') });
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201);
      player = { id: ((await res.json()) as { id: string }).id, login: String(body.login), password: String(body.password) };
    });
    after(async () => app?.close());

    it("staff passwords follow the players' policy, and a staff client cannot use client_credentials", async () => {
      const { staff: service } = app.server.runtime;
      for (const [password, code] of [
        ['short', 'PASSWORD_TOO_SHORT'],
        ['password123', 'PASSWORD_TOO_COMMON'],
        [`${'x'.repeat(129)}`, 'PASSWORD_TOO_LONG'],
      ] as const) {
        await assert.rejects(service.createStaff(systemContext('test'), { email: `weak.${code}@casino.test`, roles: [], password }), (e: unknown) => e instanceof DomainError && e.code === 'VALIDATION_FAILED' && e.errors?.[0]?.code === code);
      }
      await assert.rejects(service.setPassword(systemContext('test'), staff.email, 'qwertyuiop'), (e: unknown) => e instanceof DomainError && e.errors?.[0]?.code === 'PASSWORD_TOO_COMMON');
      const stored = await sql<{ password_hash: string }>`select password_hash from backoffice.staff where id = ${staff.id}`.execute(db());
      assert.match(stored.rows[0]!.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      const bad = await app.server.app.inject({
        method: 'POST',
        url: '/v1/identity/clients',
        headers: { authorization: `Bearer ${await app.staffToken(['admin'])}` },
        payload: { name: 'Nope', grantTypes: ['client_credentials'], scope: 'players.read', staff: true },
      });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json<{ errors: { code: string }[] }>().errors[0]!.code, 'GRANT_TYPES_INVALID');
    });

    it('the first sign-in enrols an authenticator app before any token; the token says kind staff with the roles’ permissions', async () => {
      const flow = new SignIn(staffConfig, base, STAFF_REDIRECT);
      const wrong = await flow.start(staff.email, 'not-the-password-at-all');
      assert.equal(wrong.status, 400);
      const enrol = await flow.start(staff.email, staff.password, 'openid offline_access api');
      assert.equal(enrol.status, 200, enrol.body.slice(0, 300));
      assert.match(enrol.body, /Staff accounts must use an authenticator app/);
      assert.match(enrol.body, /<svg /);
      key = base32Decode(/id="totp-secret">([A-Z2-7 ]+)</.exec(enrol.body)![1]!);
      const codes = await flow.post({ enrol_code: totpAt(key, stepNow()) });
      assert.equal(codes.status, 200, codes.body.slice(0, 300));
      recoveryCodes = [...codes.body.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
      assert.equal(recoveryCodes.length, 10);
      const tokens = await flow.tokens(await flow.post({ continue: '1' }));
      const jwks = createRemoteJWKSet(new URL(`${identity.issuer}/jwks`));
      const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: identity.issuer, audience: 'pitboss', typ: 'at+jwt' });
      assert.equal(payload.sub, staff.id);
      assert.equal(payload.kind, 'staff');
      // The support role's permissions (players.read, and a player's sessions since backoffice 0002_session_permissions).
      assert.deepEqual([...(payload.perm as string[])].sort(), ['identity.sessions.manage', 'identity.sessions.read', 'players.read']);
      assert.equal(payload.acr, 'urn:pitboss:acr:2fa');
      assert.deepEqual(payload.amr, ['pwd', 'otp', 'mfa']);
      // The sign-in session is recorded like a player's, and the token names it.
      assert.equal(typeof payload.sid, 'string');
      const session = await sql<{ account_id: string; acr: string; amr: string[] }>`select account_id, acr, amr from identity.sessions where id = ${payload.sid}`.execute(db());
      assert.deepEqual(session.rows, [{ account_id: staff.id, acr: 'urn:pitboss:acr:2fa', amr: ['pwd', 'otp', 'mfa'] }]);
      // The API takes it as the staff member, with their permissions and no more.
      const list = await fetch(`${base}/v1/players?limit=1`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(list.status, 200);
      const clients = await fetch(`${base}/v1/identity/clients`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(clients.status, 403);
      refreshToken = tokens.refresh_token!;
      assert.ok(refreshToken);

      const events = await sql<{ player_id: string | null; payload: { playerId: string; accountKind?: string; reason?: string } }>`
        select player_id, payload from platform.outbox where type in ('identity.sign_in.succeeded', 'identity.sign_in.failed') and payload->>'playerId' = ${staff.id} order by id`.execute(db());
      assert.deepEqual(
        events.rows.map((r) => [r.player_id, r.payload.accountKind, r.payload.reason ?? 'ok']),
        [
          [null, 'staff', 'invalid_credentials'],
          [null, 'staff', 'ok'],
        ],
      );
      const audit = await sql<{ action: string }>`select action from platform.audit_log where target_type = 'staff' and target_id = ${staff.id} and action like 'identity.%' order by at`.execute(db());
      assert.deepEqual(audit.rows.map((r) => r.action), ['identity.sign_in.fail', 'identity.mfa.enroll', 'identity.sign_in.succeed']);
    });

    it('later sign-ins ask for the code; a wrong one counts as a failed sign-in', async () => {
      const flow = new SignIn(staffConfig, base, STAFF_REDIRECT);
      const page = await flow.start(staff.email, staff.password);
      assert.match(page.body, /Authentication code/);
      assert.doesNotMatch(page.body, /Send a code by SMS/);
      const failed = async () => Number((await sql<{ n: string }>`select count(*) as n from platform.outbox where type = 'identity.sign_in.failed' and payload->>'playerId' = ${staff.id}`.execute(db())).rows[0]!.n);
      const before = await failed();
      assert.equal((await flow.post({ code: totpAt(key, stepNow() + 5) })).status, 400);
      assert.equal(await failed(), before + 1);
      const tokens = await flow.tokens(await flow.post({ code: totpAt(key, stepNow() + 1) }));
      assert.equal(decodeJwt(tokens.access_token).kind, 'staff');
    });

    it('a staff client takes no player, and a player client no staff member', async () => {
      const atStaff = await new SignIn(staffConfig, base, STAFF_REDIRECT).start(player.login, player.password);
      assert.equal(atStaff.status, 400);
      assert.match(atStaff.body, /The login or password is not correct/);
      const atGame = await new SignIn(playerConfig, base, PLAYER_REDIRECT).start(staff.email, staff.password);
      assert.equal(atGame.status, 400);
      assert.match(atGame.body, /The login or password is not correct/);
    });

    it("a staff member's session is not used for a player client: the player signs in", async () => {
      const flow = new SignIn(staffConfig, base, STAFF_REDIRECT);
      await flow.start(staff.email, staff.password);
      // A recovery code: the app's codes of this and the next time step are used up.
      await flow.tokens(await flow.post({ code: recoveryCodes[0]! }));
      // Same browser (cookies), a player client: the sign-in form again, not a code for the staff member.
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(playerConfig, { redirect_uri: PLAYER_REDIRECT, scope: 'openid api', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const page = await flow.browser.follow(url.href, PLAYER_REDIRECT);
      assert.equal(page.status, 200, `expected the sign-in form, got ${page.status} ${page.location ?? ''}`);
      assert.match(page.body, /name="password"/);
    });

    it('a disabled staff member cannot sign in, and their refresh token stops working', async () => {
      const refreshed = await oidc.refreshTokenGrant(staffConfig, refreshToken);
      assert.equal(decodeJwt(refreshed.access_token).kind, 'staff');
      await sql`update backoffice.staff set status = 'disabled' where id = ${staff.id}`.execute(db());
      await assert.rejects(oidc.refreshTokenGrant(staffConfig, refreshed.refresh_token!), (e: unknown) => (e as { error?: string }).error === 'invalid_grant');
      const flow = new SignIn(staffConfig, base, STAFF_REDIRECT);
      const page = await flow.start(staff.email, staff.password);
      assert.equal(page.status, 403);
      assert.match(page.body, /This account cannot sign in/);
    });
  });
}
