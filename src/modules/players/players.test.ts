import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { databaseKinds } from '../../../test/support/databases.ts';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';

async function counts(app: TestApp) {
  const db = app.server.runtime.database.db;
  const one = async (table: string) => Number((await sql<{ n: bigint }>`select count(*)::int8 as n from ${sql.table(table)}`.execute(db)).rows[0]!.n);
  return { players: await one('players.players'), outbox: await one('platform.outbox'), audit: await one('platform.audit_log') };
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`player registration (${kind})`, { skip }, () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(kind);
    });
    after(async () => app?.close());

    const post = (body: unknown, headers: Record<string, string> = {}) =>
      app.server.app.inject({ method: 'POST', url: '/v1/players', payload: body as Record<string, unknown>, headers });

    it('registers a player: 201, UUIDv7 id, normalised, event and audit in the same transaction', async () => {
      const before = await counts(app);
      const body = registration({ email: '  Mixed.Case@Example.COM ', trafficSource: { affiliateId: 'aff-9', utmSource: 'news' } });
      const res = await post(body);
      assert.equal(res.statusCode, 201, res.body);
      const player = res.json();
      assert.match(player.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(res.headers.location, `/v1/players/${player.id}`);
      assert.equal(player.status, 'active');
      assert.equal(player.trafficSource.affiliateId, 'aff-9');
      assert.equal(player.password, undefined);
      const after = await counts(app);
      assert.deepEqual(after, { players: before.players + 1, outbox: before.outbox + 1, audit: before.audit + 1 });
      const db = app.server.runtime.database.db;
      const event = await db.selectFrom('platform.outbox').selectAll().where('player_id', '=', player.id).executeTakeFirstOrThrow();
      assert.equal(event.type, 'player.registered');
      const row = await sql<{ password_hash: string; email_normalized: string }>`select password_hash, email_normalized from players.players where id = ${player.id}`.execute(db);
      assert.match(row.rows[0]!.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      assert.equal(row.rows[0]!.email_normalized, 'mixed.case@example.com');
    });

    it('reports every invalid field at once as problem+json, and writes nothing', async () => {
      const before = await counts(app);
      const res = await post(registration({ email: 'not-an-email', password: 'password123', country: 'ZZ', currency: 'XTS', dateOfBirth: '2015-02-30' }));
      assert.equal(res.statusCode, 400);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const problem = res.json();
      assert.equal(problem.code, 'VALIDATION_FAILED');
      assert.equal(problem.status, 400);
      assert.ok(problem.requestId);
      const byField = Object.fromEntries(problem.errors.map((e: { field: string; code: string }) => [e.field, e.code]));
      assert.deepEqual(byField, {
        '/body/email': 'EMAIL_INVALID',
        '/body/password': 'PASSWORD_TOO_COMMON',
        '/body/country': 'COUNTRY_UNKNOWN',
        '/body/currency': 'CURRENCY_NOT_SUPPORTED',
        '/body/dateOfBirth': 'DATE_INVALID',
      });
      assert.deepEqual(await counts(app), before);
    });

    it('rejects schema violations with field pointers (missing, wrong type, unknown field)', async () => {
      const { login: _login, ...rest } = registration();
      const res = await post({ ...rest, country: 42, extra: true });
      assert.equal(res.statusCode, 400);
      const fields = res.json().errors.map((e: { field: string }) => e.field).sort();
      assert.deepEqual(fields, ['/body/country', '/body/extra', '/body/login']);
    });

    it('rejects malformed JSON and a wrong content type with stable codes', async () => {
      const bad = await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: '{"email":', headers: { 'content-type': 'application/json' } });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().code, 'MALFORMED_REQUEST');
      const text = await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: 'hello', headers: { 'content-type': 'text/plain' } });
      assert.equal(text.statusCode, 415);
      assert.equal(text.json().code, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('enforces the minimum age, per country', async () => {
      const today = new Date();
      const twenty = `${today.getUTCFullYear() - 20}-01-01`;
      assert.equal((await post(registration({ dateOfBirth: twenty, country: 'DE' }))).statusCode, 201);
      const greek = await post(registration({ dateOfBirth: twenty, country: 'GR' }));
      assert.equal(greek.statusCode, 400);
      assert.equal(greek.json().errors[0].code, 'UNDER_MINIMUM_AGE');
    });

    it('refuses a duplicate email (case-insensitively) and a duplicate login with 409 and distinct codes', async () => {
      const first = registration();
      assert.equal((await post(first)).statusCode, 201);
      const before = await counts(app);
      const sameEmail = await post(registration({ email: String(first.email).toUpperCase() }));
      assert.equal(sameEmail.statusCode, 409);
      assert.equal(sameEmail.json().code, 'PLAYER_EMAIL_TAKEN');
      const sameLogin = await post(registration({ login: String(first.login).toUpperCase() }));
      assert.equal(sameLogin.statusCode, 409);
      assert.equal(sameLogin.json().code, 'PLAYER_LOGIN_TAKEN');
      assert.deepEqual(await counts(app), before);
    });

    it('two concurrent identical registrations give exactly one 201 and one 409', async () => {
      for (let round = 0; round < 3; round++) {
        const body = registration();
        const before = await counts(app);
        const results = await Promise.all([post(body), post(body)]);
        const statuses = results.map((r) => r.statusCode).sort();
        assert.deepEqual(statuses, [201, 409], results.map((r) => r.body).join('\n'));
        const after = await counts(app);
        assert.deepEqual(after, { players: before.players + 1, outbox: before.outbox + 1, audit: before.audit + 1 });
      }
    });

    it('GET /v1/players/{id}: the player sees everything, support staff see PII masked, compliance sees it', async () => {
      const created = (await post(registration({ email: 'alice.smith@example.org', dateOfBirth: '1985-07-04' }))).json();
      const url = `/v1/players/${created.id}`;
      const anonymous = await app.server.app.inject({ method: 'GET', url });
      assert.equal(anonymous.statusCode, 401);
      assert.equal(anonymous.json().code, 'UNAUTHENTICATED');

      const self = await app.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await app.playerToken(created.id)}` } });
      assert.equal(self.statusCode, 200);
      assert.equal(self.json().email, 'alice.smith@example.org');
      assert.equal(self.json().dateOfBirth, '1985-07-04');

      const other = (await post(registration())).json();
      const snoop = await app.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await app.playerToken(other.id)}` } });
      assert.equal(snoop.statusCode, 404);

      const support = await app.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await app.staffToken(['support'])}` } });
      assert.equal(support.statusCode, 200);
      assert.equal(support.json().email, 'a***@e***.org');
      assert.equal(support.json().dateOfBirth, '1985-**-**');

      const compliance = await app.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await app.staffToken(['compliance'])}` } });
      assert.equal(compliance.json().email, 'alice.smith@example.org');

      const missing = await app.server.app.inject({ method: 'GET', url: '/v1/players/01890000-0000-7000-8000-000000000000', headers: { authorization: `Bearer ${await app.staffToken(['support'])}` } });
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.json().code, 'PLAYER_NOT_FOUND');
      const badId = await app.server.app.inject({ method: 'GET', url: '/v1/players/not-a-uuid', headers: { authorization: `Bearer ${await app.staffToken(['support'])}` } });
      assert.equal(badId.statusCode, 400);
    });

    it('GET /v1/players: staff only, filters, cursor pagination without gaps or repeats', async () => {
      const affiliate = `aff-${Date.now()}`;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await post(registration({ country: 'SE', currency: 'SEK', trafficSource: { affiliateId: affiliate } }))).json().id);
      const token = await app.staffToken(['support']);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const qs: string = `affiliateId=${affiliate}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await app.server.app.inject({ method: 'GET', url: `/v1/players?${qs}`, headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.statusCode, 200, res.body);
        const page = res.json();
        for (const p of page.items) {
          assert.equal(p.country, 'SE');
          assert.match(p.email, /\*\*\*/);
          seen.push(p.id);
        }
        cursor = page.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, [...ids].reverse());

      const playerToken = await app.playerToken(ids[0]!);
      const forbidden = await app.server.app.inject({ method: 'GET', url: '/v1/players', headers: { authorization: `Bearer ${playerToken}` } });
      assert.equal(forbidden.statusCode, 403);
      assert.equal(forbidden.json().code, 'FORBIDDEN');
      const badCursor = await app.server.app.inject({ method: 'GET', url: '/v1/players?cursor=zzz', headers: { authorization: `Bearer ${token}` } });
      assert.equal(badCursor.statusCode, 400);
    });

    it('a status change is audited, emitted, and invalidates the cached player', async () => {
      const created = (await post(registration())).json();
      const token = await app.staffToken(['compliance']);
      const url = `/v1/players/${created.id}`;
      const get = () => app.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      assert.equal((await get()).json().status, 'active');
      const change = await app.server.app.inject({ method: 'PUT', url: `${url}/status`, payload: { status: 'blocked', reason: 'chargeback investigation' }, headers: { authorization: `Bearer ${token}` } });
      assert.equal(change.statusCode, 200, change.body);
      assert.equal((await get()).json().status, 'blocked');
      const again = await app.server.app.inject({ method: 'PUT', url: `${url}/status`, payload: { status: 'blocked', reason: 'again' }, headers: { authorization: `Bearer ${token}` } });
      assert.equal(again.json().code, 'PLAYER_STATUS_UNCHANGED');
      const support = await app.server.app.inject({ method: 'PUT', url: `${url}/status`, payload: { status: 'active', reason: 'nope' }, headers: { authorization: `Bearer ${await app.staffToken(['support'])}` } });
      assert.equal(support.statusCode, 403);
      const trail = await app.server.runtime.database.db.selectFrom('platform.audit_log').selectAll().where('target_id', '=', created.id).orderBy('seq').execute();
      assert.deepEqual(trail.map((t) => t.action), ['player.register', 'player.status.change']);
      assert.equal(trail[1]!.actor_type, 'staff');
      assert.ok(trail[1]!.request_id);
    });
  });
}
