import type { NewEvent } from '../../platform/events/types.ts';

/** An account: a player's wallet in a currency, or a house account shard. */
export interface AccountKey {
  readonly holder: string;
  readonly name: string;
  readonly currency: string;
}

export const accountId = (a: AccountKey): string => `${a.holder}|${a.name}|${a.currency}`;

export interface AccountState {
  readonly key: AccountKey;
  readonly kind: 'player' | 'house';
  balance: bigint;
  lastSeq: bigint;
  lastHash: string;
}

export interface Posting {
  readonly account: AccountKey;
  readonly amount: bigint;
}

export const TRANSACTION_TYPES = ['deposit', 'withdrawal_reserve', 'withdrawal_settle', 'withdrawal_release', 'bet', 'win', 'rollback', 'fee', 'transfer', 'adjustment'] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];

/** A transaction a command wants to write: postings that sum to zero per currency. */
export interface PlannedTransaction {
  readonly type: TransactionType;
  readonly currency: string;
  /** The operation's amount (positive), e.g. the stake of a bet. */
  readonly amount: bigint;
  readonly postings: readonly Posting[];
  readonly roundId?: string | null;
  readonly provider?: string | null;
  readonly externalRef?: string | null;
  readonly referenceId?: string | null;
  readonly meta?: Record<string, unknown>;
}

/** A transaction already in the ledger (or written earlier in the same batch), as commands see it. */
export interface LedgerTransaction {
  readonly id: string;
  readonly playerId: string;
  readonly type: TransactionType;
  readonly currency: string;
  readonly amount: bigint;
  readonly split: Readonly<Record<string, bigint>>;
  readonly roundId: string | null;
  readonly provider: string | null;
  readonly externalRef: string | null;
  readonly referenceId: string | null;
  readonly meta: Readonly<Record<string, unknown>>;
}

/**
 * What a command answered, stored with its idempotency key so a replay gets the
 * same answer: JSON only (amounts as minor-unit strings).
 */
export type Outcome =
  | {
      readonly ok: true;
      readonly transactionId: string;
      readonly type: TransactionType;
      readonly currency: string;
      /** The player's balances in this currency after the transaction, by wallet. */
      readonly balances: Readonly<Record<string, string>>;
      readonly split: Readonly<Record<string, string>>;
      readonly createdAt: string;
      readonly data?: Readonly<Record<string, unknown>>;
    }
  | {
      readonly ok: false;
      readonly code: string;
      readonly detail?: string;
      readonly currency?: string;
      readonly balances?: Readonly<Record<string, string>>;
    };

/** What a command sees while it is planned: locked accounts and referenced transactions. */
export interface PlanContext {
  account(key: AccountKey): AccountState;
  /** The player's wallets (every wallet type) in a currency, balances as locked now. */
  walletsOf(playerId: string, currency: string): ReadonlyMap<string, AccountState>;
  /** A transaction by provider reference, from the ledger or earlier in this batch. */
  byRef(playerId: string, provider: string, externalRef: string): LedgerTransaction | undefined;
  /** Transactions that reference this one (e.g. rollbacks of a bet). */
  referencing(playerId: string, transactionId: string): readonly LedgerTransaction[];
}

export type Plan =
  | { readonly ok: true; readonly tx: PlannedTransaction; readonly events?: (after: Outcome & { ok: true }) => NewEvent[]; readonly data?: Record<string, unknown> }
  | { readonly ok: false; readonly code: string; readonly detail?: string; readonly currency?: string };

export interface IdempotencyKey {
  readonly scope: string;
  readonly key: string;
  /** sha256 of the canonical request: the same key with another payload is refused. */
  readonly requestHash: string;
}

/** One money movement, submitted to the batch writer. */
export interface LedgerCommand {
  readonly playerId: string;
  readonly currency: string;
  readonly idempotency: IdempotencyKey;
  /** Accounts the plan may read or post to (the player's wallets are always loaded). */
  readonly accounts: readonly AccountKey[];
  /** Provider references the plan looks up (a bet for a win or rollback). */
  readonly refs?: readonly { provider: string; externalRef: string }[];
  /**
   * The plan reads every transaction that refers to its references (a rollback must know
   * whether its bet was rolled back already): it always takes the ledger's locked path.
   */
  readonly needsHistory?: boolean;
  /** Idempotency keys this command writes as refusals, e.g. the rolled-back bet a late bet must not pass. */
  readonly tombstones?: readonly { scope: string; key: string; outcome: Outcome }[];
  plan(ctx: PlanContext): Plan;
}

export type CommandResult = { readonly outcome: Outcome; readonly replayed: boolean };
