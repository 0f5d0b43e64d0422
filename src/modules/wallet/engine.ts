import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Database, Trx } from '../../platform/db/database.ts';
import { writeToOutbox } from '../../platform/events/outbox.ts';
import type { NewEvent } from '../../platform/events/types.ts';
import { newId } from '../../platform/ids.ts';
import { postingHash } from './hash.ts';
import type { WalletTables } from './store.ts';
import {
  accountId,
  type AccountKey,
  type AccountState,
  type CommandResult,
  type LedgerCommand,
  type LedgerTransaction,
  type Outcome,
  type PlanContext,
} from './types.ts';

interface Pending {
  readonly command: LedgerCommand;
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: unknown) => void;
}

/** Commands name house accounts with this holder; the batch writer puts them on its own shard. */
export const HOUSE = 'house';

/** The holder id of house shard n. */
export const houseHolder = (shard: number): string => `00000000-0000-0000-0000-${shard.toString(16).padStart(12, '0')}`;

export interface EngineOptions {
  /** Most commands written in one database transaction. */
  maxBatch: number;
  /** Lanes: batches in flight at once, each for its own share of players, on its own connection and house shard. */
  writers: number;
  walletTypes: readonly string[];
  /** House shards in the deployment; each writer of each process uses one, so bets do not queue on one row. */
  houseShards: number;
  logger: Logger;
  /** Called after a batch that wrote events commits (wakes the outbox relay). */
  onEvents: () => void;
  /** Called after each committed batch with its size and duration (metrics). */
  observe?: (size: number, seconds: number) => void;
}

/** Another transaction answered one of this batch's keys first: the batch runs again and replays it. */
export class ConcurrentDuplicate extends Error {
  constructor() {
    super('a key of this batch was answered concurrently');
  }
}

/**
 * The batch writer (group commit, as TigerBeetle does): commands queue up while a batch
 * is being written, and the next batch takes them all (up to maxBatch) into one
 * database transaction. At low load a batch holds one command and is written at once;
 * under load each transaction carries hundreds, so the database does a few statements
 * per batch instead of a dozen per bet. Every command still gets its own answer: a
 * refusal (not enough money) is that command's outcome, not the batch's failure, and
 * if the batch fails as a whole each command is retried alone.
 */
export class LedgerEngine {
  readonly #database: Database;
  readonly #opts: EngineOptions;
  readonly #lanes: Lane[];
  #closed = false;
  batches = 0;
  written = 0;

  constructor(database: Database, options: EngineOptions) {
    this.#database = database;
    this.#opts = options;
    // A random base spreads the processes of a deployment over the house shards.
    const base = Math.floor(Math.random() * options.houseShards);
    this.#lanes = Array.from({ length: options.writers }, (_, i) => ({ queue: [], busy: false, house: houseHolder((base + i) % options.houseShards) }));
  }

  submit(command: LedgerCommand): Promise<CommandResult> {
    if (this.#closed) return Promise.reject(new Error('ledger is shutting down'));
    // Each player belongs to one lane: two batches of one process never wait for each
    // other's row locks, and a player's commands are written in the order they came.
    const lane = this.#lanes[laneOf(command.playerId, this.#lanes.length)]!;
    return new Promise((resolve, reject) => {
      lane.queue.push({ command, resolve, reject });
      this.#pump(lane);
    });
  }

  #pump(lane: Lane): void {
    if (lane.busy || lane.queue.length === 0) return;
    const batch = lane.queue.splice(0, this.#opts.maxBatch);
    lane.busy = true;
    void this.#run(batch, lane.house).finally(() => {
      lane.busy = false;
      this.#pump(lane);
    });
  }

  async #run(batch: Pending[], house: string): Promise<void> {
    try {
      const results = await this.#write(batch.map((p) => p.command), house);
      batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // One bad command must not fail its neighbours: retry each alone.
      this.#opts.logger.warn({ err: error, size: batch.length }, 'ledger batch failed; retrying its commands one by one');
      for (const p of batch) {
        try {
          p.resolve((await this.#write([p.command], house))[0]!);
        } catch (single) {
          p.reject(single);
        }
      }
    }
  }

  /** Waits for queued and in-flight batches, then refuses new commands. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#lanes.some((l) => l.busy || l.queue.length > 0)) await new Promise((r) => setTimeout(r, 5));
  }

  async #write(commands: readonly LedgerCommand[], house: string): Promise<CommandResult[]> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        let events = 0;
        const results = await this.#database.db.transaction().execute(async (trx) => {
          const out = await writeBatch(trx, commands, this.#opts.walletTypes, house);
          events = out.events;
          return out.results;
        });
        this.batches++;
        this.written += commands.length;
        this.#opts.observe?.(commands.length, (performance.now() - started) / 1000);
        if (events > 0) this.#opts.onEvents();
        return results;
      } catch (error) {
        // A deadlock or serialization failure (with another process's batch), or a key
        // answered concurrently, is retried as it is.
        const code = (error as { code?: string }).code;
        const retryable = error instanceof ConcurrentDuplicate || code === '40P01' || code === '40001';
        if (attempt >= 5 || !retryable) throw error;
        this.#opts.logger.warn({ code, attempt, size: commands.length }, 'ledger batch conflicted; retrying');
      }
    }
  }
}

interface Lane {
  readonly queue: Pending[];
  busy: boolean;
  /** This lane's house shard: its batches post the operator side there. */
  readonly house: string;
}

