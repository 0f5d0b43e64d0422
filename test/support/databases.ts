import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/platform/config.ts';
import { POSTGRES_ADMIN_URL, serviceSkip } from './services.ts';

export type DatabaseKind = 'pglite' | 'postgres';

export interface TestDatabase {
  readonly kind: DatabaseKind;
  /** Environment for loadConfig (DATABASE_URL or DATA_DIR). */
  readonly env: Record<string, string>;
  drop(): Promise<void>;
}

/** A fresh, empty database: in-memory PGlite, or a new database on the PostgreSQL server. */
export async function createTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === 'pglite') return { kind, env: { DATA_DIR: 'memory://' }, drop: async () => {} };
  const name = `pitboss_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    kind,
    env: { DATABASE_URL: url.toString(), DATABASE_POOL_SIZE: '10' },
    drop: async () => {
      const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/**
 * What only a superuser can do to an append-only table (the audit log, the ledger): one
 * statement run past its triggers, committed on a connection of its own, for tests that
 * check the tamper is found.
 */
export async function changeBehindTriggers(databaseUrl: string, table: string, text: string, values: unknown[]): Promise<void> {
  const superuser = new pg.Client({ connectionString: databaseUrl });
  await superuser.connect();
  try {
    await superuser.query('begin');
    await superuser.query(`alter table ${table} disable trigger user`);
    await superuser.query(text, values);
    await superuser.query(`alter table ${table} enable trigger user`);
    await superuser.query('commit');
  } finally {
    await superuser.end();
  }
}

/** Both kinds, with the skip reason for PostgreSQL when the server is not there. */
export async function databaseKinds(): Promise<{ kind: DatabaseKind; skip: string | false }[]> {
  return [
    { kind: 'pglite', skip: false },
    { kind: 'postgres', skip: await serviceSkip('postgres') },
  ];
}

/** A Config for tests: quiet logs, the given database, and any overrides. */
export function testConfig(db: TestDatabase, env: Record<string, string> = {}): Config {
  return loadConfig({ LOG_LEVEL: 'silent', OUTBOX_POLL_MS: '50', ...db.env, ...env });
}
