import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { createRuntime, type Runtime } from '../../app/runtime.ts';
import { newId } from '../../platform/ids.ts';
import { createTestDatabase, testConfig } from '../../../test/support/databases.ts';
import { HOUSE, houseHolder, LaneCache, plannableFromCache, StaleLaneCache, writeBatch, writeBatchFast, writeThroughLane } from './engine.ts';
import { adjustment, bet, deposit, fee, house, HOUSE_ACCOUNTS, idempotency, proportional, releaseWithdrawal, requestHash, reserveWithdrawal, rollback, settleWithdrawal, transfer, win } from './operations.ts';
import { accountId, type AccountKey, type AccountState, type CommandResult, type LedgerCommand, type LedgerTransaction, type Plan, type PlanContext, type Posting } from './types.ts';
import { verifyLedger } from './verify.ts';

// The posting rules, property by property: plans run against a fake PlanContext (pure),
// then whole batches run through writeBatch on PGlite against a sequential model.

const WALLETS = ['real', 'bonus', 'freespins', 'tournament'] as const;
const PROVIDER = 'testgames';
const PLAYER = '01890000-0000-7000-8000-00000000aaaa';
const EUR = 'EUR';

/** The plan's view of a ledger, in memory. */
class FakeLedger implements PlanContext {
  readonly states = new Map<string, AccountState>();
  readonly txs: LedgerTransaction[] = [];

  constructor(balances: Partial<Record<string, bigint>> = {}, player = PLAYER, currency = EUR) {
    for (const [name, balance] of Object.entries(balances)) this.account({ holder: player, name, currency }).balance = balance ?? 0n;
  }

  account(key: AccountKey): AccountState {
    const id = accountId(key);
    let state = this.states.get(id);
    if (!state) {
      state = { key, kind: key.holder === HOUSE ? 'house' : 'player', balance: 0n, lastSeq: 0n, lastHash: '' };
      this.states.set(id, state);
    }
    return state;
  }

  walletsOf(playerId: string, currency: string): ReadonlyMap<string, AccountState> {
    return new Map(WALLETS.map((name) => [name, this.account({ holder: playerId, name, currency })]));
  }

  byRef(playerId: string, provider: string, externalRef: string): LedgerTransaction | undefined {
    return this.txs.find((t) => t.playerId === playerId && t.provider === provider && t.externalRef === externalRef);
  }

  referencing(playerId: string, transactionId: string): readonly LedgerTransaction[] {
    return this.txs.filter((t) => t.playerId === playerId && t.referenceId === transactionId);
  }

  addBet(ref: string, split: Record<string, bigint>): LedgerTransaction {
    const amount = -Object.values(split).reduce((s, v) => s + v, 0n);
    const tx: LedgerTransaction = { id: newId(), playerId: PLAYER, type: 'bet', currency: EUR, amount, split, roundId: 'r1', provider: PROVIDER, externalRef: ref, referenceId: null, meta: {} };
    this.txs.push(tx);
    return tx;
  }
}

const key = (k: string) => idempotency(PROVIDER, k, { k });
const sumsByCurrency = (postings: readonly Posting[]) => {
  const sums = new Map<string, bigint>();
  for (const p of postings) sums.set(p.account.currency, (sums.get(p.account.currency) ?? 0n) + p.amount);
  return sums;
};
const playerPostings = (postings: readonly Posting[]) => Object.fromEntries(postings.filter((p) => p.account.holder === PLAYER).map((p) => [p.account.name, p.amount]));
const show = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
const okPlan = (plan: Plan) => {
  assert.ok(plan.ok, `expected an accepted plan, got ${show(plan)}`);
  return plan.tx;
};

const money = (max = 10_000n) => fc.bigInt({ min: 0n, max });
const positive = (max = 10_000n) => fc.bigInt({ min: 1n, max });
const balancesArb = fc.record({ real: money(), bonus: money(), freespins: money(), tournament: money() });
/** A bet's split: what each spendable wallet paid (negative), at least one non-zero. */
const betSplitArb = fc
  .record({ real: money(5_000n), bonus: money(5_000n) })
  .filter((s) => s.real + s.bonus > 0n)
  .map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v > 0n).map(([w, v]) => [w, -v])) as Record<string, bigint>);


