import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../src/platform/config.ts';
import { DatabaseInUseError, openDatabase } from '../src/platform/db/database.ts';

describe('embedded PGlite database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pitboss-embedded-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig({ DATA_DIR: dir });

  // Regression: a second process opening ./data while the server ran silently lost writes.
  it('refuses a second opener while the first holds it, and frees it on close', async () => {
    const first = await openDatabase(config);
    await assert.rejects(openDatabase(config), (e: unknown) => e instanceof DatabaseInUseError && /in use by process \d+/.test(e.message));
    await first.close();
    const second = await openDatabase(config);
    await second.close();
  });

  it('takes over a lock left by a process that died', async () => {
    writeFileSync(join(dir, 'pitboss.lock'), '999999');
    const db = await openDatabase(config);
    await db.close();
  });

  it('keeps data across restarts', async () => {
    const a = await openDatabase(config);
    await a.db.schema.createTable('kept').addColumn('id', 'integer').execute();
    await a.close();
    const b = await openDatabase(config);
    const tables = await b.db.introspection.getTables();
    assert.ok(tables.some((t) => t.name === 'kept'));
    await b.close();
  });
});
