import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { Browser, formAction, freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';
import { latestMessage, SignIn } from './mfa.test-support.ts';

const REDIRECT = 'https://game.casino.test/callback';

for (const { kind, skip } of await databaseKinds()) {
  describe(`email verification (${kind})`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let config: oidc.Configuration;
    const db = () => app.server.runtime.database.db;

    async function register() {
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201);
      const id = ((await res.json()) as { id: string }).id;
      return { id, email: String(body.email), login: String(body.login), password: String(body.password), token: await app.playerToken(id) };
    }

    /** The link in the newest verification email to an address (it is sent after the registration commits). */
    async function linkFor(email: string, previous?: string): Promise<string> {
      for (let i = 0; i < 100; i++) {
        const message = await latestMessage(db(), email);
        const link = message ? /https?:\/\/\S+\/verify-email\/[\w-]+/.exec(message.body)?.[0] : undefined;
        if (link && link !== previous) {
          assert.equal(message!.subject, 'Confirm your email address');
          assert.equal(message!.purpose, 'email.verification');
          return link;
        }
        await sleep(50);
      }
      assert.fail(`no verification email for ${email}`);
    }

    const requestLink = (token: string) => fetch(`${base}/v1/identity/email-verification`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
    const idTokenClaims = async (player: { login: string; password: string }) => {
      const flow = new SignIn(config, base, REDIRECT);
      const tokens = await flow.tokens(await flow.start(player.login, player.password, 'openid email'));
      return tokens.claims()!;
    };

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, { PUBLIC_URL: base });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      const created = await identity.clients.create(systemContext('test'), { name: 'Game', grantTypes: ['authorization_code'], redirectUris: [REDIRECT], public: true });
      config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    });
    after(async () => app?.close());

    it('registration sends a single-use link (token stored hashed); opening it asks to confirm, the button verifies; the ID token then says email_verified', async () => {
      const player = await register();
      const link = await linkFor(player.email);
      assert.ok(link.startsWith(`${base}/verify-email/`));
      const token = link.split('/').at(-1)!;
      const stored = await sql<{ token_hash: string }>`select token_hash from identity.email_verifications where player_id = ${player.id}`.execute(db());
      assert.deepEqual(stored.rows.map((r) => r.token_hash), [createHash('sha256').update(token).digest('hex')]);
      assert.equal((await idTokenClaims(player)).email_verified, false);

      const browser = new Browser();
      const page = await browser.request(link);
      assert.equal(page.status, 200);
      assert.match(page.body, /Confirm my email address/);
      const self = async () => (await (await fetch(`${base}/v1/players/${player.id}`, { headers: { authorization: `Bearer ${player.token}` } })).json()) as { emailVerified: boolean };
      assert.equal((await self()).emailVerified, false, 'opening the link verifies nothing');
      const done = await browser.request(new URL(formAction(page.body)!, base).href, { form: {} });
      assert.equal(done.status, 200, done.body);
      assert.match(done.body, /Email address confirmed/);
      assert.equal((await self()).emailVerified, true);
      assert.equal((await browser.request(new URL(formAction(page.body)!, base).href, { form: {} })).status, 400, 'the link works once');
      assert.equal((await idTokenClaims(player)).email_verified, true);

      const events = await sql<{ payload: { playerId: string } }>`select payload from platform.outbox where type = 'player.email_verified'`.execute(db());
      assert.deepEqual(events.rows.map((r) => r.payload.playerId), [player.id]);
      const audit = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'player.email.verify' and target_id = ${player.id}`.execute(db());
      assert.equal(Number(audit.rows[0]!.n), 1);
      const again = await requestLink(player.token);
      assert.equal(again.status, 409);
      assert.equal(((await again.json()) as { code: string }).code, 'EMAIL_ALREADY_VERIFIED');
    });

    it('on request: throttled to one a minute (Retry-After), then a new link, audited; the API confirms a token too', async () => {
      const player = await register();
      const first = await linkFor(player.email);
      const early = await requestLink(player.token);
      assert.equal(early.status, 429);
      const problem = (await early.json()) as { code: string; retryAfter: number };
      assert.equal(problem.code, 'EMAIL_VERIFICATION_TOO_SOON');
      assert.equal(early.headers.get('retry-after'), String(problem.retryAfter));
      await sql`update identity.email_verifications set created_at = created_at - interval '61 seconds' where player_id = ${player.id}`.execute(db());
      const sent = await requestLink(player.token);
      assert.equal(sent.status, 202, await sent.clone().text());
      const body = (await sent.json()) as { sentTo: string; expiresAt: string };
      assert.notEqual(body.sentTo, player.email);
      assert.match(body.sentTo, /\*/);
      assert.ok(Math.abs(Date.parse(body.expiresAt) - Date.now() - 86_400_000) < 60_000);
      const second = await linkFor(player.email, first);
      const audit = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'identity.email_verification.send' and target_id = ${player.id}`.execute(db());
      assert.equal(Number(audit.rows[0]!.n), 1);
      // An expired link verifies nothing; the newer one, through the API, does.
      await sql`update identity.email_verifications set expires_at = now() - interval '1 second' where token_hash = ${createHash('sha256').update(first.split('/').at(-1)!).digest('hex')}`.execute(db());
      const expired = await fetch(first, { method: 'POST' });
      assert.equal(expired.status, 400);
      const confirmed = await fetch(`${base}/v1/identity/email-verification/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: second.split('/').at(-1) }) });
      assert.equal(confirmed.status, 200, await confirmed.clone().text());
      assert.deepEqual(await confirmed.json(), { emailVerified: true });
    });

    it('changing the email marks the new address unverified and sends it a link; the old link is stale', async () => {
      const player = await register();
      const oldLink = await linkFor(player.email);
      const verified = await fetch(`${base}/v1/identity/email-verification/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: oldLink.split('/').at(-1) }) });
      assert.equal(verified.status, 200);
      const self = async () => (await (await fetch(`${base}/v1/players/${player.id}`, { headers: { authorization: `Bearer ${player.token}` } })).json()) as { email: string; emailVerified: boolean };
      assert.equal((await self()).emailVerified, true);

      const newEmail = `changed.${player.email}`;
      const changed = await fetch(`${base}/v1/identity/email`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${player.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ email: newEmail }),
      });
      assert.equal(changed.status, 200, await changed.clone().text());
      const now = await self();
      assert.equal(now.email, newEmail);
      assert.equal(now.emailVerified, false, 'a new address is unverified');
      assert.equal((await idTokenClaims(player)).email_verified, false);

      const link = await linkFor(newEmail);
      assert.match((await latestMessage(db(), newEmail))!.body, /did not change the email address/);
      const confirmed = await fetch(`${base}/v1/identity/email-verification/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: link.split('/').at(-1) }) });
      assert.equal(confirmed.status, 200, await confirmed.clone().text());
      assert.equal((await self()).emailVerified, true);
      assert.equal((await idTokenClaims(player)).email_verified, true);
    });

    it('a link for an address the player no longer has verifies nothing', async () => {
      const player = await register();
      const link = await linkFor(player.email);
      await sql`update players.players set email = ${`new.${player.email}`}, email_normalized = ${`new.${player.email}`.toLowerCase()} where id = ${player.id}`.execute(db());
      const res = await fetch(link, { method: 'POST' });
      assert.equal(res.status, 409);
      assert.match(await res.text(), /Link out of date/);
      const row = await sql<{ email_verified_at: Date | null }>`select email_verified_at from players.players where id = ${player.id}`.execute(db());
      assert.equal(row.rows[0]!.email_verified_at, null);
    });

    it('bad input is refused with a stable code and changes nothing', async () => {
      assert.equal((await requestLink('')).status, 401);
      assert.equal((await requestLink(await app.staffToken(['admin']))).status, 403);
      assert.equal((await fetch(`${base}/verify-email/too-short`)).status, 400);
      assert.equal((await fetch(`${base}/verify-email/too-short`, { method: 'POST' })).status, 400);
      const confirm = (body: unknown) => fetch(`${base}/v1/identity/email-verification/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      for (const body of [{}, { token: 'x' }, { token: 'A'.repeat(43), extra: 1 }]) {
        const res = await confirm(body);
        assert.equal(res.status, 400);
        assert.equal(((await res.json()) as { code: string }).code, 'VALIDATION_FAILED');
      }
      const unknown = await confirm({ token: 'A'.repeat(43) });
      assert.equal(unknown.status, 400);
      assert.equal(((await unknown.json()) as { code: string }).code, 'EMAIL_VERIFICATION_INVALID');
    });
  });
}
