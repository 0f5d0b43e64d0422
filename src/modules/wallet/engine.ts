import { sql } from 'kysely';
import type { Logger } from 'pino';
import { pgArray, PREPARED, type Database, type Trx } from '../../platform/db/database.ts';
import { LRUCache } from 'lru-cache';
import { outboxInsert } from '../../platform/events/outbox.ts';
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

/** Maps a command's account to the one it posts to: `house` accounts on the lane's shard. */
const onShard =
  (house: string) =>
  (key: AccountKey): AccountKey =>
    key.holder === HOUSE ? { ...key, holder: house } : key;

/** The holder id of house shard n. */
export const houseHolder = (shard: number): string => `00000000-0000-0000-0000-${shard.toString(16).padStart(12, '0')}`;

/** Advisory lock ids 7_345_000 + n: the process holding one posts to house shard n alone. */
const HOUSE_SHARD_LOCK = 7_345_000;

/**
 * Claims one house shard per lane, each by a session advisory lock that no other process
 * of the deployment can hold at the same time, so two processes never post the house
 * side of their bets to the same rows. Shards are tried in a random order. When every
 * shard is taken (more lanes in the deployment than WALLET_HOUSE_SHARDS), or the locks
 * cannot be taken, a lane shares a random shard: still correct (row locks order the
 * writers), only slower. If the lock connection drops, another process may later claim
 * the same shard, with the same outcome.
 */
export async function claimHouseShards(database: Database, lanes: number, shards: number, logger: Logger): Promise<HouseShards> {
  const locks = database.sessionLocks();
  const order = Array.from({ length: shards }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const claimed: number[] = [];
  try {
    for (const shard of order) {
      if (claimed.length === lanes) break;
      if (await locks.tryLock(HOUSE_SHARD_LOCK + shard)) claimed.push(shard);
    }
  } catch (error) {
    logger.warn({ err: error }, 'could not claim house shards; lanes share random ones');
  }
  if (claimed.length < lanes) {
    logger.warn({ lanes, claimed: claimed.length, shards }, 'fewer free house shards than ledger lanes (raise WALLET_HOUSE_SHARDS); some lanes share a shard with another process');
  }
  const houses = Array.from({ length: lanes }, (_, i) => houseHolder(claimed[i] ?? order[i % order.length]!));
  return { houses, release: () => locks.release() };
}

/** The house shards a process claimed: one per lane, held until released. */
export interface HouseShards {
  readonly houses: readonly string[];
  release(): Promise<void>;
}

export interface EngineOptions {
  /** Most commands written in one database transaction. */
  maxBatch: number;
  walletTypes: readonly string[];
  /**
   * One lane per claimed shard (claimHouseShards): a lane has one batch in flight, for its
   * own share of players, on its own connection, posting the house side to its shard.
   * Released when the engine closes.
   */
  shards: HouseShards;
  logger: Logger;
  /** Called after a batch that wrote events commits (wakes the outbox relay). */
  onEvents: () => void;
  /** Players whose wallets each lane keeps in memory for the fast path; 0 turns the fast path off. */
  cachedPlayers: number;
  /** Called after each committed batch with its size, duration and path (metrics). */
  observe?: (size: number, seconds: number, path: 'fast' | 'locked') => void;
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
  /** Batches and commands written on the fast path (the rest took the locked path). */
  fastBatches = 0;
  fastWritten = 0;

  constructor(database: Database, options: EngineOptions) {
    this.#database = database;
    this.#opts = options;
    this.#lanes = options.shards.houses.map((house) => ({
      queue: [],
      busy: false,
      house,
      cache: options.cachedPlayers > 0 ? new LaneCache(options.walletTypes, options.cachedPlayers) : undefined,
    }));
  }

  /** Each lane's house shard holder. */
  get houses(): string[] {
    return this.#lanes.map((l) => l.house);
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
    void this.#run(batch, lane);
  }

  async #run(batch: Pending[], lane: Lane): Promise<void> {
    let settle = (): void => {};
    try {
      const results = await this.#write(batch.map((p) => p.command), lane);
      settle = () => batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
      } else {
        // One bad command must not fail its neighbours: retry each alone.
        this.#opts.logger.warn({ err: error, size: batch.length }, 'ledger batch failed; retrying its commands one by one');
        for (const p of batch) {
          try {
            p.resolve((await this.#write([p.command], lane))[0]!);
          } catch (single) {
            p.reject(single);
          }
        }
      }
    } finally {
      // The next batch goes to the database before this one's callers hear back, so
      // answering them (HTTP responses) overlaps with its write instead of delaying it.
      lane.busy = false;
      this.#pump(lane);
    }
    // Not at once: the next batch reaches its connection only a few promise hops later
    // (the pool hands the connection over on the next tick), and callers resolved now
    // would run their whole answers in those hops' queue, ahead of the send (for a batch
    // of 60, some 1.5 ms by estimate, at about 25 µs an answer; 1.05x bets/s measured).
    // After the loop's I/O, the send is out.
    setImmediate(settle);
  }

  /** Waits for queued and in-flight batches, then refuses new commands. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#lanes.some((l) => l.busy || l.queue.length > 0)) await new Promise((r) => setTimeout(r, 5));
    await this.#opts.shards.release();
  }

  async #write(commands: readonly LedgerCommand[], lane: Lane): Promise<CommandResult[]> {
    const cache = lane.cache;
    if (!cache) return this.#locked(commands, lane);
    return writeThroughLane(commands, cache, lane.house, {
      fast: (part) => this.#fast(part, lane, cache),
      locked: (part) => this.#locked(part, lane),
    });
  }

  /** Counts a committed batch (its path has had the lane's cache learn it) and wakes the relay. */
  #done(size: number, out: BatchOutput, started: number, path: 'fast' | 'locked'): CommandResult[] {
    this.batches++;
    if (path === 'fast') {
      this.fastBatches++;
      this.fastWritten += size;
    }
    this.written += size;
    this.#opts.observe?.(size, (performance.now() - started) / 1000, path);
    if (out.events > 0) this.#opts.onEvents();
    return out.results;
  }

  /** The fast path; undefined when it wrote nothing (the locked path takes the batch). */
  async #fast(commands: readonly LedgerCommand[], lane: Lane, cache: LaneCache): Promise<CommandResult[] | undefined> {
    const started = performance.now();
    // The cache learns what the batch will leave while its statement runs, after the
    // loop's I/O (by then the statement is on its way), rather than after its answer,
    // where learning delayed the next batch. Nothing reads the lane's cache before that
    // answer; if the statement fails, the cache forgets those players as it always did.
    /** Set while the learning is still to come. */
    let learning: NodeJS.Immediate | undefined;
    try {
      const out = await writeBatchFast(this.#database.db, commands, this.#opts.walletTypes, lane.house, cache, (planned) => {
        learning = setImmediate(() => {
          learning = undefined;
          cache.learn(planned);
        });
      });
      if (!out) return undefined;
      if (learning) {
        clearImmediate(learning);
        cache.learn(out.learned);
      }
      return this.#done(commands.length, out, started, 'fast');
    } catch (error) {
      // Nothing was written: the cache was stale (another process moved this money),
      // a key was answered before, or the statement failed. The locked path decides.
      if (learning) clearImmediate(learning);
      cache.forget(commands);
      this.#opts.logger.debug({ err: error, size: commands.length }, 'ledger fast path declined; taking the locked path');
      return undefined;
    }
  }

  async #locked(commands: readonly LedgerCommand[], lane: Lane): Promise<CommandResult[]> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        const out = await this.#database.db.transaction().execute((trx) => writeBatch(trx, commands, this.#opts.walletTypes, lane.house));
        lane.cache?.learn(out.learned);
        return this.#done(commands.length, out, started, 'locked');
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

