// npm run bench:ledger — the ledger's batch writer alone, without HTTP: how many bets and
// wins per second the database takes through LedgerEngine, and the batches it writes.
// Isolates the database cost per movement from the HTTP and provider layers (bench:wallet).
import { adminQuery as admin, pgUrl } from './lib.ts';
import { createRuntime } from '../src/app/runtime.ts';
import { loadConfig } from '../src/platform/config.ts';
import { newId } from '../src/platform/ids.ts';
import { bet, deposit, idempotency, win } from '../src/modules/wallet/operations.ts';

const PLAYERS = Number(process.env.BENCH_PLAYERS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);

const dbName = `pitboss_bench_ledger_${Date.now()}`;
await admin(`create database ${dbName}`);
const runtime = await createRuntime(loadConfig({ ...process.env, DATABASE_URL: pgUrl(dbName), LOG_LEVEL: 'warn', LEDGER_VERIFY_SECONDS: '0' }));
try {
  const { wallet } = runtime.wallet;
  await wallet.start();
  const players = Array.from({ length: PLAYERS }, () => newId());
  await Promise.all(
    players.map((p) => wallet.submit(deposit({ playerId: p, currency: 'EUR', amount: 10_000_000_000n, provider: 'bench', paymentId: newId(), idempotency: idempotency('bench-deposit', p, {}) }))),
  );
  const order = wallet.spendOrder;
  let bets = 0;
  let wins = 0;
  const latencies: number[] = [];
  const stopAt = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let i = 0; performance.now() < stopAt; i++) {
        const playerId = players[(w + i * CONCURRENCY) % PLAYERS]!;
        const ref = newId();
        const t0 = performance.now();
        const b = await wallet.submit(
          bet({ playerId, currency: 'EUR', amount: 100_000n, provider: 'bench', externalRef: ref, roundId: ref, idempotency: idempotency('bench', ref, { ref }), spendOrder: order, request: {} } as Parameters<typeof bet>[0]),
        );
        latencies.push(performance.now() - t0);
        if (!b.outcome.ok) throw new Error(JSON.stringify(b.outcome));
        bets++;
        if (i % 2 === 0) {
          const wref = newId();
          await wallet.submit(
            win({ playerId, currency: 'EUR', amount: 150_000n, provider: 'bench', externalRef: wref, betRef: ref, roundId: ref, idempotency: idempotency('bench', wref, { wref }), spendOrder: order, request: {} } as Parameters<typeof win>[0]),
          );
          wins++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.floor((p / 100) * (latencies.length - 1))]!.toFixed(1);
  const engine = wallet.engine;
  console.log(
    `ledger engine: ${(bets / seconds).toFixed(0)} bets/s + ${(wins / seconds).toFixed(0)} wins/s (${CONCURRENCY} callers, ${PLAYERS} players); bet latency p50 ${pct(50)} ms p99 ${pct(99)} ms; ${engine.batches} batches, mean ${(engine.written / engine.batches).toFixed(1)} movements`,
  );
} finally {
  await runtime.close();
  await admin(`drop database if exists ${dbName} with (force)`);
}
