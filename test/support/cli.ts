import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { settings } from '../../src/platform/config.ts';

export const BIN = fileURLToPath(new URL('../../bin/pitboss.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// The child gets this machine's environment minus every Pitboss setting (and the test
// runner's own marker), so only what a test passes configures it.
const inherited: Record<string, string> = {};
const dropped = new Set<string>([...Object.values(settings).map((s) => s.env), 'NODE_TEST_CONTEXT']);
for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !dropped.has(key)) inherited[key] = value;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/pitboss.js ...args` on the project's Node (the tests run on it too), logs silenced. */
export function pitboss(args: string[], env: Record<string, string> = {}, options: { input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...inherited, LOG_LEVEL: 'silent', ...env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    // Standard input: what the test gives (a password for --password-stdin), else empty.
    child.stdin.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
