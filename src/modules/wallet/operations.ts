import { sha256Hex } from '../../platform/hash.ts';
import canonicalize from 'canonicalize';
import type { NewEvent } from '../../platform/events/types.ts';
import { HOUSE } from './engine.ts';
import type { WalletEventType } from './events.ts';
import type { AccountKey, IdempotencyKey, LedgerCommand, LedgerTransaction, Outcome, Plan, PlanContext, Posting, TransactionType } from './types.ts';

// Each money movement is a command: the accounts it touches and a plan that turns the
// locked balances into postings (or a refusal). Plans are pure: the batch writer runs
// them in order against the state it holds locked.

export const house = (name: string, currency: string): AccountKey => ({ holder: HOUSE, name, currency });

export const HOUSE_ACCOUNTS = {
  game: (provider: string) => `game:${provider}`,
  payments: (provider: string) => `payments:${provider}`,
  pendingWithdrawals: 'withdrawals:pending',
  fees: 'fees',
  adjustments: 'adjustments',
} as const;

/**
 * A request as JSON would carry it: bigints as decimal strings, toJSON applied, values
 * JSON leaves out (undefined, functions, symbols) left out, non-finite numbers as null.
 * The same value JSON.parse(JSON.stringify(request)) gives, without writing and
 * re-reading the text (every bet and win hashes its request).
 */
function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (value === null || typeof value !== 'object') return value;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return jsonValue((value as { toJSON: () => unknown }).toJSON());
  const omitted = (v: unknown) => v === undefined || typeof v === 'function' || typeof v === 'symbol';
  if (Array.isArray(value)) return value.map((v: unknown) => (omitted(v) ? null : jsonValue(v)));
  // No prototype: a key "__proto__" (JSON.parse makes it an own property) stays a key.
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) if (!omitted(v)) out[k] = jsonValue(v);
  return out;
}

/** sha256 of the canonical JSON (RFC 8785) of a request: what makes "the same request". */
export function requestHash(request: unknown): string {
  return sha256Hex(canonicalize(jsonValue(request)) ?? '');
}

export function idempotency(scope: string, key: string, request: unknown): IdempotencyKey {
  return { scope, key, requestHash: requestHash(request) };
}

const wallet = (playerId: string, name: string, currency: string): AccountKey => ({ holder: playerId, name, currency });

/** The two postings that move `amount` from one account to another. */
const move = (from: AccountKey, to: AccountKey, amount: bigint): Posting[] => [
  { account: from, amount: -amount },
  { account: to, amount },
];

function movement(type: WalletEventType, playerId: string, amount: bigint, outcome: Outcome & { ok: true }, extra: { roundId?: string | null; provider?: string | null; reference?: string | null } = {}): NewEvent {
  return {
    type,
    playerId,
    payload: { transactionId: outcome.transactionId, playerId, currency: outcome.currency, amount: amount.toString(), split: { ...outcome.split }, balances: { ...outcome.balances }, ...extra },
  };
}

function simple(opts: {
  playerId: string;
  currency: string;
  idempotency: IdempotencyKey;
  type: TransactionType;
  amount: bigint;
  postings: Posting[];
  event?: WalletEventType;
  meta?: Record<string, unknown>;
  data?: Record<string, unknown>;
  referenceId?: string | null;
}): LedgerCommand {
  return {
    playerId: opts.playerId,
    currency: opts.currency,
    idempotency: opts.idempotency,
    accounts: opts.postings.map((p) => p.account),
    plan: (): Plan => ({
      ok: true,
      tx: { type: opts.type, currency: opts.currency, amount: opts.amount, postings: opts.postings, meta: opts.meta, referenceId: opts.referenceId ?? null },
      data: opts.data,
      events: opts.event ? (o) => [movement(opts.event!, opts.playerId, opts.amount, o)] : undefined,
    }),
  };
}

export interface BetInput {
  playerId: string;
  currency: string;
  amount: bigint;
  provider: string;
  /** The provider's transaction id: the idempotency key of the bet. */
  externalRef: string;
  roundId: string | null;
  gameCode?: string | null;
  idempotency: IdempotencyKey;
  /** Wallets in the order a bet spends them (from wallet_types.bet_priority). */
  spendOrder: readonly string[];
}

