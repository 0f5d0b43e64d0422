import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');
const depcruise = join(root, 'node_modules', '.bin', 'depcruise');
const config = join(root, '.dependency-cruiser.cjs');

/** Runs the project's boundary rules over a throwaway tree laid out like src/. */
function cruise(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pitboss-boundaries-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const result = spawnSync(depcruise, ['src', '--config', config, '--output-type', 'err'], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const base = {
  'src/platform/kernel.ts': 'export const kernel = 1;\n',
  'src/modules/wallet/index.ts': "import { ledger } from './ledger.ts';\nexport const wallet = ledger;\n",
  'src/modules/wallet/ledger.ts': "import { kernel } from '../../platform/kernel.ts';\nexport const ledger = kernel;\n",
};

describe('module boundary rule (.dependency-cruiser.cjs)', () => {
  it('accepts a module using the platform and another module through its index.ts', () => {
    const r = cruise({ ...base, 'src/modules/bonus/service.ts': "import { wallet } from '../wallet/index.ts';\nexport const bonus = wallet;\n" });
    assert.equal(r.status, 0, r.output);
  });

  it("fails when a module imports another module's internals", () => {
    const r = cruise({ ...base, 'src/modules/bonus/service.ts': "import { ledger } from '../wallet/ledger.ts';\nexport const bonus = ledger;\n" });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /module-internals-are-private/);
    assert.match(r.output, /src\/modules\/bonus\/service\.ts/);
  });

  it('fails when the platform imports a module', () => {
    const r = cruise({ ...base, 'src/platform/registry.ts': "import { wallet } from '../modules/wallet/index.ts';\nexport const all = [wallet];\n" });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /platform-knows-no-module/);
  });

  it('fails when the composition root reaches into a module', () => {
    const r = cruise({ ...base, 'src/app/modules.ts': "import { ledger } from '../modules/wallet/ledger.ts';\nexport const all = [ledger];\n" });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /app-uses-module-entry-points/);
  });
});
