import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, databaseKinds, testConfig, type TestDatabase } from '../../../test/support/databases.ts';
import fc from 'fast-check';
import { openDatabase, pgArray, PREPARED, type Database, type Trx } from './database.ts';

/** The PostgreSQL backend (server process) serving the connection a statement runs on. */
const backendPid = async (db: Database['db'] | Trx): Promise<number> =>
  (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;

for (const { kind, skip } of await databaseKinds()) {
  describe(`database (${kind})`, { skip }, () => {
    let tdb: TestDatabase;
    let database: Database;
    before(async () => {
      tdb = await createTestDatabase(kind);
      database = await openDatabase(testConfig(tdb, { DATABASE_POOL_SIZE: '1' }));
    });
    after(async () => {
      await database?.close();
      await tdb?.drop();
    });

    it('runs a statement marked PREPARED with its parameters, prepared once per connection on PostgreSQL', async () => {
      const statement = (n: number, label: string) => sql<{ doubled: number; label: string }>`${sql.raw(PREPARED)} select ${n}::int4 * 2 as doubled, ${label}::text as label`;
      for (const [n, label] of [[1, 'a'], [21, 'b'], [5, "it's"]] as const) {
        const r = await statement(n, label).execute(database.db);
        assert.deepEqual(r.rows, [{ doubled: n * 2, label }]);
      }
      if (kind === 'postgres') {
        // One pooled connection: the statement was prepared on it once, under one name.
        const prepared = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(database.db);
        const ours = prepared.rows.filter((p) => p.statement.startsWith(PREPARED));
        assert.equal(ours.length, 1, 'prepared once, then reused');
        assert.match(ours[0]!.name, /^p_[0-9a-f]{24}$/);
        // Unmarked statements stay unnamed.
        assert.ok(prepared.rows.every((p) => p.statement.startsWith(PREPARED)));
      }
      // A failing marked statement fails alone; the connection goes on.
      await assert.rejects(sql`${sql.raw(PREPARED)} select 1 / ${0}::int4`.execute(database.db), /division by zero/);
      assert.deepEqual((await statement(3, 'c').execute(database.db)).rows, [{ doubled: 6, label: 'c' }]);
    });

    it('an idle pool connection that PostgreSQL ends is reported and replaced, not a crash', { skip: kind !== 'postgres' }, async () => {
      const broken: Error[] = [];
      const other = await openDatabase(testConfig(tdb, { DATABASE_POOL_SIZE: '1' }), (e) => broken.push(e));
      try {
        const first = await backendPid(other.db);
        // As a restart or failover would: the server ends the session while the pool holds it idle.
        await sql`select pg_terminate_backend(${first})`.execute(database.db);
        for (let i = 0; i < 200 && broken.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(broken.length, 1);
        assert.match(broken[0]!.message, /terminating connection/);
        assert.notEqual(await backendPid(other.db), first, 'the next statement runs on a new connection');
      } finally {
        await other.close();
      }
    });

    it('keeps the connections a burst opened (DATABASE_POOL_IDLE_SECONDS=0, the default); a positive value closes them when idle', { skip: kind !== 'postgres' }, async () => {
      // Each pool names its connections (application_name), so that backends of other
      // pools, still ending after an earlier test, are not counted.
      const named = (name: string, extra: Record<string, string> = {}) => {
        const url = new URL(tdb.env.DATABASE_URL!);
        url.searchParams.set('application_name', name);
        return testConfig(tdb, { DATABASE_POOL_SIZE: '4', DATABASE_URL: url.toString(), ...extra });
      };
      const backends = async (name: string) =>
        Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where datname = current_database() and application_name = ${name}`.execute(database.db)).rows[0]!.n);
      const burst = async (db: Database['db']) => {
        // Four statements at once, each holding its connection a moment: the pool opens four.
        await Promise.all(Array.from({ length: 4 }, () => sql`select pg_sleep(0.05)`.execute(db)));
      };
      const kept = await openDatabase(named('pool_kept'));
      const closing = await openDatabase(named('pool_closing', { DATABASE_POOL_IDLE_SECONDS: '1' }));
      try {
        await burst(kept.db);
        await burst(closing.db);
        assert.deepEqual([await backends('pool_kept'), await backends('pool_closing')], [4, 4], 'each pool opened four connections');
        await new Promise((r) => setTimeout(r, 1800));
        assert.equal(await backends('pool_kept'), 4, 'the default pool keeps its four idle connections');
        assert.equal(await backends('pool_closing'), 0, 'the other closed its four after 1 s idle');
      } finally {
        await kept.close();
        await closing.close();
      }
    });

    it('a connection PostgreSQL ends inside a transaction fails that transaction, not the process', { skip: kind !== 'postgres' }, async () => {
      const other = await openDatabase(testConfig(tdb, { DATABASE_POOL_SIZE: '1' }));
      try {
        let first = 0;
        await assert.rejects(
          other.db.transaction().execute(async (trx) => {
            first = await backendPid(trx);
            await sql`select pg_terminate_backend(${first})`.execute(database.db);
            // The server's error reaches the checked-out connection while no statement runs.
            await new Promise((r) => setTimeout(r, 300));
            await sql`select 1`.execute(trx);
          }),
        );
        assert.notEqual(await backendPid(other.db), first, 'the broken connection was discarded');
      } finally {
        await other.close();
      }
    });

    it('pgArray: PostgreSQL reads back exactly the values given, whatever their characters', async () => {
      const tricky = ['plain', '', 'NULL', 'null', 'a b', ' lead', 'x"y', 'back\\slash', 'a,b', '{}', '{x}', 'tab\there', 'nl\nx', 'é ünï 🎰', "it's", '\\"', null];
      const read = async (values: readonly (string | null)[]) =>
        (await sql<{ v: (string | null)[] }>`select ${pgArray(values)}::text[] as v`.execute(database.db)).rows[0]!.v;
      assert.deepEqual(await read(tricky), tricky);
      assert.deepEqual(await read([]), []);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.option(fc.string({ unit: 'grapheme' }), { nil: null }), { maxLength: 8 }), async (values) => {
          const clean = values.map((v) => (v === null ? null : v.replaceAll('\u0000', '')));
          assert.deepEqual(await read(clean), clean);
        }),
        { numRuns: 150 },
      );
      const numbers = (await sql<{ v: string[] }>`select ${pgArray([1, -2n, 9_007_199_254_740_993n])}::int8[]::text[] as v`.execute(database.db)).rows[0]!.v;
      assert.deepEqual(numbers, ['1', '-2', '9007199254740993']);
    });

    it('leader lock: one holder; when its connection dies it stops holding, and can take the lock again', async () => {
      const a = database.leaderLock(7_399_010);
      const b = database.leaderLock(7_399_010);
      try {
        assert.equal(await a.held(), true);
        assert.equal(await b.held(), kind === 'pglite');
        if (kind === 'postgres') {
          await sql`select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and objid = 7399010 and granted`.execute(database.db);
          const until = async (what: string, check: () => Promise<boolean>) => {
            for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
            assert.ok(await check(), what);
          };
          await until('the other takes the freed lock', () => b.held());
          await until('the first no longer holds it', async () => !(await a.held()));
          await b.release();
          await until('the first takes it again, on a new connection', () => a.held());
        }
      } finally {
        await a.release();
        await b.release();
      }
    });

    it('session locks: one holder at a time across connections, released with their connection', async () => {
      const first = database.sessionLocks();
      const second = database.sessionLocks();
      try {
        assert.equal(await first.tryLock(7_399_001), true);
        assert.equal(await first.tryLock(7_399_002), true);
        // PGlite is one process: every lock is granted there.
        assert.equal(await second.tryLock(7_399_001), kind === 'pglite');
        await first.release();
        assert.equal(await second.tryLock(7_399_001), true, 'released with the first connection');
        assert.equal(await second.tryLock(7_399_002), true);
      } finally {
        await first.release();
        await second.release();
      }
    });
  });
}
