import { createConnection } from 'node:net';
import { loadConfig } from '../../src/platform/config.ts';

// Real services for the tests that exercise them. Locally a missing service skips those
// tests with a loud notice; under CI=true it fails the run.

export const POSTGRES_ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const required = loadConfig().requireServices;

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || defaultPort) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

const cache = new Map<string, Promise<boolean>>();

/**
 * `false` when the service is up; otherwise a skip reason (or a thrown error under CI).
 * Use as `{ skip: await serviceSkip('postgres') }` in describe/it options.
 */
export async function serviceSkip(service: 'postgres' | 'redis' | 'rabbitmq'): Promise<string | false> {
  const [url, port] = service === 'postgres' ? [POSTGRES_ADMIN_URL, 5432] : service === 'redis' ? [REDIS_URL, 6379] : [AMQP_URL, 5672];
  if (!cache.has(service)) cache.set(service, reachable(url, port));
  if (await cache.get(service)) return false;
  if (required) throw new Error(`${service} is not reachable at ${url}, and CI requires it (start it: see DEVELOPERS.md / .ci/run)`);
  const reason = `${service} is not running at ${url}: SKIPPING its tests (CI runs them)`;
  process.stderr.write(`\n!!! ${reason}\n\n`);
  return reason;
}
