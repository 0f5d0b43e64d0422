import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { collectCatalogues, expectedFiles, repoRoot, undeclaredGrants, type Catalogues } from '../scripts/generate-catalogues.ts';

const FIX = 'Run `npm run docs:generate` and commit the result.';

// Collecting migrates an in-memory database; do it once for every test here.
let collected: Promise<Catalogues> | undefined;
const catalogues = (): Promise<Catalogues> => (collected ??= collectCatalogues());

async function onDisk(path: string): Promise<string | undefined> {
  try {
    return await readFile(join(repoRoot, path), 'utf8');
  } catch {
    return undefined;
  }
}

/** Where two texts first differ, to point at the stale part. */
function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n');
  const e = expected.split('\n');
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    if (a[i] !== e[i]) return `line ${i + 1}: the file has ${JSON.stringify(a[i] ?? '(end of file)')}, the code says ${JSON.stringify(e[i] ?? '(end of file)')}`;
  }
  return 'line endings differ';
}

describe('generated catalogues', () => {
  it('docs/configuration.md, errors.md, events.md, permissions.md and the README configuration table match the code', async () => {
    const problems: string[] = [];
    for (const [path, expected] of await expectedFiles(repoRoot, await catalogues())) {
      const actual = await onDisk(path);
      if (actual === undefined) problems.push(`${path} is missing`);
      else if (actual !== expected) problems.push(`${path} is stale (${firstDifference(actual, expected)})`);
    }
    assert.deepEqual(problems, [], `Generated docs are out of date:\n  ${problems.join('\n  ')}\n${FIX}`);
  });

  it('every permission a seeded role grants is declared by a module', async () => {
    assert.deepEqual(undeclaredGrants(await catalogues()), [], 'A seeded role grants a permission that no module declares in its `permissions`.');
  });

  it('every setting, error code and event type is documented', async () => {
    const { settings, errors, events } = await catalogues();
    for (const s of settings) assert.ok(s.doc.trim().length > 0, `${s.env} has no doc sentence in src/platform/config.ts`);
    for (const group of errors) {
      for (const e of group.codes) assert.ok(e.message.trim().length > 0 && e.status >= 400 && e.status < 600, `${group.module}: ${e.code} needs a message and an error status`);
    }
    for (const e of events) assert.ok(e.description.trim().length > 0 && Number.isInteger(e.version) && e.version >= 1, `${e.type} needs a description and a version >= 1`);
  });
});
