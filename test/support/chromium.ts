import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { loadConfig } from '../../src/platform/config.ts';

// Programs the browser tests drive from outside the Node.js process: Debian's Chromium
// (headless, through playwright-core) and Debian's oathtool (TOTP codes computed
// independently of the server). scripts/system-packages.sh installs both. Locally a
// missing one skips its tests with a loud notice; under CI=true it fails the run, as
// test/support/services.ts does for services.

export const CHROMIUM = '/usr/bin/chromium';
export const OATHTOOL = '/usr/bin/oathtool';

const required = loadConfig().requireServices;
const run = promisify(execFile);

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function skipUnless(program: string, path: string): Promise<string | false> {
  if (await executable(path)) return false;
  if (required) throw new Error(`${program} is not installed at ${path}, and CI requires it (run scripts/system-packages.sh)`);
  const reason = `${program} is not installed at ${path}: SKIPPING its tests (run scripts/system-packages.sh; CI runs them)`;
  process.stderr.write(`\n!!! ${reason}\n\n`);
  return reason;
}

/** `false` when Chromium is there; otherwise a skip reason (or a thrown error under CI). */
export const chromiumSkip = (): Promise<string | false> => skipUnless('chromium', CHROMIUM);

/** `false` when oathtool is there; otherwise a skip reason (or a thrown error under CI). */
export const oathtoolSkip = (): Promise<string | false> => skipUnless('oathtool', OATHTOOL);

/**
 * Headless Chromium. The tests run as root, where Chromium refuses its sandbox; they load
 * only the server under test.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/**
 * What a browser test file starts with: whether Chromium and oathtool are there (a skip
 * reason, or false), and one Chromium for the whole file, launched before its tests and
 * closed after them. Call it at the top level of the file.
 */
export async function chromiumSuite(): Promise<{ noChromium: string | false; noOathtool: string | false; browser: () => Browser }> {
  const noChromium = await chromiumSkip();
  const noOathtool = await oathtoolSkip();
  let browser: Browser | undefined;
  before(async () => {
    if (!noChromium) browser = await launchChromium();
  });
  after(async () => browser?.close());
  return { noChromium, noOathtool, browser: () => browser! };
}

/** The current TOTP code of a base32 secret (SHA-1, 6 digits, 30 s), from `oathtool --totp -b`. */
export async function oathtoolTotp(secret: string, at?: Date): Promise<string> {
  const args = ['--totp', '-b', ...(at ? [`--now=${at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`] : []), secret];
  const { stdout } = await run(OATHTOOL, args, { timeout: 10_000 });
  const code = stdout.trim();
  if (!/^\d{6}$/.test(code)) throw new Error(`oathtool printed ${JSON.stringify(stdout)}`);
  return code;
}
