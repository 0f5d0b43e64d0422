import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createRuntime, createServer, type Server } from '../../app/runtime.ts';
import { newId } from '../../platform/ids.ts';
import { changeBehindTriggers, databaseKinds, testConfig } from '../../../test/support/databases.ts';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { deposit, idempotency, transfer } from './operations.ts';
import type { WalletService } from './service.ts';
import type { CommandResult, LedgerCommand, Outcome } from './types.ts';
import { verifyLedger } from './verify.ts';
import { claimHouseShards, houseHolder } from './engine.ts';
import { ownPostings, type WalletDb } from './store.ts';
import { pino } from 'pino';
import { pitboss } from '../../../test/support/cli.ts';
import { serviceSkip } from '../../../test/support/services.ts';

// A bank workload in the manner of Jepsen's: a few players, many concurrent money
// movements with replays and key conflicts, then invariants that must hold whatever
// the interleaving was.

const EUR = 'EUR';
const PROVIDER = 'bankgames';

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

const sumSplit = (o: Outcome): bigint => (o.ok ? Object.values(o.split).reduce((s, v) => s + BigInt(v), 0n) : 0n);

async function registerPlayers(app: TestApp, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await app.server.app.inject({ method: 'POST', url: '/v1/players', payload: registration() });
    assert.equal(res.statusCode, 201, res.body);
    ids.push(res.json().id as string);
  }
  return ids;
}

async function playerBalances(app: TestApp, players: readonly string[]): Promise<Map<string, Record<string, bigint>>> {
  const { rows } = await sql<{ holder: string; name: string; balance: bigint }>`
    select holder, name, balance from wallet.accounts where kind = 'player' and currency = ${EUR} and holder = any(${players}::uuid[])`.execute(app.server.runtime.database.db);
  const out = new Map<string, Record<string, bigint>>(players.map((p) => [p, {}]));
  for (const r of rows) out.get(r.holder)![r.name] = r.balance;
  return out;
}

async function assertLedgerSound(app: TestApp): Promise<void> {
  const db = app.server.runtime.database.db;
  const report = await verifyLedger(db);
  assert.deepEqual(report.problems, [], 'verifyLedger reports no problem');
  assert.ok(report.ok);
  const negative = await sql<{ n: bigint }>`select count(*)::int8 as n from wallet.accounts where kind = 'player' and balance < 0`.execute(db);
  assert.equal(negative.rows[0]!.n, 0n, 'no player balance is negative');
  const sums = await sql<{ currency: string; total: bigint }>`select currency, sum(balance)::int8 as total from wallet.accounts group by currency`.execute(db);
  for (const r of sums.rows) assert.equal(r.total, 0n, `${r.currency} sums to zero over all accounts`);
}

type Kind = 'bet' | 'win' | 'rollback' | 'transfer' | 'deposit';
interface Planned {
  kind: Kind;
  player: number;
  amount: bigint;
  /** For a bet: its own ref; for a win or rollback: the bet it names. */
  betIndex: number;
  /** For a transfer: real to bonus, or back. */
  toBonus: boolean;
}

interface Done {
  op: number;
  kind: Kind;
  player: string;
  amount: bigint;
  betRef: string | null;
  /** For a transfer: the wallet it takes from. */
  from?: string;
  result: CommandResult;
  /** Resubmits the same request (same key, same payload). */
  replay(): Promise<CommandResult>;
  /** The same key with another payload. */
  conflict(): Promise<CommandResult>;
}

/**
 * The workload against one or more wallet services (one per process). Returns every
 * first answer, and checks replays and conflicts as they happen.
 */
