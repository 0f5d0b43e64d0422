import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import { changeBehindTriggers, createTestDatabase, testConfig, type TestDatabase } from '../../test/support/databases.ts';
import { serviceSkip } from '../../test/support/services.ts';
import { pitboss, type Run } from '../../test/support/cli.ts';
import { KeyStore } from '../platform/auth/keys.ts';
import { TokenService } from '../platform/auth/tokens.ts';
import { openDatabase, type Database } from '../platform/db/database.ts';
import { MAX_TOKEN_TTL_SECONDS } from '../platform/kernel.ts';

const ISSUER = 'https://pitboss.cli.test';

/** Runs at most `limit` at a time: each child loads the whole app, and there are two cores. */
async function inBatches<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += limit) results.push(...(await Promise.all(items.slice(i, i + limit).map(work))));
  return results;
}

const show = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe('pitboss --help', () => {
  it('the program and every command print their usage and exit 0, without reading the configuration', async () => {
    const cases: [string[], RegExp[]][] = [
      [['--help'], [/Usage: pitboss \[options\] \[command\]/, /serve/, /migrate/, /admin/, /token/, /seed/, /audit/]],
      [['serve', '--help'], [/Usage: pitboss serve/, /--port <port>/]],
      [['migrate', '--help'], [/Usage: pitboss migrate/]],
      [['admin', 'create', '--help'], [/Usage: pitboss admin create/, /--email <email>/, /--role <role\.\.\.>/]],
      [['token', '--help'], [/Usage: pitboss token/, /--staff <email>/, /--player <id>/, /--ttl <duration>/]],
      [['seed', '--help'], [/Usage: pitboss seed/, /--count <n>/, /--concurrency <n>/]],
      [['audit', 'verify', '--help'], [/Usage: pitboss audit verify/, /--json/]],
      [['audit', 'checkpoint', '--help'], [/Usage: pitboss audit checkpoint/]],
      [['events', 'replay', '--help'], [/Usage: pitboss events replay/, /--id <ids\.\.\.>/, /--consumer <name>/, /--all/]],
    ];
    // An invalid setting proves help never loads the configuration (or opens a database).
    const runs = await inBatches(cases, 2, ([args]) => pitboss(args, { PORT: 'abc' }));
    runs.forEach((run, i) => {
      const [args, patterns] = cases[i]!;
      assert.equal(run.code, 0, `${args.join(' ')}: ${show(run)}`);
      for (const pattern of patterns) assert.match(run.stdout, pattern, args.join(' '));
    });
  });
});