/**
 * Writes a batch through a lane with a cache: the players whose commands the cache can
 * plan go on the fast path (one statement); the others, and the fast ones if its checks
 * fail (`fast` answers undefined), on the locked path. Players are independent, so the
 * two parts go one after the other.
 */
export async function writeThroughLane(
  commands: readonly LedgerCommand[],
  cache: LaneCache,
  house: string,
  paths: { fast(part: readonly LedgerCommand[]): Promise<CommandResult[] | undefined>; locked(part: readonly LedgerCommand[]): Promise<CommandResult[]> },
): Promise<CommandResult[]> {
  const results: CommandResult[] = new Array<CommandResult>(commands.length);
  const fast = plannableFromCache(commands, cache, house);
  const part = (want: boolean) => commands.flatMap((_, i) => (fast[i] === want ? [i] : []));
  const lockedPart = part(false);
  const fastPart = part(true);
  if (lockedPart.length > 0) {
    const out = await paths.locked(lockedPart.map((i) => commands[i]!));
    lockedPart.forEach((i, k) => (results[i] = out[k]!));
  }
  if (fastPart.length > 0) {
    const sub = fastPart.map((i) => commands[i]!);
    const out = (await paths.fast(sub)) ?? (await paths.locked(sub));
    fastPart.forEach((i, k) => (results[i] = out[k]!));
  }
  return results;
}

/**
 * Which commands the fast path can plan: those of players whose every command in the
 * batch finds its wallets, house accounts and referenced bets in the lane cache, needs
 * no history (a rollback) and carries no key the lane has answered (a replay). A
 * player's commands stay together, in order.
 */
export function plannableFromCache(commands: readonly LedgerCommand[], cache: LaneCache, house: string): boolean[] {
  const real = onShard(house);
  const refused = new Set<string>();
  for (const c of commands) {
    if (refused.has(c.playerId)) continue;
    const ok =
      !c.needsHistory &&
      !cache.answered(c) &&
      cache.has({ holder: c.playerId, name: '*', currency: c.currency }) &&
      c.accounts.every((a) => cache.has(real(a))) &&
      (c.refs ?? []).every((r) => cache.bet(c.playerId, r.provider, r.externalRef) !== undefined);
    if (!ok) refused.add(c.playerId);
  }
  return commands.map((c) => !refused.has(c.playerId));
}

interface Lane {
  readonly queue: Pending[];
  busy: boolean;
  /** This lane's house shard: its batches post the operator side there. */
  readonly house: string;
  /** What the fast path plans against; undefined when it is off. */
  readonly cache: LaneCache | undefined;
}

/** The lane of a player: the id's random tail (UUIDv7) spreads players evenly. */
export function laneOf(playerId: string, lanes: number): number {
  return lanes <= 1 ? 0 : Number.parseInt(playerId.slice(-8), 16) % lanes;
}