describe('requestHash', () => {
  // What it computed before it stopped writing and re-reading JSON: stored keys keep matching their replays.
  const roundTrip = (request: unknown) =>
    createHash('sha256')
      .update(canonicalize(JSON.parse(JSON.stringify(request, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))) ?? '')
      .digest('hex');
  it('hashes every request exactly as the earlier JSON round trip did', () => {
    const leaf = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.integer(), fc.double({ noNaN: false }), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.bigInt(), fc.date({ noInvalidDate: true }));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string(), tie('node'), { maxKeys: 5 })),
    })).node;
    fc.assert(
      fc.property(fc.dictionary(fc.string(), value, { maxKeys: 8 }), (request) => {
        let expected: string | Error;
        try {
          expected = roundTrip(request);
        } catch (e) {
          expected = e as Error;
        }
        if (expected instanceof Error) assert.throws(() => requestHash(request));
        else assert.equal(requestHash(request), expected);
      }),
      { numRuns: 2000 },
    );
    assert.equal(requestHash({ b: 1n, a: [undefined, 2], c: undefined }), roundTrip({ a: [null, 2], b: '1' }));
    // A body may carry a "__proto__" key (JSON.parse keeps it as a key): it is part of the request.
    const withProto = JSON.parse('{"meta":{"__proto__":{"x":1}},"amount":5}') as unknown;
    assert.equal(requestHash(withProto), roundTrip(withProto));
    assert.notEqual(requestHash(withProto), requestHash({ meta: {}, amount: 5 }));
  });
});