/** The lane of a player: the id's random tail (UUIDv7) spreads players evenly. */
export function laneOf(playerId: string, lanes: number): number {
  return lanes <= 1 ? 0 : Number.parseInt(playerId.slice(-8), 16) % lanes;
}

interface BatchOutput {
  results: CommandResult[];
  events: number;
}

const str = (v: bigint): string => v.toString();

/** The whole batch in the caller's transaction. Exported for tests. */
export async function writeBatch(trx: Trx, commands: readonly LedgerCommand[], walletTypes: readonly string[], house: string): Promise<BatchOutput> {
  const real = (key: AccountKey): AccountKey => (key.holder === HOUSE ? { ...key, holder: house } : key);
  const results = commands.map((): CommandResult | undefined => undefined);

  // 1. Keys already answered: a replay gets the stored answer, the same key with another
  //    payload is refused, a key a rollback closed refuses its late bet. New keys are
  //    written with their answers at the end; if another transaction wrote one of them
  //    first (a concurrent duplicate), the insert finds it and the whole batch runs again,
  //    meeting it here as a replay.
  const firstIndex = new Map<string, number>();
  const keys: { scope: string; key: string }[] = [];
  commands.forEach((c, i) => {
    const id = `${c.idempotency.scope}\u0000${c.idempotency.key}`;
    if (!firstIndex.has(id)) {
      firstIndex.set(id, i);
      keys.push({ scope: c.idempotency.scope, key: c.idempotency.key });
    }
  });
  const stored = await sql<{ scope: string; key: string; request_hash: string; outcome: Outcome | null }>`
    select scope, key, request_hash, outcome from wallet.idempotency
    where (scope, key) in (select * from unnest(${keys.map((c) => c.scope)}::text[], ${keys.map((c) => c.key)}::text[]))`.execute(trx);
  if (stored.rows.length > 0) {
    const byId = new Map(stored.rows.map((r) => [`${r.scope}\u0000${r.key}`, r]));
    commands.forEach((c, i) => {
      const row = byId.get(`${c.idempotency.scope}\u0000${c.idempotency.key}`);
      if (!row) return;
      if (row.request_hash === TOMBSTONE && row.outcome) results[i] = { outcome: row.outcome, replayed: true };
      else if (row.request_hash !== c.idempotency.requestHash) results[i] = { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' }, replayed: false };
      else if (row.outcome) results[i] = { outcome: row.outcome, replayed: true };
      // A claim without an answer is an HTTP request in progress (idempotency.ts), not a ledger key.
      else results[i] = { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED', detail: 'a request with this key is in progress' }, replayed: false };
    });
  }
  // Commands whose key is claimed by this batch run once; later duplicates in the
  // same batch are replays of the first (or conflicts if their payload differs).
  const active: number[] = [];
  const duplicates: number[] = [];
  commands.forEach((c, i) => {
    if (results[i]) return;
    const first = firstIndex.get(`${c.idempotency.scope}\u0000${c.idempotency.key}`)!;
    if (first === i) active.push(i);
    else duplicates.push(i);
  });

  // 2. Load and lock the accounts, in key order. Missing ones are created first.
  const wanted = new Map<string, AccountKey & { kind: 'player' | 'house' }>();
  for (const i of active) {
    const c = commands[i]!;
    for (const name of walletTypes) wanted.set(accountId({ holder: c.playerId, name, currency: c.currency }), { holder: c.playerId, name, currency: c.currency, kind: 'player' });
    for (const declared of c.accounts) {
      const a = real(declared);
      const id = accountId(a);
      if (!wanted.has(id)) wanted.set(id, { ...a, kind: a.holder === c.playerId ? 'player' : 'house' });
    }
  }
  const accounts = new Map<string, AccountState>();
  if (wanted.size > 0) {
    const keys = [...wanted.values()].sort((a, b) => (accountId(a) < accountId(b) ? -1 : 1));
    const lock = () =>
      sql<{ holder: string; name: string; currency: string; kind: 'player' | 'house'; balance: bigint; last_seq: bigint; last_hash: string }>`
        select holder, name, currency, kind, balance, last_seq, last_hash from wallet.accounts
        where (holder, name, currency) in (select * from unnest(${keys.map((k) => k.holder)}::uuid[], ${keys.map((k) => k.name)}::text[], ${keys.map((k) => k.currency)}::bpchar[]))
        order by holder, name, currency
        for update`.execute(trx);
    let rows = (await lock()).rows;
    if (rows.length < keys.length) {
      const have = new Set(rows.map((r) => accountId(r)));
      const missing = keys.filter((k) => !have.has(accountId(k)));
      await sql`
        insert into wallet.accounts (holder, name, currency, kind)
        select * from unnest(${missing.map((k) => k.holder)}::uuid[], ${missing.map((k) => k.name)}::text[], ${missing.map((k) => k.currency)}::bpchar[], ${missing.map((k) => k.kind)}::text[])
        on conflict do nothing`.execute(trx);
      rows = (await lock()).rows;
    }
    for (const r of rows) {
      const key = { holder: r.holder, name: r.name, currency: r.currency };
      accounts.set(accountId(key), { key, kind: r.kind, balance: BigInt(r.balance), lastSeq: BigInt(r.last_seq), lastHash: r.last_hash });
    }
  }

  // 3. Referenced transactions (the bet of a win or rollback), and what refers to them.
  const refTx = new Map<string, LedgerTransaction>();
  const referencing = new Map<string, LedgerTransaction[]>();
  const refKey = (player: string, provider: string, ref: string) => `${player}\u0000${provider}\u0000${ref}`;
  const refs = active.flatMap((i) => (commands[i]!.refs ?? []).map((r) => ({ player: commands[i]!.playerId, ...r })));
  if (refs.length > 0) {
    const found = await sql<TxRow>`
      select player_id, id, type, currency, amount, split, round_id, provider, external_ref, reference_id, meta from wallet.transactions
      where (player_id, provider, external_ref) in (select * from unnest(${refs.map((r) => r.player)}::uuid[], ${refs.map((r) => r.provider)}::text[], ${refs.map((r) => r.externalRef)}::text[]))`.execute(trx);
    for (const row of found.rows) {
      const tx = fromRow(row);
      refTx.set(refKey(tx.playerId, tx.provider!, tx.externalRef!), tx);
    }
    const ids = [...refTx.values()];
    if (ids.length > 0) {
      const children = await sql<TxRow>`
        select player_id, id, type, currency, amount, split, round_id, provider, external_ref, reference_id, meta from wallet.transactions
        where (player_id, reference_id) in (select * from unnest(${ids.map((t) => t.playerId)}::uuid[], ${ids.map((t) => t.id)}::uuid[]))`.execute(trx);
      for (const row of children.rows) {
        const tx = fromRow(row);
        const list = referencing.get(tx.referenceId!) ?? [];
        list.push(tx);
        referencing.set(tx.referenceId!, list);
      }
    }
  }

  // 4. Plan each command against the locked state, in arrival order.
  const now = new Date();
  const txRows: Record<string, unknown>[] = [];
  const postingRows: { holder: string; name: string; currency: string; seq: bigint; tx: string; player: string; amount: bigint; after: bigint; prev: string; hash: string }[] = [];
  const outcomes: { scope: string; key: string; outcome: Outcome; tombstone?: boolean }[] = [];
  const tombstones: { scope: string; key: string; player: string; outcome: Outcome }[] = [];
  const events: NewEvent[] = [];
  const touched = new Set<string>();
  /** Keys closed by an earlier command of this batch (a bet arriving after its rollback). */
  const closed = new Map<string, Outcome>();
  const shutKeys = new Set<string>();

  const ctx: PlanContext = {
    account(key) {
      const state = accounts.get(accountId(real(key)));
      if (!state) throw new Error(`account ${accountId(key)} was not declared by the command`);
      return state;
    },
    walletsOf(playerId, currency) {
      const map = new Map<string, AccountState>();
      for (const name of walletTypes) {
        const state = accounts.get(accountId({ holder: playerId, name, currency }));
        if (state) map.set(name, state);
      }
      return map;
    },
    byRef: (player, provider, ref) => refTx.get(refKey(player, provider, ref)),
    referencing: (_player, id) => referencing.get(id) ?? [],
  };

  const balancesOf = (playerId: string, currency: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, state] of ctx.walletsOf(playerId, currency)) out[name] = str(state.balance);
    return out;
  };

  for (const i of active) {
    const c = commands[i]!;
    const shut = closed.get(`${c.idempotency.scope}\u0000${c.idempotency.key}`);
    if (shut) {
      shutKeys.add(`${c.idempotency.scope}\u0000${c.idempotency.key}`);
      outcomes.push({ scope: c.idempotency.scope, key: c.idempotency.key, outcome: shut, tombstone: true });
      results[i] = { outcome: shut, replayed: true };
      continue;
    }
    let outcome: Outcome;
    const plan = c.plan(ctx);
    if (!plan.ok) {
      outcome = { ok: false, code: plan.code, ...(plan.detail ? { detail: plan.detail } : {}), currency: c.currency, balances: balancesOf(c.playerId, c.currency) };
    } else {
      const tx = plan.tx;
      const sums = new Map<string, bigint>();
      for (const p of tx.postings) sums.set(p.account.currency, (sums.get(p.account.currency) ?? 0n) + p.amount);
      for (const [currency, sum] of sums) if (sum !== 0n) throw new Error(`unbalanced ${tx.type}: ${currency} postings sum to ${sum}`);
      // Player accounts never go negative (the database checks it again on update).
      const next = new Map<string, bigint>();
      for (const p of tx.postings) {
        const id = accountId(real(p.account));
        next.set(id, (next.get(id) ?? ctx.account(p.account).balance) + p.amount);
      }
      const negative = [...next].find(([id, balance]) => accounts.get(id)!.kind === 'player' && balance < 0n);
      if (negative) {
        outcome = { ok: false, code: 'INSUFFICIENT_FUNDS', currency: c.currency, balances: balancesOf(c.playerId, c.currency) };
      } else {
        const id = newId();
        const split: Record<string, bigint> = {};
        for (const p of tx.postings) {
          const state = ctx.account(p.account);
          state.balance += p.amount;
          state.lastSeq += 1n;
          const hash = postingHash(state.lastHash, state.key, state.lastSeq, id, p.amount, state.balance);
          postingRows.push({ ...state.key, seq: state.lastSeq, tx: id, player: c.playerId, amount: p.amount, after: state.balance, prev: state.lastHash, hash });
          state.lastHash = hash;
          touched.add(accountId(state.key));
          if (state.key.holder === c.playerId && state.kind === 'player') split[p.account.name] = (split[p.account.name] ?? 0n) + p.amount;
        }
        const ledgerTx: LedgerTransaction = {
          id,
          playerId: c.playerId,
          type: tx.type,
          currency: tx.currency,
          amount: tx.amount,
          split,
          roundId: tx.roundId ?? null,
          provider: tx.provider ?? null,
          externalRef: tx.externalRef ?? null,
          referenceId: tx.referenceId ?? null,
          meta: tx.meta ?? {},
        };
        if (ledgerTx.provider && ledgerTx.externalRef) refTx.set(refKey(c.playerId, ledgerTx.provider, ledgerTx.externalRef), ledgerTx);
        if (ledgerTx.referenceId) referencing.set(ledgerTx.referenceId, [...(referencing.get(ledgerTx.referenceId) ?? []), ledgerTx]);
        txRows.push({
          player_id: c.playerId,
          id,
          type: tx.type,
          currency: tx.currency,
          amount: str(tx.amount),
          split: JSON.stringify(Object.fromEntries(Object.entries(split).map(([k, v]) => [k, str(v)]))),
          round_id: ledgerTx.roundId,
          provider: ledgerTx.provider,
          external_ref: ledgerTx.externalRef,
          reference_id: ledgerTx.referenceId,
          idempotency_scope: c.idempotency.scope,
          idempotency_key: c.idempotency.key,
          meta: JSON.stringify(ledgerTx.meta),
          created_at: now,
        });
        const ok: Outcome & { ok: true } = {
          ok: true,
          transactionId: id,
          type: tx.type,
          currency: tx.currency,
          balances: balancesOf(c.playerId, c.currency),
          split: Object.fromEntries(Object.entries(split).map(([k, v]) => [k, str(v)])),
          createdAt: now.toISOString(),
          ...(plan.data ? { data: plan.data } : {}),
        };
        outcome = ok;
        if (plan.events) events.push(...plan.events(ok));
        for (const t of c.tombstones ?? []) {
          tombstones.push({ ...t, player: c.playerId });
          closed.set(`${t.scope}\u0000${t.key}`, t.outcome);
        }
      }
    }
    outcomes.push({ scope: c.idempotency.scope, key: c.idempotency.key, outcome });
    results[i] = { outcome, replayed: false };
  }
  for (const i of duplicates) {
    const c = commands[i]!;
    const first = firstIndex.get(`${c.idempotency.scope}\u0000${c.idempotency.key}`)!;
    if (shutKeys.has(`${c.idempotency.scope}\u0000${c.idempotency.key}`)) {
      results[i] = results[first]!;
      continue;
    }
    results[i] =
      commands[first]!.idempotency.requestHash === c.idempotency.requestHash
        ? { outcome: results[first]!.outcome, replayed: true }
        : { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' }, replayed: false };
  }

  // 5. Write it all in one round trip: data-modifying CTEs run in one statement, so the
  //    batch's transactions, postings, balances and answers land together.
  if (txRows.length > 0 || outcomes.length > 0) {
    const changed = [...touched].map((id) => accounts.get(id)!);
    // Sorted, so two batches inserting overlapping keys wait for each other in one order.
    const answers = outcomes
      .map((o) => ({ ...o, hash: o.tombstone ? TOMBSTONE : commands[firstIndex.get(`${o.scope}\u0000${o.key}`)!]!.idempotency.requestHash, player: commands[firstIndex.get(`${o.scope}\u0000${o.key}`)!]!.playerId }))
      .sort((x, y) => (x.scope === y.scope ? (x.key < y.key ? -1 : x.key > y.key ? 1 : 0) : x.scope < y.scope ? -1 : 1));
    // A key this batch both closes and answers (a late bet in the same batch) is written once, as its answer.
    const answered = new Set(answers.map((o) => `${o.scope}\u0000${o.key}`));
    const closedKeys = tombstones.filter((t) => !answered.has(`${t.scope}\u0000${t.key}`));
    const written = await sql<{ answered: number }>`
      with new_transactions as (
        insert into wallet.transactions (player_id, id, type, currency, amount, split, round_id, provider, external_ref, reference_id, idempotency_scope, idempotency_key, meta, created_at)
        select * from unnest(
          ${txRows.map((r) => r.player_id)}::uuid[], ${txRows.map((r) => r.id)}::uuid[], ${txRows.map((r) => r.type)}::text[], ${txRows.map((r) => r.currency)}::bpchar[],
          ${txRows.map((r) => r.amount)}::int8[], ${txRows.map((r) => r.split)}::jsonb[], ${txRows.map((r) => r.round_id)}::text[], ${txRows.map((r) => r.provider)}::text[],
          ${txRows.map((r) => r.external_ref)}::text[], ${txRows.map((r) => r.reference_id)}::uuid[], ${txRows.map((r) => r.idempotency_scope)}::text[], ${txRows.map((r) => r.idempotency_key)}::text[],
          ${txRows.map((r) => r.meta)}::jsonb[], ${txRows.map((r) => (r.created_at as Date).toISOString())}::timestamptz[])
      ),
      new_postings as (
        insert into wallet.postings (holder, name, currency, seq, transaction_id, player_id, amount, balance_after, created_at, prev_hash, hash)
        select h, n, c, s, t, p, a, b, ${now.toISOString()}::timestamptz, ph, hh from unnest(
          ${postingRows.map((r) => r.holder)}::uuid[], ${postingRows.map((r) => r.name)}::text[], ${postingRows.map((r) => r.currency)}::bpchar[], ${postingRows.map((r) => str(r.seq))}::int8[],
          ${postingRows.map((r) => r.tx)}::uuid[], ${postingRows.map((r) => r.player)}::uuid[], ${postingRows.map((r) => str(r.amount))}::int8[], ${postingRows.map((r) => str(r.after))}::int8[],
          ${postingRows.map((r) => r.prev)}::text[], ${postingRows.map((r) => r.hash)}::text[]) as t(h, n, c, s, t, p, a, b, ph, hh)
      ),
      balances as (
        update wallet.accounts a set balance = v.b, last_seq = v.s, last_hash = v.h, updated_at = ${now.toISOString()}::timestamptz
        from unnest(${changed.map((st) => st.key.holder)}::uuid[], ${changed.map((st) => st.key.name)}::text[], ${changed.map((st) => st.key.currency)}::bpchar[],
                    ${changed.map((st) => str(st.balance))}::int8[], ${changed.map((st) => str(st.lastSeq))}::int8[], ${changed.map((st) => st.lastHash)}::text[]) as v(holder, name, currency, b, s, h)
        where a.holder = v.holder and a.name = v.name and a.currency = v.currency
      ),
      new_tombstones as (
        insert into wallet.idempotency (scope, key, request_hash, player_id, outcome)
        select * from unnest(${closedKeys.map((t) => t.scope)}::text[], ${closedKeys.map((t) => t.key)}::text[], ${closedKeys.map(() => TOMBSTONE)}::text[],
                             ${closedKeys.map((t) => t.player)}::uuid[], ${closedKeys.map((t) => JSON.stringify(t.outcome))}::jsonb[])
        on conflict (scope, key) do nothing
      ),
      answers as (
        insert into wallet.idempotency (scope, key, request_hash, player_id, outcome)
        select s, k, h, p, o from unnest(${answers.map((o) => o.scope)}::text[], ${answers.map((o) => o.key)}::text[], ${answers.map((o) => o.hash)}::text[],
                                         ${answers.map((o) => o.player)}::uuid[], ${answers.map((o) => JSON.stringify(o.outcome))}::jsonb[]) with ordinality as t(s, k, h, p, o, n)
        order by n
        on conflict (scope, key) do nothing
        returning 1
      )
      select count(*)::int4 as answered from answers`.execute(trx);
    if ((written.rows[0]?.answered ?? 0) < answers.length) throw new ConcurrentDuplicate();
  }
  if (events.length > 0) await writeToOutbox(trx, events);
  return { results: results as CommandResult[], events: events.length };
}

/** The request hash of a key that a rollback closed before its bet arrived: any request with it is refused. */
export const TOMBSTONE = 'tombstone';

type TxRow = Pick<WalletTables['wallet.transactions'], 'player_id' | 'id' | 'type' | 'currency' | 'amount' | 'split' | 'round_id' | 'provider' | 'external_ref' | 'reference_id' | 'meta'>;

function fromRow(r: TxRow): LedgerTransaction {
  return {
    id: r.id,
    playerId: r.player_id,
    type: r.type,
    currency: r.currency.trim(),
    amount: BigInt(r.amount),
    split: Object.fromEntries(Object.entries(r.split).map(([k, v]) => [k, BigInt(v)])),
    roundId: r.round_id,
    provider: r.provider,
    externalRef: r.external_ref,
    referenceId: r.reference_id,
    meta: r.meta,
  };
}