interface BatchOutput {
  results: CommandResult[];
  events: number;
  /** What the batch left in the ledger (account states, new transactions): the lane's cache learns it after the commit. */
  learned: Learned;
}

interface Learned {
  readonly accounts: readonly AccountState[];
  readonly transactions: readonly LedgerTransaction[];
  /** Keys answered (or closed by a rollback): the ledger holds their first answers. */
  readonly answers: readonly AnsweredKey[];
  /** Bets the locked path read under its locks, each with every transaction that referred to it then. */
  readonly bets?: readonly { bet: LedgerTransaction; children: readonly LedgerTransaction[] }[];
}

interface AnsweredKey {
  readonly scope: string;
  readonly key: string;
}

/** What a key already answered gives a command that carries it (the locked path reads the same from wallet.idempotency). */
function answerFor(c: LedgerCommand, stored: { hash: string; outcome: Outcome | null }): CommandResult {
  if (stored.hash === TOMBSTONE && stored.outcome) return { outcome: stored.outcome, replayed: true };
  if (stored.hash !== c.idempotency.requestHash) return { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' }, replayed: false };
  if (stored.outcome) return { outcome: stored.outcome, replayed: true };
  // A claim without an answer is an HTTP request in progress (idempotency.ts), not a ledger key.
  return { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED', detail: 'a request with this key is in progress' }, replayed: false };
}

const str = (v: bigint): string => v.toString();
/** An idempotency key with its scope, as one map key. */
const scopedKey = (scope: string, key: string) => `${scope}\u0000${key}`;
const keyOf = (c: LedgerCommand) => scopedKey(c.idempotency.scope, c.idempotency.key);
/**
 * A 31-bit FNV-1a hash of a scoped key, for the lane cache's set of answered keys. Two keys
 * may share a hash: a new key taken for an answered one only sends its player's commands
 * to the locked path, which reads the truth from wallet.idempotency. With the set full
 * (160,000 keys at the default WALLET_LANE_CACHE_PLAYERS) that is about one new key in
 * 13,000 (a locked batch every two seconds or so at saturation on the development machine).
 */
function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x7fffffff;
}
/** An idempotency key as the lane cache's set of answered keys holds it. */
const answeredId = (scope: string, key: string): number => keyHash(scopedKey(scope, key));
const refKey = (player: string, provider: string, ref: string) => `${player}\u0000${provider}\u0000${ref}`;

/** The fast path met something its cache cannot answer: the batch takes the locked path. */
export class NeedsLockedPath extends Error {
  constructor(what: string) {
    super(`not in the lane cache: ${what}`);
  }
}

/** Which commands of a batch run, which replay a key the batch already carries. */
function keysOf(commands: readonly LedgerCommand[]) {
  const firstIndex = new Map<string, number>();
  const keys: { scope: string; key: string }[] = [];
  commands.forEach((c, i) => {
    const id = keyOf(c);
    if (!firstIndex.has(id)) {
      firstIndex.set(id, i);
      keys.push({ scope: c.idempotency.scope, key: c.idempotency.key });
    }
  });
  return { firstIndex, keys };
}

/**
 * The batch on the locked path, in the caller's transaction: stored answers are read,
 * every account is locked in key order, referenced transactions are read, then the
 * batch is planned and written in one statement. Always right, whatever other
 * processes do; the fast path (writeBatchFast) falls back to it. Exported for tests.
 */
export async function writeBatch(trx: Trx, commands: readonly LedgerCommand[], walletTypes: readonly string[], house: string): Promise<BatchOutput> {
  const real = onShard(house);
  const results = commands.map((): CommandResult | undefined => undefined);

  // 1. Keys already answered: a replay gets the stored answer, the same key with another
  //    payload is refused, a key a rollback closed refuses its late bet. New keys are
  //    written with their answers at the end; if another transaction wrote one of them
  //    first (a concurrent duplicate), the insert finds it and the whole batch runs again,
  //    meeting it here as a replay.
  const { firstIndex, keys } = keysOf(commands);
  const stored = await sql<{ scope: string; key: string; request_hash: string; outcome: Outcome | null }>`
    select scope, key, request_hash, outcome from wallet.idempotency
    where (scope, key) in (select * from unnest(${keys.map((c) => c.scope)}::text[], ${keys.map((c) => c.key)}::text[]))`.execute(trx);
  if (stored.rows.length > 0) {
    const byId = new Map(stored.rows.map((r) => [scopedKey(r.scope, r.key), r]));
    commands.forEach((c, i) => {
      const row = byId.get(keyOf(c));
      if (row) results[i] = answerFor(c, { hash: row.request_hash, outcome: row.outcome });
    });
  }
  // Keys with an answer (a claim without one is an HTTP request in progress).
  const storedAnswers: AnsweredKey[] = stored.rows.filter((r) => r.outcome);

  // 2. Load and lock the accounts, in key order. Missing ones are created first.
  const wanted = new Map<string, AccountKey & { kind: 'player' | 'house' }>();
  commands.forEach((c, i) => {
    if (results[i] || firstIndex.get(keyOf(c)) !== i) return;
    for (const name of walletTypes) wanted.set(accountId({ holder: c.playerId, name, currency: c.currency }), { holder: c.playerId, name, currency: c.currency, kind: 'player' });
    for (const declared of c.accounts) {
      const a = real(declared);
      const id = accountId(a);
      if (!wanted.has(id)) wanted.set(id, { ...a, kind: a.holder === c.playerId ? 'player' : 'house' });
    }
  });
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
      const key = { holder: r.holder, name: r.name, currency: r.currency.trim() };
      accounts.set(accountId(key), { key, kind: r.kind, balance: BigInt(r.balance), lastSeq: BigInt(r.last_seq), lastHash: r.last_hash });
    }
  }

  // 3. Referenced transactions (the bet of a win or rollback), and what refers to them.
  const refTx = new Map<string, LedgerTransaction>();
  const referencing = new Map<string, LedgerTransaction[]>();
  const refs = commands.flatMap((c, i) => (results[i] || firstIndex.get(keyOf(c)) !== i ? [] : (c.refs ?? []).map((r) => ({ player: c.playerId, ...r }))));
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

  // 4. Plan against the locked state; 5. write it in one statement (the accounts are
  //    locked: the expected sequences hold, only a concurrent duplicate key can fail it).
  const plan = planBatch(commands, results, firstIndex, accounts, walletTypes, real, {
    byRef: (player, provider, ref) => refTx.get(refKey(player, provider, ref)),
    referencing: (_player, id) => referencing.get(id) ?? [],
  });
  if (plan.txRows.length > 0 || plan.answers.length > 0) {
    const check = await batchStatement(plan, [], now(), false).execute(trx);
    if (!check.rows[0]?.ok) throw new ConcurrentDuplicate();
  }
  const bets = [...refTx.values()].filter((t) => t.type === 'bet').map((bet) => ({ bet, children: referencing.get(bet.id) ?? [] }));
  return { results: plan.results, events: plan.events.length, learned: { accounts: [...accounts.values()], transactions: plan.written, answers: [...storedAnswers, ...answersOf(plan)], bets } };
}

