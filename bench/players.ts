// npm run bench:players — registration throughput (bounded by argon2id) and
// GET /v1/players/{id} throughput with latency percentiles, against a real server
// process on the real PostgreSQL (a fresh database), or PGlite with BENCH_DB=pglite.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/argon2';
import pg from 'pg';
import { ARGON2_PARAMS } from '../src/modules/players/password-hash.ts';
import { call, fmt, load, pitbossCli, registrationBody, startServer } from './lib.ts';

const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const usePglite = process.env.BENCH_DB === 'pglite';
const registrations = Number(process.env.BENCH_REGISTRATIONS ?? 400);
const readSeconds = Number(process.env.BENCH_SECONDS ?? 10);

let env: Record<string, string>;
let cleanup: () => Promise<void>;
if (usePglite) {
  const dir = mkdtempSync(join(tmpdir(), 'pitboss-bench-'));
  env = { DATA_DIR: dir };
  cleanup = async () => rmSync(dir, { recursive: true, force: true });
} else {
  const name = `pitboss_bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  env = { DATABASE_URL: url.toString() };
  cleanup = async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  };
}

console.log(`bench:players on ${usePglite ? 'PGlite' : 'PostgreSQL'}, ${availableParallelism()} cores`);

// The ceiling: raw argon2id hashes per second at the same parameters, as many in flight as the libuv pool runs.
const ceiling = await load({ concurrency: 4, total: 100, next: async () => Boolean(await hash('lantern-orbit-velvet-42', ARGON2_PARAMS)) });
console.log(`argon2id raw (m=19456,t=2,p=1): ${ceiling.perSecond.toFixed(1)} hashes/s`);

const server = await startServer(env);
console.log(`start-up on an empty database (migrations included): ${server.startupMs.toFixed(0)} ms`);
try {
  const tag = Date.now().toString(36);
  const ids: string[] = [];
  const reg = await load({
    concurrency: 8,
    total: registrations,
    next: async (i) => {
      const res = await call(`${server.url}/v1/players`, 'POST', registrationBody(tag, i));
      if (res.status === 201) ids.push((JSON.parse(res.body) as { id: string }).id);
      return res.status === 201;
    },
  });
  console.log(`POST /v1/players (registration, concurrency 8): ${fmt(reg)}`);

  const cli = pitbossCli(env);
  cli(['admin', 'create', '--email', `bench.${tag}@casino.example`, '--role', 'support']);
  const token = cli(['token', '--staff', `bench.${tag}@casino.example`, '--ttl', '1h']);
  const headers = { authorization: `Bearer ${token}` };
  // Warm the cache and the JIT before measuring.
  await load({ concurrency: 16, seconds: 2, next: async (i) => (await call(`${server.url}/v1/players/${ids[i % ids.length]}`, 'GET', undefined, headers)).status === 200 });
  const read = await load({
    concurrency: 32,
    seconds: readSeconds,
    next: async (i) => (await call(`${server.url}/v1/players/${ids[(i * 7919) % ids.length]}`, 'GET', undefined, headers)).status === 200,
  });
  console.log(`GET /v1/players/{id} (staff token, masked PII, concurrency 32, ${readSeconds}s): ${fmt(read)}`);
} finally {
  await server.stop();
  await cleanup();
}
