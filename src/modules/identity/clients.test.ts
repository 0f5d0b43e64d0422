import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { pitboss } from '../../../test/support/cli.ts';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

for (const { kind, skip } of await databaseKinds()) {
  describe(`OAuth client registry (${kind})`, { skip }, () => {
    let app: TestApp;
    let admin: string;
    before(async () => {
      app = await startTestApp(kind);
      admin = await app.staffToken(['admin']);
    });
    after(async () => app?.close());

    const request = (method: 'GET' | 'POST' | 'PATCH', url: string, token: string | undefined, payload?: Record<string, unknown>) =>
      app.server.app.inject({ method, url, payload, headers: token ? { authorization: `Bearer ${token}` } : {} });

    /** A client-credentials token request, through the provider mounted in the same server. */
    const tokenRequest = (id: string, secret: string, scope: string) =>
      app.server.app.inject({
        method: 'POST',
        url: '/oidc/token',
        headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
      });

    it('staff with identity.clients.manage register a service; the secret is shown once and stored only as a hash', async () => {
      const res = await request('POST', '/v1/identity/clients', admin, { name: 'Cashier', grantTypes: ['client_credentials'], scope: 'players.read' });
      assert.equal(res.statusCode, 201, res.body);
      const { client, clientSecret } = res.json();
      assert.equal(res.headers.location, `/v1/identity/clients/${client.clientId}`);
      assert.equal(client.tokenEndpointAuthMethod, 'client_secret_basic');
      assert.match(clientSecret, /^[\w-]{43}$/);
      const got = await request('GET', `/v1/identity/clients/${client.clientId}`, admin);
      assert.equal(got.statusCode, 200);
      assert.equal(got.json().clientSecret, undefined);
      assert.doesNotMatch(got.body, new RegExp(clientSecret));
      const list = await request('GET', '/v1/identity/clients?limit=200', admin);
      assert.ok(list.json().items.some((c: { clientId: string }) => c.clientId === client.clientId));
      assert.doesNotMatch(list.body, new RegExp(clientSecret));
      const db = app.server.runtime.database.db;
      const audit = await sql<{ action: string }>`select action from platform.audit_log where target_type = 'oauth_client' and target_id = ${client.clientId}`.execute(db);
      assert.deepEqual(audit.rows.map((r) => r.action), ['identity.client.create']);
      const token = await tokenRequest(client.clientId, clientSecret, 'players.read');
      assert.equal(token.statusCode, 200, token.body);
      assert.equal(token.json().scope, 'players.read');
    });

    it('refuses callers without the permission, and a service scope its creator does not hold', async () => {
      const body = { name: 'X', grantTypes: ['client_credentials'], scope: 'players.read' };
      assert.equal((await request('POST', '/v1/identity/clients', undefined, body)).json().code, 'UNAUTHENTICATED');
      const support = await app.staffToken(['support']);
      const forbidden = await request('POST', '/v1/identity/clients', support, body);
      assert.equal(forbidden.statusCode, 403);
      assert.equal(forbidden.json().code, 'FORBIDDEN');
      assert.equal((await request('GET', '/v1/identity/clients', support)).statusCode, 403);
      // A manager who lacks wallet.read cannot mint a service that has it.
      const db = app.server.runtime.database.db;
      await sql`insert into backoffice.roles (name, description) values ('client-manager', 'test')`.execute(db);
      await sql`insert into backoffice.role_permissions (role, permission) values ('client-manager', 'identity.clients.manage'), ('client-manager', 'players.read')`.execute(db);
      const manager = await app.staffToken(['client-manager']);
      assert.equal((await request('POST', '/v1/identity/clients', manager, body)).statusCode, 201);
      const escalation = await request('POST', '/v1/identity/clients', manager, { ...body, scope: 'players.read wallet.read' });
      assert.equal(escalation.statusCode, 403);
      assert.equal(escalation.json().code, 'CLIENT_SCOPE_NOT_HELD');
    });

    it('reports every problem of a registration at once, as problem+json field errors', async () => {
      const res = await request('POST', '/v1/identity/clients', admin, {
        name: 'Broken',
        grantTypes: ['authorization_code', 'client_credentials'],
        public: true,
        redirectUris: ['http://evil.example/cb', 'https://ok.example/cb#frag', 'not a uri'],
        scope: 'openid *',
      });
      assert.equal(res.statusCode, 400);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const problem = res.json();
      assert.equal(problem.code, 'VALIDATION_FAILED');
      const fields = problem.errors.map((e: { field: string; code: string }) => `${e.field} ${e.code}`).sort();
      assert.deepEqual(fields, [
        '/body/grantTypes GRANT_TYPES_INVALID',
        '/body/redirectUris/0 REDIRECT_URI_INVALID',
        '/body/redirectUris/1 REDIRECT_URI_INVALID',
        '/body/redirectUris/2 REDIRECT_URI_INVALID',
        '/body/scope SCOPE_INVALID',
      ]);
      const schema = await request('POST', '/v1/identity/clients', admin, { name: 'x', grantTypes: ['implicit'], extra: 1 });
      assert.equal(schema.statusCode, 400);
      assert.equal(schema.json().code, 'VALIDATION_FAILED');
    });

    it('a sign-in client gets the default user scopes and may be public (no secret)', async () => {
      const res = await request('POST', '/v1/identity/clients', admin, {
        name: 'Game client',
        grantTypes: ['authorization_code', 'refresh_token'],
        public: true,
        redirectUris: ['https://game.example/cb', 'http://localhost:3000/cb', 'com.casino.app:/oauth'],
      });
      assert.equal(res.statusCode, 201, res.body);
      const { client, clientSecret } = res.json();
      assert.equal(clientSecret, undefined);
      assert.equal(client.tokenEndpointAuthMethod, 'none');
      assert.equal(client.scope, 'openid offline_access profile email api');
      const rotate = await request('POST', `/v1/identity/clients/${client.clientId}/secret`, admin);
      assert.equal(rotate.json().code, 'CLIENT_IS_PUBLIC');
    });

    it('rotating the secret retires the old one at once; a disabled client gets no tokens', async () => {
      const created = (await request('POST', '/v1/identity/clients', admin, { name: 'Risk', grantTypes: ['client_credentials'], scope: 'players.read' })).json();
      const id = created.client.clientId;
      const rotated = await request('POST', `/v1/identity/clients/${id}/secret`, admin);
      assert.equal(rotated.statusCode, 200);
      const secret = rotated.json().clientSecret;
      assert.notEqual(secret, created.clientSecret);
      assert.equal((await tokenRequest(id, created.clientSecret, 'players.read')).statusCode, 401);
      assert.equal((await tokenRequest(id, secret, 'players.read')).statusCode, 200);
      const disabled = await request('PATCH', `/v1/identity/clients/${id}`, admin, { status: 'disabled' });
      assert.equal(disabled.statusCode, 200);
      assert.equal(disabled.json().status, 'disabled');
      assert.equal((await tokenRequest(id, secret, 'players.read')).statusCode, 401);
      assert.equal((await request('PATCH', `/v1/identity/clients/${id}`, admin, { status: 'disabled' })).json().code, 'CLIENT_STATUS_UNCHANGED');
      assert.equal((await request('GET', '/v1/identity/clients/nope', admin)).json().code, 'CLIENT_NOT_FOUND');
    });
  });
}

describe('pitboss client create', () => {
  it('prints the new client\'s id and secret as JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pitboss-client-'));
    try {
      const run = (args: string[]) => pitboss(args, { DATA_DIR: dir });
      const ok = await run(['client', 'create', '--name', 'Reporting', '--grant', 'client_credentials', '--scope', 'players.read audit.read']);
      assert.equal(ok.code, 0, ok.stderr);
      const printed = JSON.parse(ok.stdout) as { clientId: string; clientSecret: string; scope: string; grantTypes: string[] };
      assert.match(printed.clientId, /^[0-9a-f-]{36}$/);
      assert.match(printed.clientSecret, /^[\w-]{43}$/);
      assert.equal(printed.scope, 'players.read audit.read');
      assert.deepEqual(printed.grantTypes, ['client_credentials']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