// Only answers the statement is known to have written (it checks their count): a
// tombstone is written "if the key is new", so the cache never learns one it wrote.
const answersOf = (plan: PlannedBatch): AnsweredKey[] => plan.answers;

const now = () => new Date();

/**
 * The batch on the fast path: no reads and no explicit transaction. The lane's cache
 * holds the accounts (and the bets wins refer to) as this lane last left them; the
 * batch is planned against copies and written in ONE autocommitted statement that
 * checks its assumptions as it writes: every account it posts to, and every other
 * wallet of its players it read, still has the sequence the cache says (a row lock
 * re-checks that against the newest committed version), and every idempotency key is
 * new. If anything differs (another process moved the money, a replayed key, a
 * concurrent duplicate), the statement fails as a whole, nothing is written, and the
 * caller forgets those entries and runs the batch on the locked path.
 *
 * Returns undefined, having written nothing, when the cache cannot plan the batch (an
 * account or a referenced bet not in it, or a rollback, which needs every transaction
 * that refers to its bet).
 */
export async function writeBatchFast(
  db: Database['db'],
  commands: readonly LedgerCommand[],
  walletTypes: readonly string[],
  house: string,
  cache: LaneCache,
  /** Called once the statement is started, with what the batch will leave if it commits. */
  writing?: (learned: Learned) => void,
): Promise<BatchOutput | undefined> {
  const real = onShard(house);
  const results = commands.map((): CommandResult | undefined => undefined);
  const { firstIndex } = keysOf(commands);
  const accounts = new Map<string, AccountState>();
  const batchRefs = new Map<string, LedgerTransaction>();
  const batchIds = new Set<string>();
  const loaded = new Set<string>();
  try {
    for (const c of commands) {
      if (!loaded.has(`${c.playerId}|${c.currency}`)) {
        const wallets = cache.wallets(c.playerId, c.currency);
        if (!wallets) return undefined;
        for (const state of wallets) accounts.set(accountId(state.key), state);
        loaded.add(`${c.playerId}|${c.currency}`);
      }
      for (const declared of c.accounts) {
        const a = real(declared);
        const id = accountId(a);
        if (accounts.has(id)) continue;
        const state = cache.account(a);
        if (!state) return undefined;
        accounts.set(id, state);
      }
    }
    const plan = planBatch(commands, results, firstIndex, accounts, walletTypes, real, {
      byRef: (player, provider, ref) => {
        const key = refKey(player, provider, ref);
        const tx = batchRefs.get(key) ?? cache.bet(player, provider, ref);
        if (!tx) throw new NeedsLockedPath(`transaction ${provider}/${ref}`);
        return tx;
      },
      referencing: (player, id) => {
        // A bet written earlier in this batch has no history before it (planBatch adds the batch's own).
        if (batchIds.has(id)) return [];
        const children = cache.childrenOf(player, id);
        if (!children) throw new NeedsLockedPath(`transactions referring to ${id}`);
        return children;
      },
      onWritten: (tx) => {
        batchIds.add(tx.id);
        if (tx.provider && tx.externalRef) batchRefs.set(refKey(tx.playerId, tx.provider, tx.externalRef), tx);
      },
    });
    // Every account the batch read but does not post to is held to its cached sequence too.
    const read = [...accounts.values()];
    const guarded = read.filter((a) => !plan.touched.has(accountId(a.key)));
    const learned: Learned = { accounts: read, transactions: plan.written, answers: answersOf(plan) };
    const statement = batchStatement(plan, guarded, now(), true).execute(db);
    writing?.(learned);
    const check = await statement;
    if (!check.rows[0]?.ok) throw new StaleLaneCache();
    return { results: plan.results, events: plan.events.length, learned };
  } catch (error) {
    if (error instanceof NeedsLockedPath) return undefined;
    throw error;
  }
}

