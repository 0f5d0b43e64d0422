import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { call, startServer, type Started } from '../bench/lib.ts';
import { createRuntime, type Runtime } from '../src/app/runtime.ts';
import { systemContext } from '../src/platform/auth/principal.ts';
import { verifyLedger } from '../src/modules/wallet/index.ts';
import { registration } from './support/app.ts';
import { createTestDatabase, testConfig, type TestDatabase } from './support/databases.ts';
import { serviceSkip } from './support/services.ts';

// kill -9 under load: `pitboss serve` runs as its own process against PostgreSQL, takes
// concurrent money requests (fees, transfers, adjustments, each with an Idempotency-Key)
// and is killed mid-load. After a restart every request whose answer was lost is sent
// again with its key until it is answered; then each acknowledged or retried request
// must be in the ledger exactly once.

interface Sent {
  key: string;
  kind: 'fee' | 'transfer' | 'adjustment' | 'withdrawal';
  player: string;
  url: string;
  body: Record<string, string>;
  token: string;
  /** The first answer received (before or after the crash). */
  answer?: { status: number; body: Record<string, unknown> };
  /** Lost in the crash: no answer came back before the server died. */
  lost: boolean;
}

const send = (base: string, s: Sent) => call(`${base}${s.url}`, 'POST', s.body, { authorization: `Bearer ${s.token}`, 'idempotency-key': s.key });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('wallet: kill -9 under load, restart, retry unanswered requests', { skip: await serviceSkip('postgres') }, () => {
  let db: TestDatabase;
  let runtime: Runtime | undefined;
  let server: Started | undefined;
  const env = (): Record<string, string> => ({ ...db.env, LOG_LEVEL: 'error', LEDGER_VERIFY_SECONDS: '0', DATABASE_POOL_SIZE: '12' });

  before(async () => {
    db = await createTestDatabase('postgres');
  });
  after(async () => {
    if (server && server.child.exitCode === null) await server.stop();
    await runtime?.close();
    await db?.drop();
  });

  it('every acknowledged or retried request is in the ledger exactly once, and the ledger verifies', { timeout: 120_000 }, async () => {
    server = await startServer(env());
    // The server migrated the database; staff and tokens come from the same services the CLI uses.
    runtime = await createRuntime(testConfig(db), { migrate: false });
    const email = `crash.admin.${Date.now()}@casino.test`;
    await runtime.staff.createStaff(systemContext('test'), { email, roles: ['admin'] });
    const admin = (await runtime.staff.issueToken(email, 900)).token;

    // A few players, funded through REST deposits the sandbox settles.
    const players: string[] = [];
    const playerTokens = new Map<string, string>();
    for (let i = 0; i < 4; i++) {
      const reg = await call(`${server.url}/v1/players`, 'POST', registration());
      assert.equal(reg.status, 201, reg.body);
      const id = (JSON.parse(reg.body) as { id: string }).id;
      // A fresh sign-in: withdrawals need one (step-up).
      const token = (await runtime.kernel.tokens.issue({ kind: 'player', id, auth: { authTime: Math.floor(Date.now() / 1000), acr: 'urn:pitboss:acr:1fa', amr: ['pwd'] } }, 900)).token;
      const dep = await call(`${server.url}/v1/players/${id}/deposits`, 'POST', { amount: '500.00', currency: 'EUR' }, { authorization: `Bearer ${token}`, 'idempotency-key': `fund-${id}` });
      assert.equal(dep.status, 201, dep.body);
      const paymentId = (JSON.parse(dep.body) as { id: string }).id;
      const deadline = Date.now() + 10_000;
      for (;;) {
        const p = JSON.parse((await call(`${server.url}/v1/payments/${paymentId}`, 'GET', undefined, { authorization: `Bearer ${token}` })).body) as { status: string };
        if (p.status === 'completed') break;
        assert.ok(Date.now() < deadline, 'the deposit settles');
        await sleep(25);
      }
      players.push(id);
      playerTokens.set(id, token);
    }

    // Concurrent load; the server is killed once enough answers came back.
    const sent: Sent[] = [];
    let n = 0;
    let killed = false;
    let acknowledged = 0;
    const make = (): Sent => {
      const i = n++;
      const key = `crash-${i}-${Date.now()}`;
      const player = players[i % players.length]!;
      const reason = `crash test ${key}`;
      const cents = `0.${String(1 + (i % 50)).padStart(2, '0')}`;
      const kind = (['fee', 'transfer', 'adjustment', 'withdrawal'] as const)[i % 4]!;
      // A withdrawal has no reason to carry its key; its amount (unique per request) identifies it.
      const unique = `${Math.floor((i + 1) / 100)}.${String((i + 1) % 100).padStart(2, '0')}`;
      const body: Record<string, string> =
        kind === 'fee'
          ? { amount: cents, currency: 'EUR', reason }
          : kind === 'transfer'
            ? { from: i % 2 === 0 ? 'real' : 'bonus', to: i % 2 === 0 ? 'bonus' : 'real', amount: cents, currency: 'EUR', reason }
            : kind === 'adjustment'
              ? { wallet: 'real', amount: cents, currency: 'EUR', reason }
              : { amount: unique, currency: 'EUR' };
      const path = kind === 'fee' ? 'fees' : kind === 'transfer' ? 'transfers' : kind === 'adjustment' ? 'adjustments' : 'withdrawals';
      return { key, kind, player, url: `/v1/players/${player}/${path}`, body, token: kind === 'withdrawal' ? playerTokens.get(player)! : admin, lost: false };
    };
    const first = server;
    const load = async (): Promise<void> => {
      while (!killed) {
        const s = make();
        sent.push(s);
        try {
          const res = await send(first.url, s);
          s.answer = { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
          acknowledged++;
        } catch {
          s.lost = true;
        }
      }
    };
    const workers = Array.from({ length: 32 }, load);
    const started = Date.now();
    while (acknowledged < 300 && Date.now() - started < 8000) await sleep(5);
    killed = true;
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    await Promise.all(workers);
    const lost = sent.filter((s) => s.lost);
    process.stderr.write(`# crash: ${sent.length} requests, ${acknowledged} answered before kill -9, ${lost.length} lost\n`);
    assert.ok(lost.length > 0, 'the kill interrupted requests in flight');
    for (const s of sent.filter((x) => !x.lost)) assert.ok([201, 409].includes(s.answer!.status), `${s.kind}: ${JSON.stringify(s.answer)}`);

    // Restart on the same database and send every lost request again, same key, until answered.
    server = await startServer(env());
    const second = server;
    const deadline = Date.now() + 45_000;
    let inProgressSeen = 0;
    await Promise.all(
      lost.map(async (s) => {
        for (;;) {
          assert.ok(Date.now() < deadline, `request ${s.key} was never answered after the restart`);
          let res;
          try {
            res = await send(second.url, s);
          } catch {
            await sleep(100);
            continue;
          }
          const body = JSON.parse(res.body) as Record<string, unknown>;
          // The first attempt's claim is taken over only after its grace period.
          if (res.status === 422 && /still being processed/.test(String(body.detail))) {
            inProgressSeen++;
            await sleep(500);
            continue;
          }
          s.answer = { status: res.status, body };
          return;
        }
      }),
    );
    process.stderr.write(`# crash: retried ${lost.length} lost requests (${inProgressSeen} "in progress" answers while claims aged)\n`);

    // An acknowledged request replays its first answer on the new process.
    for (const s of sent.filter((x) => !x.lost).slice(0, 20)) {
      const again = await send(second.url, s);
      assert.equal(again.status, s.answer!.status);
      assert.deepEqual(JSON.parse(again.body), s.answer!.body, `replay of ${s.key} after the restart`);
    }

    // Every request: exactly one ledger transaction if answered 201, none if refused.
    const dbx = runtime.database.db;
    const { rows } = await sql<{ id: string; reason: string }>`
      select id, meta->>'reason' as reason from wallet.transactions where meta->>'reason' like 'crash test %'`.execute(dbx);
    const byReason = new Map<string, string[]>();
    for (const r of rows) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.id]);
    const adjustmentRows = await sql<{ reason: string; status: string; n: bigint }>`
      select reason, status, count(*)::int8 as n from wallet.adjustments where reason like 'crash test %' group by reason, status`.execute(dbx);
    const withdrawals = await sql<{ id: string; player_id: string; amount: bigint; status: string; reserves: bigint; reserve_id: string | null }>`
      select p.id, p.player_id, p.amount, p.status,
             (select count(*) from wallet.transactions t where t.player_id = p.player_id and t.type = 'withdrawal_reserve' and t.meta->>'paymentId' = p.id::text)::int8 as reserves,
             (select t.id from wallet.transactions t where t.player_id = p.player_id and t.type = 'withdrawal_reserve' and t.meta->>'paymentId' = p.id::text limit 1) as reserve_id
      from wallet.payments p where p.kind = 'withdrawal'`.execute(dbx);
    for (const s of sent) {
      const answer = s.answer!;
      assert.ok(answer, `${s.key} has an answer`);
      const how = s.lost ? 'lost, retried' : 'acknowledged';
      if (s.kind === 'withdrawal') {
        const amount = BigInt(s.body.amount!.replace('.', ''));
        const mine = withdrawals.rows.filter((w) => w.player_id === s.player && w.amount === amount);
        assert.equal(mine.length, 1, `withdrawal ${s.key} (${how}) has ${mine.length} payment records`);
        if (answer.status === 201) {
          assert.equal(answer.body.id, mine[0]!.id);
          assert.equal(mine[0]!.status, 'requested');
          assert.equal(mine[0]!.reserves, 1n, `withdrawal ${s.key} (${how}) reserved ${mine[0]!.reserves} times`);
        } else {
          assert.equal(answer.body.code, 'INSUFFICIENT_FUNDS');
          assert.equal(mine[0]!.reserves, 0n);
        }
        continue;
      }
      const txs = byReason.get(s.body.reason!) ?? [];
      if (answer.status === 201) {
        assert.equal(txs.length, 1, `${s.kind} ${s.key} (${how}) is in the ledger ${txs.length} times`);
        assert.equal(answer.body.transactionId, txs[0], `${s.key}: the answer names its ledger transaction`);
      } else {
        assert.equal(answer.status, 409, JSON.stringify(answer.body));
        assert.equal(answer.body.code, 'INSUFFICIENT_FUNDS');
        assert.equal(txs.length, 0, `${s.key} was refused but moved money`);
      }
      if (s.kind === 'adjustment') {
        const mine = adjustmentRows.rows.filter((r) => r.reason === s.body.reason);
        assert.deepEqual(
          mine.map((r) => [r.status, r.n]),
          [[answer.status === 201 ? 'applied' : 'rejected', 1n]],
          `adjustment ${s.key} (${how}) has exactly one record`,
        );
      }
    }
    assert.equal(rows.length, sent.filter((s) => s.kind !== 'withdrawal' && s.answer!.status === 201).length, 'no ledger transaction without a request');
    assert.equal(withdrawals.rows.length, sent.filter((s) => s.kind === 'withdrawal').length, 'no withdrawal without a request');
    const report = await verifyLedger(dbx);
    assert.deepEqual(report.problems, []);
    await second.stop();
  });
});
