import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import { freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';
import { base32Decode, countMessages, SignIn, smsCode, stepNow, totpAt } from './mfa.test-support.ts';
import type { IdentityTables } from './store.ts';
import { insertCredential } from './webauthn-store.ts';

const REDIRECT = 'https://game.casino.test/callback';
/** A fresh sign-in with the second factor (what step-up asks for once the player has one). */
const STRONG = { acr: 'urn:pitboss:acr:2fa', amr: ['pwd', 'otp', 'mfa'] };

for (const { kind, skip } of await databaseKinds()) {
  describe(`SMS codes and the per-account MFA policy (${kind})`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let config: oidc.Configuration;
    /** `token`: a fresh password-only sign-in; `strong`: with the second factor (step-up, once the player has a factor). */
    let player: { id: string; login: string; password: string; token: string; strong: string };
    const phone = '+447700900123';

    const call = (method: string, path: string, body?: unknown, token: string | undefined = player.token) =>
      fetch(`${base}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const db = () => app.server.runtime.database.db;
    /** The resend throttle is 60 s: tests move the last code's send time back instead of waiting. */
    const age = async (seconds: number) => sql`update identity.sms_codes set sent_at = sent_at - make_interval(secs => ${seconds}) where account_id = ${player.id}`.execute(db());
    const signIn = () => new SignIn(config, base, REDIRECT);
    const failures = async () => Number((await sql<{ n: string }>`select count(*) as n from platform.outbox where type = 'identity.sign_in.failed' and payload->>'playerId' = ${player.id}`.execute(db())).rows[0]!.n);

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, { PUBLIC_URL: base, SIGN_IN_DELAY_MS: '20', SIGN_IN_MAX_DELAY_MS: '40' });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      const created = await identity.clients.create(systemContext('test'), { name: 'Game', grantTypes: ['authorization_code'], redirectUris: [REDIRECT], public: true });
      config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201);
      const id = ((await res.json()) as { id: string }).id;
      player = { id, login: String(body.login), password: String(body.password), token: await app.playerToken(id), strong: await app.playerToken(id, STRONG) };
    });
    after(async () => app?.close());

    it('enrolment refuses bad input, changing nothing', async () => {
      for (const bad of ['07700900123', '+0447700900123', '+44 7700 900123', '+44770090012345678', 'phone']) {
        const res = await call('POST', '/v1/identity/mfa/sms', { phone: bad });
        assert.equal(res.status, 400, bad);
        assert.equal(((await res.json()) as { code: string }).code, bad.length > 20 ? 'VALIDATION_FAILED' : 'MFA_SMS_PHONE_INVALID', bad);
      }
      for (const body of [{}, { phone, extra: 1 }, { phone: 447700900123 }]) {
        const res = await call('POST', '/v1/identity/mfa/sms', body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(((await res.json()) as { code: string }).code, 'VALIDATION_FAILED');
      }
      assert.equal((await call('POST', '/v1/identity/mfa/sms', { phone }, '')).status, 401);
      assert.equal((await call('POST', '/v1/identity/mfa/sms', { phone }, await app.staffToken(['admin']))).status, 403);
      for (const code of ['12345', 'abcdef', '1234567']) assert.equal((await call('POST', '/v1/identity/mfa/sms/confirm', { code })).status, 400, code);
      assert.equal(((await (await call('POST', '/v1/identity/mfa/sms/confirm', { code: '123456' })).json()) as { code: string }).code, 'MFA_SMS_NOT_STARTED');
      assert.equal(await countMessages(db(), phone), 0);
      assert.deepEqual(await (await call('GET', '/v1/identity/mfa/sms')).json(), { enabled: false, phone: null, pending: false });
    });

    it('enrol a number: a code by SMS (stored hashed), resend throttled with Retry-After, confirmed; the number masked; audited and emitted', async () => {
      const started = await call('POST', '/v1/identity/mfa/sms', { phone });
      assert.equal(started.status, 202, await started.clone().text());
      const sent = (await started.json()) as { phone: string; expiresAt: string; resendAfter: string };
      assert.equal(sent.phone, '+44********23');
      assert.ok(Math.abs(Date.parse(sent.expiresAt) - Date.now() - 300_000) < 10_000);
      const code = await smsCode(db(), phone);
      const stored = await sql<{ code_hash: string; salt: string }>`select code_hash, salt from identity.sms_codes where account_id = ${player.id}`.execute(db());
      assert.equal(stored.rows.length, 1);
      assert.ok(!stored.rows[0]!.code_hash.includes(code) && stored.rows[0]!.code_hash.length >= 43, 'the code is stored as a salted hash');

      const again = await call('POST', '/v1/identity/mfa/sms', { phone });
      assert.equal(again.status, 429);
      const problem = (await again.json()) as { code: string; retryAfter: number };
      assert.equal(problem.code, 'MFA_SMS_RESEND_TOO_SOON');
      assert.ok(problem.retryAfter > 0 && problem.retryAfter <= 60);
      assert.equal(again.headers.get('retry-after'), String(problem.retryAfter));
      assert.equal(await countMessages(db(), phone), 1);

      const status = (await (await call('GET', '/v1/identity/mfa/sms')).json()) as { enabled: boolean; pending: boolean };
      assert.deepEqual(status, { enabled: false, phone: '+44********23', pending: true });
      const wrong = await call('POST', '/v1/identity/mfa/sms/confirm', { code: code === '000000' ? '111111' : '000000' });
      assert.equal(((await wrong.json()) as { code: string }).code, 'MFA_CODE_INVALID');
      const confirmed = await call('POST', '/v1/identity/mfa/sms/confirm', { code });
      assert.equal(confirmed.status, 200, await confirmed.clone().text());
      assert.deepEqual(await confirmed.json(), { enabled: true, phone: '+44********23', pending: false });
      // With a factor, managing factors needs a fresh sign-in with it (step-up): a password-only token is refused.
      for (const [method, path, body] of [
        ['POST', '/v1/identity/mfa/sms', { phone: '+447700900999' }],
        ['POST', '/v1/identity/mfa/sms/confirm', { code }],
        ['DELETE', '/v1/identity/mfa/sms', undefined],
        ['PUT', '/v1/identity/mfa/policy', { required: true }],
      ] as const) {
        const weak = await call(method, path, body, player.token);
        assert.equal(weak.status, 401, `${method} ${path}`);
        assert.equal(((await weak.json()) as { code: string }).code, 'STEP_UP_REQUIRED', `${method} ${path}`);
        assert.match(weak.headers.get('www-authenticate') ?? '', /acr_values="urn:pitboss:acr:2fa"/);
      }
      assert.equal((await call('POST', '/v1/identity/mfa/sms/confirm', { code }, player.strong)).status, 409);
      assert.equal((await call('POST', '/v1/identity/mfa/sms', { phone: '+447700900999' }, player.strong)).status, 409);

      const events = await sql<{ payload: unknown }>`select payload from platform.outbox where type = 'identity.mfa.enrolled'`.execute(db());
      assert.deepEqual(events.rows.map((r) => r.payload), [{ playerId: player.id, method: 'sms' }]);
      const audit = await sql<{ changes: unknown }>`select changes from platform.audit_log where action = 'identity.mfa.enroll' and target_id = ${player.id}`.execute(db());
      assert.deepEqual(audit.rows.map((r) => r.changes), [{ method: 'sms', phone: '+44********23' }]);
      assert.ok(!JSON.stringify(audit.rows).includes(phone), 'the audit log keeps the number masked');
    });

    it('sign-in with SMS enrolled sends a code after the password; the tokens say amr sms and acr 2fa', async () => {
      const flow = signIn();
      const page = await flow.start(player.login, player.password);
      assert.equal(page.status, 200, page.body.slice(0, 300));
      assert.match(page.body, /Enter the code we sent you/);
      assert.match(page.body, /\+44\*+23/);
      assert.doesNotMatch(page.body, /7700900123/);
      const tokens = await flow.tokens(await flow.post({ code: await smsCode(db(), phone) }));
      const access = decodeJwt(tokens.access_token);
      assert.equal(access.acr, 'urn:pitboss:acr:2fa');
      assert.deepEqual(access.amr, ['pwd', 'sms', 'mfa']);
    });

    it('a code is dead after 5 wrong tries, and every wrong try counts as a failed sign-in', async () => {
      await age(61);
      const flow = signIn();
      assert.equal((await flow.start(player.login, player.password)).status, 200);
      const code = await smsCode(db(), phone);
      const wrong = code === '000000' ? '111111' : '000000';
      const before = await failures();
      for (let i = 0; i < 5; i++) {
        const hop = await flow.post({ code: wrong });
        assert.equal(hop.status, 400);
        assert.match(hop.body, /role="alert">The code is not correct/);
      }
      assert.equal(await failures(), before + 5);
      assert.equal((await flow.post({ code })).status, 400, 'the right code after five wrong ones');
      // A new code (after the throttle) works.
      await age(61);
      const resent = await flow.post({ sms: 'send' });
      assert.equal(resent.status, 200);
      const fresh = await smsCode(db(), phone);
      await flow.tokens(await flow.post({ code: fresh }));
    });

    it('an expired code is refused; a used one too; asking again within a minute says when', async () => {
      await age(61);
      const flow = signIn();
      await flow.start(player.login, player.password);
      const code = await smsCode(db(), phone);
      const early = await flow.post({ sms: 'send' });
      assert.equal(early.status, 429);
      assert.match(early.body, /ask for a new one in \d+ seconds/);
      assert.ok(Number(early.headers['retry-after']) > 0);
      await sql`update identity.sms_codes set expires_at = now() - interval '1 second' where account_id = ${player.id}`.execute(db());
      assert.equal((await flow.post({ code })).status, 400);
    });

    it('a sign-in at the SMS step gets no more codes once its account is locked', async () => {
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const other = { id: ((await res.json()) as { id: string }).id, login: String(body.login), password: String(body.password) };
      const token = await app.playerToken(other.id);
      const otherPhone = '+447700900777';
      assert.equal((await call('POST', '/v1/identity/mfa/sms', { phone: otherPhone }, token)).status, 202);
      assert.equal((await call('POST', '/v1/identity/mfa/sms/confirm', { code: await smsCode(db(), otherPhone) }, token)).status, 200);
      await sql`update identity.sms_codes set sent_at = sent_at - interval '61 seconds' where account_id = ${other.id}`.execute(db());
      // One browser is at the SMS step; in another, wrong passwords lock the account.
      const flow = signIn();
      assert.equal((await flow.start(other.login, other.password)).status, 200);
      const guesses: number[] = [];
      for (let i = 0; i < 10; i++) guesses.push((await signIn().start(other.login, `wrong-password-${i}-x`)).status);
      assert.equal(guesses.at(-1), 429, JSON.stringify(guesses));
      await sql`update identity.sms_codes set sent_at = sent_at - interval '61 seconds' where account_id = ${other.id}`.execute(db());
      const sent = await countMessages(db(), otherPhone);
      const refused = await flow.post({ sms: 'send' });
      assert.equal(refused.status, 429);
      assert.match(refused.body, /Too many failed attempts/);
      assert.equal(await countMessages(db(), otherPhone), sent, 'no SMS while locked');
      const locks = await sql<{ n: string }>`select count(*) as n from platform.outbox where type = 'identity.sign_in.locked' and payload->>'playerId' = ${other.id}`.execute(db());
      assert.equal(Number(locks.rows[0]!.n), 1);
    });

    it('with an authenticator app as well, the code page offers "Send a code by SMS"', async () => {
      const enrolment = (await (await call('POST', '/v1/identity/mfa/totp', undefined, player.strong)).json()) as { secret: string };
      const key = base32Decode(enrolment.secret);
      assert.equal((await call('POST', '/v1/identity/mfa/totp/confirm', { code: totpAt(key, stepNow()) }, player.strong)).status, 200);
      await age(61);
      const flow = signIn();
      const page = await flow.start(player.login, player.password);
      assert.match(page.body, /Authentication code/);
      assert.match(page.body, /name="sms" value="send"[^>]*>Send a code by SMS to \+44\*+23/);
      const before = await countMessages(db(), phone);
      const smsPage = await flow.post({ sms: 'send' });
      assert.equal(smsPage.status, 200);
      assert.equal(await countMessages(db(), phone), before + 1);
      const tokens = await flow.tokens(await flow.post({ code: await smsCode(db(), phone) }));
      assert.deepEqual(decodeJwt(tokens.access_token).amr, ['pwd', 'sms', 'mfa']);
      // The authenticator app still works on its own.
      await sql`delete from identity.totp_factors where account_id = ${player.id}`.execute(db());
      await sql`delete from identity.recovery_codes where account_id = ${player.id}`.execute(db());
    });

    it('with a passkey as well, the passkey page offers "Send a code by SMS"; a wrong SMS code counts towards the lock', async () => {
      await insertCredential(tablesOf<IdentityTables>(db()), {
        account_id: player.id,
        credential_id: randomBytes(32).toString('base64url'),
        public_key: new Uint8Array(77),
        counter: 0,
        transports: ['usb'],
        device_type: 'singleDevice',
        backed_up: false,
        aaguid: '00000000-0000-0000-0000-000000000000',
        name: 'Key',
      });
      await age(61);
      const flow = signIn();
      const page = await flow.start(player.login, player.password);
      assert.equal(page.status, 200);
      assert.match(page.body, /Use a passkey or security key/);
      assert.doesNotMatch(page.body, /Authentication code/, 'no authenticator app: no code form');
      assert.match(page.body, /name="sms" value="send"[^>]*>Send a code by SMS to \+44\*+23/);
      assert.equal((await flow.post({ sms: 'send' })).status, 200);
      const code = await smsCode(db(), phone);
      const before = await failures();
      assert.equal((await flow.post({ code: code === '000000' ? '111111' : '000000' })).status, 400);
      assert.equal(await failures(), before + 1);
      const tokens = await flow.tokens(await flow.post({ code }));
      assert.deepEqual(decodeJwt(tokens.access_token).amr, ['pwd', 'sms', 'mfa']);
      await sql`delete from identity.webauthn_credentials where account_id = ${player.id}`.execute(db());
    });

    it('DELETE removes the number: audited, emitted; sign-in no longer asks for a code', async () => {
      assert.equal((await call('DELETE', '/v1/identity/mfa/sms', undefined, '')).status, 401);
      const removed = await call('DELETE', '/v1/identity/mfa/sms', undefined, player.strong);
      assert.equal(removed.status, 204);
      assert.equal((await call('DELETE', '/v1/identity/mfa/sms', undefined, player.strong)).status, 404);
      const events = await sql<{ payload: unknown }>`select payload from platform.outbox where type = 'identity.mfa.removed'`.execute(db());
      assert.deepEqual(events.rows.map((r) => r.payload), [{ playerId: player.id, method: 'sms' }]);
      const audit = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'identity.mfa.remove' and target_id = ${player.id}`.execute(db());
      assert.equal(Number(audit.rows[0]!.n), 1);
      const flow = signIn();
      const done = await flow.start(player.login, player.password);
      assert.equal(done.status, 303);
    });

    it('policy: the player requires MFA; without a factor the next sign-in enrols an authenticator app on the page first', async () => {
      for (const body of [{}, { required: 'yes' }, { required: true, other: 1 }]) assert.equal((await call('PUT', '/v1/identity/mfa/policy', body)).status, 400);
      assert.equal((await call('PUT', '/v1/identity/mfa/policy', { required: true }, '')).status, 401);
      const set = await call('PUT', '/v1/identity/mfa/policy', { required: true });
      assert.deepEqual(await set.json(), { requiredByPlayer: true, requiredByStaff: false, required: true });

      const flow = signIn();
      const enrol = await flow.start(player.login, player.password);
      assert.equal(enrol.status, 200);
      assert.match(enrol.body, /Set up your authenticator app/);
      assert.match(enrol.body, /<svg [^>]*role="img"/);
      const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enrol.body)![1]!;
      const key = base32Decode(secret);
      const wrong = await flow.post({ enrol_code: totpAt(key, stepNow() + 5) });
      assert.equal(wrong.status, 400);
      assert.match(wrong.body, /role="alert">The code is not correct/);
      assert.equal(/id="totp-secret">([A-Z2-7 ]+)</.exec(wrong.body)![1], secret, 'the same secret is shown again');
      assert.equal((await flow.post({ continue: '1' })).status, 400, 'no continuing before the app is confirmed');
      const codes = await flow.post({ enrol_code: totpAt(key, stepNow()) });
      assert.equal(codes.status, 200, codes.body.slice(0, 300));
      const recovery = [...codes.body.matchAll(/<li><code>([A-Z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]);
      assert.equal(recovery.length, 10);
      const tokens = await flow.tokens(await flow.post({ continue: '1' }));
      const access = decodeJwt(tokens.access_token);
      assert.equal(access.acr, 'urn:pitboss:acr:2fa');
      assert.deepEqual(access.amr, ['pwd', 'otp', 'mfa']);
      // The next sign-in asks for the app's code.
      const next = await signIn().start(player.login, player.password);
      assert.match(next.body, /Authentication code/);
    });

    it('policy: staff with the permission require MFA for a player; the player cannot lift it', async () => {
      const manager = await app.staffToken(['admin']);
      const path = `/v1/identity/players/${player.id}/mfa-policy`;
      assert.equal((await call('PUT', path, { required: true }, await app.staffToken(['support']))).status, 403);
      assert.equal((await call('PUT', path, { required: true }, player.token)).status, 403);
      assert.equal((await call('PUT', '/v1/identity/players/not-a-uuid/mfa-policy', { required: true }, manager)).status, 400);
      const unknown = await call('PUT', '/v1/identity/players/01990000-0000-7000-8000-000000000000/mfa-policy', { required: true }, manager);
      assert.equal(unknown.status, 404);
      assert.equal(((await unknown.json()) as { code: string }).code, 'MFA_POLICY_PLAYER_NOT_FOUND');
      assert.equal((await call('PUT', path, { required: 'true' }, manager)).status, 400);
      assert.deepEqual(await (await call('PUT', path, { required: true }, manager)).json(), { requiredByPlayer: true, requiredByStaff: true, required: true });
      // The player has an authenticator app by now: lifting their switch needs the second factor.
      assert.equal((await call('PUT', '/v1/identity/mfa/policy', { required: false })).status, 401);
      assert.deepEqual(await (await call('PUT', '/v1/identity/mfa/policy', { required: false }, player.strong)).json(), { requiredByPlayer: false, requiredByStaff: true, required: true });
      assert.deepEqual(await (await call('GET', path, undefined, manager)).json(), { requiredByPlayer: false, requiredByStaff: true, required: true });
      const events = await sql<{ payload: { by: string; required: boolean; effective: boolean } }>`select payload from platform.outbox where type = 'identity.mfa.policy_changed' order by id`.execute(db());
      assert.deepEqual(
        events.rows.map((r) => [r.payload.by, r.payload.required, r.payload.effective]),
        [
          ['player', true, true],
          ['staff', true, true],
          ['player', false, true],
        ],
      );
      const audit = await sql<{ actor_type: string }>`select actor_type from platform.audit_log where action = 'identity.mfa.policy.change' order by at`.execute(db());
      assert.deepEqual(audit.rows.map((r) => r.actor_type).sort(), ['player', 'player', 'staff']);
    });
  });
}
