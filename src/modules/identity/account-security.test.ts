import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { Browser, formAction, freePort } from './browser.test-support.ts';
import { base32Decode, stepNow, totpAt } from './mfa.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';

// Step-up (RFC 9470), sessions and devices, password change and reset, email change:
// against the running server, through the real authorization-code flow.

const REDIRECT = 'https://game.casino.test/callback';
const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';

async function oauthError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    const error = e as { error?: string };
    return error.error ?? String(e);
  }
  assert.fail('expected the request to fail');
}

interface Player {
  id: string;
  login: string;
  email: string;
  password: string;
}

/** One running server, its client, and the flows the tests drive. */
async function harness(kind: Parameters<typeof startTestApp>[0], env: Record<string, string> = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = await startTestApp(kind, { PUBLIC_URL: base, SIGN_IN_DELAY_MS: '0', ...env });
  await app.server.app.listen({ port, host: '127.0.0.1' });
  const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
  const created = await identity.clients.create(systemContext('test'), { name: 'Casino app', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT], public: true });
  const config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const db = app.server.runtime.database.db;

  async function newPlayer(): Promise<Player> {
    const body = registration();
    const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 201, await res.clone().text());
    return { id: ((await res.json()) as { id: string }).id, login: String(body.login), email: String(body.email), password: String(body.password) };
  }

  /**
   * An authorization request in `browser`; signs in with the password (and `code` when
   * the page asks for one) when the page is shown. `shown` says whether it was.
   */
  async function authorize(browser: Browser, player: Player, extra: Record<string, string> = {}, code?: () => string) {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid offline_access api',
      prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...extra,
    });
    let hop = await browser.follow(url.href, REDIRECT);
    const shown = !hop.location?.startsWith(REDIRECT);
    if (shown) {
      assert.equal(hop.status, 200, hop.body);
      const action = new URL(formAction(hop.body)!, base).href;
      hop = await browser.follow(action, REDIRECT, { form: { login: player.login, password: player.password } });
      if (!hop.location?.startsWith(REDIRECT)) {
        assert.ok(code, `the page asked for more: ${hop.status} ${hop.body.slice(0, 300)}`);
        assert.match(hop.body, /name="code"/);
        hop = await browser.follow(action, REDIRECT, { form: { code: code() } });
      }
    }
    assert.ok(hop.location?.startsWith(REDIRECT), `${hop.status} ${hop.location ?? ''} ${hop.body.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(hop.location!), { pkceCodeVerifier: verifier });
    return { tokens, shown };
  }

  const signIn = async (player: Player, userAgent = FIREFOX) => {
    const browser = new Browser({ 'user-agent': userAgent });
    const { tokens } = await authorize(browser, player);
    return { browser, tokens, sid: decodeJwt(tokens.access_token).sid as string };
  };

  const call = (method: string, path: string, token: string | undefined, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  const events = async (type: string, playerId: string) =>
    (await sql<{ payload: Record<string, unknown> }>`select payload from platform.outbox where type = ${type} and player_id = ${playerId} order by seq`.execute(db)).rows.map((r) => r.payload);
  const audits = async (action: string, playerId: string) =>
    (await sql<{ changes: Record<string, unknown> }>`select changes from platform.audit_log where action = ${action} and target_id = ${playerId}`.execute(db)).rows.map((r) => r.changes);

  return { app, base, config, db, newPlayer, authorize, signIn, call, events, audits };
}

type Harness = Awaited<ReturnType<typeof harness>>;

for (const { kind, skip } of await databaseKinds()) {
  describe(`Account security: step-up, sessions, passwords (${kind})`, { skip }, () => {
    let h: Harness;
    let app: TestApp;

    before(async () => {
      h = await harness(kind, { PASSWORD_RESET_ACCOUNT_LIMIT: '3', PASSWORD_RESET_SOURCE_LIMIT: '12' });
      app = h.app;
    });
    after(async () => app?.close());

    describe('step-up', () => {
      it('an old or unstated sign-in is refused with STEP_UP_REQUIRED and an RFC 9470 challenge; a fresh one passes; staff pass', async () => {
        const player = await h.newPlayer();
        const old = await app.playerToken(player.id, { authTime: Math.floor(Date.now() / 1000) - 301 });
        const refused = await h.call('PUT', '/v1/identity/email', old, { email: `new.${player.email}` });
        assert.equal(refused.status, 401);
        assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
        const problem = (await refused.json()) as { code: string; maxAge: number; acrValues: string | null };
        assert.equal(problem.code, 'STEP_UP_REQUIRED');
        assert.equal(problem.maxAge, 300);
        assert.equal(problem.acrValues, null, 'no second factor: none asked for');
        const challenge = refused.headers.get('www-authenticate') ?? '';
        assert.match(challenge, /^Bearer error="insufficient_user_authentication", error_description="[^"]+", max_age=300$/);
        // A token that says nothing of its sign-in (a CLI token) is not fresh either.
        const unstated = (await app.server.runtime.kernel.tokens.issue({ kind: 'player', id: player.id }, 60)).token;
        assert.equal((await h.call('POST', `/v1/players/${player.id}/withdrawals`, unstated, { amount: '1.00', currency: 'EUR' })).status, 401);
        // The withdrawal route: a stale token is refused before anything else; a fresh one reaches the wallet.
        const stale = await h.call('POST', `/v1/players/${player.id}/withdrawals`, old, { amount: '1.00', currency: 'EUR' });
        assert.equal(((await stale.json()) as { code: string }).code, 'STEP_UP_REQUIRED');
        const fresh = await fetch(`${h.base}/v1/players/${player.id}/withdrawals`, {
          method: 'POST',
          headers: { authorization: `Bearer ${await app.playerToken(player.id)}`, 'content-type': 'application/json', 'idempotency-key': `wd-${player.id}` },
          body: JSON.stringify({ amount: '1.00', currency: 'EUR' }),
        });
        assert.notEqual(((await fresh.json()) as { code?: string }).code, 'STEP_UP_REQUIRED');
        // Staff act for the player with their own permissions, not the player's sign-in.
        const staff = await app.staffToken(['admin']);
        const byStaff = await h.call('POST', `/v1/players/${player.id}/withdrawals`, staff, { amount: '1.00', currency: 'EUR' });
        assert.notEqual(((await byStaff.json()) as { code?: string }).code, 'STEP_UP_REQUIRED');
        // Nothing changed by the refusals.
        const me = await h.call('GET', `/v1/players/${player.id}`, await app.playerToken(player.id));
        assert.equal(((await me.json()) as { email: string }).email, player.email);
      });

      it('round trip: with a second factor the challenge asks for acr 2fa; the client re-authorizes with max_age and acr_values, the page asks for the password and the code, and the new token passes', async () => {
        const player = await h.newPlayer();
        const { browser, tokens } = await h.signIn(player);
        // Enrol an authenticator app with the fresh password-only token.
        const started = await h.call('POST', '/v1/identity/mfa/totp', tokens.access_token);
        assert.equal(started.status, 201, await started.clone().text());
        const key = base32Decode(((await started.json()) as { secret: string }).secret);
        const confirmed = await h.call('POST', '/v1/identity/mfa/totp/confirm', tokens.access_token, { code: totpAt(key, stepNow()) });
        assert.equal(confirmed.status, 200, await confirmed.clone().text());
        const recovery = ((await confirmed.json()) as { recoveryCodes: string[] }).recoveryCodes;

        // The same token is fresh but has one factor: refused, asking for two.
        const refused = await h.call('PUT', '/v1/identity/email', tokens.access_token, { email: `stepped.${player.email}` });
        assert.equal(refused.status, 401);
        const challenge = refused.headers.get('www-authenticate') ?? '';
        assert.match(challenge, /error="insufficient_user_authentication"/);
        assert.match(challenge, /acr_values="urn:pitboss:acr:2fa"/);
        const maxAge = /max_age=(\d+)/.exec(challenge)![1]!;
        const acrValues = /acr_values="([^"]+)"/.exec(challenge)![1]!;

        // What the client does: the authorization request again, with max_age and acr_values.
        // The browser's session is fresh, but one-factor: the provider asks again.
        const stepped = await h.authorize(browser, player, { max_age: maxAge, acr_values: acrValues }, () => recovery[0]!);
        assert.equal(stepped.shown, true, 'the sign-in page was shown');
        const claims = decodeJwt(stepped.tokens.access_token);
        assert.equal(claims.acr, 'urn:pitboss:acr:2fa');
        assert.ok((claims.amr as string[]).includes('mfa'));
        assert.equal(claims.sid, decodeJwt(tokens.access_token).sid, 'the same session, stepped up');
        const changed = await h.call('PUT', '/v1/identity/email', stepped.tokens.access_token, { email: `stepped.${player.email}` });
        assert.equal(changed.status, 200, await changed.clone().text());

        // Once two-factor, the same request goes through silently; prompt=login asks again.
        const silent = await h.authorize(browser, player, { max_age: maxAge, acr_values: acrValues });
        assert.equal(silent.shown, false);
        const again = await h.authorize(browser, player, { prompt: 'login consent' }, () => recovery[1]!);
        assert.equal(again.shown, true);
        assert.ok((decodeJwt(again.tokens.access_token).auth_time as number) >= (claims.auth_time as number));
      });
    });

    describe('sessions and devices', () => {
      it('lists the player’s sessions with device and last use, the current one marked; nobody else’s', async () => {
        const player = await h.newPlayer();
        const pc = await h.signIn(player, FIREFOX);
        const phone = await h.signIn(player, SAFARI);
        assert.notEqual(pc.sid, phone.sid);
        const res = await h.call('GET', '/v1/identity/sessions', pc.tokens.access_token);
        assert.equal(res.status, 200);
        const { items } = (await res.json()) as { items: { id: string; current: boolean; device: string; lastUsedAt: string; clients: string[]; sourceIp: string; endedAt: null }[] };
        assert.equal(items.length, 2);
        const mine = items.find((s) => s.id === pc.sid)!;
        assert.equal(mine.current, true);
        assert.equal(mine.device, 'Firefox on Windows');
        assert.equal(mine.sourceIp, '127.0.0.1');
        assert.equal(mine.clients.length, 1);
        assert.equal(items.find((s) => s.id === phone.sid)!.device, 'Safari on iOS');
        assert.equal(items.find((s) => s.id === phone.sid)!.current, false);
        const other = await h.newPlayer();
        const theirs = (await (await h.call('GET', '/v1/identity/sessions', await app.playerToken(other.id))).json()) as { items: unknown[] };
        assert.deepEqual(theirs.items, []);
        // Another player cannot end this player's session: it does not exist for them.
        const snoop = await h.call('DELETE', `/v1/identity/sessions/${phone.sid}`, await app.playerToken(other.id));
        assert.equal(snoop.status, 404);
        assert.equal(((await snoop.json()) as { code: string }).code, 'SESSION_NOT_FOUND');
        await oidc.refreshTokenGrant(h.config, phone.tokens.refresh_token!);
      });

      it('revoking one session: its refresh token fails with invalid_grant at once, its access token is refused, the other session lives; audited and emitted', async () => {
        const player = await h.newPlayer();
        const pc = await h.signIn(player, FIREFOX);
        const phone = await h.signIn(player, SAFARI);
        const res = await h.call('DELETE', `/v1/identity/sessions/${phone.sid}`, pc.tokens.access_token);
        assert.equal(res.status, 204);
        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, phone.tokens.refresh_token!)), 'invalid_grant');
        const refused = await h.call('GET', '/v1/identity/sessions', phone.tokens.access_token);
        assert.equal(refused.status, 401);
        assert.equal(((await refused.json()) as { code: string }).code, 'UNAUTHENTICATED');
        // The revoked browser signs in again from scratch.
        const next = await h.authorize(phone.browser, player);
        assert.equal(next.shown, true);
        // The other session is untouched.
        const renewed = await oidc.refreshTokenGrant(h.config, pc.tokens.refresh_token!);
        assert.ok(renewed.access_token);
        assert.equal((await h.call('DELETE', `/v1/identity/sessions/${phone.sid}`, pc.tokens.access_token)).status, 409);
        const ended = (await (await h.call('GET', '/v1/identity/sessions?includeEnded=true', renewed.access_token)).json()) as { items: { id: string; endReason: string | null }[] };
        assert.equal(ended.items.find((s) => s.id === phone.sid)?.endReason, 'revoked');
        assert.deepEqual(
          (await h.events('identity.session.revoked', player.id)).map((e) => [e.sessionId, e.reason, e.by]),
          [[phone.sid, 'revoked', 'player']],
        );
        assert.equal((await h.audits('identity.session.revoke', player.id)).length, 1);
      });

      it('bad input changes nothing: unknown, malformed and missing ids; a body on revoke-all that is not one', async () => {
        const player = await h.newPlayer();
        const pc = await h.signIn(player);
        const token = pc.tokens.access_token;
        assert.equal((await h.call('DELETE', '/v1/identity/sessions/no-such-session', token)).status, 404);
        const malformed = await h.call('DELETE', '/v1/identity/sessions/bad%20id!', token);
        assert.equal(malformed.status, 400);
        assert.equal(((await malformed.json()) as { code: string }).code, 'VALIDATION_FAILED');
        assert.equal((await h.call('POST', '/v1/identity/sessions/revoke-all', token, { keepCurrent: 'yes' })).status, 400);
        assert.equal((await h.call('POST', '/v1/identity/sessions/revoke-all', token, { everything: true })).status, 400);
        assert.equal((await h.call('GET', '/v1/identity/sessions?limit=0', token)).status, 400);
        assert.equal((await h.call('GET', '/v1/identity/sessions', undefined)).status, 401);
        // A token from outside the sign-in flow has no session to keep.
        const keepless = await h.call('POST', '/v1/identity/sessions/revoke-all', await app.playerToken(player.id), { keepCurrent: true });
        assert.equal(keepless.status, 409);
        assert.equal(((await keepless.json()) as { code: string }).code, 'SESSION_CURRENT_UNKNOWN');
        // Still signed in.
        assert.ok((await oidc.refreshTokenGrant(h.config, pc.tokens.refresh_token!)).access_token);
      });

      it('log out everywhere, keeping the current session; then without keeping it', async () => {
        const player = await h.newPlayer();
        const a = await h.signIn(player);
        const b = await h.signIn(player, SAFARI);
        const c = await h.signIn(player);
        const res = await h.call('POST', '/v1/identity/sessions/revoke-all', a.tokens.access_token, { keepCurrent: true });
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { ended: 2 });
        for (const gone of [b, c]) assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, gone.tokens.refresh_token!)), 'invalid_grant');
        const kept = await oidc.refreshTokenGrant(h.config, a.tokens.refresh_token!);
        const [event] = await h.events('identity.sessions.revoked_all', player.id);
        assert.equal(event!.keptSessionId, a.sid);
        assert.deepEqual([...(event!.sessionIds as string[])].sort(), [b.sid, c.sid].sort());
        const all = await h.call('POST', '/v1/identity/sessions/revoke-all', kept.access_token, {});
        assert.deepEqual(await all.json(), { ended: 1 });
        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, kept.refresh_token!)), 'invalid_grant');
      });

      it('signing out at the provider ends the session: it is listed as signed out and its refresh token stops', async () => {
        const player = await h.newPlayer();
        const s = await h.signIn(player);
        const other = await h.signIn(player, SAFARI);
        const end = oidc.buildEndSessionUrl(h.config, { id_token_hint: s.tokens.id_token! });
        const confirm = await s.browser.request(end.href);
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1];
        assert.ok(xsrf, confirm.body);
        const out = await s.browser.request(new URL(formAction(confirm.body)!, h.base).href, { form: { xsrf, logout: 'yes' } });
        assert.ok([200, 303].includes(out.status), `${out.status}`);
        let ended: { id: string; endReason: string | null }[] = [];
        for (let i = 0; i < 50; i++) {
          const res = await h.call('GET', '/v1/identity/sessions?includeEnded=true', other.tokens.access_token);
          ended = ((await res.json()) as { items: { id: string; endReason: string | null }[] }).items;
          if (ended.find((e) => e.id === s.sid)?.endReason) break;
          await sleep(20);
        }
        assert.equal(ended.find((e) => e.id === s.sid)?.endReason, 'signed_out');
        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, s.tokens.refresh_token!)), 'invalid_grant');
        assert.equal(ended.find((e) => e.id === other.sid)?.endReason, null, 'the other session lives');
      });

      it('staff with the permission list and end a player’s sessions; without it they are refused', async () => {
        const player = await h.newPlayer();
        const s = await h.signIn(player);
        const admin = await app.staffToken(['admin']);
        const list = await h.call('GET', `/v1/identity/players/${player.id}/sessions`, admin);
        assert.equal(list.status, 200);
        assert.deepEqual(((await list.json()) as { items: { id: string; current: boolean }[] }).items.map((i) => [i.id, i.current]), [[s.sid, false]]);
        // Support sees it with the address masked (no pii.read).
        const support = await app.staffToken(['support']);
        const masked = (await (await h.call('GET', `/v1/identity/players/${player.id}/sessions`, support)).json()) as { items: { sourceIp: string }[] };
        assert.equal(masked.items[0]!.sourceIp, '1******1');
        const plain = await app.staffToken([]);
        assert.equal((await h.call('GET', `/v1/identity/players/${player.id}/sessions`, plain)).status, 403);
        assert.equal((await h.call('DELETE', `/v1/identity/players/${player.id}/sessions/${s.sid}`, plain)).status, 403);
        assert.equal((await h.call('GET', `/v1/identity/players/not-a-uuid/sessions`, admin)).status, 400);
        assert.equal((await h.call('GET', `/v1/identity/players/${player.id}/sessions`, await app.playerToken(player.id))).status, 403);
        assert.ok((await oidc.refreshTokenGrant(h.config, s.tokens.refresh_token!)).access_token, 'refusals changed nothing');
        assert.equal((await h.call('DELETE', `/v1/identity/players/${player.id}/sessions/${s.sid}`, admin)).status, 204);
        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, s.tokens.refresh_token!)), 'invalid_grant');
        const [event] = await h.events('identity.session.revoked', player.id);
        assert.equal(event!.by, 'staff');
        assert.equal(event!.reason, 'revoked_by_staff');
      });
    });

    describe('password change', () => {
      it('needs the current password and a policy-compliant new one; ends every other session, keeps the current; audited and emitted', async () => {
        const player = await h.newPlayer();
        const here = await h.signIn(player);
        const there = await h.signIn(player, SAFARI);
        const token = here.tokens.access_token;
        const put = (body: unknown, t = token) => h.call('PUT', '/v1/identity/password', t, body);
        const wrong = await put({ currentPassword: 'not-my-password-9', newPassword: 'meadow-copper-thistle-77' });
        assert.equal(wrong.status, 400);
        assert.equal(((await wrong.json()) as { code: string }).code, 'PASSWORD_INCORRECT');
        const weak = await put({ currentPassword: player.password, newPassword: 'short' });
        assert.equal(weak.status, 400);
        const weakBody = (await weak.json()) as { code: string; errors: { field: string; code: string }[] };
        assert.equal(weakBody.code, 'VALIDATION_FAILED');
        assert.deepEqual(weakBody.errors.map((e) => [e.field, e.code]), [['/body/newPassword', 'PASSWORD_TOO_SHORT']]);
        assert.equal((await put({ currentPassword: player.password, newPassword: `${player.login}-is-me` })).status, 400);
        assert.equal((await put({ currentPassword: player.password, newPassword: player.password })).status, 409);
        assert.equal((await put({ currentPassword: player.password })).status, 400);
        assert.equal((await put({ currentPassword: player.password, newPassword: 'meadow-copper-thistle-77', extra: 1 })).status, 400);
        const stale = await app.playerToken(player.id, { authTime: Math.floor(Date.now() / 1000) - 1000 });
        assert.equal((await put({ currentPassword: player.password, newPassword: 'meadow-copper-thistle-77' }, stale)).status, 401);
        // None of that changed anything.
        const stillThere = await oidc.refreshTokenGrant(h.config, there.tokens.refresh_token!);
        assert.deepEqual(await h.events('identity.password.changed', player.id), []);

        const ok = await put({ currentPassword: player.password, newPassword: 'meadow-copper-thistle-77' });
        assert.equal(ok.status, 200, await ok.clone().text());
        assert.deepEqual(await ok.json(), { endedSessions: 1 });
        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, stillThere.refresh_token!)), 'invalid_grant');
        assert.ok((await oidc.refreshTokenGrant(h.config, here.tokens.refresh_token!)).access_token, 'the current session stays');
        const [event] = await h.events('identity.password.changed', player.id);
        assert.deepEqual(event!.endedSessionIds, [there.sid]);
        assert.equal((await h.audits('identity.password.change', player.id)).length, 1);
        // The new password signs in; the old one does not.
        await h.signIn({ ...player, password: 'meadow-copper-thistle-77' });
        const browser = new Browser();
        const page = await browser.follow(
          oidc.buildAuthorizationUrl(h.config, { redirect_uri: REDIRECT, scope: 'openid api', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' }).href,
          REDIRECT,
        );
        const old = await browser.request(new URL(formAction(page.body)!, h.base).href, { form: { login: player.login, password: player.password } });
        assert.equal(old.status, 400);
      });
    });

    describe('email change', () => {
      it('a unique, valid address only; the change is emitted without the address', async () => {
        const player = await h.newPlayer();
        const other = await h.newPlayer();
        const token = await app.playerToken(player.id);
        const put = (email: unknown) => h.call('PUT', '/v1/identity/email', token, { email });
        const taken = await put(other.email.toUpperCase());
        assert.equal(taken.status, 409);
        assert.equal(((await taken.json()) as { code: string }).code, 'PLAYER_EMAIL_TAKEN');
        assert.equal((await put('not-an-email')).status, 400);
        assert.equal((await put(42)).status, 400);
        assert.equal((await put(player.email)).status, 409);
        assert.equal((await h.call('PUT', '/v1/identity/email', await app.staffToken(['admin']), { email: 'x@example.com' })).status, 403);
        assert.deepEqual(await h.events('player.email_changed', player.id), []);
        const next = `changed.${player.email}`;
        const ok = await put(next);
        assert.equal(ok.status, 200);
        assert.deepEqual(await ok.json(), { email: next });
        const me = (await (await h.call('GET', `/v1/players/${player.id}`, token)).json()) as { email: string };
        assert.equal(me.email, next);
        assert.deepEqual(await h.events('player.email_changed', player.id), [{ playerId: player.id }]);
      });
    });

    describe('password reset', () => {
      const resetEmails = async (playerId: string, at_least: number) => {
        for (let i = 0; i < 100; i++) {
          const rows = (await sql<{ body: string; recipient: string }>`select body, recipient from platform.local_messages where account_id = ${playerId} and purpose = 'password.reset' order by created_at`.execute(h.db)).rows;
          if (rows.length >= at_least) return rows;
          await sleep(20);
        }
        assert.fail(`expected ${at_least} reset emails`);
      };
      const tokenOf = (body: string) => new URL(/https?:\/\/\S+/.exec(body)![0]).searchParams.get('token')!;
      const ask = (login: string) => h.call('POST', '/v1/identity/password/reset-requests', undefined, { login });

      it('the same answer for a known and an unknown account; a single-use expiring link by email; a newer link replaces the older; every session ends', async () => {
        const player = await h.newPlayer();
        const session = await h.signIn(player);
        const known = await ask(player.email);
        const unknown = await ask('nobody.at.all@example.com');
        assert.equal(known.status, 202);
        assert.deepEqual([unknown.status, await unknown.json()], [202, await known.json()]);
        const [first] = await resetEmails(player.id, 1);
        assert.equal(first!.recipient, player.email);
        assert.match(first!.body, /30 minutes/);
        const firstToken = tokenOf(first!.body);
        const stored = await sql<{ token_hash: string }>`select token_hash from identity.password_resets where account_id = ${player.id}`.execute(h.db);
        assert.ok(stored.rows.every((r) => r.token_hash !== firstToken), 'stored hashed');

        await ask(player.login);
        const [, second] = await resetEmails(player.id, 2);
        const token = tokenOf(second!.body);
        const replaced = await h.call('POST', '/v1/identity/password/reset', undefined, { token: firstToken, newPassword: 'harbour-lantern-quiet-58' });
        assert.equal(replaced.status, 400);
        assert.equal(((await replaced.json()) as { code: string }).code, 'PASSWORD_RESET_TOKEN_INVALID');
        // A password the policy refuses leaves the token usable.
        const weak = await h.call('POST', '/v1/identity/password/reset', undefined, { token, newPassword: 'password' });
        assert.equal(((await weak.json()) as { code: string }).code, 'VALIDATION_FAILED');
        assert.equal((await h.call('POST', '/v1/identity/password/reset', undefined, { token })).status, 400);
        assert.equal((await h.call('POST', '/v1/identity/password/reset', undefined, { token: 'x'.repeat(43), newPassword: 'harbour-lantern-quiet-58' })).status, 400);
        assert.ok((await oidc.refreshTokenGrant(h.config, session.tokens.refresh_token!)).access_token, 'nothing changed yet');

        // The hosted page: accessible form, no scripts; mismatched passwords are sent back.
        const browser = new Browser();
        const page = await browser.request(`${h.base}/password-reset?token=${token}`);
        assert.equal(page.status, 200);
        assert.match(page.body, /<label for="password">New password<\/label>/);
        assert.match(page.body, /autocomplete="new-password"/);
        assert.doesNotMatch(page.body, /<script|<link/);
        assert.equal(page.headers['referrer-policy'], 'no-referrer');
        assert.match(page.headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
        const mismatch = await browser.request(`${h.base}/password-reset`, { form: { token, password: 'harbour-lantern-quiet-58', confirm: 'harbour-lantern-quiet-59' } });
        assert.equal(mismatch.status, 400);
        assert.match(mismatch.body, /role="alert">The two passwords are not the same/);
        const done = await browser.request(`${h.base}/password-reset`, { form: { token, password: 'harbour-lantern-quiet-58', confirm: 'harbour-lantern-quiet-58' } });
        assert.equal(done.status, 200, done.body);
        assert.match(done.body, /Password changed/);

        assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, session.tokens.refresh_token!)), 'invalid_grant');
        assert.equal((await h.call('GET', '/v1/identity/sessions', session.tokens.access_token)).status, 401);
        const used = await h.call('POST', '/v1/identity/password/reset', undefined, { token, newPassword: 'another-fine-passphrase-3' });
        assert.equal(((await used.json()) as { code: string }).code, 'PASSWORD_RESET_TOKEN_INVALID');
        const usedPage = await browser.request(`${h.base}/password-reset?token=${token}`);
        assert.equal(usedPage.status, 400);
        assert.match(usedPage.body, /not valid/);
        await h.signIn({ ...player, password: 'harbour-lantern-quiet-58' });
        assert.equal((await h.events('identity.password.reset_requested', player.id)).length, 2);
        assert.deepEqual((await h.events('identity.password.reset_completed', player.id)).map((e) => e.endedSessionIds), [[session.sid]]);
        assert.equal((await h.audits('identity.password.reset', player.id)).length, 1);
      });

      it('an expired link gets a clear answer; requests past the account limit send nothing; past the source limit, RATE_LIMITED', async () => {
        const player = await h.newPlayer();
        await ask(player.login);
        const [mail] = await resetEmails(player.id, 1);
        const token = tokenOf(mail!.body);
        await sql`update identity.password_resets set expires_at = now() - interval '1 second' where account_id = ${player.id}`.execute(h.db);
        const expired = await h.call('POST', '/v1/identity/password/reset', undefined, { token, newPassword: 'harbour-lantern-quiet-58' });
        assert.equal(expired.status, 410);
        assert.equal(((await expired.json()) as { code: string }).code, 'PASSWORD_RESET_TOKEN_EXPIRED');
        const page = await new Browser().request(`${h.base}/password-reset?token=${token}`);
        assert.equal(page.status, 410);
        assert.match(page.body, /expired/);

        await ask(player.login);
        await ask(player.login);
        await resetEmails(player.id, 3);
        const fourth = await ask(player.email);
        assert.equal(fourth.status, 202, 'the same answer');
        await sleep(200);
        assert.equal((await resetEmails(player.id, 3)).length, 3, 'no fourth email within the window');

        // Malformed requests: 400, and nothing is sent.
        for (const body of [{}, { login: '' }, { login: player.login, extra: 1 }, { login: 7 }]) {
          const res = await h.call('POST', '/v1/identity/password/reset-requests', undefined, body);
          assert.equal(res.status, 400, JSON.stringify(body));
          assert.equal(((await res.json()) as { code: string }).code, 'VALIDATION_FAILED');
        }
        const empty = await new Browser().request(`${h.base}/password-reset`, { form: { token, password: '', confirm: '' } });
        assert.equal(empty.status, 400);
        assert.match(empty.body, /Enter a new password/);

        let limited: Response | undefined;
        for (let i = 0; i < 20 && !limited; i++) {
          const res = await ask(`someone-${i}@example.com`);
          if (res.status === 429) limited = res;
        }
        assert.ok(limited, 'the source address is limited');
        assert.equal(((await limited.json()) as { code: string }).code, 'RATE_LIMITED');
      });
    });
  });

  describe(`Session timeouts (${kind})`, { skip }, () => {
    let h: Harness;
    before(async () => {
      h = await harness(kind, { SESSION_IDLE_TIMEOUT_SECONDS: '2', SESSION_ABSOLUTE_TIMEOUT_SECONDS: '5' });
    });
    after(async () => h?.app.close());

    it('idle: no refresh for longer than the idle timeout ends the session at the next refresh and at the provider; audited', async () => {
      const player = await h.newPlayer();
      const s = await h.signIn(player);
      await sleep(1000);
      const kept = await oidc.refreshTokenGrant(h.config, s.tokens.refresh_token!);
      await sleep(1200);
      // A refresh counted as use: 2.2 s since sign-in, 1.2 s since the refresh.
      const alive = await oidc.refreshTokenGrant(h.config, kept.refresh_token!);
      await sleep(2300);
      assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, alive.refresh_token!)), 'invalid_grant');
      const [audit] = await h.audits('identity.session.timeout', player.id);
      assert.deepEqual(audit, { sessionId: s.sid, reason: 'idle_timeout' });
      // The browser's provider session is over too: the next authorization asks for the password.
      const next = await h.authorize(s.browser, player);
      assert.equal(next.shown, true);
      assert.notEqual(decodeJwt(next.tokens.access_token).sid, s.sid, 'a new session');
    });

    it('idle at the provider: a silent authorization after the idle timeout asks for the password again', async () => {
      const player = await h.newPlayer();
      const s = await h.signIn(player);
      const silent = await h.authorize(s.browser, player);
      assert.equal(silent.shown, false, 'within the timeout: single sign-on');
      await sleep(2300);
      const next = await h.authorize(s.browser, player);
      assert.equal(next.shown, true);
      assert.equal(await oauthError(oidc.refreshTokenGrant(h.config, s.tokens.refresh_token!)), 'invalid_grant');
      const [audit] = await h.audits('identity.session.timeout', player.id);
      assert.equal(audit!.reason, 'idle_timeout');
    });

    it('absolute: the session ends after the absolute timeout however often it is refreshed', async () => {
      const player = await h.newPlayer();
      const s = await h.signIn(player);
      let refresh = s.tokens.refresh_token!;
      // Refreshed every second (well within the idle timeout) until refused.
      const started = Date.now();
      let refreshes = 0;
      let refused: string | undefined;
      while (!refused && Date.now() - started < 15_000) {
        await sleep(1000);
        try {
          refresh = (await oidc.refreshTokenGrant(h.config, refresh)).refresh_token!;
          refreshes++;
        } catch (e) {
          refused = (e as { error?: string }).error ?? String(e);
        }
      }
      assert.equal(refused, 'invalid_grant');
      assert.ok(refreshes >= 3, `${refreshes} refreshes before the end`);
      assert.ok(Date.now() - started >= 4000, 'not before the absolute timeout');
      const [audit] = await h.audits('identity.session.timeout', player.id);
      assert.deepEqual(audit, { sessionId: s.sid, reason: 'absolute_timeout' });
    });
  });
}
