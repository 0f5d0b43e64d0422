import { createRuntime, createServer, type Server } from '../../src/app/runtime.ts';
import { systemContext, type Authentication } from '../../src/platform/auth/principal.ts';
import type { Logger } from '../../src/platform/telemetry/logger.ts';
import { createTestDatabase, testConfig, type DatabaseKind, type TestDatabase } from './databases.ts';

export interface TestApp {
  readonly server: Server;
  readonly db: TestDatabase;
  /** An access token for a new staff member with these roles. */
  staffToken(roles: string[]): Promise<string>;
  /** A player's token as from a fresh password sign-in (auth_time now, acr 1fa, amr pwd); `auth` overrides. */
  playerToken(playerId: string, auth?: Authentication): Promise<string>;
  close(): Promise<void>;
}

/** The whole server on a fresh database, driven with inject() (no network). */
export async function startTestApp(kind: DatabaseKind, env: Record<string, string> = {}, logger?: Logger): Promise<TestApp> {
  const db = await createTestDatabase(kind);
  const runtime = await createRuntime(testConfig(db, env), logger ? { logger } : {});
  const server = await createServer(runtime);
  let n = 0;
  return {
    server,
    db,
    async staffToken(roles) {
      const email = `staff${++n}.${Date.now()}@casino.test`;
      await runtime.staff.createStaff(systemContext('test'), { email, roles });
      return (await runtime.staff.issueToken(email, 900)).token;
    },
    async playerToken(playerId, auth) {
      const fresh: Authentication = { authTime: Math.floor(Date.now() / 1000), acr: 'urn:pitboss:acr:1fa', amr: ['pwd'] };
      return (await runtime.kernel.tokens.issue({ kind: 'player', id: playerId, auth: { ...fresh, ...auth } }, 900)).token;
    },
    async close() {
      await server.shutdown();
      await db.drop();
    },
  };
}

let seq = 0;
/** A valid registration body; every call gets a unique email and login. */
export function registration(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  seq++;
  const tag = `${process.pid}x${seq}x${Date.now() % 100000}`;
  return {
    email: `player.${tag}@example.com`,
    login: `player_${tag}`,
    password: 'lantern-orbit-velvet-42',
    country: 'DE',
    currency: 'EUR',
    dateOfBirth: '1990-05-17',
    ...overrides,
  };
}