async function bankWorkload(opts: {
  wallets: readonly WalletService[];
  players: readonly string[];
  operations: number;
  concurrency: number;
  seed: number;
  tag: string;
  /** `play`: mostly bets and wins as a game provider sends them, few replays (the ledger's fast path). */
  mix?: 'bank' | 'play';
}) {
  const play = opts.mix === 'play';
  const random = prng(opts.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const cents = (max: number, min = 1) => BigInt(min + Math.floor(random() * (max - min + 1)));
  const P = opts.players.length;

  // Fund every player through deposits first.
  const deposits: Done[] = [];
  for (const [n, playerId] of opts.players.entries()) {
    for (let d = 0; d < 2; d++) {
      const command = deposit({ playerId, currency: EUR, amount: 20_000n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', `${opts.tag}-fund-${n}-${d}`, { amount: '20000' }) });
      const result = await opts.wallets[0]!.submit(command);
      assert.ok(result.outcome.ok);
      const other = deposit({ playerId, currency: EUR, amount: 20_001n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', `${opts.tag}-fund-${n}-${d}`, { amount: '20001' }) });
      deposits.push({ op: -1, kind: 'deposit', player: playerId, amount: 20_000n, betRef: null, result, replay: () => opts.wallets[0]!.submit(command), conflict: () => opts.wallets[0]!.submit(other) });
    }
  }

  // The plan: kinds and players first, then every win and rollback names a bet of its
  // player, earlier (usually) or later (a rollback that arrives before its bet).
  const plan: Planned[] = [];
  for (let i = 0; i < opts.operations; i++) {
    const r = random();
    const kind: Kind = play ? (r < 0.55 ? 'bet' : r < 0.93 ? 'win' : r < 0.95 ? 'rollback' : 'transfer') : r < 0.42 ? 'bet' : r < 0.62 ? 'win' : r < 0.77 ? 'rollback' : r < 0.95 ? 'transfer' : 'deposit';
    plan.push({ kind, player: Math.floor(random() * P), amount: kind === 'bet' ? cents(6_000) : kind === 'win' ? cents(6_000, 0) : kind === 'transfer' ? cents(3_000) : cents(15_000), betIndex: i, toBonus: random() < 0.5 });
  }
  // Every run must exercise refusals: the first bet and the first transfer ask for more
  // than any player can ever hold (whatever the seed does with the rest).
  const refused = new Set<Planned>();
  for (const kind of ['bet', 'transfer'] as const) {
    const first = plan.find((o) => o.kind === kind);
    if (first) {
      first.amount = 10n ** 12n;
      refused.add(first);
    }
  }
  // No win or rollback names that bet: a rollback that came first would refuse it as rolled back instead.
  const betsOf = Array.from({ length: P }, (_, p) => plan.flatMap((o, i) => (o.kind === 'bet' && o.player === p && !refused.has(o) ? [i] : [])));
  for (const [i, o] of plan.entries()) {
    if (o.kind !== 'win' && o.kind !== 'rollback') continue;
    const earlier = betsOf[o.player]!.filter((b) => b < i);
    const later = betsOf[o.player]!.filter((b) => b > i && b < i + 12);
    const future = o.kind === 'rollback' && later.length > 0 && (earlier.length === 0 || random() < 0.3);
    o.betIndex = future ? pick(later) : earlier.length > 0 ? pick(earlier) : -1;
  }

  const completed: Done[] = [...deposits];
  const replays: { of: Done; result: CommandResult }[] = [];
  const conflicts: { of: Done; result: CommandResult }[] = [];
  const betRef = (i: number) => `${opts.tag}-bet-${i}`;

  await pool(plan.length, opts.concurrency, async (i) => {
    const o = plan[i]!;
    const wallet = opts.wallets[i % opts.wallets.length]!;
    const playerId = opts.players[o.player]!;
    // Now and then, before the next operation, replay or contradict one already answered.
    if (completed.length > 0 && random() < (play ? 0.03 : 0.25)) {
      const of = pick(completed);
      if (random() < 0.7) replays.push({ of, result: await of.replay() });
      else conflicts.push({ of, result: await of.conflict() });
    }
    let done: Omit<Done, 'result'>;
    switch (o.kind) {
      case 'bet': {
        const input = (amount: bigint) => ({ playerId, currency: EUR, amount, provider: PROVIDER, externalRef: betRef(i), roundId: `round-${i}`, request: { ref: betRef(i), amount: amount.toString() } });
        done = { op: i, kind: 'bet', player: playerId, amount: o.amount, betRef: betRef(i), replay: () => wallet.placeBet(input(o.amount)), conflict: () => wallet.placeBet(input(o.amount + 1n)) };
        break;
      }
      case 'win': {
        // A game provider sends a win after its bet was answered: in the play mix, a win
        // names one of its player's answered bets.
        const answeredBets = play ? completed.filter((d) => d.kind === 'bet' && d.player === playerId && d.result.outcome.ok).slice(-5) : [];
        const ref = play ? (answeredBets.length > 0 ? pick(answeredBets).betRef : null) : o.betIndex >= 0 ? betRef(o.betIndex) : null;
        const input = (amount: bigint) => ({ playerId, currency: EUR, amount, provider: PROVIDER, externalRef: `${opts.tag}-win-${i}`, betRef: ref, roundId: null, request: { ref: `win-${i}`, bet: ref, amount: amount.toString() } });
        done = { op: i, kind: 'win', player: playerId, amount: o.amount, betRef: ref, replay: () => wallet.creditWin(input(o.amount)), conflict: () => wallet.creditWin(input(o.amount + 1n)) };
        break;
      }
      case 'rollback': {
        const ref = betRef(o.betIndex >= 0 ? o.betIndex : opts.operations + i);
        const input = (note: string) => ({ playerId, currency: EUR, provider: PROVIDER, externalRef: `${opts.tag}-rb-${i}`, betRef: ref, roundId: null, request: { ref: `rb-${i}`, bet: ref, note } });
        done = { op: i, kind: 'rollback', player: playerId, amount: 0n, betRef: ref, replay: () => wallet.rollbackBet(input('a')), conflict: () => wallet.rollbackBet(input('b')) };
        break;
      }
      case 'transfer': {
        const make = (amount: bigint): LedgerCommand =>
          transfer({ playerId, currency: EUR, amount, from: o.toBonus ? 'real' : 'bonus', to: o.toBonus ? 'bonus' : 'real', reason: 'bank test', idempotency: idempotency('transfer', `${opts.tag}-tr-${i}`, { amount: amount.toString(), toBonus: o.toBonus }) });
        const command = make(o.amount);
        // A replay resubmits the very same command object.
        done = { op: i, kind: 'transfer', player: playerId, amount: o.amount, betRef: null, from: o.toBonus ? 'real' : 'bonus', replay: () => wallet.submit(command), conflict: () => wallet.submit(make(o.amount + 1n)) };
        break;
      }
      case 'deposit': {
        const make = (amount: bigint) => deposit({ playerId, currency: EUR, amount, provider: 'sandbox', paymentId: `${opts.tag}-${i}`, idempotency: idempotency('payment', `${opts.tag}-dep-${i}`, { amount: amount.toString() }) });
        const command = make(o.amount);
        done = { op: i, kind: 'deposit', player: playerId, amount: o.amount, betRef: null, replay: () => wallet.submit(command), conflict: () => wallet.submit(make(o.amount + 1n)) };
        break;
      }
    }
    const result = await done.replay();
    completed.push({ ...done, result });
  });
  return { completed, replays, conflicts };
}

/** Every invariant of the workload's answers and the ledger it left. */
async function checkBank(app: TestApp, players: readonly string[], run: Awaited<ReturnType<typeof bankWorkload>>) {
  const { completed, replays, conflicts } = run;
  // 1. A replay gets exactly its first answer; a conflict is refused (a closed bet key stays closed).
  for (const r of replays) {
    assert.deepEqual(r.result.outcome, r.of.result.outcome, `replay of ${r.of.kind} ${r.of.op}`);
    assert.equal(r.result.replayed, true);
  }
  for (const c of conflicts) {
    const first = c.of.result.outcome;
    if (!first.ok && first.code === 'TRANSACTION_ROLLED_BACK') assert.deepEqual(c.result.outcome, first, 'a tombstoned bet key refuses any payload');
    else assert.deepEqual(c.result.outcome, { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' }, `conflict on ${c.of.kind} ${c.of.op}`);
  }

  // 2. Refusals say why, truthfully: an INSUFFICIENT_FUNDS bet was larger than what real + bonus held.
  for (const d of completed) {
    const o = d.result.outcome;
    if (o.ok) for (const v of Object.values(o.balances)) assert.ok(BigInt(v) >= 0n, 'no answer reports a negative balance');
    if (!o.ok && o.code === 'INSUFFICIENT_FUNDS') {
      const held = (w: string) => BigInt(o.balances?.[w] ?? '0');
      const spendable = d.kind === 'bet' ? held('real') + held('bonus') : held(d.from ?? 'real');
      assert.ok(['bet', 'transfer'].includes(d.kind), `${d.kind} cannot be short of money`);
      assert.ok(spendable < d.amount, `${d.kind} ${d.op} of ${d.amount} refused with ${spendable} available`);
    }
    if (!o.ok) assert.ok(['INSUFFICIENT_FUNDS', 'TRANSACTION_ROLLED_BACK'].includes(o.code), `unexpected refusal ${o.code}`);
  }

  // 3. Each bet is refunded at most once, by exactly its stake, and only if it was taken.
  const bets = new Map(completed.filter((d) => d.kind === 'bet').map((d) => [d.betRef!, d]));
  const refunds = new Map<string, bigint[]>();
  for (const d of completed.filter((x) => x.kind === 'rollback')) {
    assert.ok(d.result.outcome.ok, 'a rollback is always answered ok');
    const refunded = sumSplit(d.result.outcome);
    if (refunded > 0n) refunds.set(d.betRef!, [...(refunds.get(d.betRef!) ?? []), refunded]);
  }
  for (const [ref, list] of refunds) {
    const b = bets.get(ref);
    assert.ok(b?.result.outcome.ok, `refund of a bet that was not taken (${ref})`);
    assert.deepEqual(list, [b.amount], `bet ${ref} refunded once, by its stake`);
  }
  // A rollback that found no bet closed its key: that bet can never have been taken (else its stake is never refunded).
  for (const d of completed.filter((x) => x.kind === 'rollback')) {
    const o = d.result.outcome;
    if (o.ok && o.data?.unknownReference) assert.ok(!bets.get(d.betRef!)?.result.outcome.ok, `bet ${d.betRef} was taken after a rollback recorded it as unknown`);
  }
  // A bet refused as rolled back had a rollback before it.
  for (const b of bets.values()) {
    const o = b.result.outcome;
    if (!o.ok && o.code === 'TRANSACTION_ROLLED_BACK') assert.ok(completed.some((d) => d.kind === 'rollback' && d.betRef === b.betRef), `bet ${b.betRef} refused without a rollback`);
  }

  // 4. Each player's balance is deposits - stakes + wins + refunds, from the answers alone.
  const balances = await playerBalances(app, players);
  for (const playerId of players) {
    let expected = 0n;
    const perWallet: Record<string, bigint> = {};
    for (const d of completed.filter((x) => x.player === playerId)) {
      const o = d.result.outcome;
      if (!o.ok) continue;
      if (d.kind === 'deposit' || d.kind === 'win') expected += d.amount;
      if (d.kind === 'bet') expected -= d.amount;
      if (d.kind === 'rollback' && sumSplit(o) > 0n) expected += bets.get(d.betRef!)!.amount;
      for (const [w, v] of Object.entries(o.split)) perWallet[w] = (perWallet[w] ?? 0n) + BigInt(v);
    }
    const held = balances.get(playerId)!;
    const total = Object.values(held).reduce((s, v) => s + v, 0n);
    assert.equal(total, expected, `player ${playerId}: ledger holds ${total}, the answers add up to ${expected}`);
    for (const w of ['real', 'bonus']) assert.equal(held[w] ?? 0n, perWallet[w] ?? 0n, `player ${playerId} ${w}: balance equals the sum of its answered splits`);
  }
  await assertLedgerSound(app);
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`ledger under concurrency (${kind})`, { skip }, () => {
    let app: TestApp;
    let wallet: WalletService;
    before(async () => {
      app = await startTestApp(kind);
      wallet = app.server.runtime.wallet.wallet;
    });
    after(async () => app?.close());

    it('bank workload: concurrent bets, wins, rollbacks, transfers with replays and conflicts keep every invariant', async () => {
      const players = await registerPlayers(app, 4);
      const seed = Number(process.env.BANK_SEED ?? Math.floor(Math.random() * 2 ** 31));
      const started = performance.now();
      const run = await bankWorkload({ wallets: [wallet], players, operations: kind === 'postgres' ? 3000 : 1200, concurrency: kind === 'postgres' ? 96 : 48, seed, tag: `bank-${newId()}` });
      const seconds = (performance.now() - started) / 1000;
      const answered = run.completed.length + run.replays.length + run.conflicts.length;
      process.stderr.write(`# bank (${kind}) seed ${seed}: ${answered} commands in ${seconds.toFixed(1)} s, ${run.replays.length} replays, ${run.conflicts.length} conflicts\n`);
      await checkBank(app, players, run);
      // The workload must have exercised what it claims to.
      const codes = run.completed.map((d) => (d.result.outcome.ok ? `${d.kind}:ok` : `${d.kind}:${d.result.outcome.code}`));
      for (const expected of ['bet:ok', 'win:ok', 'rollback:ok', 'transfer:ok', 'bet:INSUFFICIENT_FUNDS', 'transfer:INSUFFICIENT_FUNDS']) assert.ok(codes.includes(expected), `the workload produced no ${expected}`);
      assert.ok(run.replays.length > 50 && run.conflicts.length > 20, 'replays and conflicts were exercised');
      const rollbacks = run.completed.filter((d) => d.kind === 'rollback');
      assert.ok(rollbacks.some((d) => sumSplit(d.result.outcome) > 0n), 'some rollback refunded a bet');
      assert.ok(wallet.engine.batches < wallet.engine.written, 'batches carried more than one command');
    });

    it('a rollback before its bet: the late bet is refused and moves no money; a second rollback refunds nothing', async () => {
      const [player] = await registerPlayers(app, 1);
      const playerId = player!;
      await wallet.submit(deposit({ playerId, currency: EUR, amount: 10_000n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', newId(), {}) }));
      const before = await playerBalances(app, [playerId]);

      const early = await wallet.rollbackBet({ playerId, currency: EUR, provider: PROVIDER, externalRef: 'late-rb-1', betRef: `late-${playerId}`, roundId: 'r-late', request: { n: 1 } });
      assert.equal(early.outcome.ok, true);
      assert.deepEqual(early.outcome.ok && early.outcome.data, { unknownReference: true });
      assert.deepEqual(early.outcome.ok && early.outcome.split, {});
      const late = await wallet.placeBet({ playerId, currency: EUR, amount: 2_500n, provider: PROVIDER, externalRef: `late-${playerId}`, roundId: 'r-late', request: { n: 2 } });
      assert.equal(late.outcome.ok, false);
      assert.equal(!late.outcome.ok && late.outcome.code, 'TRANSACTION_ROLLED_BACK');
      assert.deepEqual(await playerBalances(app, [playerId]), before, 'the late bet moved no money');
      const db = app.server.runtime.database.db;
      const betRows = await sql<{ n: bigint }>`select count(*)::int8 as n from wallet.transactions where player_id = ${playerId} and type = 'bet'`.execute(db);
      assert.equal(betRows.rows[0]!.n, 0n);

      // A bet rolled back twice (two rollback ids) is refunded once.
      const placed = await wallet.placeBet({ playerId, currency: EUR, amount: 1_500n, provider: PROVIDER, externalRef: `twice-${playerId}`, roundId: 'r2', request: { n: 3 } });
      assert.ok(placed.outcome.ok);
      const first = await wallet.rollbackBet({ playerId, currency: EUR, provider: PROVIDER, externalRef: `twice-rb1-${playerId}`, betRef: `twice-${playerId}`, roundId: null, request: { n: 4 } });
      assert.deepEqual(first.outcome.ok && first.outcome.split, { real: '1500' });
      const second = await wallet.rollbackBet({ playerId, currency: EUR, provider: PROVIDER, externalRef: `twice-rb2-${playerId}`, betRef: `twice-${playerId}`, roundId: null, request: { n: 5 } });
      assert.ok(second.outcome.ok);
      assert.deepEqual(second.outcome.split, {});
      assert.deepEqual(second.outcome.data, { alreadyRolledBack: true });
      assert.deepEqual(await playerBalances(app, [playerId]), before);

      // Submitted together (one batch, or two racing batches), a rollback ahead of its bet still wins.
      for (let n = 0; n < 20; n++) {
        const ref = `race-${n}-${playerId}`;
        const [rb, bt] = await Promise.all([
          wallet.rollbackBet({ playerId, currency: EUR, provider: PROVIDER, externalRef: `race-rb-${n}-${playerId}`, betRef: ref, roundId: null, request: { n } }),
          wallet.placeBet({ playerId, currency: EUR, amount: 100n, provider: PROVIDER, externalRef: ref, roundId: null, request: { n } }),
        ]);
        // Either order is a valid history, but money must agree with it.
        if (bt.outcome.ok) assert.equal(sumSplit(rb.outcome), 100n, 'a bet taken after its rollback was planned must be refunded by it');
        else assert.equal(!bt.outcome.ok && bt.outcome.code, 'TRANSACTION_ROLLED_BACK');
      }
      assert.deepEqual(await playerBalances(app, [playerId]), before);
      await assertLedgerSound(app);
    });

    it('the database refuses a negative player balance and any change to postings or transactions', async () => {
      const [player] = await registerPlayers(app, 1);
      const playerId = player!;
      await wallet.submit(deposit({ playerId, currency: EUR, amount: 700n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', newId(), {}) }));
      const db = app.server.runtime.database.db;
      await assert.rejects(
        sql`update wallet.accounts set balance = -1 where holder = ${playerId} and name = 'real'`.execute(db),
        (e: Error) => /player_balance_not_negative/.test(e.message),
      );
      // A house account may go negative (it is the other side of player money).
      const house = await sql<{ holder: string; name: string; currency: string; balance: bigint }>`select holder, name, currency, balance from wallet.accounts where kind = 'house' and balance < 0 limit 1`.execute(db);
      assert.equal(house.rows.length, 1, 'the payments clearing account is negative after deposits');
      const tx = await sql<{ id: string }>`select id from wallet.transactions where player_id = ${playerId} limit 1`.execute(db);
      const id = tx.rows[0]!.id;
      for (const statement of [
        sql`update wallet.postings set amount = amount + 1 where transaction_id = ${id}`,
        sql`delete from wallet.postings where transaction_id = ${id}`,
        sql`update wallet.transactions set amount = 1 where id = ${id}`,
        sql`delete from wallet.transactions where id = ${id}`,
      ]) {
        await assert.rejects(statement.execute(db), (e: Error) => /APPEND_ONLY: (UPDATE|DELETE) on wallet\.(postings|transactions) is not allowed/.test(e.message));
      }
      // Nor may the ledger be emptied wholesale (tried inside a transaction that is rolled back either way).
      for (const table of ['wallet.postings', 'wallet.transactions']) {
        const rolledBack = new Error('roll back');
        await assert.rejects(
          db.transaction().execute(async (trx) => {
            await sql`truncate ${sql.table(table)} cascade`.execute(trx);
            throw rolledBack;
          }),
          (e: Error) => e !== rolledBack && /APPEND_ONLY: TRUNCATE/.test(e.message),
          `TRUNCATE ${table} must be refused`,
        );
      }
      const still = await sql<{ n: bigint }>`select count(*)::int8 as n from wallet.postings where transaction_id = ${id}`.execute(db);
      assert.equal(still.rows[0]!.n, 2n);
      assert.equal((await playerBalances(app, [playerId])).get(playerId)!.real, 700n);
      await assertLedgerSound(app);
    });

    it('game play over many players: most batches take the fast path, and every invariant holds', async () => {
      const players = await registerPlayers(app, 24);
      const before = { fast: wallet.engine.fastWritten, all: wallet.engine.written };
      const run = await bankWorkload({ wallets: [wallet], players, operations: kind === 'postgres' ? 3000 : 1200, concurrency: 64, seed: Math.floor(Math.random() * 2 ** 31), tag: `play-${newId()}`, mix: 'play' });
      await checkBank(app, players, run);
      const fast = wallet.engine.fastWritten - before.fast;
      const all = wallet.engine.written - before.all;
      process.stderr.write(`# play (${kind}): ${fast} of ${all} commands written on the fast path\n`);
      assert.ok(fast > all / 2, `most commands took the fast path (${fast} of ${all})`);
    });

    it("a transaction listing finds the player's postings through their index, which holds no house postings", { skip: kind === 'pglite' ? 'plan check on PostgreSQL' : false }, async () => {
      const db = app.server.runtime.database.db as unknown as WalletDb;
      const [playerId] = await registerPlayers(app, 1);
      await wallet.submit(deposit({ playerId: playerId!, currency: EUR, amount: 500n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', newId(), {}) }));
      const bet = await wallet.placeBet({ playerId: playerId!, currency: EUR, amount: 100n, provider: PROVIDER, externalRef: newId(), roundId: null, request: {} });
      assert.ok(bet.outcome.ok, JSON.stringify(bet.outcome));
      const id = bet.outcome.transactionId;
      const all = await sql<{ holder: string }>`select holder from wallet.postings where transaction_id = ${id}`.execute(db);
      assert.equal(all.rows.length, 2, 'the bet posts to the player and to the house');
      assert.deepEqual((await ownPostings(db, [id]).execute()).map((p) => [p.holder, p.amount]), [[playerId, -100n]], 'the listing reads the player side only');
      // With sequential scans priced out, PostgreSQL takes the partial index only if it can prove that the query implies its condition.
      const plan = await db.connection().execute(async (c) => {
        await sql`set enable_seqscan = off`.execute(c);
        try {
          return JSON.stringify(await ownPostings(c, [id]).explain());
        } finally {
          await sql`reset enable_seqscan`.execute(c);
        }
      });
      assert.match(plan, /postings_player_transaction/, plan);
    });

    it('house shards: claims by different processes never overlap; with none free, lanes share one', { skip: kind === 'pglite' ? 'PGlite is one process' : false }, async () => {
      const database = app.server.runtime.database;
      const quiet = pino({ level: 'silent' });
      const first = await claimHouseShards(database, 2, 16, quiet);
      const second = await claimHouseShards(database, 2, 16, quiet);
      try {
        const taken = [...wallet.engine.houses, ...first.houses, ...second.houses];
        assert.equal(new Set(taken).size, taken.length, 'no shard is claimed twice while its holder lives');
        // More lanes than free shards: every lane still gets a valid shard, some shared.
        const crowd = await claimHouseShards(database, 20, 16, quiet);
        assert.equal(crowd.houses.length, 20);
        assert.ok(crowd.houses.every((h) => Array.from({ length: 16 }, (_, i) => houseHolder(i)).includes(h)));
        await crowd.release();
      } finally {
        await first.release();
        await second.release();
      }
      // Released shards are free again.
      const again = await claimHouseShards(database, 2, 16, quiet);
      assert.equal(new Set([...again.houses, ...wallet.engine.houses]).size, 3);
      await again.release();
    });

    it(`two processes on one database place bets for the same players and the ledger still verifies`, { skip: kind === 'pglite' ? 'PGlite is one process' : false }, async () => {
      const second: Server = await createServer(await createRuntime(testConfig(app.db)));
      try {
        const players = await registerPlayers(app, 3);
        const wallets = [wallet, second.runtime.wallet.wallet];
        const run = await bankWorkload({ wallets, players, operations: 1500, concurrency: 96, seed: Math.floor(Math.random() * 2 ** 31), tag: `two-${newId()}` });
        await checkBank(app, players, run);
        assert.ok(second.runtime.wallet.wallet.engine.written > 0 && wallet.engine.written > 0, 'both processes wrote');
        const shards = await sql<{ n: bigint }>`select count(distinct holder)::int8 as n from wallet.accounts where kind = 'house' and name = ${`game:${PROVIDER}`}`.execute(app.server.runtime.database.db);
        assert.ok(shards.rows[0]!.n >= 2n, 'bets spread over house shards');
        // Each process claimed its lanes' shards: no shard is shared between the two.
        const lanes = [...wallet.engine.houses, ...second.runtime.wallet.wallet.engine.houses];
        assert.equal(new Set(lanes).size, lanes.length, `every lane of both processes has its own house shard (${lanes.join(', ')})`);
        // Game play on the same players from both processes: each one's lane cache goes
        // stale whenever the other moves the money, and the statement's checks catch it.
        const others = await registerPlayers(app, 6);
        const playRun = await bankWorkload({ wallets, players: others, operations: 1500, concurrency: 64, seed: Math.floor(Math.random() * 2 ** 31), tag: `two-play-${newId()}`, mix: 'play' });
        await checkBank(app, others, playRun);
        assert.ok(wallet.engine.fastBatches > 0 && second.runtime.wallet.wallet.engine.fastBatches > 0, `both processes took the fast path (${wallet.engine.fastBatches} and ${second.runtime.wallet.wallet.engine.fastBatches} of ${wallet.engine.batches} and ${second.runtime.wallet.wallet.engine.batches} batches)`);
      } finally {
        await second.shutdown();
      }
    });
  });
}

describe('ledger verify against changes made behind the ledger (postgres)', { skip: await serviceSkip('postgres') }, () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('postgres');
  });
  after(async () => app?.close());

  const behindTheLedger = (text: string, values: unknown[]) => changeBehindTriggers(app.db.env.DATABASE_URL!, 'wallet.postings', text, values);

  it('pitboss ledger verify exits 0 when intact; a changed amount or a removed posting exits 1 and names each broken rule', async () => {
    const wallet = app.server.runtime.wallet.wallet;
    const [playerId] = await registerPlayers(app, 1);
    const funded = await wallet.submit(deposit({ playerId: playerId!, currency: EUR, amount: 1_000n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', newId(), {}) }));
    const bet = await wallet.placeBet({ playerId: playerId!, currency: EUR, amount: 100n, provider: PROVIDER, externalRef: newId(), roundId: null, request: {} });
    assert.ok(funded.outcome.ok && bet.outcome.ok);
    const [depositId, betId] = [funded.outcome.transactionId, bet.outcome.transactionId];
    const env = { DATABASE_URL: app.db.env.DATABASE_URL! };
    const verify = async (code: number) => {
      const run = await pitboss(['ledger', 'verify'], env);
      assert.equal(run.code, code, `exit ${run.code}\n${run.stdout}${run.stderr}`);
      return run.stdout;
    };
    assert.match(await verify(0), /: consistent\n$/);
    const account = `${playerId}/real/EUR`;

    // The bet's player posting says 10 instead of 100: the transaction, the balance and the chain all break.
    await behindTheLedger('update wallet.postings set amount = -10 where transaction_id = $1 and holder = player_id', [betId]);
    let out = await verify(1);
    assert.match(out, /: INCONSISTENT\n/);
    assert.ok(out.includes(`  balanced: transaction ${betId}: EUR postings sum to 90\n`), out);
    assert.ok(out.includes(`  balance: account ${account}: balance 900, postings sum 990; last seq 2, 2 postings up to seq 2\n`), out);
    assert.ok(out.includes(`  chain: account ${playerId}|real|EUR seq 2: content does not match its hash\n`), out);
    assert.equal(out.split('\n').filter((l) => l.startsWith('  ')).length, 3, 'those three, nothing else');
    await behindTheLedger('update wallet.postings set amount = -100 where transaction_id = $1 and holder = player_id', [betId]);
    assert.match(await verify(0), /: consistent\n$/);

    // The deposit's player posting is gone: the next posting no longer links to anything before it.
    await behindTheLedger('delete from wallet.postings where transaction_id = $1 and holder = player_id', [depositId]);
    out = await verify(1);
    assert.ok(out.includes(`  balanced: transaction ${depositId}: EUR postings sum to -1000\n`), out);
    assert.ok(out.includes(`  balance: account ${account}: balance 900, postings sum -100; last seq 2, 1 postings up to seq 2\n`), out);
    assert.ok(out.includes(`  chain: account ${playerId}|real|EUR seq 2: does not link to the previous posting\n`), out);
  });
});