describe('posting rules (plans, property-based)', () => {
  it('every accepted plan of every operation balances to zero per currency', () => {
    const opArb = fc.oneof(
      fc.record({ op: fc.constant('bet' as const), amount: positive(20_000n) }),
      fc.record({ op: fc.constant('win' as const), amount: money(50_000n), withBet: fc.boolean(), split: betSplitArb }),
      fc.record({ op: fc.constant('rollback' as const), known: fc.boolean(), already: fc.boolean(), split: betSplitArb }),
      fc.record({ op: fc.constantFrom('deposit' as const, 'reserve' as const, 'settle' as const, 'release' as const, 'fee' as const), amount: positive() }),
      fc.record({ op: fc.constant('transfer' as const), amount: positive(), from: fc.constantFrom(...WALLETS), to: fc.constantFrom(...WALLETS) }),
      fc.record({ op: fc.constant('adjustment' as const), amount: fc.bigInt({ min: -10_000n, max: 10_000n }).filter((v) => v !== 0n), wallet: fc.constantFrom(...WALLETS) }),
    );
    fc.assert(
      fc.property(balancesArb, opArb, (balances, o) => {
        const ctx = new FakeLedger(balances);
        const id = key(newId());
        let command: LedgerCommand;
        switch (o.op) {
          case 'bet':
            command = bet({ playerId: PLAYER, currency: EUR, amount: o.amount, provider: PROVIDER, externalRef: 'b1', roundId: 'r1', idempotency: id, spendOrder: ['real', 'bonus'] });
            break;
          case 'win':
            if (o.withBet) ctx.addBet('b1', o.split);
            command = win({ playerId: PLAYER, currency: EUR, amount: o.amount, provider: PROVIDER, externalRef: 'w1', betRef: 'b1', roundId: null, idempotency: id, spendOrder: ['real', 'bonus'] });
            break;
          case 'rollback': {
            if (o.known) {
              const b = ctx.addBet('b1', o.split);
              if (o.already) ctx.txs.push({ ...b, id: newId(), type: 'rollback', externalRef: 'rb0', referenceId: b.id, split: {} });
            }
            command = rollback({ playerId: PLAYER, currency: EUR, provider: PROVIDER, externalRef: 'rb1', betRef: 'b1', roundId: null, idempotency: id });
            break;
          }
          case 'deposit':
            command = deposit({ playerId: PLAYER, currency: EUR, amount: o.amount, provider: 'sandbox', paymentId: newId(), idempotency: id });
            break;
          case 'reserve':
            command = reserveWithdrawal({ playerId: PLAYER, currency: EUR, amount: o.amount, paymentId: newId(), idempotency: id });
            break;
          case 'settle':
            command = settleWithdrawal({ playerId: PLAYER, currency: EUR, amount: o.amount, provider: 'sandbox', paymentId: newId(), idempotency: id });
            break;
          case 'release':
            command = releaseWithdrawal({ playerId: PLAYER, currency: EUR, amount: o.amount, paymentId: newId(), reason: 'test', idempotency: id });
            break;
          case 'fee':
            command = fee({ playerId: PLAYER, currency: EUR, amount: o.amount, reason: 'test', idempotency: id });
            break;
          case 'transfer':
            command = transfer({ playerId: PLAYER, currency: EUR, amount: o.amount, from: o.from, to: o.to, reason: 'test', idempotency: id });
            break;
          case 'adjustment':
            command = adjustment({ playerId: PLAYER, currency: EUR, amount: o.amount, wallet: o.wallet, reason: 'test', adjustmentId: newId(), staff: ['staff:x'], idempotency: id });
            break;
        }
        const plan = command.plan(ctx);
        if (!plan.ok) return;
        const tx = plan.tx;
        assert.ok(tx.amount >= 0n, `a transaction amount is never negative (${tx.amount})`);
        for (const [currency, sum] of sumsByCurrency(tx.postings)) assert.equal(sum, 0n, `${tx.type}: ${currency} postings sum to ${sum}`);
        for (const p of tx.postings) assert.equal(p.account.currency, EUR);
        // Every account a plan posts to is one the command declared (or the player's own).
        const declared = new Set([...command.accounts.map(accountId), ...WALLETS.map((w) => accountId({ holder: PLAYER, name: w, currency: EUR }))]);
        for (const p of tx.postings) assert.ok(declared.has(accountId(p.account)), `${tx.type} posts to undeclared ${accountId(p.account)}`);
      }),
      { numRuns: 800 },
    );
  });

  it('a bet spends wallets in spend order, never more than a balance, refused exactly when the spendable total is short', () => {
    const orderArb = fc.shuffledSubarray([...WALLETS], { minLength: 1 });
    fc.assert(
      fc.property(balancesArb, positive(40_000n), orderArb, (balances, stake, spendOrder) => {
        const ctx = new FakeLedger(balances);
        const plan = bet({ playerId: PLAYER, currency: EUR, amount: stake, provider: PROVIDER, externalRef: 'b1', roundId: 'r1', idempotency: key('b1'), spendOrder }).plan(ctx);
        const spendable = spendOrder.reduce((s, w) => s + balances[w], 0n);
        if (spendable < stake) {
          assert.equal(plan.ok, false, `stake ${stake} > spendable ${spendable} must be refused`);
          assert.equal(plan.ok ? '' : plan.code, 'INSUFFICIENT_FUNDS');
          return;
        }
        const tx = okPlan(plan);
        // The expected greedy split: each wallet in order gives what it has, up to what is left.
        const expected: Record<string, bigint> = {};
        let left = stake;
        for (const w of spendOrder) {
          const take = balances[w] < left ? balances[w] : left;
          if (take > 0n) expected[w] = -take;
          left -= take;
        }
        assert.deepEqual(playerPostings(tx.postings), expected);
        for (const [w, v] of Object.entries(playerPostings(tx.postings))) {
          assert.ok((spendOrder as readonly string[]).includes(w), `a bet never spends ${w}, which is not in the spend order`);
          assert.ok(-v <= balances[w as keyof typeof balances], `spent ${-v} of ${w} holding ${balances[w as keyof typeof balances]}`);
        }
        const game = tx.postings.filter((p) => p.account.holder === HOUSE);
        assert.deepEqual(game, [{ account: house(HOUSE_ACCOUNTS.game(PROVIDER), EUR), amount: stake }]);
        assert.equal(tx.amount, stake);
      }),
      { numRuns: 1000 },
    );
  });

  it('a bet with the default order (real, then bonus) is refused exactly when real + bonus < stake', () => {
    fc.assert(
      fc.property(balancesArb, positive(25_000n), (balances, stake) => {
        const plan = bet({ playerId: PLAYER, currency: EUR, amount: stake, provider: PROVIDER, externalRef: 'b1', roundId: null, idempotency: key('b1'), spendOrder: ['real', 'bonus'] }).plan(new FakeLedger(balances));
        assert.equal(plan.ok, balances.real + balances.bonus >= stake);
        if (plan.ok) {
          const split = playerPostings(plan.tx.postings);
          // Real money goes first: bonus is touched only once real is empty.
          if (split.bonus !== undefined) assert.equal(-(split.real ?? 0n), balances.real);
          assert.equal(split.freespins, undefined);
          assert.equal(split.tournament, undefined);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('proportional() gives shares that sum exactly to the win and follow the bet split', () => {
    const splitArb = fc.dictionary(fc.constantFrom(...WALLETS), fc.bigInt({ min: -1_000_000n, max: 1_000n }), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 15n }), splitArb, fc.shuffledSubarray([...WALLETS], { minLength: 1 }), (amount, split, order) => {
        const shares = proportional(amount, split, order);
        const total = [...shares.values()].reduce((s, v) => s + v, 0n);
        assert.equal(total, amount, 'shares sum exactly to the amount');
        for (const v of shares.values()) assert.ok(v >= 0n, 'no share is negative');
        const paid = order.filter((w) => (split[w] ?? 0n) < 0n);
        const paidTotal = paid.reduce((s, w) => s - split[w]!, 0n);
        if (paid.length === 0) {
          assert.deepEqual([...shares], [[order[0], amount]], 'nothing paid: everything to the first wallet');
          return;
        }
        assert.deepEqual(new Set(shares.keys()), new Set(paid), 'only wallets that paid get a share');
        for (const [i, w] of paid.entries()) {
          const exact = amount * -split[w]!; // share * paidTotal should be close to this
          const got = shares.get(w)! * paidTotal;
          if (i > 0) {
            assert.ok(got <= exact && exact - got < paidTotal, `${w}: share is the floor of its proportion`);
          } else {
            // The first wallet takes the remainders: at least its proportion, at most one unit per other wallet more.
            assert.ok(got + paidTotal > exact && got - exact < BigInt(paid.length) * paidTotal, `${w}: first wallet share out of bounds`);
          }
        }
      }),
      { numRuns: 2000 },
    );
    // Fixed points: an even split, and the remainder going to real.
    assert.deepEqual(Object.fromEntries(proportional(1000n, { real: -500n, bonus: -500n }, ['real', 'bonus'])), { real: 500n, bonus: 500n });
    assert.deepEqual(Object.fromEntries(proportional(100n, { real: -1n, bonus: -2n }, ['real', 'bonus'])), { real: 34n, bonus: 66n });
  });

  it('a win is credited in the proportion its bet was paid; a win without a known bet is real money', () => {
    fc.assert(
      fc.property(money(1_000_000n), betSplitArb, fc.boolean(), (amount, split, known) => {
        const ctx = new FakeLedger();
        const betTx = known ? ctx.addBet('b1', split) : undefined;
        const tx = okPlan(win({ playerId: PLAYER, currency: EUR, amount, provider: PROVIDER, externalRef: 'w1', betRef: 'b1', roundId: null, idempotency: key('w1'), spendOrder: ['real', 'bonus'] }).plan(ctx));
        const credited = playerPostings(tx.postings);
        const expected = known ? Object.fromEntries([...proportional(amount, split, ['real', 'bonus'])].filter(([, v]) => v > 0n)) : amount > 0n ? { real: amount } : {};
        assert.deepEqual(credited, expected);
        assert.equal(tx.referenceId, betTx?.id ?? null);
        assert.equal(tx.amount, amount);
      }),
      { numRuns: 500 },
    );
  });

  it('a rollback refunds exactly the bet split, once; an unknown bet closes its key; a win is not a bet', () => {
    fc.assert(
      fc.property(betSplitArb, (split) => {
        const ctx = new FakeLedger();
        const betTx = ctx.addBet('b1', split);
        const command = () => rollback({ playerId: PLAYER, currency: EUR, provider: PROVIDER, externalRef: `rb-${newId()}`, betRef: 'b1', roundId: null, idempotency: key(newId()) });
        const tx = okPlan(command().plan(ctx));
        assert.deepEqual(playerPostings(tx.postings), Object.fromEntries(Object.entries(split).map(([w, v]) => [w, -v])));
        assert.deepEqual(tx.postings.filter((p) => p.account.holder === HOUSE), [{ account: house(HOUSE_ACCOUNTS.game(PROVIDER), EUR), amount: -betTx.amount }]);
        assert.equal(tx.amount, betTx.amount);
        assert.equal(tx.referenceId, betTx.id);
        // Once rolled back, a second rollback refunds nothing.
        ctx.txs.push({ ...betTx, id: newId(), type: 'rollback', externalRef: 'rb-first', referenceId: betTx.id, split: {} });
        const again = okPlan(command().plan(ctx));
        assert.equal(again.amount, 0n);
        assert.deepEqual(again.postings, []);
      }),
      { numRuns: 300 },
    );
    const ctx = new FakeLedger();
    const unknown = rollback({ playerId: PLAYER, currency: EUR, provider: PROVIDER, externalRef: 'rb9', betRef: 'b9', roundId: null, idempotency: key('rb9') });
    assert.deepEqual(unknown.tombstones, [], 'no tombstone before the plan ran');
    const tx = okPlan(unknown.plan(ctx));
    assert.equal(tx.amount, 0n);
    assert.deepEqual(tx.postings, []);
    assert.deepEqual(unknown.tombstones, [{ scope: PROVIDER, key: 'b9', outcome: { ok: false, code: 'TRANSACTION_ROLLED_BACK', currency: EUR } }]);
    ctx.txs.push({ id: newId(), playerId: PLAYER, type: 'win', currency: EUR, amount: 5n, split: { real: 5n }, roundId: null, provider: PROVIDER, externalRef: 'w5', referenceId: null, meta: {} });
    const ofWin = rollback({ playerId: PLAYER, currency: EUR, provider: PROVIDER, externalRef: 'rb5', betRef: 'w5', roundId: null, idempotency: key('rb5') }).plan(ctx);
    assert.equal(ofWin.ok ? 'ok' : ofWin.code, 'TRANSACTION_NOT_FOUND');
  });

  it('the request hash ignores key order and reads bigints as strings; payload changes change it', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())), fc.bigInt(), (payload, amount) => {
        const reversed = Object.fromEntries(Object.entries(payload).reverse());
        assert.equal(requestHash({ ...payload, amount }), requestHash({ ...reversed, amount: amount.toString() }));
        assert.notEqual(requestHash({ ...payload, amount }), requestHash({ ...payload, amount: amount + 1n }));
      }),
      { numRuns: 300 },
    );
  });
});

