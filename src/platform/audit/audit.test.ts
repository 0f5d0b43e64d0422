import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CompactSign, generateKeyPair } from 'jose';
import canonicalize from 'canonicalize';
import { sql } from 'kysely';
import { createTestDatabase, databaseKinds, testConfig, type TestDatabase } from '../../../test/support/databases.ts';
import { systemContext, type RequestContext } from '../auth/principal.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { MemoryCache } from '../cache/cache.ts';
import { openDatabase, type Database, type Db } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { newId } from '../ids.ts';
import { createKernel } from '../kernel.ts';
import { platformMigrations } from '../migrations/index.ts';
import type { Kernel } from '../module.ts';
import { createLogger } from '../telemetry/logger.ts';
import { createMetrics } from '../telemetry/metrics.ts';
import { auditRowCount, chainOf, ensureChains, entryHash, GENESIS_HASH, type HashedFields } from './audit.ts';
import { writeCheckpoint } from './checkpoint.ts';
import { verifyAudit, type AuditReport } from './verify.ts';

const CHAINS = 4;
const staffCtx: RequestContext = { principal: { kind: 'staff', id: 'staff-7', permissions: new Set(['*']) }, requestId: 'req-1', sourceIp: '203.0.113.9' };

class Rollback extends Error {}

/**
 * Plays a superuser who switches the append-only triggers off, tampers, and switches them
 * back on; returns what verifyAudit then reports. Everything happens in one transaction
 * that is rolled back, so every case starts from the same untouched log.
 */
