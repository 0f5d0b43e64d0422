import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { sql } from 'kysely';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { chromiumSuite, oathtoolTotp } from '../../../test/support/chromium.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { api, Authorization, newPlayer, startServer, type Player, type Server } from './chromium.test-support.ts';

// Passkeys and security keys end to end: registered over the API from a page of the
// server's origin (the test stands in for the casino's app: it fetches the options with
// the player's token, runs navigator.credentials.create in Chromium, posts the result),
// then used on the hosted sign-in page in the authorization-code flow. The
// authenticators are Chromium's virtual ones (CDP's WebAuthn domain).

const { noChromium, noOathtool, browser } = await chromiumSuite();

interface Credential {
  id: string;
  name: string;
  deviceType: string;
  backedUp: boolean;
  transports: string[];
  createdAt: string;
  lastUsedAt: string | null;
}

type AuthenticatorOptions = { transport: 'internal' | 'usb'; hasResidentKey: boolean; isUserVerified?: boolean; defaultBackupEligibility?: boolean };

/** A Chromium page with a virtual authenticator, on the server's origin. */
class Device {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly cdp: CDPSession;
  readonly authenticatorId: string;
  readonly #origin: string;

  private constructor(origin: string, context: BrowserContext, page: Page, cdp: CDPSession, authenticatorId: string) {
    this.#origin = origin;
    this.context = context;
    this.page = page;
    this.cdp = cdp;
    this.authenticatorId = authenticatorId;
  }