// --- writeBatch against a sequential model -------------------------------------------

type Op =
  | { kind: 'deposit'; player: number; amount: bigint }
  | { kind: 'bet'; player: number; ref: number; amount: bigint }
  | { kind: 'win'; player: number; betRef: number; amount: bigint }
  | { kind: 'rollback'; player: number; betRef: number }
  | { kind: 'fee'; player: number; amount: bigint }
  | { kind: 'transfer'; player: number; amount: bigint; toBonus: boolean }
  | { kind: 'adjust'; player: number; amount: bigint }
  | { kind: 'replay'; of: number }
  | { kind: 'conflict'; of: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deposit' as const), player: fc.nat(1), amount: positive(2_000n) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('bet' as const), player: fc.nat(1), ref: fc.nat(6), amount: positive(1_500n) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('win' as const), player: fc.nat(1), betRef: fc.nat(6), amount: money(3_000n) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rollback' as const), player: fc.nat(1), betRef: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fee' as const), player: fc.nat(1), amount: positive(500n) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('transfer' as const), player: fc.nat(1), amount: positive(800n), toBonus: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('adjust' as const), player: fc.nat(1), amount: fc.bigInt({ min: -700n, max: 700n }).filter((v) => v !== 0n) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replay' as const), of: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('conflict' as const), of: fc.nat(1000) }) },
);

