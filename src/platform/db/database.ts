import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { Config } from '../config.ts';
import { sha256Hex } from '../hash.ts';
import type { PlatformTables } from './schema.ts';

export type Db = Kysely<PlatformTables>;
export type Trx = Transaction<PlatformTables>;

/** The storage every module uses: the primary, a read connection (a replica or the primary), and lifecycle. */
export interface Database {
  readonly kind: 'pglite' | 'postgres';
  /** Primary: every write and every money read. */
  readonly db: Db;
  /** Reads that may lag (lists, reports); the primary when no replica is configured. */
  readonly read: Db;
  ping(): Promise<void>;
  /**
   * A lock held by at most one process of the deployment (a PostgreSQL session
   * advisory lock on its own connection); with PGlite this process is the only one.
   */
  leaderLock(lockId: number): LeaderLock;
  /**
   * Several session advisory locks on one connection of their own, tried without waiting
   * (claiming a share of something, e.g. a house shard, that no other process may use).
   * With PGlite every lock is granted: this process is the only one.
   */
  sessionLocks(): SessionLocks;
  close(): Promise<void>;
}

export interface SessionLocks {
  /** Takes the lock if no other session holds it; false if one does. Throws if the database is unreachable. */
  tryLock(lockId: number): Promise<boolean>;
  /** Releases every lock (closes the connection). */
  release(): Promise<void>;
}

export interface LeaderLock {
  /** True while this process holds the lock; tries to take it when it does not. */
  held(): Promise<boolean>;
  release(): Promise<void>;
}

const soleProcessLock: LeaderLock = { held: async () => true, release: async () => {} };
const soleProcessLocks: SessionLocks = { tryLock: async () => true, release: async () => {} };

/**
 * Session advisory locks on one connection of their own. A dropped connection ends its
 * locks (PostgreSQL frees them): `onLost` hears of it, and the next try connects again.
 */
function sessionLocks(url: string, onLost: () => void = () => {}): SessionLocks {
  let client: Promise<pg.Client> | undefined;
  const lostWith = (connection: Promise<pg.Client>) => (): void => {
    if (client !== connection) return;
    client = undefined;
    onLost();
  };
  return {
    async tryLock(lockId) {
      let connection = client;
      if (!connection) {
        const c = new pg.Client({ connectionString: url });
        connection = c.connect().then(() => c);
        client = connection;
        const lost = lostWith(connection);
        c.on('error', lost);
        c.on('end', lost);
        connection.catch(lost);
      }
      const r = await (await connection).query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [lockId]);
      return r.rows[0]?.locked === true;
    },
    async release() {
      const c = client;
      client = undefined;
      await (await c?.catch(() => undefined))?.end().catch(() => {});
    },
  };
}

/** One session lock, kept: held() is true while its connection lives, and tries to take it otherwise. */
function sessionLock(url: string, lockId: number): LeaderLock {
  let holding = false;
  const locks = sessionLocks(url, () => {
    holding = false;
  });
  return {
    async held() {
      if (holding) return true;
      try {
        holding = await locks.tryLock(lockId);
      } catch {
        holding = false;
        await locks.release();
      }
      return holding;
    },
    async release() {
      holding = false;
      await locks.release();
    },
  };
}

const INT8 = 20;
const DATE = 1082;

// int8 must come back as BigInt from both drivers, so money is exact and identical on
// PGlite and PostgreSQL; dates stay 'YYYY-MM-DD' strings, never shifted by a time zone.
const parseInt8 = (value: string): bigint => BigInt(value);
const keepText = (value: string): string => value;

/**
 * Marks a hot statement whose text never changes (its values are all parameters): on
 * PostgreSQL each connection prepares it once under a name derived from its text, so
 * later executions skip parsing and planning. Write it at the start of the SQL text.
 */
export const PREPARED = '/* prepared */';