/** Debits the stake across the spendable wallets in order (real money first by default). */
export function bet(input: BetInput): LedgerCommand {
  const game = house(HOUSE_ACCOUNTS.game(input.provider), input.currency);
  return {
    playerId: input.playerId,
    currency: input.currency,
    idempotency: input.idempotency,
    accounts: [game],
    plan(ctx: PlanContext): Plan {
      const wallets = ctx.walletsOf(input.playerId, input.currency);
      let left = input.amount;
      const postings: Posting[] = [];
      for (const name of input.spendOrder) {
        const state = wallets.get(name);
        if (!state || left === 0n) continue;
        const take = state.balance < left ? state.balance : left;
        if (take > 0n) {
          postings.push({ account: wallet(input.playerId, name, input.currency), amount: -take });
          left -= take;
        }
      }
      if (left > 0n) return { ok: false, code: 'INSUFFICIENT_FUNDS', currency: input.currency };
      postings.push({ account: game, amount: input.amount });
      return {
        ok: true,
        tx: { type: 'bet', currency: input.currency, amount: input.amount, postings, roundId: input.roundId, provider: input.provider, externalRef: input.externalRef, meta: input.gameCode ? { gameCode: input.gameCode } : {} },
        events: (o) => [movement('wallet.bet.placed', input.playerId, input.amount, o, { roundId: input.roundId, provider: input.provider, reference: input.externalRef })],
      };
    },
  };
}

/** Splits `amount` in the proportions the bet was paid; the remainder of the division goes to the first wallet. */
export function proportional(amount: bigint, betSplit: Readonly<Record<string, bigint>>, order: readonly string[]): Map<string, bigint> {
  const paid = order.filter((w) => (betSplit[w] ?? 0n) < 0n).map((w) => [w, -(betSplit[w] ?? 0n)] as const);
  const total = paid.reduce((s, [, v]) => s + v, 0n);
  const out = new Map<string, bigint>();
  if (total === 0n || paid.length === 0) {
    out.set(order[0] ?? 'real', amount);
    return out;
  }
  let given = 0n;
  for (const [w, v] of paid.slice(1)) {
    const share = (amount * v) / total;
    out.set(w, share);
    given += share;
  }
  out.set(paid[0]![0], amount - given);
  return out;
}

export interface WinInput {
  playerId: string;
  currency: string;
  amount: bigint;
  provider: string;
  externalRef: string;
  /** The bet this win pays out, when the provider names it. */
  betRef: string | null;
  roundId: string | null;
  idempotency: IdempotencyKey;
  spendOrder: readonly string[];
}

/** Credits a win in the same proportion as its bet was paid (real vs bonus); real money without a bet. */
export function win(input: WinInput): LedgerCommand {
  const game = house(HOUSE_ACCOUNTS.game(input.provider), input.currency);
  return {
    playerId: input.playerId,
    currency: input.currency,
    idempotency: input.idempotency,
    accounts: [game],
    refs: input.betRef ? [{ provider: input.provider, externalRef: input.betRef }] : [],
    plan(ctx: PlanContext): Plan {
      const betTx = input.betRef ? ctx.byRef(input.playerId, input.provider, input.betRef) : undefined;
      const shares = betTx && betTx.type === 'bet' ? proportional(input.amount, betTx.split, input.spendOrder) : new Map([['real', input.amount]]);
      const postings: Posting[] = [];
      for (const [name, share] of shares) if (share > 0n) postings.push({ account: wallet(input.playerId, name, input.currency), amount: share });
      if (input.amount > 0n) postings.push({ account: game, amount: -input.amount });
      return {
        ok: true,
        tx: {
          type: 'win',
          currency: input.currency,
          amount: input.amount,
          postings,
          roundId: input.roundId ?? betTx?.roundId ?? null,
          provider: input.provider,
          externalRef: input.externalRef,
          referenceId: betTx?.id ?? null,
        },
        events: (o) => [movement('wallet.win.credited', input.playerId, input.amount, o, { roundId: input.roundId, provider: input.provider, reference: input.externalRef })],
      };
    },
  };
}

export interface RollbackInput {
  playerId: string;
  currency: string;
  provider: string;
  /** The rollback's own provider transaction id. */
  externalRef: string;
  /** The provider transaction id of the bet to roll back. */
  betRef: string;
  roundId: string | null;
  idempotency: IdempotencyKey;
}

/**
 * Refunds a bet exactly as it was paid. A rollback for a bet not (yet) in the ledger is
 * recorded, and the bet's key is closed: when the late bet arrives it is refused.
 */