/** Mostly bets and wins, as a game provider sends them: most batches take the fast path. */
const playArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deposit' as const), player: fc.nat(1), amount: positive(2_000n) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('bet' as const), player: fc.nat(1), ref: fc.nat(6), amount: positive(1_500n) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('win' as const), player: fc.nat(1), betRef: fc.nat(6), amount: money(3_000n) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('transfer' as const), player: fc.nat(1), amount: positive(800n), toBonus: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replay' as const), of: fc.nat(1000) }) },
);

interface ModelPlayer {
  real: bigint;
  bonus: bigint;
  bets: Map<string, { split: Record<string, bigint>; amount: bigint; rolledBack: boolean }>;
}

/** What the ledger must answer, computed one command at a time in submission order. */
class Model {
  readonly players: ModelPlayer[];
  /** Idempotency (scope, key) -> the request hash that claimed it and the first answer's summary. */
  readonly keys = new Map<string, { hash: string; summary: string }>();

  constructor(n: number) {
    this.players = Array.from({ length: n }, () => ({ real: 0n, bonus: 0n, bets: new Map() }));
  }

  /** The expected answer summary ("ok" or a refusal code) of one command. */
  apply(op: Exclude<Op, { kind: 'replay' | 'conflict' }>, scopeKey: string, hash: string, betKey?: string): string {
    const seen = this.keys.get(scopeKey);
    if (seen) return seen.hash === hash || seen.hash === 'tombstone' ? seen.summary : 'IDEMPOTENCY_KEY_REUSED';
    const p = this.players[op.player]!;
    let summary = 'ok';
    switch (op.kind) {
      case 'deposit':
        p.real += op.amount;
        break;
      case 'bet': {
        if (p.real + p.bonus < op.amount) summary = 'INSUFFICIENT_FUNDS';
        else {
          const fromReal = p.real < op.amount ? p.real : op.amount;
          const split: Record<string, bigint> = {};
          if (fromReal > 0n) split.real = -fromReal;
          if (op.amount - fromReal > 0n) split.bonus = -(op.amount - fromReal);
          p.real -= fromReal;
          p.bonus -= op.amount - fromReal;
          p.bets.set(`b${op.ref}`, { split, amount: op.amount, rolledBack: false });
        }
        break;
      }
      case 'win': {
        const b = p.bets.get(`b${op.betRef}`);
        const shares = b ? proportional(op.amount, b.split, ['real', 'bonus']) : new Map([['real', op.amount]]);
        p.real += shares.get('real') ?? 0n;
        p.bonus += shares.get('bonus') ?? 0n;
        break;
      }
      case 'rollback': {
        const b = p.bets.get(`b${op.betRef}`);
        if (b && !b.rolledBack) {
          b.rolledBack = true;
          p.real -= b.split.real ?? 0n;
          p.bonus -= b.split.bonus ?? 0n;
        } else if (!b && betKey && !this.keys.has(betKey)) {
          this.keys.set(betKey, { hash: 'tombstone', summary: 'TRANSACTION_ROLLED_BACK' });
        }
        break;
      }
      case 'fee':
        if (p.real < op.amount) summary = 'INSUFFICIENT_FUNDS';
        else p.real -= op.amount;
        break;
      case 'transfer': {
        const from = op.toBonus ? 'real' : 'bonus';
        if (p[from] < op.amount) summary = 'INSUFFICIENT_FUNDS';
        else {
          p[from] -= op.amount;
          p[op.toBonus ? 'bonus' : 'real'] += op.amount;
        }
        break;
      }
      case 'adjust':
        if (p.bonus + op.amount < 0n) summary = 'INSUFFICIENT_FUNDS';
        else p.bonus += op.amount;
        break;
    }
    this.keys.set(scopeKey, { hash, summary });
    return summary;
  }
}