describe('pitboss against PostgreSQL', { skip: await serviceSkip('postgres') }, () => {
  let testDb: TestDatabase;
  let database: Database;
  let env: Record<string, string>;
  const staffEmail = 'Floor.Manager@Casino.test';

  before(async () => {
    testDb = await createTestDatabase('postgres');
    env = { DATABASE_URL: testDb.env.DATABASE_URL!, DATABASE_POOL_SIZE: '4', PUBLIC_URL: ISSUER };
  });
  after(async () => {
    await database?.close();
    await testDb?.drop();
  });

  const count = async (table: string) => Number((await sql<{ n: bigint }>`select count(*)::int8 as n from ${sql.table(table)}`.execute(database.db)).rows[0]!.n);

  it('migrate applies every migration, then reports the database up to date', async () => {
    const first = await pitboss(['migrate'], env);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /^applied platform\/0001_outbox_inbox$/m);
    assert.match(first.stdout, /^applied players\/0001_players$/m);
    assert.match(first.stdout, /^\d+ migration\(s\) applied$/m);
    const second = await pitboss(['migrate'], env);
    assert.equal(second.code, 0, show(second));
    assert.equal(second.stdout, 'database is up to date\n');
    // The test's own connection, now that the schema exists.
    database = await openDatabase(testConfig(testDb));
  });

  it('admin create prints the new staff member as JSON, with the admin role by default', async () => {
    const run = await pitboss(['admin', 'create', '--email', staffEmail, '--name', 'Floor Manager'], env);
    assert.equal(run.code, 0, show(run));
    const staff = JSON.parse(run.stdout) as { id: string; email: string; roles: string[] };
    assert.match(staff.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(staff.email, 'floor.manager@casino.test');
    assert.deepEqual(staff.roles, ['admin']);
  });

  it('token --staff prints a JWT that verifies, lives exactly --ttl, and carries the admin permission', async () => {
    const run = await pitboss(['token', '--staff', staffEmail, '--ttl', '1h'], env);
    assert.equal(run.code, 0, show(run));
    const token = run.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = decodeJwt(token);
    assert.equal(claims.exp! - claims.iat!, 3600);
    assert.ok(Array.isArray(claims.perm) && claims.perm.includes('*'), `perm: ${JSON.stringify(claims.perm)}`);
    assert.equal(claims.iss, ISSUER);
    const verifier = new TokenService(new KeyStore(database.db, { rotationDays: 30, maxTokenTtlSeconds: MAX_TOKEN_TTL_SECONDS }), ISSUER, 900);
    const principal = await verifier.verify(token);
    assert.equal(principal.kind, 'staff');
    const staffId = (await sql<{ id: string }>`select id from backoffice.staff where email = 'floor.manager@casino.test'`.execute(database.db)).rows[0]!.id;
    assert.equal(principal.kind === 'staff' && principal.id, staffId);
  });

  it('token refuses what it cannot do: unknown staff (exit 1), a bad --ttl or player id (exit 2)', async () => {
    const cases: [string[], number, RegExp][] = [
      [['token', '--staff', 'nobody@casino.test'], 1, /^STAFF_NOT_FOUND: No staff member nobody@casino\.test\./],
      // Regression: a malformed duration crashed with a stack trace.
      [['token', '--staff', staffEmail, '--ttl', 'soon'], 2, /^error: "soon" is not a duration/],
      // Regression: an id that is not a UUID crashed with the database's syntax error.
      [['token', '--player', 'not-a-uuid'], 2, /^error: no player not-a-uuid/],
    ];
    const runs = await inBatches(cases, 2, ([args]) => pitboss(args, env));
    runs.forEach((run, i) => {
      const [args, code, message] = cases[i]!;
      assert.equal(run.code, code, `${args.join(' ')}: ${show(run)}`);
      assert.match(run.stderr, message, args.join(' '));
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(run.stdout, '', 'no token printed');
    });
  });

  it('seed --count 5 registers five players through the real service (audited), without a progress bar off a terminal', async () => {
    const registrations = async () => Number((await sql<{ n: bigint }>`select count(*)::int8 as n from platform.audit_log where action = 'player.register'`.execute(database.db)).rows[0]!.n);
    const [players, audited] = [await count('players.players'), await registrations()];
    const run = await pitboss(['seed', '--count', '5', '--concurrency', '2'], env);
    assert.equal(run.code, 0, show(run));
    const result = JSON.parse(run.stdout) as { registered: number; failed: number; seconds: number };
    assert.equal(result.registered, 5);
    assert.equal(result.failed, 0);
    assert.equal(await count('players.players'), players + 5);
    assert.equal(await registrations(), audited + 5, 'each registration is audited');
    // Regression: the progress bar's TTY switch was inverted, so it went into logs.
    assert.doesNotMatch(run.stderr, /seeding \[/);
  });

  it('audit verify exits 0 on an intact log; after a superuser edits a row it exits 1 and names the problem', async () => {
    const checkpoint = await pitboss(['audit', 'checkpoint'], env);
    assert.equal(checkpoint.code, 0, show(checkpoint));
    const signed = JSON.parse(checkpoint.stdout) as { at: string; heads: Record<string, { seq: string; hash: string }> };
    assert.equal(Object.keys(signed.heads).length, 16, 'every chain head is signed');

    const intact = await pitboss(['audit', 'verify'], env);
    assert.equal(intact.code, 0, show(intact));
    assert.equal(intact.stdout, `${await count('platform.audit_log')} entries in 16 chains, 1 checkpoints: intact\n`);

    const victim = (await sql<{ chain: number; seq: bigint }>`select chain, seq from platform.audit_log where action = 'player.register' order by chain, seq limit 1`.execute(database.db)).rows[0]!;
    await changeBehindTriggers(testDb.env.DATABASE_URL!, 'platform.audit_log', `update platform.audit_log set changes = changes || '{"country": "MT"}' where chain = $1 and seq = $2`, [
      victim.chain,
      victim.seq.toString(),
    ]);

    const tampered = await pitboss(['audit', 'verify'], env);
    assert.equal(tampered.code, 1, show(tampered));
    assert.match(tampered.stdout, /: TAMPERED\n/);
    assert.ok(tampered.stdout.includes(`  chain ${victim.chain} seq ${victim.seq}: content does not match its hash (changed)\n`), tampered.stdout);
    assert.equal(tampered.stdout.split('\n').filter((l) => l.startsWith('  chain ')).length, 1, 'one problem, nothing else');
  });

  it('events dead-letters lists what the bus gave up on; events replay wants a selection (exit 2) and exits 1 while one stays dead-lettered', async () => {
    const event = { id: randomUUID(), type: 'player.status_changed', version: 1, occurredAt: new Date().toISOString(), playerId: null, payload: {} };
    const { id } = await database.db
      .insertInto('platform.dead_letters')
      .values({ consumer: 'test.nobody', event_id: event.id, event: JSON.stringify(event), error: 'boom', attempts: 3 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const listed = await pitboss(['events', 'dead-letters', '--json'], env);
    assert.equal(listed.code, 0, show(listed));
    const letters = JSON.parse(listed.stdout) as { id: string; consumer: string; eventId: string; attempts: number; error: string }[];
    assert.deepEqual(
      letters.map((l) => [l.id, l.consumer, l.eventId, l.attempts, l.error]),
      [[String(id), 'test.nobody', event.id, 3, 'boom']],
    );
    const [unsaid, badId] = await Promise.all([pitboss(['events', 'replay'], env), pitboss(['events', 'replay', '--id', 'x1'], env)]);
    assert.equal(unsaid.code, 2, show(unsaid));
    assert.equal(badId.code, 2, show(badId));
    // No consumer of that name runs here: it stays, and the command says so.
    const kept = await pitboss(['events', 'replay', '--id', String(id)], env);
    assert.equal(kept.code, 1, show(kept));
    assert.ok(kept.stdout.includes(`${id}\ttest.nobody\t${event.id}\tunknown-consumer\n`), show(kept));
    assert.equal(await count('platform.dead_letters'), 1);
  });

  it('an invalid configuration exits 2 with a message naming the variable', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: 'abc' }, /^Invalid configuration: PORT must be an integer, got "abc"/],
      // Regression: a MODULES name is checked after loading, and crashed with a stack trace.
      [{ MODULES: 'players,roulette' }, /Invalid configuration: MODULES names an unknown module "roulette"/],
    ];
    const runs = await inBatches(cases, 2, ([extra]) => pitboss(['migrate'], { ...env, ...extra }));
    runs.forEach((run, i) => {
      assert.equal(run.code, 2, show(run));
      assert.match(run.stderr, cases[i]![1]);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    });
  });
});
