import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { Browser, formAction, freePort } from './browser.test-support.ts';
// RFC 6238 codes computed in the tests, independently of the server's library (otplib).
import { base32Decode, stepNow, totpAt } from './mfa.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';

const REDIRECT = 'https://game.casino.test/callback';


for (const { kind, skip } of await databaseKinds()) {
  describe(`TOTP second factor for players (${kind})`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let config: oidc.Configuration;
    let player: { id: string; login: string; password: string; token: string };
    let key: Buffer;
    let recoveryCodes: string[];
    let step: number;

    const api = (path: string, body?: unknown) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${player.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    /** Password, then (when asked) the code; the final answer, and the tokens when signed in. */
    async function signIn(code: string | undefined, password = player.password) {
      const browser = new Browser();
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid api',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const page = await browser.follow(url.href, REDIRECT);
      const action = new URL(formAction(page.body)!, base).href;
      const first = await browser.request(action, { form: { login: player.login, password } });
      if (code === undefined || first.status !== 200) return { first, last: first, tokens: undefined };
      assert.match(first.body, /name="code"/);
      assert.match(first.body, /autocomplete="one-time-code"/);
      const last = await browser.follow(action, REDIRECT, { form: { code } });
      if (!last.location?.startsWith(REDIRECT)) return { first, last, tokens: undefined };
      const tokens = await oidc.authorizationCodeGrant(config, new URL(last.location), { pkceCodeVerifier: verifier });
      return { first, last, tokens };
    }

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, { PUBLIC_URL: base, SIGN_IN_DELAY_MS: '50', SIGN_IN_MAX_DELAY_MS: '100' });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      const created = await identity.clients.create(systemContext('test'), { name: 'Test client', grantTypes: ['authorization_code'], redirectUris: [REDIRECT], public: true });
      config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201);
      const id = ((await res.json()) as { id: string }).id;
      player = { id, login: String(body.login), password: String(body.password), token: await app.playerToken(id) };
      // The test's own generator agrees with RFC 6238's test vector (SHA-1, T = 59 s).
      assert.equal(totpAt(Buffer.from('12345678901234567890'), Math.floor(59 / 30), 8), '94287082');
      // The steps below take a few seconds: start them early in a 30-second step.
      const into = Date.now() % 30_000;
      if (into > 20_000) await sleep(30_000 - into + 100);
    });
    after(async () => app?.close());

    it('enrolment: an otpauth URI and a QR code (SVG); confirmed with a first code (one step old), ten recovery codes; audited and emitted', async () => {
      const started = await api('/v1/identity/mfa/totp');
      assert.equal(started.status, 201, await started.clone().text());
      const enrolment = (await started.json()) as { secret: string; otpauthUri: string; qrSvg: string };
      const uri = new URL(enrolment.otpauthUri);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.host, 'totp');
      assert.equal(decodeURIComponent(uri.pathname), `/Pitboss:${player.login}`);
      assert.equal(uri.searchParams.get('secret'), enrolment.secret);
      assert.equal(uri.searchParams.get('issuer'), 'Pitboss');
      for (const [name, value] of [['digits', '6'], ['period', '30'], ['algorithm', 'SHA1']]) {
        assert.ok([null, value].includes(uri.searchParams.get(name!)), `${name} must be ${value} or absent`);
      }
      assert.match(enrolment.qrSvg, /^<svg[\s\S]*<\/svg>\s*$/);
      key = base32Decode(enrolment.secret);
      assert.equal(key.length, 20);

      // Not asked for before it is confirmed.
      assert.equal((await signIn(undefined)).first.status, 303);

      step = stepNow();
      const wrong = await api('/v1/identity/mfa/totp/confirm', { code: totpAt(key, step + 3) });
      assert.equal(wrong.status, 400);
      assert.equal(((await wrong.json()) as { code: string }).code, 'MFA_CODE_INVALID');
      const confirmed = await api('/v1/identity/mfa/totp/confirm', { code: totpAt(key, step - 1) });
      assert.equal(confirmed.status, 200, await confirmed.clone().text());
      recoveryCodes = ((await confirmed.json()) as { recoveryCodes: string[] }).recoveryCodes;
      assert.equal(recoveryCodes.length, 10);
      assert.equal(new Set(recoveryCodes).size, 10);
      // With a factor enabled, changing factors needs a two-factor sign-in (step-up): the
      // password-only token is refused; a fresh two-factor one learns the factor is enabled.
      const again = await api('/v1/identity/mfa/totp');
      assert.equal(again.status, 401);
      assert.equal(((await again.json()) as { code: string }).code, 'STEP_UP_REQUIRED');
      assert.match(again.headers.get('www-authenticate') ?? '', /acr_values="urn:pitboss:acr:2fa"/);
      const strong = await app.playerToken(player.id, { acr: 'urn:pitboss:acr:2fa', amr: ['pwd', 'otp', 'mfa'] });
      const enabled = await fetch(`${base}/v1/identity/mfa/totp`, { method: 'POST', headers: { authorization: `Bearer ${strong}` } });
      assert.equal(enabled.status, 409);

      const db = app.server.runtime.database.db;
      const stored = await sql<{ code_hash: string }>`select code_hash from identity.recovery_codes where account_id = ${player.id}`.execute(db);
      assert.equal(stored.rows.length, 10);
      assert.ok(stored.rows.every((r) => !recoveryCodes.some((c) => r.code_hash.includes(c) || r.code_hash.includes(c.replace(/-/g, '')))), 'stored hashed');
      const events = await sql<{ payload: { playerId: string; method: string } }>`select payload from platform.outbox where type = 'identity.mfa.enrolled'`.execute(db);
      assert.deepEqual(events.rows.map((r) => r.payload), [{ playerId: player.id, method: 'totp' }]);
      const audit = await sql<{ target_id: string }>`select target_id from platform.audit_log where action = 'identity.mfa.enroll'`.execute(db);
      assert.deepEqual(audit.rows.map((r) => r.target_id), [player.id]);
    });

    it('sign-in asks for the code after the password; the tokens say amr otp and acr 2fa', async () => {
      // A wrong password is answered as before, without reaching the code step.
      const wrongPassword = await signIn('000000', 'not-the-password-1');
      assert.equal(wrongPassword.first.status, 400);
      assert.doesNotMatch(wrongPassword.first.body, /name="code"/);

      const { tokens, last } = await signIn(totpAt(key, step));
      assert.ok(tokens, `expected tokens, got ${last.status}\n${last.body.slice(0, 300)}`);
      const access = decodeJwt(tokens.access_token);
      assert.equal(access.acr, 'urn:pitboss:acr:2fa');
      assert.ok((access.amr as string[]).includes('otp'));
      assert.ok((access.amr as string[]).includes('pwd'));
    });

    it('a code is never accepted twice, nor one outside the one-step window; one step ahead is accepted', async () => {
      const reused = await signIn(totpAt(key, step));
      assert.equal(reused.last.status, 400);
      assert.match(reused.last.body, /role="alert">The code is not correct/);
      // The confirmation code (step - 1) is older than the last one used.
      assert.equal((await signIn(totpAt(key, step - 1))).last.status, 400);
      assert.equal((await signIn(totpAt(key, step + 2))).last.status, 400);
      assert.equal((await signIn('12345a')).last.status, 400);
      const ahead = await signIn(totpAt(key, step + 1));
      assert.ok(ahead.tokens, `one step ahead: ${ahead.last.status}`);
    });

    it('a recovery code signs in once (amr mfa, acr 2fa) and is used up', async () => {
      const code = recoveryCodes[0]!;
      const first = await signIn(code.toLowerCase());
      assert.ok(first.tokens, `recovery code: ${first.last.status}\n${first.last.body.slice(0, 300)}`);
      const access = decodeJwt(first.tokens.access_token);
      assert.equal(access.acr, 'urn:pitboss:acr:2fa');
      assert.deepEqual(access.amr, ['pwd', 'mfa']);
      assert.equal((await signIn(code)).last.status, 400);
      const db = app.server.runtime.database.db;
      const left = await sql<{ n: string }>`select count(*) as n from identity.recovery_codes where account_id = ${player.id} and used_at is null`.execute(db);
      assert.equal(Number(left.rows[0]!.n), 9);
    });

    it('a staff or service token cannot enrol', async () => {
      const staff = await app.staffToken([]);
      const res = await fetch(`${base}/v1/identity/mfa/totp`, { method: 'POST', headers: { authorization: `Bearer ${staff}` } });
      assert.equal(res.status, 403);
    });
  });
}