describe('the lane cache', () => {
  const walletTypes = ['real', 'bonus'];
  const shard = houseHolder(0);
  const state = (key: AccountKey, kind: AccountState['kind']): AccountState => ({ key, kind, balance: 1000n, lastSeq: 1n, lastHash: '0'.repeat(64) });
  const stake = (playerId: string, key: string) =>
    bet({ playerId, currency: 'EUR', amount: 10n, provider: 'p', externalRef: key, roundId: null, idempotency: idempotency('p', key, { key }), spendOrder: walletTypes });

  it("sends a replay of a key it answered to the locked path, with the rest of that player's commands", () => {
    const [a, b] = [newId(), newId()];
    const cache = new LaneCache(walletTypes, 10);
    cache.learn({
      accounts: [
        ...[a, b].flatMap((holder) => walletTypes.map((name) => state({ holder, name, currency: 'EUR' }, 'player'))),
        state({ holder: shard, name: HOUSE_ACCOUNTS.game('p'), currency: 'EUR' }, 'house'),
      ],
      transactions: [],
      answers: [{ scope: 'p', key: 'answered' }],
    });
    const batch = [stake(a, 'new-1'), stake(a, 'answered'), stake(a, 'new-2'), stake(b, 'new-3')];
    assert.deepEqual(plannableFromCache(batch, cache, shard), [false, false, false, true]);
    assert.equal(cache.answered(batch[1]!), true);
    assert.equal(cache.answered(batch[0]!), false);
  });
});