  static async open(server: Server, options: AuthenticatorOptions): Promise<Device> {
    const context = await browser().newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true, ...options },
    });
    return new Device(server.base, context, page, cdp, authenticatorId);
  }

  async userVerified(verified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.authenticatorId, isUserVerified: verified });
  }

  /** The authenticator verifies the user but its responses say it did not (the UV flag cleared). */
  async clearUvFlag(clear: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId: this.authenticatorId, isBadUV: clear });
  }

  /** navigator.credentials.create in the page with these options; the credential as JSON, or the DOMException's name. */
  async create(options: unknown): Promise<{ ok: true; response: unknown } | { ok: false; error: string }> {
    // A page of the server's origin (the RP ID is PUBLIC_URL's hostname).
    if (!this.page.url().startsWith(`${this.#origin}/`)) await this.page.goto(`${this.#origin}/health/live`);
    return this.page.evaluate(`(async (options) => {
      try {
        const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
        return { ok: true, response: credential.toJSON() };
      } catch (e) {
        return { ok: false, error: e.name };
      }
    })(${JSON.stringify(options)})`);
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`passkeys and security keys (${kind})`, { skip: skip || noChromium }, () => {
    let server: Server;
    let jwks: ReturnType<typeof createRemoteJWKSet>;
    let player: Player;
    let phone: Device;
    let key: Device;
    /** For responses the server must refuse (its non-resident credentials overwrite nothing). */
    let spare: Device;
    let passkey: Credential;
    let securityKey: Credential;

    const db = () => server.app.server.runtime.database.db;
    const verify = (token: string) => jwtVerify(token, jwks, { issuer: server.issuer, audience: 'pitboss', algorithms: ['ES256'], typ: 'at+jwt' });
    const options = async (who: Player = player) => {
      const res = await api(server, who.token, 'POST', '/v1/identity/mfa/webauthn/registration/options');
      assert.equal(res.status, 200, JSON.stringify(res.json));
      return res.json as { challenge: string; rp: { id: string; name: string }; user: { id: string; name: string }; excludeCredentials: { id: string }[]; authenticatorSelection: { userVerification: string } };
    };
    /** A fresh device with a passkey registered for `who` (the caller closes it). */
    const deviceWithPasskey = async (who: Player): Promise<Device> => {
      const device = await Device.open(server, { transport: 'internal', hasResidentKey: true });
      try {
        const created = await device.create(await options(who));
        assert.ok(created.ok);
        assert.equal((await api(server, who.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: created.response })).status, 201);
        return device;
      } catch (error) {
        await device.close();
        throw error;
      }
    };
    const list = async (who: Player = player) => {
      const res = await api(server, who.token, 'GET', '/v1/identity/mfa/webauthn/credentials');
      assert.equal(res.status, 200);
      return (res.json as { items: Credential[] }).items;
    };
    const count = async (query: ReturnType<typeof sql<{ n: string }>>) => Number((await query.execute(db())).rows[0]!.n);
    const state = async () => ({
      credentials: await count(sql<{ n: string }>`select count(*) as n from identity.webauthn_credentials`),
      events: await count(sql<{ n: string }>`select count(*) as n from platform.outbox where type like 'identity.%'`),
      // Creating a staff member (for a staff token) is audited too: count the identity module's entries.
      audit: await count(sql<{ n: string }>`select count(*) as n from platform.audit_log where action like 'identity.%'`),
    });

    /** Password, then the passkey button; the authorization (the page ends at the app, or not). */
    async function signInWithPasskey(device: Device, who: Player = player): Promise<Authorization> {
      const flow = await Authorization.start(server, device.context, device.page);
      await flow.password(who.login, who.password);
      assert.equal(await flow.page.title(), 'Confirm it is you');
      await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).click();
      return flow;
    }

    before(async () => {
      server = await startServer(kind, { SIGN_IN_DELAY_MS: '20', SIGN_IN_MAX_DELAY_MS: '40', SIGN_IN_ACCOUNT_LOCK_THRESHOLD: '5' });
      jwks = createRemoteJWKSet(new URL(server.config.serverMetadata().jwks_uri!));
      player = await newPlayer(server);
      phone = await Device.open(server, { transport: 'internal', hasResidentKey: true, defaultBackupEligibility: true });
      key = await Device.open(server, { transport: 'usb', hasResidentKey: false });
      spare = await Device.open(server, { transport: 'usb', hasResidentKey: false });
    });
    after(async () => {
      await phone?.close();
      await key?.close();
      await spare?.close();
      await server?.close();
    });

    it('registration: options for PUBLIC_URL with user verification required; the credential verified, stored, listed, audited and emitted', async () => {
      const opts = await options();
      assert.equal(opts.rp.id, 'localhost');
      assert.equal(opts.authenticatorSelection.userVerification, 'required');
      assert.deepEqual(opts.excludeCredentials, []);
      assert.equal(opts.user.name, player.login);
      assert.equal(Buffer.from(opts.user.id, 'base64url').toString('hex'), player.id.replace(/-/g, ''));

      const created = await phone.create(opts);
      assert.ok(created.ok, JSON.stringify(created));
      const res = await api(server, player.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: created.response, name: 'My phone' });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      passkey = res.json as Credential;
      assert.equal(passkey.name, 'My phone');
      assert.equal(passkey.deviceType, 'multiDevice');
      assert.deepEqual(passkey.transports, ['internal']);
      assert.equal(passkey.lastUsedAt, null);
      assert.deepEqual(await list(), [passkey]);

      // The response is worth one registration: its challenge is used up.
      const again = await api(server, player.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: created.response });
      assert.equal(again.status, 400);
      assert.equal((again.json as { code: string }).code, 'WEBAUTHN_CHALLENGE_INVALID');

      const stored = await sql<{ account_id: string; public_key: Uint8Array; counter: unknown }>`select account_id, public_key, counter from identity.webauthn_credentials`.execute(db());
      assert.equal(stored.rows.length, 1);
      assert.equal(stored.rows[0]!.account_id, player.id);
      const publicKey = stored.rows[0]!.public_key;
      assert.equal(publicKey[0]! & 0xe0, 0xa0, 'a COSE key: a CBOR map');
      assert.ok(publicKey.length >= 40);
      const events = await sql<{ payload: unknown }>`select payload from platform.outbox where type = 'identity.mfa.enrolled'`.execute(db());
      assert.deepEqual(events.rows.map((r) => r.payload), [{ playerId: player.id, method: 'webauthn' }]);
      const audit = await sql<{ target_id: string; changes: { method: string; credentialId: string } }>`select target_id, changes from platform.audit_log where action = 'identity.mfa.enroll'`.execute(db());
      assert.equal(audit.rows.length, 1);
      assert.equal(audit.rows[0]!.target_id, player.id);
      assert.equal(audit.rows[0]!.changes.method, 'webauthn');
      assert.equal(audit.rows[0]!.changes.credentialId, passkey.id);
    });

    it('sign-in: a player with a passkey (and no authenticator app) is asked for it after the password; acr 2fa, amr hwk', async () => {
      const flow = await signInWithPasskey(phone);
      const tokens = await flow.tokens();
      const { payload } = await verify(tokens.access_token);
      assert.equal(payload.sub, player.id);
      assert.equal(payload.acr, 'urn:pitboss:acr:2fa');
      assert.deepEqual(payload.amr, ['pwd', 'hwk', 'mfa']);
      const [used] = await list();
      assert.ok(used?.lastUsedAt, 'last use recorded');
      const counter = await sql<{ counter: unknown }>`select counter from identity.webauthn_credentials where credential_id = ${passkey.id}`.execute(db());
      assert.ok(Number(counter.rows[0]!.counter) > 0, 'the counter moved on');
    });

    it('the sign-in page runs only its own script (CSP nonce), and labels its choices', async () => {
      const flow = await Authorization.start(server, phone.context, phone.page);
      const response = flow.page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/sign-in/'));
      await flow.password(player.login, player.password);
      const csp = (await response).headers()['content-security-policy']!;
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'nonce-[^']+'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      const script = await flow.page.locator('script').getAttribute('src');
      assert.equal(script, '/sign-in/assets/passkey.js');
      assert.equal(await flow.page.getByRole('status').count(), 1);
      // Without an authenticator app, no code form.
      assert.equal(await flow.page.getByLabel(/authentication code/i).count(), 0);
      const served = await fetch(`${server.base}${script}`);
      assert.equal(served.status, 200);
      assert.match(served.headers.get('content-type')!, /^text\/javascript/);
    });

    it('a second credential, a security key: the first is excluded; a key cannot be registered twice; both sign in', async () => {
      const opts = await options();
      assert.deepEqual(opts.excludeCredentials.map((c) => c.id), [passkey.id]);
      // The phone holds an excluded credential: the browser refuses to make another.
      const refused = await phone.create(opts);
      assert.deepEqual(refused, { ok: false, error: 'InvalidStateError' });
      const created = await key.create(opts);
      assert.ok(created.ok, JSON.stringify(created));
      const res = await api(server, player.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: created.response, name: 'YubiKey' });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      securityKey = res.json as Credential;
      assert.equal(securityKey.deviceType, 'singleDevice');
      assert.deepEqual(securityKey.transports, ['usb']);
      assert.deepEqual((await list()).map((c) => c.id), [passkey.id, securityKey.id]);
      const tokens = await (await signInWithPasskey(key)).tokens();
      assert.deepEqual((await verify(tokens.access_token)).payload.amr, ['pwd', 'hwk', 'mfa']);
      // A credential id is registered once, whichever the account.
      const other = await newPlayer(server);
      await assert.rejects(
        sql`insert into identity.webauthn_credentials (account_id, credential_id, public_key, device_type, backed_up, aaguid, name)
            select ${other.id}, credential_id, public_key, device_type, backed_up, aaguid, name from identity.webauthn_credentials where credential_id = ${securityKey.id}`.execute(db()),
        /duplicate key|unique/,
      );
    });

    it('a player with an authenticator app and a passkey gets the choice: a code (from oathtool) or the passkey', { skip: noOathtool }, async () => {
      const both = await newPlayer(server);
      const started = await api(server, both.token, 'POST', '/v1/identity/mfa/totp');
      const { secret } = started.json as { secret: string };
      assert.equal((await api(server, both.token, 'POST', '/v1/identity/mfa/totp/confirm', { code: await oathtoolTotp(secret) })).status, 200);
      const device = await deviceWithPasskey(both);
      try {

        const flow = await Authorization.start(server, device.context, device.page);
        await flow.password(both.login, both.password);
        assert.equal(await flow.page.title(), 'Confirm it is you');
        assert.equal(await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).count(), 1);
        const next = await oathtoolTotp(secret, new Date(Date.now() + 30_000));
        await flow.page.getByLabel('Or enter an authentication code').fill(next === '000000' ? '111111' : '000000');
        await flow.page.getByRole('button', { name: 'Continue with the code' }).click();
        await flow.page.waitForLoadState();
        assert.match((await flow.page.getByRole('alert').textContent()) ?? '', /The code is not correct/);
        assert.equal(await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).count(), 1, 'the choice stays');
        assert.equal(await flow.page.getByLabel('Or enter an authentication code').getAttribute('aria-invalid'), 'true');
        await flow.page.getByLabel('Or enter an authentication code').fill(next);
        await flow.page.getByRole('button', { name: 'Continue with the code' }).click();
        assert.deepEqual((await verify((await flow.tokens()).access_token)).payload.amr, ['pwd', 'otp', 'mfa']);

        const withKey = await signInWithPasskey(device, both);
        assert.deepEqual((await verify((await withKey.tokens()).access_token)).payload.amr, ['pwd', 'hwk', 'mfa']);
      } finally {
        await device.close();
      }
    });

    it('refused without user verification: at registration and at sign-in', async () => {
      const before = await state();
      try {
        // Required by the options, the browser itself refuses an authenticator that fails to verify the user.
        await spare.userVerified(false);
        const opts = await options();
        assert.deepEqual(await spare.create(opts), { ok: false, error: 'NotAllowedError' });
        await spare.userVerified(true);
        // An authenticator whose response says the user was not verified: the server refuses it.
        await spare.clearUvFlag(true);
        const tampered = await spare.create(opts);
        assert.ok(tampered.ok, JSON.stringify(tampered));
        const res = await api(server, player.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: tampered.response });
        assert.equal(res.status, 400);
        assert.equal((res.json as { code: string }).code, 'WEBAUTHN_RESPONSE_INVALID');
        assert.match((res.json as { detail: string }).detail, /user verification/i);
        assert.deepEqual(await state(), before);

        // At sign-in, the same: an authenticator that fails to verify the user is refused by
        // the browser (the page says so and posts nothing)...
        await phone.userVerified(false);
        const flow = await Authorization.start(server, phone.context, phone.page);
        await flow.password(player.login, player.password);
        let postedAnything = false;
        flow.page.on('request', (r) => (postedAnything ||= r.method() === 'POST'));
        await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).click();
        await flow.page.getByRole('status').filter({ hasText: 'was not used' }).waitFor();
        assert.equal(postedAnything, false);
        await phone.userVerified(true);
        // ...and a response that says the user was not verified is refused by the server.
        await phone.clearUvFlag(true);
        // (The same page: its challenge was not used.)
        const posted = flow.page.waitForResponse((r) => r.request().method() === 'POST');
        await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).click();
        assert.equal((await posted).status(), 400);
        assert.match((await flow.page.getByRole('alert').textContent()) ?? '', /was not accepted/);
        assert.match((await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).getAttribute('aria-describedby')) ?? '', /code-error/);
        assert.equal(await flow.callback(500), undefined);
      } finally {
        await phone.userVerified(true);
        await phone.clearUvFlag(false);
        await spare.clearUvFlag(false);
        await spare.userVerified(true);
      }
      const failed = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'identity.sign_in.fail' and target_id = ${player.id}`.execute(db());
      assert.ok(Number(failed.rows[0]!.n) >= 1);
    });

    it('a replayed assertion or one for another challenge is refused', async () => {
      // Catch the assertion of a successful sign-in as it is posted.
      const flow = await Authorization.start(server, phone.context, phone.page);
      await flow.password(player.login, player.password);
      const posted = flow.page.waitForRequest((r) => r.method() === 'POST' && (r.postData() ?? '').startsWith('assertion='));
      await flow.page.getByRole('button', { name: 'Use a passkey or security key' }).click();
      const request = await posted;
      const assertion = new URLSearchParams(request.postData()!).get('assertion')!;
      await flow.tokens();

      // Posted again in a new sign-in (whose challenge is another): refused.
      const replay = await Authorization.start(server, phone.context, phone.page);
      await replay.password(player.login, player.password);
      const loaded = replay.page.waitForEvent('load');
      await replay.page.evaluate(`(() => {
        document.getElementById('passkey-assertion').value = ${JSON.stringify(assertion)};
        // Submitted after evaluate returns: the navigation would end its context.
            setTimeout(() => document.getElementById('passkey-form').submit(), 0);
      })()`);
      await loaded;
      assert.match((await replay.page.getByRole('alert').textContent()) ?? '', /was not accepted/);
      // The page offers a new challenge, which the passkey then answers.
      await replay.page.getByRole('button', { name: 'Use a passkey or security key' }).click();
      assert.ok(await replay.tokens());

      // Registration: a response to options with another challenge.
      const before = await state();
      const opts = await options();
      const forged = await spare.create({ ...opts, challenge: Buffer.from('not the challenge of the server').toString('base64url'), excludeCredentials: [] });
      assert.ok(forged.ok);
      const res = await api(server, player.token, 'POST', '/v1/identity/mfa/webauthn/registration/verify', { response: forged.response });
      assert.equal(res.status, 400);
      assert.equal((res.json as { code: string }).code, 'WEBAUTHN_RESPONSE_INVALID');
      assert.deepEqual(await state(), before);
    });

    it('a signature counter that does not grow (a cloned key) is refused and audited', async () => {
      const { credentials } = await key.cdp.send('WebAuthn.getCredentials', { authenticatorId: key.authenticatorId });
      assert.equal(credentials.length, 1);
      const mine = credentials.find((c) => Buffer.from(c.credentialId, 'base64').toString('base64url') === securityKey.id)!;
      const stored = await sql<{ counter: unknown }>`select counter from identity.webauthn_credentials where credential_id = ${securityKey.id}`.execute(db());
      const counter = Number(stored.rows[0]!.counter);
      assert.ok(counter > 0);
      // A copy of the key made before its last uses: its counter is behind the stored one.
      await key.cdp.send('WebAuthn.removeCredential', { authenticatorId: key.authenticatorId, credentialId: mine.credentialId });
      // (Chromium's own probe before the assertion counts too: the clone starts from zero.)
      await key.cdp.send('WebAuthn.addCredential', { authenticatorId: key.authenticatorId, credential: { ...mine, signCount: 0 } });
      const flow = await signInWithPasskey(key);
      await flow.page.waitForLoadState();
      assert.equal(await flow.callback(1000), undefined);
      assert.match((await flow.page.getByRole('alert').textContent()) ?? '', /was not accepted/);
      const audit = await sql<{ changes: { credentialId: string; storedCounter: number; presentedCounter: number } }>`select changes from platform.audit_log where action = 'identity.mfa.webauthn_counter_regressed'`.execute(db());
      assert.equal(audit.rows.length, 1);
      const { credentialId, storedCounter, presentedCounter } = audit.rows[0]!.changes;
      assert.deepEqual([credentialId, storedCounter], [securityKey.id, counter]);
      assert.ok(presentedCounter > 0 && presentedCounter <= counter);
      const after = await sql<{ counter: unknown }>`select counter from identity.webauthn_credentials where credential_id = ${securityKey.id}`.execute(db());
      assert.equal(Number(after.rows[0]!.counter), counter, 'the stored counter is kept');
    });

    it('failed passkey attempts count towards the sign-in lock', async () => {
      const victim = await newPlayer(server);
      const device = await deviceWithPasskey(victim);
      try {
        const flow = await Authorization.start(server, device.context, device.page);
        await flow.password(victim.login, victim.password);
        const statuses: number[] = [];
        for (let i = 0; i < 5; i++) {
          const posted = flow.page.waitForResponse((r) => r.request().method() === 'POST');
          const loaded = flow.page.waitForEvent('load');
          await flow.page.evaluate(`(() => {
            document.getElementById('passkey-assertion').value = '{"id":"not-a-credential-at-all"}';
            // Submitted after evaluate returns: the navigation would end its context.
            setTimeout(() => document.getElementById('passkey-form').submit(), 0);
          })()`);
          statuses.push((await posted).status());
          await loaded;
        }
        // Four failures after the right password, then the fifth locks (SIGN_IN_ACCOUNT_LOCK_THRESHOLD=5)...
        assert.deepEqual(statuses, [400, 400, 400, 400, 429]);
        // ...and the right password is refused while the lock lasts.
        const again = await Authorization.start(server, device.context, device.page);
        const posted = again.page.waitForResponse((r) => r.request().method() === 'POST');
        await again.password(victim.login, victim.password);
        assert.equal((await posted).status(), 429);
      } finally {
        await device.close();
      }
      const locks = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'identity.sign_in.lock' and target_id = ${victim.id}`.execute(db());
      assert.equal(Number(locks.rows[0]!.n), 1);
    });

    it('deleting a credential: it no longer signs in; another player cannot delete it; audited and emitted', async () => {
      const other = await newPlayer(server);
      const before = await state();
      const foreign = await api(server, other.token, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${passkey.id}`);
      assert.equal(foreign.status, 404);
      assert.equal((foreign.json as { code: string }).code, 'WEBAUTHN_CREDENTIAL_NOT_FOUND');
      assert.deepEqual(await state(), before);

      // With a passkey enrolled, a password-only sign-in is not enough to remove or add one (step-up).
      const weak = await api(server, player.passwordToken, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${passkey.id}`);
      assert.deepEqual([weak.status, (weak.json as { code: string }).code], [401, 'STEP_UP_REQUIRED']);
      const weakAdd = await api(server, player.passwordToken, 'POST', '/v1/identity/mfa/webauthn/registration/options');
      assert.deepEqual([weakAdd.status, (weakAdd.json as { code: string }).code], [401, 'STEP_UP_REQUIRED']);
      assert.deepEqual(await state(), before);

      const removed = await api(server, player.token, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${passkey.id}`);
      assert.equal(removed.status, 204);
      assert.deepEqual((await list()).map((c) => c.id), [securityKey.id]);
      assert.equal((await api(server, player.token, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${passkey.id}`)).status, 404);
      const events = await sql<{ payload: unknown }>`select payload from platform.outbox where type = 'identity.mfa.removed'`.execute(db());
      assert.deepEqual(events.rows.map((r) => r.payload), [{ playerId: player.id, method: 'webauthn' }]);
      const audit = await sql<{ changes: { method: string; credentialId: string } }>`select changes from platform.audit_log where action = 'identity.mfa.remove'`.execute(db());
      assert.deepEqual(audit.rows.map((r) => [r.changes.method, r.changes.credentialId]), [['webauthn', passkey.id]]);

      // The phone's passkey is no longer offered nor accepted.
      const flow = await signInWithPasskey(phone);
      await flow.page.waitForLoadState();
      assert.equal(await flow.callback(1000), undefined);

      // Without any credential (nor an authenticator app) the password alone signs in again.
      assert.equal((await api(server, player.token, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${securityKey.id}`)).status, 204);
      const plain = await Authorization.start(server, phone.context, phone.page);
      await plain.password(player.login, player.password);
      assert.deepEqual((await verify((await plain.tokens()).access_token)).payload.amr, ['pwd']);
    });

    it('bad input to the API is refused with a stable code and changes nothing', async () => {
      const fresh = await newPlayer(server);
      const before = await state();
      const verifyPath = '/v1/identity/mfa/webauthn/registration/verify';
      const code = (res: { json: unknown }) => (res.json as { code: string }).code;
      const sample = { id: 'A'.repeat(22), rawId: 'A'.repeat(22), type: 'public-key', clientExtensionResults: {}, response: { clientDataJSON: 'e30', attestationObject: 'oA' } };

      // No registration started.
      let res = await api(server, fresh.token, 'POST', verifyPath, { response: sample });
      assert.deepEqual([res.status, code(res)], [400, 'WEBAUTHN_CHALLENGE_INVALID']);
      await options(fresh);
      for (const body of [
        {},
        { response: { ...sample, type: 'password' } },
        { response: { ...sample, id: 'not base64url!' } },
        { response: sample, name: '' },
        { response: sample, name: 'x'.repeat(65) },
        { response: sample, extra: true },
      ]) {
        res = await api(server, fresh.token, 'POST', verifyPath, body);
        assert.deepEqual([res.status, code(res)], [400, 'VALIDATION_FAILED'], JSON.stringify(body));
      }
      // Well-formed but not a valid attestation: refused, and the challenge is still there.
      res = await api(server, fresh.token, 'POST', verifyPath, { response: sample });
      assert.deepEqual([res.status, code(res)], [400, 'WEBAUTHN_RESPONSE_INVALID']);

      res = await api(server, fresh.token, 'DELETE', '/v1/identity/mfa/webauthn/credentials/short');
      assert.deepEqual([res.status, code(res)], [400, 'VALIDATION_FAILED']);
      res = await api(server, fresh.token, 'DELETE', `/v1/identity/mfa/webauthn/credentials/${'B'.repeat(43)}`);
      assert.deepEqual([res.status, code(res)], [404, 'WEBAUTHN_CREDENTIAL_NOT_FOUND']);

      // Players only, and only with a token.
      const staff = await server.app.staffToken([]);
      for (const [method, path] of [['POST', '/v1/identity/mfa/webauthn/registration/options'], ['GET', '/v1/identity/mfa/webauthn/credentials']] as const) {
        res = await api(server, staff, method, path);
        assert.deepEqual([res.status, code(res)], [403, 'MFA_PLAYERS_ONLY']);
        assert.equal((await fetch(`${server.base}${path}`, { method })).status, 401);
      }
      const after = await state();
      assert.equal(after.credentials, before.credentials);
      assert.equal(after.events, before.events);
      assert.equal(after.audit, before.audit);

      // The OpenAPI document describes the routes.
      const openapi = (await (await fetch(`${server.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { tags?: string[]; security?: unknown[] }>> };
      for (const [path, method] of [
        ['/v1/identity/mfa/webauthn/registration/options', 'post'],
        ['/v1/identity/mfa/webauthn/registration/verify', 'post'],
        ['/v1/identity/mfa/webauthn/credentials', 'get'],
        ['/v1/identity/mfa/webauthn/credentials/{id}', 'delete'],
      ] as const) {
        const op = openapi.paths[path]?.[method];
        assert.ok(op, `${method} ${path} in OpenAPI`);
        assert.deepEqual(op.tags, ['identity']);
        assert.ok(op.security?.length);
      }
    });
  });
}
