import { sql } from 'kysely';
import type { Db } from './database.ts';
import { sha256Hex } from '../hash.ts';

/**
 * A forward-only migration. `sql` is plain PostgreSQL that runs unchanged on PGlite
 * and on a PostgreSQL server. Never edit an applied migration: its checksum is
 * recorded and a changed one stops start-up.
 */
export interface Migration {
  readonly name: string;
  readonly sql: string;
}

export interface MigrationSet {
  readonly module: string;
  readonly migrations: readonly Migration[];
}

export interface MigrationResult {
  module: string;
  name: string;
}

export class MigrationError extends Error {}

const checksum = (m: Migration): string => sha256Hex(m.sql);

// Any number that is the same in every process: all migrators queue on it, so two
// processes starting at once never run one migration twice.
const MIGRATION_LOCK = 7_344_001;

const BOOTSTRAP = `
  create schema if not exists platform;
  create table if not exists platform.schema_migrations (
    module text not null,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now(),
    primary key (module, name)
  );
`;

/** Applies every pending migration, module by module in the given order, each in its own transaction. */
export async function migrate(db: Db, sets: readonly MigrationSet[]): Promise<MigrationResult[]> {
  const applied: MigrationResult[] = [];
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${MIGRATION_LOCK})`.execute(trx);
    for (const statement of splitStatements(BOOTSTRAP)) await sql.raw(statement).execute(trx);
  });
  for (const set of sets) {
    const names = new Set<string>();
    for (const migration of set.migrations) {
      if (names.has(migration.name)) throw new MigrationError(`${set.module}: duplicate migration ${migration.name}`);
      names.add(migration.name);
      const done = await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${MIGRATION_LOCK})`.execute(trx);
        const row = await trx
          .selectFrom('platform.schema_migrations')
          .select('checksum')
          .where('module', '=', set.module)
          .where('name', '=', migration.name)
          .executeTakeFirst();
        if (row) {
          if (row.checksum !== checksum(migration)) {
            throw new MigrationError(`${set.module}/${migration.name} was changed after it was applied; add a new migration instead`);
          }
          return false;
        }
        for (const statement of splitStatements(migration.sql)) await sql.raw(statement).execute(trx);
        await trx
          .insertInto('platform.schema_migrations')
          .values({ module: set.module, name: migration.name, checksum: checksum(migration) })
          .execute();
        return true;
      });
      if (done) applied.push({ module: set.module, name: migration.name });
    }
  }
  return applied;
}

/** Lists migrations not yet applied. */
export async function pendingMigrations(db: Db, sets: readonly MigrationSet[]): Promise<MigrationResult[]> {
  const exists = await sql<{ ok: boolean }>`select to_regclass('platform.schema_migrations') is not null as ok`.execute(db);
  const done = new Set<string>();
  if (exists.rows[0]?.ok) {
    const rows = await sql<{ module: string; name: string }>`select module, name from platform.schema_migrations`.execute(db);
    for (const r of rows.rows) done.add(`${r.module}/${r.name}`);
  }
  return sets.flatMap((s) => s.migrations.filter((m) => !done.has(`${s.module}/${m.name}`)).map((m) => ({ module: s.module, name: m.name })));
}

/**
 * Splits a script into statements at top-level semicolons (outside quotes, comments
 * and dollar-quoted bodies): PGlite runs one statement per prepared query.
 */
export function splitStatements(script: string): string[] {
  const out: string[] = [];
  let current = '';
  let i = 0;
  while (i < script.length) {
    const ch = script[i]!;
    const rest = script.slice(i);
    if (rest.startsWith('--')) {
      const end = script.indexOf('\n', i);
      i = end === -1 ? script.length : end;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = script.indexOf(ch, i + 1);
      const stop = end === -1 ? script.length : end + 1;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    const dollar = /^\$[A-Za-z_]*\$/.exec(rest);
    if (dollar) {
      const tag = dollar[0];
      const end = script.indexOf(tag, i + tag.length);
      const stop = end === -1 ? script.length : end + tag.length;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === ';') {
      if (current.trim() !== '') out.push(current.trim());
      current = '';
      i++;
      continue;
    }
    current += ch;
    i++;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}