async function tampered(db: Db, work: (trx: Db) => Promise<void>): Promise<AuditReport> {
  let report: AuditReport | undefined;
  try {
    await db.transaction().execute(async (trx) => {
      await sql`alter table platform.audit_log disable trigger user`.execute(trx);
      await sql`alter table platform.audit_checkpoints disable trigger user`.execute(trx);
      await work(trx);
      await sql`alter table platform.audit_log enable trigger user`.execute(trx);
      await sql`alter table platform.audit_checkpoints enable trigger user`.execute(trx);
      report = await verifyAudit(trx);
      throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
  return report!;
}

const problemsOf = (report: AuditReport) => report.problems.map((p) => `${p.chain ?? '-'}/${p.seq ?? '-'}: ${p.problem}`);

function assertCaught(report: AuditReport, expected: { chain: number | null; seq: string | null; problem: RegExp }[]): void {
  assert.equal(report.ok, false, 'tampering must be detected');
  for (const want of expected) {
    const hit = report.problems.some((p) => p.chain === want.chain && p.seq === want.seq && want.problem.test(p.problem));
    assert.ok(hit, `expected ${want.chain}/${want.seq} ${want.problem}; got:\n${problemsOf(report).join('\n')}`);
  }
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`hash-chained audit log (${kind})`, { skip }, () => {
    let testDb: TestDatabase;
    let database: Database;
    let kernel: Kernel;
    let db: Db;
    /** A chain with at least four entries, all written before the checkpoint, and its length. */
    let busy: number;
    let busyLength: number;

    const rowsOf = (chain: number, on: Db = db) => on.selectFrom('platform.audit_log').selectAll().where('chain', '=', chain).orderBy('seq').execute();
    const headOf = (chain: number, on: Db = db) => on.selectFrom('platform.audit_chain_heads').selectAll().where('chain', '=', chain).executeTakeFirstOrThrow();

    before(async () => {
      testDb = await createTestDatabase(kind);
      const config = testConfig(testDb, { AUDIT_CHAINS: String(CHAINS) });
      database = await openDatabase(config);
      db = database.db;
      await migrate(db, [platformMigrations]);
      await ensureChains(db, CHAINS);
      kernel = createKernel({ config, database, cache: new MemoryCache(100), logger: createLogger('silent'), metrics: createMetrics() });
    });
    after(async () => {
      await database?.close();
      await testDb?.drop();
    });

    it('entries written through kernel.transaction spread over the chains, each target in one chain, in order', async () => {
      // One target with a history of several entries, and many targets with one each.
      for (let step = 1; step <= 4; step++) {
        await kernel.transaction(staffCtx, (uow) => uow.audit({ action: 'player.status', target: { type: 'player', id: 'p-busy' }, changes: { step, amount: 10n ** 20n } }));
      }
      // Concurrent writers: the chain head's row lock keeps every chain gapless.
      await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          kernel.transaction(i % 2 ? staffCtx : systemContext('cli'), (uow) => uow.audit({ action: 'staff.create', target: { type: 'staff', id: `s-${i}` }, changes: { roles: ['support'], i } })),
        ),
      );
      busy = chainOf('player', 'p-busy', CHAINS);
      const all = await db.selectFrom('platform.audit_log').selectAll().orderBy('chain').orderBy('seq').execute();
      assert.equal(all.length, 20);
      const used = new Set(all.map((r) => r.chain));
      assert.ok(used.size >= 3, `entries should use several chains, used ${[...used].join(',')}`);
      for (const row of all) assert.equal(row.chain, chainOf(row.target_type, row.target_id, CHAINS), 'chainOf decides the chain');

      const history = all.filter((r) => r.target_id === 'p-busy');
      assert.deepEqual(history.map((r) => (r.changes as { step: number }).step), [1, 2, 3, 4]);
      assert.deepEqual(history[0]!.changes, { step: 1, amount: '100000000000000000000' }, 'bigints are stored as decimal strings');
      assert.equal(history[0]!.actor_type, 'staff');
      assert.equal(history[0]!.actor_id, 'staff-7');
      assert.equal(history[0]!.request_id, 'req-1');
      assert.equal(history[0]!.source_ip, '203.0.113.9');
      const system = all.find((r) => r.target_id === 's-0')!;
      assert.deepEqual([system.actor_type, system.actor_id, system.request_id], ['system', 'cli', null]);

      for (const chain of used) {
        const rows = all.filter((r) => r.chain === chain);
        assert.deepEqual(rows.map((r) => r.seq), rows.map((_, i) => BigInt(i + 1)), `chain ${chain} is gapless`);
        assert.equal(rows[0]!.prev_hash, GENESIS_HASH);
        for (let i = 1; i < rows.length; i++) assert.equal(rows[i]!.prev_hash, rows[i - 1]!.hash, 'each entry links to its predecessor');
        const head = await headOf(chain);
        assert.deepEqual([head.seq, head.hash], [rows.at(-1)!.seq, rows.at(-1)!.hash], 'the head names the newest entry');
      }
      // A signed checkpoint binds the chains as they are now; the tamper cases rely on it.
      busyLength = (await rowsOf(busy)).length;
      assert.ok(busyLength >= 4);
      const cp = await writeCheckpoint(db, kernel.keys);
      assert.equal(Object.keys(cp.heads).length, CHAINS);
      assert.equal(cp.heads[String(busy)]!.seq, String(busyLength));
    });

    it('verifyAudit reports an untouched log as ok', async () => {
      const report = await verifyAudit(db);
      assert.deepEqual(report, { ok: true, chains: CHAINS, entries: 20, checkpoints: 1, problems: [] });
    });

    it('an audit entry rolled back with its transaction leaves no row and does not advance the chain head', async () => {
      const chain = chainOf('player', 'p-rolled-back', CHAINS);
      const headBefore = await headOf(chain);
      const countBefore = await auditRowCount(db);
      await assert.rejects(
        kernel.transaction(staffCtx, async (uow) => {
          await uow.audit({ action: 'player.status', target: { type: 'player', id: 'p-rolled-back' }, changes: { to: 'blocked' } });
          throw new Error('the change it records failed');
        }),
        /the change it records failed/,
      );
      assert.equal(await auditRowCount(db), countBefore);
      assert.deepEqual(await headOf(chain), headBefore);
      assert.equal((await verifyAudit(db)).ok, true);
    });

    it('the database refuses UPDATE, DELETE and TRUNCATE on the audit log and its checkpoints', async () => {
      const refused = /AUDIT_APPEND_ONLY/;
      const attempts: [string, () => Promise<unknown>][] = [
        ['update audit_log', () => sql`update platform.audit_log set action = 'nothing.happened' where chain = ${busy}`.execute(db)],
        ['delete audit_log', () => sql`delete from platform.audit_log where chain = ${busy} and seq = 1`.execute(db)],
        ['truncate audit_log', () => sql`truncate platform.audit_log`.execute(db)],
        ['update audit_checkpoints', () => sql`update platform.audit_checkpoints set signature = 'x'`.execute(db)],
        ['delete audit_checkpoints', () => sql`delete from platform.audit_checkpoints`.execute(db)],
        ['truncate audit_checkpoints', () => sql`truncate platform.audit_checkpoints`.execute(db)],
      ];
      for (const [what, attempt] of attempts) {
        await assert.rejects(attempt(), (error: Error & { code?: string }) => {
          assert.match(error.message, refused, what);
          assert.equal(error.code, '42501', `${what}: insufficient_privilege`);
          return true;
        });
      }
      assert.deepEqual(await verifyAudit(db), { ok: true, chains: CHAINS, entries: 20, checkpoints: 1, problems: [] });
    });

    describe('tampering by a superuser who disables the triggers is detected', () => {
      // Each case is rolled back; this proves the next one starts from an intact log.
      after(async () => {
        assert.equal((await verifyAudit(db)).ok, true, 'tamper cases must not leak into each other');
      });

      it('a changed row (its changes edited)', async () => {
        const report = await tampered(db, (trx) => sql`update platform.audit_log set changes = '{"step": 2, "amount": "1"}' where chain = ${busy} and seq = 2`.execute(trx).then(() => {}));
        assertCaught(report, [{ chain: busy, seq: '2', problem: /content does not match its hash \(changed\)/ }]);
        assert.equal(report.problems.length, 1, problemsOf(report).join('\n'));
      });

      it('a changed row whose own hash was recomputed breaks the link of the next one', async () => {
        const report = await tampered(db, async (trx) => {
          const row = (await rowsOf(busy, trx))[1]!;
          const forged: HashedFields = { ...row, actor_id: 'someone-else' };
          await trx.updateTable('platform.audit_log').set({ actor_id: 'someone-else', hash: entryHash(row.prev_hash, forged) }).where('chain', '=', busy).where('seq', '=', row.seq).execute();
        });
        assertCaught(report, [{ chain: busy, seq: '3', problem: /does not link to the previous entry/ }]);
      });

      it('a deleted middle row', async () => {
        const report = await tampered(db, (trx) => sql`delete from platform.audit_log where chain = ${busy} and seq = 2`.execute(trx).then(() => {}));
        assertCaught(report, [
          { chain: busy, seq: '3', problem: /expected seq 2: 1 entr\(y\/ies\) missing before it/ },
          { chain: busy, seq: '3', problem: /does not link/ },
        ]);
      });

      it('a deleted newest row without touching the head', async () => {
        const report = await tampered(db, async (trx) => {
          const newest = (await rowsOf(busy, trx)).at(-1)!;
          await trx.deleteFrom('platform.audit_log').where('chain', '=', busy).where('seq', '=', newest.seq).execute();
        });
        assertCaught(report, [{ chain: busy, seq: String(busyLength), problem: new RegExp(`chain ends at seq ${busyLength - 1} but its head says ${busyLength}`) }]);
      });

      it('a deleted newest row with the chain head rewound: only the signed checkpoint can tell', async () => {
        const report = await tampered(db, async (trx) => {
          const rows = await rowsOf(busy, trx);
          const [kept, newest] = [rows.at(-2)!, rows.at(-1)!];
          await trx.deleteFrom('platform.audit_log').where('chain', '=', busy).where('seq', '=', newest.seq).execute();
          await trx.updateTable('platform.audit_chain_heads').set({ seq: kept.seq, hash: kept.hash }).where('chain', '=', busy).execute();
        });
        assertCaught(report, [{ chain: busy, seq: String(busyLength), problem: /checkpoint \d+ saw hash [0-9a-f]{12}… here, the log has no entry/ }]);
        assert.equal(report.problems.length, 1, `the chain itself looks whole: ${problemsOf(report).join('\n')}`);
      });

      it('an inserted forged row appended to a chain (correctly linked and hashed)', async () => {
        const report = await tampered(db, async (trx) => {
          const head = await headOf(busy, trx);
          const forged: HashedFields = { chain: busy, seq: head.seq + 1n, id: newId(), at: new Date(), actor_type: 'system', actor_id: 'cli', action: 'player.status', target_type: 'player', target_id: 'p-busy', changes: { step: 5 }, request_id: null, source_ip: null };
          await trx.insertInto('platform.audit_log').values({ ...forged, changes: JSON.stringify(forged.changes), prev_hash: head.hash, hash: entryHash(head.hash, forged) }).execute();
        });
        assertCaught(report, [{ chain: busy, seq: String(busyLength), problem: new RegExp(`chain ends at seq ${busyLength + 1} but its head says ${busyLength}`) }]);
      });

      // Regression: verification started after seq 0, so a row forged before the first was never read.
      it('an inserted forged row before the first entry of a chain (seq 0)', async () => {
        const report = await tampered(db, async (trx) => {
          const forged: HashedFields = { chain: busy, seq: 0n, id: newId(), at: new Date(), actor_type: 'system', actor_id: 'cli', action: 'player.status', target_type: 'player', target_id: 'p-busy', changes: { step: 0 }, request_id: null, source_ip: null };
          await trx.insertInto('platform.audit_log').values({ ...forged, changes: JSON.stringify(forged.changes), prev_hash: GENESIS_HASH, hash: entryHash(GENESIS_HASH, forged) }).execute();
        });
        assertCaught(report, [
          { chain: busy, seq: '0', problem: /out of sequence \(inserted\)/ },
          { chain: busy, seq: '1', problem: /does not link/ },
        ]);
      });

      // Regression: only chains with a head were walked, so rows in any other chain went unseen.
      it('an inserted forged row in a chain that has no head, and a chain whose head was deleted', async () => {
        const forgedChain = CHAINS + 5;
        const report = await tampered(db, async (trx) => {
          const forged: HashedFields = { chain: forgedChain, seq: 1n, id: newId(), at: new Date(), actor_type: 'system', actor_id: 'cli', action: 'staff.create', target_type: 'staff', target_id: 's-ghost', changes: { roles: ['admin'] }, request_id: null, source_ip: null };
          await trx.insertInto('platform.audit_log').values({ ...forged, changes: JSON.stringify(forged.changes), prev_hash: GENESIS_HASH, hash: entryHash(GENESIS_HASH, forged) }).execute();
          await trx.deleteFrom('platform.audit_chain_heads').where('chain', '=', busy).execute();
        });
        assertCaught(report, [
          { chain: forgedChain, seq: null, problem: /1 entr\(y\/ies\) in a chain that has no head/ },
          { chain: busy, seq: null, problem: new RegExp(`${busyLength} entr\\(y/ies\\) in a chain that has no head`) },
        ]);
      });

      it('a forged checkpoint: signature replaced, heads edited, unknown key, or a new one signed by a foreign key', async () => {
        const { kid } = await kernel.keys.signingKey();
        const foreign = await generateKeyPair('ES256');
        const cp = await db.selectFrom('platform.audit_checkpoints').selectAll().orderBy('id').executeTakeFirstOrThrow();
        const signForeign = (payload: unknown) => new CompactSign(new TextEncoder().encode(canonicalize(payload))).setProtectedHeader({ alg: 'ES256', kid }).sign(foreign.privateKey);

        const replaced = await tampered(db, async (trx) => {
          const signature = await signForeign({ at: cp.at.toISOString(), heads: cp.heads });
          await trx.updateTable('platform.audit_checkpoints').set({ signature }).where('id', '=', cp.id).execute();
        });
        assertCaught(replaced, [{ chain: null, seq: null, problem: new RegExp(`checkpoint ${cp.id} .*: signature does not verify`) }]);

        const edited = await tampered(db, async (trx) => {
          const heads = { ...(cp.heads as Record<string, { seq: string; hash: string }>), [String(busy)]: { seq: '3', hash: (await rowsOf(busy, trx))[2]!.hash } };
          await trx.updateTable('platform.audit_checkpoints').set({ heads: JSON.stringify(heads) }).where('id', '=', cp.id).execute();
        });
        assertCaught(edited, [{ chain: null, seq: null, problem: /signed content differs from the stored heads/ }]);

        const unknownKey = await tampered(db, async (trx) => {
          await trx.updateTable('platform.audit_checkpoints').set({ kid: 'no-such-key' }).where('id', '=', cp.id).execute();
        });
        assertCaught(unknownKey, [{ chain: null, seq: null, problem: /signing key no-such-key is missing/ }]);

        const inserted = await tampered(db, async (trx) => {
          const at = new Date();
          const heads = { [String(busy)]: { seq: '9', hash: 'f'.repeat(64) } };
          await trx.insertInto('platform.audit_checkpoints').values({ at, heads: JSON.stringify(heads), kid, signature: await signForeign({ at: at.toISOString(), heads }) }).execute();
        });
        assertCaught(inserted, [{ chain: null, seq: null, problem: /signature does not verify/ }]);
      });
    });
  });
}

describe('audit chain count', () => {
  // Regression: AUDIT_CHAINS was documented as fixed after the first start but was not enforced.
  it('refuses to start with a different number of chains than the database has', async () => {
    const database = await openDatabase(loadConfig({ DATA_DIR: 'memory://' }));
    try {
      await migrate(database.db, [platformMigrations]);
      await ensureChains(database.db, 4);
      await ensureChains(database.db, 4);
      await assert.rejects(ensureChains(database.db, 8), (e: unknown) => e instanceof ConfigError && e.variable === 'AUDIT_CHAINS');
    } finally {
      await database.close();
    }
  });
});