describe('writeBatch against a sequential model (PGlite)', () => {
  let runtime: Runtime;
  before(async () => {
    runtime = await createRuntime(testConfig(await createTestDatabase('pglite')));
  });
  after(async () => runtime?.close());

  async function modelRun(arb: fc.Arbitrary<Op>, numRuns: number, label: string, expectStale: boolean): Promise<void> {
    const walletTypes = [...WALLETS];
    let run = 0;
    const paths = { fast: 0, locked: 0, stale: 0 };
    // The lanes' caches live across runs, as a process's do across batches.
    const lanes = [new LaneCache(walletTypes, 1000), new LaneCache(walletTypes, 1000)];
    const property = fc.asyncProperty(fc.array(arb, { minLength: 1, maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 8 }), async (ops, cuts) => {
      run++;
      // Fresh players per run, so runs do not interfere.
      const players = [newId(), newId()];
      const tag = `run${run}-${newId()}`;
      const model = new Model(players.length);
      const commands: { command: LedgerCommand; expect: string }[] = [];
      const made: { command: LedgerCommand; op: Exclude<Op, { kind: 'replay' | 'conflict' }>; scopeKey: string; hash: string; betKey?: string }[] = [];
      for (const [i, op] of ops.entries()) {
        if (op.kind === 'replay' || op.kind === 'conflict') {
          if (made.length === 0) continue;
          const first = made[op.of % made.length]!;
          if (op.kind === 'replay') {
            commands.push({ command: first.command, expect: model.apply(first.op, first.scopeKey, first.hash, first.betKey) });
          } else {
            // Same key, different payload.
            const c: LedgerCommand = { ...first.command, idempotency: { ...first.command.idempotency, requestHash: `${first.hash}-other` } };
            commands.push({ command: c, expect: model.apply(first.op, first.scopeKey, `${first.hash}-other`, first.betKey) });
          }
          continue;
        }
        const playerId = players[op.player]!;
        // Provider references are per player here, so one player's rollback never closes another's bet.
        const betRef = (ref: number) => `${tag}-p${op.player}-b${ref}`;
        const request = { ...op, i, amount: 'amount' in op ? op.amount.toString() : null };
        let command: LedgerCommand;
        let betKey: string | undefined;
        switch (op.kind) {
          case 'deposit':
            command = deposit({ playerId, currency: EUR, amount: op.amount, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', `${tag}-${i}`, request) });
            break;
          case 'bet':
            command = bet({ playerId, currency: EUR, amount: op.amount, provider: PROVIDER, externalRef: betRef(op.ref), roundId: null, idempotency: idempotency(PROVIDER, betRef(op.ref), request), spendOrder: ['real', 'bonus'] });
            break;
          case 'win':
            command = win({ playerId, currency: EUR, amount: op.amount, provider: PROVIDER, externalRef: `${tag}-w${i}`, betRef: betRef(op.betRef), roundId: null, idempotency: idempotency(PROVIDER, `${tag}-w${i}`, request), spendOrder: ['real', 'bonus'] });
            break;
          case 'rollback':
            betKey = `${PROVIDER}\u0000${betRef(op.betRef)}`;
            command = rollback({ playerId, currency: EUR, provider: PROVIDER, externalRef: `${tag}-r${i}`, betRef: betRef(op.betRef), roundId: null, idempotency: idempotency(PROVIDER, `${tag}-r${i}`, request) });
            break;
          case 'fee':
            command = fee({ playerId, currency: EUR, amount: op.amount, reason: 'x', idempotency: idempotency('fee', `${tag}-${i}`, request) });
            break;
          case 'transfer':
            command = transfer({ playerId, currency: EUR, amount: op.amount, from: op.toBonus ? 'real' : 'bonus', to: op.toBonus ? 'bonus' : 'real', reason: 'x', idempotency: idempotency('transfer', `${tag}-${i}`, request) });
            break;
          case 'adjust':
            command = adjustment({ playerId, currency: EUR, amount: op.amount, wallet: 'bonus', reason: 'x', adjustmentId: newId(), staff: ['staff:t'], idempotency: idempotency('adjustment', `${tag}-${i}`, request) });
            break;
        }
        const scopeKey = `${command.idempotency.scope}\u0000${command.idempotency.key}`;
        made.push({ command, op, scopeKey, hash: command.idempotency.requestHash, betKey });
        commands.push({ command, expect: model.apply(op, scopeKey, command.idempotency.requestHash, betKey) });
      }
      // Cut the sequence into batches, as two processes with a lane each would write them:
      // each batch tries the fast path from its lane's cache (stale whenever the other
      // lane moved the same money), then the locked path, on its lane's house shard.
      const results: CommandResult[] = [];
      let at = 0;
      let cut = 0;
      while (at < commands.length) {
        const size = cuts[cut++ % cuts.length]!;
        const batch = commands.slice(at, at + size).map((c) => c.command);
        at += size;
        // Mostly the first lane (its cache warms up); now and then the other moves the same money.
        const lane = (size + cut) % 5 === 0 ? 1 : 0;
        const cache = lanes[lane]!;
        const house = houseHolder(lane);
        const out = await writeThroughLane(batch, cache, house, {
          fast: async (part) => {
            try {
              // As the engine does, the cache learns the batch while its statement runs, before
              // the commit, and forgets its players below if the statement fails.
              const written = await writeBatchFast(runtime.database.db, part, walletTypes, house, cache, (planned) => cache.learn(planned));
              if (!written) return undefined;
              paths.fast++;
              return written.results;
            } catch (error) {
              assert.ok(error instanceof StaleLaneCache || ['40001', '23505'].includes((error as { code?: string }).code ?? ''), String(error));
              paths.stale++;
              cache.forget(part);
              return undefined;
            }
          },
          locked: async (part) => {
            paths.locked++;
            const written = await runtime.database.db.transaction().execute((trx) => writeBatch(trx, part, walletTypes, house));
            cache.learn(written.learned);
            return written.results;
          },
        });
        results.push(...out);
      }
      const firstOutcome = new Map<string, unknown>();
      for (const [i, { command, expect }] of commands.entries()) {
        const r = results[i]!;
        const got = r.outcome.ok ? 'ok' : r.outcome.code;
        assert.equal(got, expect, `command ${i} (${command.idempotency.key}): got ${got}, the model says ${expect}; ops ${show(ops)}`);
        const id = `${command.idempotency.scope}\u0000${command.idempotency.key}\u0000${command.idempotency.requestHash}`;
        if (got !== 'IDEMPOTENCY_KEY_REUSED') {
          if (firstOutcome.has(id)) {
            assert.equal(r.replayed, true);
            assert.deepEqual(r.outcome, firstOutcome.get(id), 'a replay gets exactly the first outcome');
          } else firstOutcome.set(id, r.outcome);
        }
      }
      const { rows } = await sql<{ holder: string; name: string; balance: bigint }>`
        select holder, name, balance from wallet.accounts where holder = any(${players}::uuid[])`.execute(runtime.database.db);
      for (const [n, playerId] of players.entries()) {
        const balance = (name: string) => rows.find((r) => r.holder === playerId && r.name === name)?.balance ?? 0n;
        assert.equal(balance('real'), model.players[n]!.real, `player ${n} real`);
        assert.equal(balance('bonus'), model.players[n]!.bonus, `player ${n} bonus`);
      }
    });
    // A stale cache needs the other lane to move a player's money between two fast batches
    // of this one: a few times in 200 runs (about one set of 200 in a hundred has none). So
    // that the check below does not fail by chance, more sets of runs follow until one did,
    // up to three in all (every run is checked against the model all the same).
    for (let set = 0; set < (expectStale ? 3 : 1) && (set === 0 || paths.stale === 0); set++) await fc.assert(property, { numRuns });
    console.log(`# writeBatch model (${label}): ${paths.fast} fast statements, ${paths.locked} locked transactions, ${paths.stale} fast statements refused (a stale cache or an answered key)`);
    assert.ok(paths.fast > 0 && paths.locked > 0, 'both paths ran');
    if (expectStale) assert.ok(paths.stale > 0, 'the fast path met a stale cache and fell back');
    const report = await verifyLedger(runtime.database.db);
    assert.deepEqual(report.problems, []);
    assert.ok(report.transactions > 0);
  }

  it('random batches of commands with replays and key conflicts give the model answers and balances, and the ledger verifies', async () => {
    await modelRun(opArb, 200, 'every operation', true);
  });

  it('game play (mostly bets and wins, few replays) through the fast path gives the model answers too', async () => {
    await modelRun(playArb, 100, 'game play', false);
  });

  it('the fast path refuses a batch when a wallet it read but does not post to has moved since the cache saw it, and writes nothing', async () => {
    const walletTypes = [...WALLETS];
    const shard = houseHolder(0);
    const tag = newId();
    const locked = async (cache: LaneCache, command: LedgerCommand) => {
      const written = await runtime.database.db.transaction().execute((trx) => writeBatch(trx, [command], walletTypes, shard));
      cache.learn(written.learned);
      assert.equal(written.results[0]!.outcome.ok, true);
    };
    const stakeOf = (playerId: string, n: number) =>
      bet({ playerId, currency: EUR, amount: 100n, provider: PROVIDER, externalRef: `${tag}-${n}`, roundId: null, idempotency: idempotency(PROVIDER, `${tag}-${n}`, { n }), spendOrder: ['real', 'bonus'] });
    const balances = async (playerId: string) =>
      Object.fromEntries(
        (await sql<{ name: string; balance: bigint }>`select name, balance from wallet.accounts where holder = ${playerId}::uuid`.execute(runtime.database.db)).rows.map((r) => [r.name, r.balance]),
      );
    const [player, control] = [newId(), newId()];
    const cache = new LaneCache(walletTypes, 10);
    for (const p of [player, control]) {
      await locked(cache, deposit({ playerId: p, currency: EUR, amount: 10_000n, provider: 'sandbox', paymentId: newId(), idempotency: idempotency('payment', `${tag}-dep-${p}`, { p }) }));
    }
    // A first bet on the locked path puts the game's house account in the cache too.
    await locked(cache, stakeOf(control, 0));
    // The other lane (another process) adds bonus money to one player: its bonus wallet moves, unseen by this cache.
    await locked(new LaneCache(walletTypes, 10), adjustment({ playerId: player, currency: EUR, amount: 500n, wallet: 'bonus', reason: 'x', adjustmentId: newId(), staff: ['staff:t'], idempotency: idempotency('adjustment', `${tag}-adj`, {}) }));
    // A bet paid from real alone posts only to real and the house; the statement holds bonus to its cached sequence.
    const before = await balances(player);
    await assert.rejects(writeBatchFast(runtime.database.db, [stakeOf(player, 1)], walletTypes, shard, cache), /WALLET_BATCH_STALE/);
    assert.deepEqual(await balances(player), before, 'nothing was written');
    // The same bet for a player whose wallets did not move goes through, with the balances the cache knew.
    const written = await writeBatchFast(runtime.database.db, [stakeOf(control, 2)], walletTypes, shard, cache);
    assert.ok(written);
    const outcome = written.results[0]!.outcome;
    assert.ok(outcome.ok);
    assert.deepEqual(outcome.balances, { real: '9800', bonus: '0', freespins: '0', tournament: '0' });
  });
});