const statementNames = new Map<string, string>();
const statementName = (text: string): string => {
  let name = statementNames.get(text);
  if (!name) {
    name = `p_${sha256Hex(text).slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
};

/** A pg client that runs statements marked PREPARED as named prepared statements (pg keeps them per connection). */
class PreparingClient extends pg.Client {
  override query(...args: unknown[]): never {
    const [text, values, callback] = args;
    if (typeof text === 'string' && text.startsWith(PREPARED)) {
      const config = { name: statementName(text), text, values: values as unknown[] };
      return (super.query as (...a: unknown[]) => never)(config, callback);
    }
    return (super.query as (...a: unknown[]) => never)(...args);
  }
}

/**
 * A pool connection that breaks while idle (PostgreSQL restarted, failed over, or an
 * administrator ended the session) is dropped by the pool, which reports it here; the
 * next statement opens a new one. Without a listener the pool's 'error' event would
 * crash the process.
 */
type IdleError = (error: Error) => void;

function pgPool(url: string, config: Pick<Config, 'databasePoolSize' | 'databasePoolIdleSeconds'>, onIdleError: IdleError): pg.Pool {
  const types = {
    getTypeParser: (oid: number, format?: 'text' | 'binary'): ((value: string) => unknown) => {
      if (oid === INT8) return parseInt8;
      if (oid === DATE) return keepText;
      return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
    },
  };
  // idleTimeoutMillis 0: pg-pool never closes an idle connection (its default closes each
  // after 10 s idle). Under a steady load the pool hands out its most recently used
  // connections, so those a burst opened sit idle together and would close together:
  // measured on a 2-core VM, 17 PostgreSQL backends exiting within 200 ms stalled every
  // commit (the ledger's too) for 150-300 ms.
  const pool = new pg.Pool({ connectionString: url, max: config.databasePoolSize, idleTimeoutMillis: config.databasePoolIdleSeconds * 1000, types: types, Client: PreparingClient });
  pool.on('error', onIdleError);
  // A connection that breaks while checked out (in a transaction, between statements)
  // emits 'error' on itself, where the pool no longer listens: that too would crash the
  // process. Its user sees the failure on its next statement, and the pool discards it
  // when it is released (pg-pool drops a client that is no longer queryable).
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databaseReadUrl' | 'databasePoolSize' | 'databasePoolIdleSeconds' | 'dataDir'>,
  onIdleError: IdleError = () => {},
): Promise<Database> {
  if (config.databaseUrl) {
    const primary = new Kysely<PlatformTables>({ dialect: new PostgresDialect({ pool: pgPool(config.databaseUrl, config, onIdleError) }) });
    const replica = config.databaseReadUrl
      ? new Kysely<PlatformTables>({ dialect: new PostgresDialect({ pool: pgPool(config.databaseReadUrl, config, onIdleError) }) })
      : undefined;
    return {
      kind: 'postgres',
      db: primary,
      read: replica ?? primary,
      ping: async () => {
        await sql`select 1`.execute(primary);
      },
      leaderLock: (lockId) => sessionLock(config.databaseUrl!, lockId),
      sessionLocks: () => sessionLocks(config.databaseUrl!),
      close: async () => {
        await primary.destroy();
        await replica?.destroy();
      },
    };
  }
  const inMemory = config.dataDir === 'memory://' || config.dataDir === '';
  let unlock = (): void => {};
  if (!inMemory) {
    mkdirSync(config.dataDir, { recursive: true });
    unlock = lockDataDir(config.dataDir);
  }
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(inMemory ? undefined : config.dataDir, {
      parsers: { [INT8]: parseInt8, [DATE]: keepText },
    });
  } catch (error) {
    unlock();
    throw error;
  }
  const db = new Kysely<PlatformTables>({ dialect: new PGliteDialect({ pglite }) });
  return {
    kind: 'pglite',
    db,
    read: db,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    leaderLock: () => soleProcessLock,
    sessionLocks: () => soleProcessLocks,
    close: async () => {
      await db.destroy();
      // Kysely closes PGlite only if it ever ran a query; close it either way.
      if (!pglite.closed) await pglite.close();
      unlock();
    },
  };
}

export class DatabaseInUseError extends Error {}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * PGlite is a database in one process: a second process opening the same directory
 * corrupts it and loses writes. A lock file with the owner's pid keeps a second one out
 * (a lock left by a dead process is taken over).
 */
function lockDataDir(dir: string): () => void {
  const path = join(dir, 'pitboss.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(owner) && alive(owner)) {
        throw new DatabaseInUseError(
          `The embedded database in ${dir} is in use by process ${owner} (a running "pitboss serve"?). Stop it first, use the REST API, or set DATABASE_URL to a PostgreSQL server that several processes can share.`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new DatabaseInUseError(`Could not lock ${dir}.`);
}

/**
 * The same connection or transaction typed with one module's tables only, so a module's
 * SQL cannot name another module's (or the platform's) tables.
 */
export function tablesOf<T>(db: Db): Kysely<T>;
export function tablesOf<T>(db: Trx): Transaction<T>;
export function tablesOf<T>(db: Db | Trx): Kysely<T> | Transaction<T> {
  return db as unknown as Kysely<T>;
}

/** An array element that PostgreSQL reads as itself without quotes. */
const PLAIN_ELEMENT = /^[\w.:+-]+$/;

/**
 * A PostgreSQL array literal ('{a,b,NULL}') of text, numbers or bigints, to pass as one
 * text parameter cast to the array type (`${pgArray(ids)}::uuid[]`). pg would build the
 * same literal from a JavaScript array, but quoting, escaping and concatenating every
 * element; on the ledger's batch statement that was a tenth of the process's time.
 * Elements are quoted only when they must be.
 */
export function pgArray(values: readonly (string | number | bigint | null | undefined)[]): string {
  return `{${values.map(arrayElement).join(',')}}`;
}

function arrayElement(v: string | number | bigint | null | undefined): string {
  if (v === null || v === undefined) return 'NULL';
  // A number's or a bigint's text is always plain.
  if (typeof v !== 'string') return String(v);
  return PLAIN_ELEMENT.test(v) && !(v.length === 4 && v.toLowerCase() === 'null') ? v : `"${v.replace(/[\\"]/g, '\\$&')}"`;
}
