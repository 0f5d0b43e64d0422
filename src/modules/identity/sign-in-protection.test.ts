import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { REDIS_URL, serviceSkip } from '../../../test/support/services.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { Browser, formAction, freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';

const REDIRECT = 'https://game.casino.test/callback';
const LOCK_SECONDS = 2;
const LOCKED = /role="alert">Too many failed attempts\./;

// The counters in the in-memory cache, and in Redis (shared by every process) with PostgreSQL.
const variants = (await databaseKinds()).map((k) => ({ ...k, redis: false }));
const postgres = variants.find((v) => v.kind === 'postgres')!;
variants.push({ kind: 'postgres', redis: true, skip: postgres.skip || (await serviceSkip('redis')) });

for (const { kind, skip, redis } of variants) {
  describe(`brute-force protection of the sign-in page (${kind}, ${redis ? 'Redis' : 'memory'} cache)`, { skip }, () => {
    let app: TestApp;
    let base: string;
    let config: oidc.Configuration;
    let address = 0;

    // A new source address for each use (the server trusts X-Forwarded-For in these
    // tests), unique to the run: Redis keeps counters between runs.
    const run = randomBytes(4).toString('hex');
    const newSource = () => `2001:db8:${run.slice(0, 4)}:${run.slice(4)}::${(++address).toString(16)}`;

    async function newPlayer() {
      const body = registration();
      const res = await fetch(`${base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 201, await res.clone().text());
      return { id: ((await res.json()) as { id: string }).id, login: String(body.login), password: String(body.password) };
    }

    /** One sign-in attempt on a fresh authorization request from `source`; the answer and how long it took. */
    async function attempt(source: string, login: string, password: string) {
      const browser = new Browser({ 'x-forwarded-for': source });
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid api',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const page = await browser.follow(url.href, REDIRECT);
      assert.equal(page.status, 200, page.body);
      const started = performance.now();
      const res = await browser.request(new URL(formAction(page.body)!, base).href, { form: { login, password } });
      const ms = performance.now() - started;
      const body = res.body.replace(/\/sign-in\/[\w-]+/g, '').replace(/nonce="[^"]+"/g, '').replace(/value="[^"]*"/g, '');
      return { status: res.status, body, ms, location: res.location, retryAfter: res.headers['retry-after'] };
    }

    const signedIn = (r: { status: number; location: string | undefined }) => r.status === 303 && r.location !== undefined;

    before(async () => {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      app = await startTestApp(kind, {
        PUBLIC_URL: base,
        TRUST_PROXY: 'true',
        SIGN_IN_DELAY_AFTER: '2',
        SIGN_IN_DELAY_MS: '150',
        SIGN_IN_MAX_DELAY_MS: '300',
        SIGN_IN_ACCOUNT_LOCK_THRESHOLD: '5',
        SIGN_IN_SOURCE_LOCK_THRESHOLD: '8',
        SIGN_IN_LOCK_SECONDS: String(LOCK_SECONDS),
        SIGN_IN_WINDOW_SECONDS: '60',
        ...(redis ? { REDIS_URL } : {}),
      });
      await app.server.app.listen({ port, host: '127.0.0.1' });
      const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
      const created = await identity.clients.create(systemContext('test'), { name: 'Test client', grantTypes: ['authorization_code'], redirectUris: [REDIRECT], public: true });
      config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    });
    after(async () => app?.close());

    describe('per account', () => {
      let player: Awaited<ReturnType<typeof newPlayer>>;
      let lockedAt = 0;

      it('brute force slows down, then hits the lock: audited and emitted as identity.sign_in.locked', async () => {
        player = await newPlayer();
        const answers = [];
        // Each guess from another address: the account's counter alone locks it.
        for (let i = 0; i < 5; i++) answers.push(await attempt(newSource(), player.login, `wrong-password-${i}`));
        lockedAt = Date.now();
        assert.deepEqual(answers.map((a) => a.status), [400, 400, 400, 400, 429]);
        // Failures past the second are answered late, doubling: 150 ms, then 300 ms (the cap).
        assert.ok(answers[2]!.ms >= 140, `third answer after ${answers[2]!.ms} ms`);
        assert.ok(answers[3]!.ms >= 290, `fourth answer after ${answers[3]!.ms} ms`);
        assert.match(answers[4]!.body, LOCKED);
        assert.ok(Number(answers[4]!.retryAfter) >= 1 && Number(answers[4]!.retryAfter) <= LOCK_SECONDS);

        const db = app.server.runtime.database.db;
        const events = await sql<{ payload: { playerId: string; scope: string; failures: number; lockedUntil: string } }>`
          select payload from platform.outbox where type = 'identity.sign_in.locked'`.execute(db);
        const event = events.rows.find((r) => r.payload.playerId === player.id);
        assert.ok(event, 'a lock event for the player');
        assert.equal(event.payload.scope, 'account');
        assert.equal(event.payload.failures, 5);
        const audit = await sql<{ target_id: string }>`select target_id from platform.audit_log where action = 'identity.sign_in.lock'`.execute(db);
        assert.ok(audit.rows.some((r) => r.target_id === player.id));
      });

      it('the correct password is refused during the lock, with the same answer as for an unknown account', async () => {
        const right = await attempt(newSource(), player.login, player.password);
        assert.equal(right.status, 429);
        assert.match(right.body, LOCKED);
        // The same login in other case and spacing is the same account counter.
        assert.equal((await attempt(newSource(), ` ${player.login.toUpperCase()} `, player.password)).status, 429);

        const unknown = `nobody-at-all-${run}`;
        for (let i = 0; i < 4; i++) await attempt(newSource(), unknown, 'whatever');
        const unknownLocked = await attempt(newSource(), unknown, 'whatever');
        assert.equal(unknownLocked.status, 429);
        assert.equal(unknownLocked.body, right.body);
      });

      it('the lock expires: the correct password then signs in', async () => {
        await sleep(Math.max(0, lockedAt + LOCK_SECONDS * 1000 + 100 - Date.now()));
        const res = await attempt(newSource(), player.login, player.password);
        assert.ok(signedIn(res), `expected a redirect, got ${res.status}`);
        // The count starts afresh: it takes the full threshold again to lock.
        const statuses = [];
        for (let i = 0; i < 4; i++) statuses.push((await attempt(newSource(), player.login, `wrong-again-${i}`)).status);
        assert.deepEqual(statuses, [400, 400, 400, 400]);
      });
    });

    it('per source address: guesses at many accounts from one address lock the address, not the accounts', async () => {
      const source = newSource();
      const statuses = [];
      for (let i = 0; i < 8; i++) statuses.push((await attempt(source, `spray-${i}-${Date.now()}`, 'Password1!')).status);
      assert.deepEqual(statuses, [400, 400, 400, 400, 400, 400, 400, 429]);
      const player = await newPlayer();
      assert.equal((await attempt(source, player.login, player.password)).status, 429);
      assert.ok(signedIn(await attempt(newSource(), player.login, player.password)));
      const db = app.server.runtime.database.db;
      const events = await sql<{ payload: { playerId: string | null; scope: string } }>`
        select payload from platform.outbox where type = 'identity.sign_in.locked'`.execute(db);
      assert.ok(events.rows.some((r) => r.payload.scope === 'source' && r.payload.playerId === null));
    });
  });
}