/** The fast path's statement found the cache stale (or a key already answered): nothing was written. */
export class StaleLaneCache extends Error {
  constructor() {
    super('the lane cache was stale or a key was already answered');
  }
}

/** A row of wallet.transactions as the batch statement writes it (JSON columns as JSON text). */
interface TxInsert {
  player_id: string;
  id: string;
  type: string;
  currency: string;
  amount: string;
  split: string;
  round_id: string | null;
  provider: string | null;
  external_ref: string | null;
  reference_id: string | null;
  idempotency_scope: string;
  idempotency_key: string;
  meta: string;
  created_at: Date;
}

interface PlannedBatch {
  readonly results: CommandResult[];
  readonly txRows: TxInsert[];
  readonly postingRows: { holder: string; name: string; currency: string; seq: bigint; tx: string; player: string; amount: bigint; after: bigint; hash: string }[];
  /** Account states after the batch, with the sequence each had before it (the statement checks it). */
  readonly changed: { state: AccountState; expectedSeq: bigint }[];
  readonly touched: ReadonlySet<string>;
  readonly answers: { scope: string; key: string; hash: string; player: string; outcome: Outcome }[];
  readonly closedKeys: { scope: string; key: string; player: string; outcome: Outcome }[];
  readonly events: NewEvent[];
  readonly written: LedgerTransaction[];
}

/**
 * Plans every command of a batch in arrival order against `accounts` (mutated: they end
 * as the batch leaves them). Commands with a result already (stored answers) are
 * skipped; later duplicates of a key in the batch replay the first.
 */
