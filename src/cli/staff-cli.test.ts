import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, testConfig, type TestDatabase } from '../../test/support/databases.ts';
import { serviceSkip } from '../../test/support/services.ts';
import { pitboss, type Run } from '../../test/support/cli.ts';
import { openDatabase, type Database } from '../platform/db/database.ts';
import { verifyPassword } from '../modules/players/index.ts';

const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe('pitboss admin: staff passwords', { skip: await serviceSkip('postgres') }, () => {
  let testDb: TestDatabase;
  let database: Database;
  let env: Record<string, string>;
  const hashOf = async (email: string) =>
    (await sql<{ password_hash: string | null }>`select password_hash from backoffice.staff where email = ${email}`.execute(database.db)).rows[0]?.password_hash ?? null;

  before(async () => {
    testDb = await createTestDatabase('postgres');
    env = { DATABASE_URL: testDb.env.DATABASE_URL!, DATABASE_POOL_SIZE: '4' };
    const migrated = await pitboss(['migrate'], env);
    assert.equal(migrated.code, 0, show(migrated));
    database = await openDatabase(testConfig(testDb));
  });
  after(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('admin create --password-stdin: a weak password is refused with the reason (exit 1, nobody created); a good one is stored as argon2id and not printed', async () => {
    const weak = await pitboss(['admin', 'create', '--email', 'weak@casino.test', '--password-stdin'], env, { input: 'qwertyuiop\n' });
    assert.equal(weak.code, 1, show(weak));
    assert.match(weak.stderr, /password: This password is too common/);
    assert.match(weak.stderr, /VALIDATION_FAILED/);
    assert.equal(await hashOf('weak@casino.test'), null);
    const empty = await pitboss(['admin', 'create', '--email', 'empty@casino.test', '--password-stdin'], env, { input: '' });
    assert.equal(empty.code, 2, show(empty));

    const run = await pitboss(['admin', 'create', '--email', 'Pit.Boss@casino.test', '--role', 'support', '--password-stdin'], env, { input: 'amber-falcon-meadow-93\n' });
    assert.equal(run.code, 0, show(run));
    const printed = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(printed).sort(), ['email', 'id', 'roles']);
    const hash = await hashOf('pit.boss@casino.test');
    assert.match(hash!, /^\$argon2id\$/);
    assert.ok(await verifyPassword(hash!, 'amber-falcon-meadow-93'), 'the final newline is not part of the password');
  });

  it('admin create without --password-stdin generates a password and prints it once; set-password replaces it', async () => {
    const run = await pitboss(['admin', 'create', '--email', 'floor@casino.test'], env);
    assert.equal(run.code, 0, show(run));
    const { password } = JSON.parse(run.stdout) as { password: string };
    assert.ok(password.length >= 20);
    assert.ok(await verifyPassword((await hashOf('floor@casino.test'))!, password));

    const set = await pitboss(['admin', 'set-password', '--email', 'floor@casino.test', '--password-stdin'], env, { input: 'copper-lantern-river-58' });
    assert.equal(set.code, 0, show(set));
    assert.ok(await verifyPassword((await hashOf('floor@casino.test'))!, 'copper-lantern-river-58'));
    const generated = await pitboss(['admin', 'set-password', '--email', 'floor@casino.test'], env);
    assert.equal(generated.code, 0, show(generated));
    assert.ok(await verifyPassword((await hashOf('floor@casino.test'))!, (JSON.parse(generated.stdout) as { password: string }).password));
    const unknown = await pitboss(['admin', 'set-password', '--email', 'nobody@casino.test', '--password-stdin'], env, { input: 'copper-lantern-river-58' });
    assert.equal(unknown.code, 1, show(unknown));
    assert.match(unknown.stderr, /STAFF_NOT_FOUND/);
    const audit = await sql<{ n: string }>`select count(*) as n from platform.audit_log where action = 'staff.password.set'`.execute(database.db);
    assert.equal(Number(audit.rows[0]!.n), 2);
  });
});