export function rollback(input: RollbackInput): LedgerCommand {
  const game = house(HOUSE_ACCOUNTS.game(input.provider), input.currency);
  const refused: Outcome = { ok: false, code: 'TRANSACTION_ROLLED_BACK', currency: input.currency };
  let unknownBet = false;
  const command: LedgerCommand = {
    playerId: input.playerId,
    currency: input.currency,
    idempotency: input.idempotency,
    accounts: [game],
    refs: [{ provider: input.provider, externalRef: input.betRef }],
    needsHistory: true,
    get tombstones() {
      return unknownBet ? [{ scope: input.idempotency.scope, key: input.betRef, outcome: refused }] : [];
    },
    plan(ctx: PlanContext): Plan {
      const betTx: LedgerTransaction | undefined = ctx.byRef(input.playerId, input.provider, input.betRef);
      // A plan may run twice (a failed batch is retried command by command): decide afresh.
      unknownBet = false;
      const base = { type: 'rollback' as const, currency: input.currency, roundId: input.roundId, provider: input.provider, externalRef: input.externalRef };
      if (!betTx) {
        unknownBet = true;
        return { ok: true, tx: { ...base, amount: 0n, postings: [], meta: { unknownReference: input.betRef } }, data: { unknownReference: true } };
      }
      if (betTx.type !== 'bet') return { ok: false, code: 'TRANSACTION_NOT_FOUND', detail: `${input.betRef} is a ${betTx.type}, not a bet`, currency: input.currency };
      if (ctx.referencing(input.playerId, betTx.id).some((t) => t.type === 'rollback')) {
        return { ok: true, tx: { ...base, amount: 0n, postings: [], referenceId: betTx.id, meta: { alreadyRolledBack: true } }, data: { alreadyRolledBack: true } };
      }
      const postings: Posting[] = Object.entries(betTx.split)
        .filter(([, v]) => v !== 0n)
        .map(([name, v]) => ({ account: wallet(input.playerId, name, input.currency), amount: -v }));
      postings.push({ account: game, amount: -betTx.amount });
      return {
        ok: true,
        tx: { ...base, amount: betTx.amount, postings, roundId: input.roundId ?? betTx.roundId, referenceId: betTx.id },
        events: (o) => [movement('wallet.bet.rolled_back', input.playerId, betTx.amount, o, { roundId: betTx.roundId, provider: input.provider, reference: input.betRef })],
      };
    },
  };
  return command;
}

export const deposit = (o: { playerId: string; currency: string; amount: bigint; provider: string; paymentId: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'deposit',
    postings: move(house(HOUSE_ACCOUNTS.payments(o.provider), o.currency), wallet(o.playerId, 'real', o.currency), o.amount),
    event: 'wallet.deposit.completed',
    meta: { paymentId: o.paymentId, provider: o.provider },
  });

export const reserveWithdrawal = (o: { playerId: string; currency: string; amount: bigint; paymentId: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'withdrawal_reserve',
    postings: move(wallet(o.playerId, 'real', o.currency), house(HOUSE_ACCOUNTS.pendingWithdrawals, o.currency), o.amount),
    event: 'wallet.withdrawal.requested',
    meta: { paymentId: o.paymentId },
  });

export const settleWithdrawal = (o: { playerId: string; currency: string; amount: bigint; provider: string; paymentId: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'withdrawal_settle',
    postings: move(house(HOUSE_ACCOUNTS.pendingWithdrawals, o.currency), house(HOUSE_ACCOUNTS.payments(o.provider), o.currency), o.amount),
    event: 'wallet.withdrawal.settled',
    meta: { paymentId: o.paymentId, provider: o.provider },
  });

export const releaseWithdrawal = (o: { playerId: string; currency: string; amount: bigint; paymentId: string; reason: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'withdrawal_release',
    postings: move(house(HOUSE_ACCOUNTS.pendingWithdrawals, o.currency), wallet(o.playerId, 'real', o.currency), o.amount),
    event: 'wallet.withdrawal.cancelled',
    meta: { paymentId: o.paymentId, reason: o.reason },
  });

export const fee = (o: { playerId: string; currency: string; amount: bigint; reason: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'fee',
    postings: move(wallet(o.playerId, 'real', o.currency), house(HOUSE_ACCOUNTS.fees, o.currency), o.amount),
    event: 'wallet.fee.charged',
    meta: { reason: o.reason },
  });

export const transfer = (o: { playerId: string; currency: string; amount: bigint; from: string; to: string; reason: string; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    ...o,
    type: 'transfer',
    postings: move(wallet(o.playerId, o.from, o.currency), wallet(o.playerId, o.to, o.currency), o.amount),
    event: 'wallet.transfer.completed',
    meta: { from: o.from, to: o.to, reason: o.reason },
  });

/** A signed staff adjustment of one wallet against the house adjustments account. */
export const adjustment = (o: { playerId: string; currency: string; amount: bigint; wallet: string; reason: string; adjustmentId: string; staff: string[]; idempotency: IdempotencyKey }): LedgerCommand =>
  simple({
    playerId: o.playerId,
    currency: o.currency,
    idempotency: o.idempotency,
    type: 'adjustment',
    amount: o.amount < 0n ? -o.amount : o.amount,
    postings: [
      { account: wallet(o.playerId, o.wallet, o.currency), amount: o.amount },
      { account: house(HOUSE_ACCOUNTS.adjustments, o.currency), amount: -o.amount },
    ],
    event: 'wallet.adjustment.applied',
    meta: { reason: o.reason, adjustmentId: o.adjustmentId, staff: o.staff, wallet: o.wallet },
  });