function planBatch(
  commands: readonly LedgerCommand[],
  results: (CommandResult | undefined)[],
  firstIndex: ReadonlyMap<string, number>,
  accounts: Map<string, AccountState>,
  walletTypes: readonly string[],
  real: (key: AccountKey) => AccountKey,
  lookups: Pick<PlanContext, 'byRef' | 'referencing'> & { onWritten?: (tx: LedgerTransaction) => void },
): PlannedBatch {
  const at = now();
  const txRows: TxInsert[] = [];
  const postingRows: PlannedBatch['postingRows'] = [];
  const outcomes: { scope: string; key: string; outcome: Outcome; tombstone?: boolean }[] = [];
  const tombstones: { scope: string; key: string; player: string; outcome: Outcome }[] = [];
  const events: NewEvent[] = [];
  const written: LedgerTransaction[] = [];
  const before = new Map<string, bigint>();
  /** Keys closed by an earlier command of this batch (a bet arriving after its rollback). */
  const closed = new Map<string, Outcome>();
  const shutKeys = new Set<string>();
  const newRefs = new Map<string, LedgerTransaction>();
  const newChildren = new Map<string, LedgerTransaction[]>();

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
    byRef: (player, provider, ref) => newRefs.get(refKey(player, provider, ref)) ?? lookups.byRef(player, provider, ref),
    referencing: (player, id) => [...lookups.referencing(player, id), ...(newChildren.get(id) ?? [])],
  };

  const balancesOf = (playerId: string, currency: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, state] of ctx.walletsOf(playerId, currency)) out[name] = str(state.balance);
    return out;
  };

  const active: number[] = [];
  const duplicates: number[] = [];
  commands.forEach((c, i) => {
    if (results[i]) return;
    if (firstIndex.get(keyOf(c)) === i) active.push(i);
    else duplicates.push(i);
  });

  for (const i of active) {
    const c = commands[i]!;
    const shut = closed.get(keyOf(c));
    if (shut) {
      shutKeys.add(keyOf(c));
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
          const accId = accountId(state.key);
          if (!before.has(accId)) before.set(accId, state.lastSeq);
          state.balance += p.amount;
          state.lastSeq += 1n;
          const hash = postingHash(state.lastHash, state.key, state.lastSeq, id, p.amount, state.balance);
          postingRows.push({ ...state.key, seq: state.lastSeq, tx: id, player: c.playerId, amount: p.amount, after: state.balance, hash });
          state.lastHash = hash;
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
        written.push(ledgerTx);
        lookups.onWritten?.(ledgerTx);
        if (ledgerTx.provider && ledgerTx.externalRef) newRefs.set(refKey(c.playerId, ledgerTx.provider, ledgerTx.externalRef), ledgerTx);
        if (ledgerTx.referenceId) newChildren.set(ledgerTx.referenceId, [...(newChildren.get(ledgerTx.referenceId) ?? []), ledgerTx]);
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
          created_at: at,
        });
        const ok: Outcome & { ok: true } = {
          ok: true,
          transactionId: id,
          type: tx.type,
          currency: tx.currency,
          balances: balancesOf(c.playerId, c.currency),
          split: Object.fromEntries(Object.entries(split).map(([k, v]) => [k, str(v)])),
          createdAt: at.toISOString(),
          ...(plan.data ? { data: plan.data } : {}),
        };
        outcome = ok;
        if (plan.events) events.push(...plan.events(ok));
        for (const t of c.tombstones ?? []) {
          tombstones.push({ ...t, player: c.playerId });
          closed.set(scopedKey(t.scope, t.key), t.outcome);
        }
      }
    }
    outcomes.push({ scope: c.idempotency.scope, key: c.idempotency.key, outcome });
    results[i] = { outcome, replayed: false };
  }
  for (const i of duplicates) {
    const c = commands[i]!;
    const first = firstIndex.get(keyOf(c))!;
    if (shutKeys.has(keyOf(c))) {
      results[i] = results[first]!;
      continue;
    }
    results[i] =
      commands[first]!.idempotency.requestHash === c.idempotency.requestHash
        ? { outcome: results[first]!.outcome, replayed: true }
        : { outcome: { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' }, replayed: false };
  }

  // Sorted, so two batches inserting overlapping keys wait for each other in one order.
  const answers = outcomes
    .map((o) => {
      const first = commands[firstIndex.get(scopedKey(o.scope, o.key))!]!;
      return { scope: o.scope, key: o.key, outcome: o.outcome, hash: o.tombstone ? TOMBSTONE : first.idempotency.requestHash, player: first.playerId };
    })
    .sort((x, y) => (x.scope === y.scope ? (x.key < y.key ? -1 : x.key > y.key ? 1 : 0) : x.scope < y.scope ? -1 : 1));
  // A key this batch both closes and answers (a late bet in the same batch) is written once, as its answer.
  const answered = new Set(answers.map((o) => scopedKey(o.scope, o.key)));
  const closedKeys = tombstones.filter((t) => !answered.has(scopedKey(t.scope, t.key)));
  const changed = [...before].map(([id, expectedSeq]) => ({ state: accounts.get(id)!, expectedSeq }));
  return { results: results as CommandResult[], txRows, postingRows, changed, touched: new Set(before.keys()), answers, closedKeys, events, written };
}

/**
 * JSON texts as one JSON array: JSON columns travel as one jsonb parameter each, since
 * a jsonb[] parameter costs escaping every quote on the way (pg) and parsing the array
 * literal back (PostgreSQL's array_in).
 */
const jsonArray = (texts: readonly string[]): string => `[${texts.join(',')}]`;

/**
 * One statement writes a planned batch: data-modifying CTEs run together, so the
 * transactions, postings, balances, answers and events land together or not at all.
 * `ok` is false when an assumption failed: an account's sequence was not the expected
 * one (the UPDATE and the row lock re-check it against the newest committed version)
 * or a key was already answered; wallet.batch_check then raises, undoing the statement.
 *
 * On the fast path a key answered elsewhere fails the statement either way, so its
 * answers are a plain insert, whose unique violation does that: ON CONFLICT's
 * speculative insertion (a probe of the key's index, then an insert that confirms
 * itself) cost about a third more per key. The locked path keeps DO NOTHING and counts
 * what it wrote, to tell a concurrent duplicate (ConcurrentDuplicate: run again and
 * replay it) from a failure.
 */
function batchStatement(plan: PlannedBatch, guarded: readonly AccountState[], at: Date, fast: boolean) {
  const { txRows, postingRows, changed, answers, closedKeys } = plan;
  const stamp = at.toISOString();
  // Accounts are matched by their key alone, never with an extra `holder = any(array)`: in
  // the generic plan PostgreSQL keeps for this statement that test runs over the array for
  // every row or index probe, which made each of the two lookups about three times as
  // slow (1.0-1.8 against 0.3-0.6 ms for 30-84 accounts, with 800 or 50,000 accounts in
  // the table). The guard probes the primary key once per account (LATERAL), whatever
  // the table's size; the update joins, which PostgreSQL does by the primary key once the
  // table is more than a few pages, and by one pass over a small one.
  return sql<{ ok: boolean }>`${sql.raw(PREPARED)}
    with new_transactions as (
      insert into wallet.transactions (player_id, id, type, currency, amount, split, round_id, provider, external_ref, reference_id, idempotency_scope, idempotency_key, meta, created_at)
      select * from rows from (
        unnest(${pgArray(txRows.map((r) => r.player_id))}::uuid[]), unnest(${pgArray(txRows.map((r) => r.id))}::uuid[]), unnest(${pgArray(txRows.map((r) => r.type))}::text[]), unnest(${pgArray(txRows.map((r) => r.currency))}::bpchar[]),
        unnest(${pgArray(txRows.map((r) => r.amount))}::int8[]), jsonb_array_elements(${jsonArray(txRows.map((r) => r.split))}::jsonb), unnest(${pgArray(txRows.map((r) => r.round_id))}::text[]), unnest(${pgArray(txRows.map((r) => r.provider))}::text[]),
        unnest(${pgArray(txRows.map((r) => r.external_ref))}::text[]), unnest(${pgArray(txRows.map((r) => r.reference_id))}::uuid[]), unnest(${pgArray(txRows.map((r) => r.idempotency_scope))}::text[]), unnest(${pgArray(txRows.map((r) => r.idempotency_key))}::text[]),
        jsonb_array_elements(${jsonArray(txRows.map((r) => r.meta))}::jsonb), unnest(${pgArray(txRows.map((r) => r.created_at.toISOString()))}::timestamptz[]))
    ),
    new_postings as (
      insert into wallet.postings (holder, name, currency, seq, transaction_id, player_id, amount, balance_after, created_at, hash)
      select h, n, c, s, t, p, a, b, ${stamp}::timestamptz, hh from unnest(
        ${pgArray(postingRows.map((r) => r.holder))}::uuid[], ${pgArray(postingRows.map((r) => r.name))}::text[], ${pgArray(postingRows.map((r) => r.currency))}::bpchar[], ${pgArray(postingRows.map((r) => r.seq))}::int8[],
        ${pgArray(postingRows.map((r) => r.tx))}::uuid[], ${pgArray(postingRows.map((r) => r.player))}::uuid[], ${pgArray(postingRows.map((r) => r.amount))}::int8[], ${pgArray(postingRows.map((r) => r.after))}::int8[],
        ${pgArray(postingRows.map((r) => r.hash))}::text[]) as t(h, n, c, s, t, p, a, b, hh)
    ),
    balances as (
      update wallet.accounts a set balance = v.b, last_seq = v.s, last_hash = v.h, updated_at = ${stamp}::timestamptz
      from unnest(${pgArray(changed.map((c) => c.state.key.holder))}::uuid[], ${pgArray(changed.map((c) => c.state.key.name))}::text[], ${pgArray(changed.map((c) => c.state.key.currency))}::bpchar[],
                  ${pgArray(changed.map((c) => c.state.balance))}::int8[], ${pgArray(changed.map((c) => c.state.lastSeq))}::int8[], ${pgArray(changed.map((c) => c.state.lastHash))}::text[],
                  ${pgArray(changed.map((c) => c.expectedSeq))}::int8[]) as v(holder, name, currency, b, s, h, e)
      where a.holder = v.holder and a.name = v.name and a.currency = v.currency and a.last_seq = v.e
      returning 1
    ),
    guarded as (
      select 1 from unnest(${pgArray(guarded.map((g) => g.key.holder))}::uuid[], ${pgArray(guarded.map((g) => g.key.name))}::text[], ${pgArray(guarded.map((g) => g.key.currency))}::bpchar[], ${pgArray(guarded.map((g) => g.lastSeq))}::int8[]) as v(holder, name, currency, e),
        lateral (select 1 from wallet.accounts a where a.holder = v.holder and a.name = v.name and a.currency = v.currency and a.last_seq = v.e for share of a) as held
    ),
    new_tombstones as (
      insert into wallet.idempotency (scope, key, request_hash, player_id, outcome)
      select * from rows from (unnest(${pgArray(closedKeys.map((t) => t.scope))}::text[]), unnest(${pgArray(closedKeys.map((t) => t.key))}::text[]), unnest(${pgArray(closedKeys.map(() => TOMBSTONE))}::text[]),
                              unnest(${pgArray(closedKeys.map((t) => t.player))}::uuid[]), jsonb_array_elements(${JSON.stringify(closedKeys.map((t) => t.outcome))}::jsonb))
      on conflict (scope, key) do nothing
    ),
    answers as (
      insert into wallet.idempotency (scope, key, request_hash, player_id, outcome)
      select s, k, h, p, o from rows from (unnest(${pgArray(answers.map((o) => o.scope))}::text[]), unnest(${pgArray(answers.map((o) => o.key))}::text[]), unnest(${pgArray(answers.map((o) => o.hash))}::text[]),
                                          unnest(${pgArray(answers.map((o) => o.player))}::uuid[]), jsonb_array_elements(${JSON.stringify(answers.map((o) => o.outcome))}::jsonb)) with ordinality as t(s, k, h, p, o, n)
      order by n
      ${fast ? sql`` : sql`on conflict (scope, key) do nothing`}
      returning 1
    ),
    new_events as (${outboxInsert(plan.events, at)})
    select wallet.batch_check(
      (select count(*) from balances) = ${changed.length}
      and (select count(*) from guarded) = ${guarded.length}
      and (select count(*) from answers) = ${answers.length}) as ok`;
}

interface BetEntry {
  readonly bet: LedgerTransaction;
  readonly children: LedgerTransaction[];
  /** Whether the bet moved any of the player's money (its split is immutable). */
  readonly moved: boolean;
}

/** A player's cached bets, by provider reference and by transaction id. */
interface PlayerBets {
  readonly byRef: Map<string, BetEntry>;
  readonly byId: Map<string, BetEntry>;
}

/** Bets remembered per player for the wins that name them. */
const BETS_PER_PLAYER = 64;

/**
 * A lane's memory of the ledger as it last left it: the wallets of its recent players
 * (all wallet types of a currency, or none), its house shard's accounts, and recent
 * bets (immutable, so a cached bet is always right). Entries come only from committed
 * batches; the fast path's statement checks them, so a stale entry costs a retry on
 * the locked path, never a wrong posting.
 */
export class LaneCache {
  readonly #players: LRUCache<string, Map<string, AccountState>>;
  /** Per player: recent bets by provider reference, each with every transaction that refers to it. */
  readonly #bets: LRUCache<string, PlayerBets>;
  /**
   * Keys this lane wrote or read answers for, as 31-bit hashes (keyHash): small integers,
   * which the collector never has to trace or move. A key string per entry, kept for
   * tens of seconds, had every answered key promoted to the old generation, which then
   * needed a full collection (10-20 ms pauses) every few seconds at saturation.
   */
  readonly #answered: LRUCache<number, true>;
  readonly #house = new Map<string, AccountState>();
  readonly #walletTypes: readonly string[];

  constructor(walletTypes: readonly string[], maxPlayers: number) {
    this.#walletTypes = walletTypes;
    this.#players = new LRUCache({ max: Math.max(1, maxPlayers) });
    this.#bets = new LRUCache({ max: Math.max(1, maxPlayers) });
    this.#answered = new LRUCache({ max: Math.max(1, maxPlayers) * 8 });
  }

  /**
   * Whether this lane wrote or read an answer for the command's key: a replay, which
   * the locked path answers from wallet.idempotency. (The fast path's statement would
   * refuse the key anyway, but only by failing its whole batch.)
   */
  answered(c: LedgerCommand): boolean {
    return this.#answered.has(answeredId(c.idempotency.scope, c.idempotency.key));
  }

  /** Copies of a player's wallets in a currency (every wallet type), if cached. */
  wallets(playerId: string, currency: string): AccountState[] | undefined {
    const wallets = this.#players.get(`${playerId}|${currency}`);
    return wallets ? [...wallets.values()].map((s) => ({ ...s })) : undefined;
  }

  /** A copy of a house account, or of a player's wallet, if cached. */
  account(key: AccountKey): AccountState | undefined {
    const state = this.#house.get(accountId(key)) ?? this.#players.get(`${key.holder}|${key.currency}`)?.get(key.name);
    return state ? { ...state } : undefined;
  }

  /**
   * A recent bet, if cached and if its history here is known complete: only bets that
   * moved the player's money, so that any rollback of it (elsewhere too) moves the
   * player's wallets, which the fast path's statement checks.
   */
  bet(playerId: string, provider: string, externalRef: string): LedgerTransaction | undefined {
    const entry = this.#bets.get(playerId)?.byRef.get(`${provider}\u0000${externalRef}`);
    return entry?.moved ? entry.bet : undefined;
  }

  /** Every transaction that refers to a cached bet (wins, rollbacks), or undefined if the bet is not cached. */
  childrenOf(playerId: string, betId: string): readonly LedgerTransaction[] | undefined {
    return this.#bets.get(playerId)?.byId.get(betId)?.children;
  }

  #remember(bet: LedgerTransaction, children: readonly LedgerTransaction[]): void {
    let bets = this.#bets.get(bet.playerId);
    if (!bets) {
      bets = { byRef: new Map(), byId: new Map() };
      this.#bets.set(bet.playerId, bets);
    }
    const ref = `${bet.provider}\u0000${bet.externalRef}`;
    const replaced = bets.byRef.get(ref);
    if (replaced) bets.byId.delete(replaced.bet.id);
    const entry = { bet, children: [...children], moved: Object.values(bet.split).some((v) => v !== 0n) };
    bets.byRef.set(ref, entry);
    bets.byId.set(bet.id, entry);
    if (bets.byRef.size > BETS_PER_PLAYER) {
      const [oldest, evicted] = bets.byRef.entries().next().value!;
      bets.byRef.delete(oldest);
      bets.byId.delete(evicted.bet.id);
    }
  }

  /** Whether an account is cached; name `*`: whether all of a player's wallets in the currency are. */
  has(key: AccountKey): boolean {
    if (this.#house.has(accountId(key))) return true;
    const wallets = this.#players.peek(`${key.holder}|${key.currency}`);
    return wallets !== undefined && (key.name === '*' || wallets.has(key.name));
  }

  /** After a commit: the account states the batch left, and its transactions. */
  learn(learned: Learned): void {
    const byPlayer = new Map<string, AccountState[]>();
    for (const state of learned.accounts) {
      const copy = { ...state };
      if (state.kind === 'house') {
        this.#house.set(accountId(state.key), copy);
        continue;
      }
      const key = `${state.key.holder}|${state.key.currency}`;
      const states = byPlayer.get(key);
      if (states) states.push(copy);
      else byPlayer.set(key, [copy]);
    }
    for (const [key, states] of byPlayer) {
      const wallets = this.#players.get(key);
      if (wallets) {
        for (const s of states) wallets.set(s.key.name, s);
      } else if (this.#walletTypes.every((name) => states.some((s) => s.key.name === name))) {
        this.#players.set(key, new Map(states.map((s) => [s.key.name, s])));
      }
    }
    // Bets read under the locks come with their whole history; new bets have none yet;
    // new wins and rollbacks join the history of their cached bet.
    for (const { bet, children } of learned.bets ?? []) this.#remember(bet, children);
    for (const tx of learned.transactions) {
      if (tx.type === 'bet' && tx.provider && tx.externalRef && !this.childrenOf(tx.playerId, tx.id)) this.#remember(tx, []);
    }
    for (const tx of learned.transactions) {
      if (!tx.referenceId) continue;
      const children = this.childrenOf(tx.playerId, tx.referenceId);
      if (children) (children as LedgerTransaction[]).push(tx);
    }
    for (const a of learned.answers) this.#answered.set(answeredId(a.scope, a.key), true);
  }

  /**
   * Forgets what a failed fast-path batch assumed: its players' wallets and bets (another
   * process may have moved the money or rolled a bet back) and the house accounts.
   */
  forget(commands: readonly LedgerCommand[]): void {
    for (const c of commands) {
      this.#players.delete(`${c.playerId}|${c.currency}`);
      this.#bets.delete(c.playerId);
    }
    this.#house.clear();
  }
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
