import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, databaseKinds, type TestDatabase } from '../../../test/support/databases.ts';
import { loadConfig } from '../config.ts';
import { openDatabase, type Database } from './database.ts';
import { migrate, MigrationError, pendingMigrations, splitStatements } from './migrate.ts';

describe('splitStatements', () => {
  it('splits at top-level semicolons only', () => {
    const script = `
      create table a (x text default 'a;b'); -- a comment; with a semicolon
      create function f() returns trigger language plpgsql as $$ begin raise exception 'x;y'; end; $$;
      insert into a values ('it''s; fine');
    `;
    const parts = splitStatements(script);
    assert.equal(parts.length, 3);
    assert.match(parts[1]!, /^create function f\(\).*end; \$\$$/s);
    assert.equal(parts[2], "insert into a values ('it''s; fine')");
  });
});

for (const { kind, skip } of await databaseKinds()) {
  describe(`migrations (${kind})`, { skip }, () => {
    let tdb: TestDatabase;
    let database: Database;
    before(async () => {
      tdb = await createTestDatabase(kind);
      database = await openDatabase(loadConfig(tdb.env));
    });
    after(async () => {
      await database?.close();
      await tdb?.drop();
    });

    const set = (sqlText: string) => ({
      module: 'sample',
      migrations: [
        { name: '0001_create', sql: 'create schema sample; create table sample.items (id int primary key)' },
        { name: '0002_more', sql: sqlText },
      ],
    });

    it('applies each migration once, in order, and records it', async () => {
      const first = await migrate(database.db, [set('alter table sample.items add column name text')]);
      assert.deepEqual(first.map((m) => m.name), ['0001_create', '0002_more']);
      assert.deepEqual(await migrate(database.db, [set('alter table sample.items add column name text')]), []);
      assert.deepEqual(await pendingMigrations(database.db, [set('alter table sample.items add column name text')]), []);
    });

    it('refuses to start when an applied migration was edited', async () => {
      await assert.rejects(migrate(database.db, [set('alter table sample.items add column other text')]), MigrationError);
    });

    it('rolls back a failing migration entirely and does not record it', async () => {
      const broken = { module: 'broken', migrations: [{ name: '0001_half', sql: 'create schema broken; create table broken.t (id int); select no_such_function()' }] };
      await assert.rejects(migrate(database.db, [broken]));
      const schema = await sql<{ n: bigint }>`select count(*)::int8 as n from information_schema.schemata where schema_name = 'broken'`.execute(database.db);
      assert.equal(schema.rows[0]!.n, 0n);
      assert.equal((await pendingMigrations(database.db, [broken])).length, 1);
    });

    it('concurrent migrators apply each migration exactly once', async () => {
      const many = { module: 'race', migrations: [{ name: '0001', sql: 'create schema race; create table race.t (id int)' }] };
      const results = await Promise.all([migrate(database.db, [many]), migrate(database.db, [many]), migrate(database.db, [many])]);
      assert.equal(results.flat().length, 1);
    });
  });
}
