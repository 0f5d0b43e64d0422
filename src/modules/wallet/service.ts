import { randomBytes } from 'node:crypto';
import { Counter, Histogram } from 'prom-client';
import { tablesOf } from '../../platform/db/database.ts';
import { hasPermission, type RequestContext } from '../../platform/auth/principal.ts';
import { platformErrors } from '../../platform/errors.ts';
import type { Kernel } from '../../platform/module.ts';
import { cached } from '../../platform/cache/cache.ts';
import { exponentOf, formatAmount, MoneyFormatError, parseAmount } from '../../platform/money.ts';
import type { PlayerService } from '../players/index.ts';
import { claimHouseShards, LedgerEngine } from './engine.ts';
import { fail, type WalletErrorCode } from './errors.ts';
import { bet, idempotency, rollback, win } from './operations.ts';
import { listTransactions, playerAccounts, walletTypes, type TransactionFilter, type WalletTables } from './store.ts';
import type { CommandResult, LedgerCommand, Outcome } from './types.ts';

export const PERMISSIONS = {
  read: 'wallet.read',
  pay: 'wallet.payments.manage',
  adjust: 'wallet.adjust',
  approveAdjustment: 'wallet.adjust.approve',
  move: 'wallet.move',
  sessions: 'wallet.sessions.create',
} as const;

export type GateAction = 'bet' | 'deposit' | 'withdraw';

export type GameSession = WalletTables['wallet.game_sessions'];

/**
 * Decides whether a player may do something with money; returns a refusal reason or
 * null. The wallet asks every gate; the players module fills the first (status), risk
 * and KYC modules add theirs through `addGate`.
 */
export type PlayerGate = (playerId: string, action: GateAction) => Promise<string | null>;

export interface PlayerMoneyProfile {
  id: string;
  currency: string;
  status: string;
}

export class WalletService {
  readonly #kernel: Kernel;
  readonly #players: PlayerService;
  readonly #gates: PlayerGate[] = [];
  #spendOrder: string[] = ['real', 'bonus'];
  #walletNames: string[] = ['real', 'bonus', 'freespins', 'tournament'];
  #engine: LedgerEngine | undefined;

  constructor(kernel: Kernel, players: PlayerService) {
    this.#kernel = kernel;
    this.#players = players;
    this.#gates.push(async (playerId, action) => {
      const player = await players.find(playerId);
      if (!player) return 'unknown player';
      const allowed = action === 'withdraw' ? ['active', 'suspended_may_withdraw'] : ['active'];
      return allowed.includes(player.status) ? null : `player status is ${player.status}`;
    });
  }

  get db() {
    return tablesOf<WalletTables>(this.#kernel.database.db);
  }

  get kernel(): Kernel {
    return this.#kernel;
  }

  get spendOrder(): readonly string[] {
    return this.#spendOrder;
  }

  get engine(): LedgerEngine {
    if (!this.#engine) throw new Error('wallet is not started');
    return this.#engine;
  }

  /** Loads wallet types (data) and starts the batch writer. */
  async start(): Promise<void> {
    const types = await walletTypes(this.db);
    this.#walletNames = types.map((t) => t.name);
    this.#spendOrder = types
      .filter((t) => t.betPriority !== null)
      .sort((a, b) => a.betPriority! - b.betPriority!)
      .map((t) => t.name);
    if (this.#engine) return;
    const { config, logger, metrics } = this.#kernel;
    const sizes = new Histogram({
      name: 'pitboss_ledger_batch_size',
      help: 'Money movements written per ledger batch (database transaction).',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [metrics.registry],
    });
    const durations = new Histogram({
      name: 'pitboss_ledger_batch_seconds',
      help: 'Time to write one ledger batch, commit included.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [metrics.registry],
    });
    const paths = new Counter({
      name: 'pitboss_ledger_batches_total',
      help: 'Ledger batches committed, by path: fast (planned from the lane cache, one statement) or locked (read and lock first).',
      labelNames: ['path'],
      registers: [metrics.registry],
    });
    this.#engine = new LedgerEngine(this.#kernel.database, {
      shards: await claimHouseShards(this.#kernel.database, config.walletWriters, config.walletHouseShards, logger),
      observe: (size, seconds, path) => {
        sizes.observe(size);
        durations.observe(seconds);
        paths.inc({ path });
      },
      cachedPlayers: config.walletLaneCachePlayers,
      maxBatch: config.walletMaxBatch,
      walletTypes: this.#walletNames,
      logger,
      onEvents: () => this.#kernel.notifyEventsCommitted(),
    });
  }

  async stop(): Promise<void> {
    await this.#engine?.close();
  }

  addGate(gate: PlayerGate): void {
    this.#gates.push(gate);
  }

  async gate(playerId: string, action: GateAction): Promise<string | null> {
    for (const g of this.#gates) {
      const reason = await g(playerId, action);
      if (reason) return reason;
    }
    return null;
  }

  async profile(playerId: string): Promise<PlayerMoneyProfile | undefined> {
    const p = await this.#players.find(playerId);
    return p ? { id: p.id, currency: p.currency, status: p.status } : undefined;
  }

  isWallet(name: string): boolean {
    return this.#walletNames.includes(name);
  }

  submit(command: LedgerCommand): Promise<CommandResult> {
    return this.engine.submit(command);
  }

  // --- Game play (called by provider adapters) -------------------------------------

  async placeBet(i: { playerId: string; currency: string; amount: bigint; provider: string; externalRef: string; roundId: string | null; gameCode?: string | null; request: unknown }): Promise<CommandResult> {
    return this.submit(bet({ ...i, idempotency: idempotency(i.provider, i.externalRef, i.request), spendOrder: this.#spendOrder }));
  }

  async creditWin(i: { playerId: string; currency: string; amount: bigint; provider: string; externalRef: string; betRef: string | null; roundId: string | null; request: unknown }): Promise<CommandResult> {
    return this.submit(win({ ...i, idempotency: idempotency(i.provider, i.externalRef, i.request), spendOrder: this.#spendOrder }));
  }

  async rollbackBet(i: { playerId: string; currency: string; provider: string; externalRef: string; betRef: string; roundId: string | null; request: unknown }): Promise<CommandResult> {
    return this.submit(rollback({ ...i, idempotency: idempotency(i.provider, i.externalRef, i.request) }));
  }

  // --- Reads --------------------------------------------------------------------------

  /** May the caller see this player's money? The player themself, or staff/services with wallet.read. */
  assertCanRead(ctx: RequestContext, playerId: string): void {
    const p = ctx.principal;
    if (p.kind === 'player' && p.id === playerId) return;
    if (hasPermission(p, PERMISSIONS.read)) return;
    if (p.kind === 'anonymous') throw platformErrors('UNAUTHENTICATED');
    if (p.kind === 'player') throw fail('PLAYER_NOT_FOUND');
    throw platformErrors('FORBIDDEN');
  }

  /** Balances of every wallet and currency; from the primary, never a replica. */
  async balances(ctx: RequestContext, playerId: string) {
    this.assertCanRead(ctx, playerId);
    // Both at once: one round trip of waiting instead of two.
    const [profile, rows] = await Promise.all([this.profile(playerId), playerAccounts(this.db, playerId)]);
    if (!profile) throw fail('PLAYER_NOT_FOUND');
    const byCurrency = new Map<string, Record<string, string>>();
    byCurrency.set(profile.currency, Object.fromEntries(this.#walletNames.map((w) => [w, formatAmount(0n, profile.currency)])));
    for (const r of rows) {
      const currency = r.currency.trim();
      const wallets = byCurrency.get(currency) ?? {};
      wallets[r.name] = formatAmount(BigInt(r.balance), currency);
      byCurrency.set(currency, wallets);
    }
    return {
      playerId,
      currency: profile.currency,
      balances: [...byCurrency].map(([currency, wallets]) => ({ currency, wallets })),
    };
  }

  async transactions(ctx: RequestContext, playerId: string, filter: TransactionFilter) {
    this.assertCanRead(ctx, playerId);
    const rows = await listTransactions(this.db, playerId, filter);
    return rows.map((r) => {
      const currency = r.currency.trim();
      return {
        id: r.id,
        type: r.type,
        currency,
        amount: formatAmount(BigInt(r.amount), currency),
        wallets: r.postings.map((p) => ({ wallet: p.name, amount: formatAmount(BigInt(p.amount), currency), balanceAfter: formatAmount(BigInt(p.balance_after), currency) })),
        roundId: r.round_id,
        provider: r.provider,
        externalRef: r.external_ref,
        referenceId: r.reference_id,
        meta: r.meta,
        createdAt: r.created_at.toISOString(),
      };
    });
  }

  // --- Game sessions --------------------------------------------------------------------

  async createGameSession(ctx: RequestContext, playerId: string, gameCode: string, currency: string): Promise<{ token: string; expiresAt: string }> {
    const p = ctx.principal;
    if (!(p.kind === 'player' && p.id === playerId) && !hasPermission(p, PERMISSIONS.sessions)) {
      throw p.kind === 'anonymous' ? platformErrors('UNAUTHENTICATED') : platformErrors('FORBIDDEN');
    }
    const profile = await this.profile(playerId);
    if (!profile) throw fail('PLAYER_NOT_FOUND');
    if (currency !== profile.currency) throw fail('CURRENCY_MISMATCH');
    const refused = await this.gate(playerId, 'bet');
    if (refused) throw fail('PLAYER_BLOCKED', { detail: refused });
    const token = randomBytes(24).toString('base64url');
    const expiresAt = new Date(Date.now() + this.#kernel.config.gameSessionTtlSeconds * 1000);
    await this.#kernel.transaction(ctx, async (uow) => {
      await tablesOf<WalletTables>(uow.trx).insertInto('wallet.game_sessions').values({ token, player_id: playerId, game_code: gameCode, currency, created_at: new Date(), expires_at: expiresAt }).execute();
      await uow.audit({ action: 'wallet.game_session.create', target: { type: 'player', id: playerId }, changes: { gameCode, currency } });
    });
    return { token, expiresAt: expiresAt.toISOString() };
  }

  /** Ends (a past time) or extends a game session; the cached copy goes with it. */
  async setGameSessionExpiry(token: string, expiresAt: Date): Promise<void> {
    await this.db.updateTable('wallet.game_sessions').set({ expires_at: expiresAt }).where('token', '=', token).execute();
    await this.#kernel.cache.del(`game-session:${token}`);
  }

  /** A game session by token; hot on every provider call, so cached (sessions never change, only expire). */
  async findGameSession(token: string): Promise<GameSession | undefined> {
    const found = await cached<GameSession & { expires_at: Date | string; created_at: Date | string }>(this.#kernel.cache, `game-session:${token}`, 60, () =>
      this.db.selectFrom('wallet.game_sessions').selectAll().where('token', '=', token).executeTakeFirst(),
    );
    return found ? { ...found, expires_at: new Date(found.expires_at), created_at: new Date(found.created_at) } : undefined;
  }

}

/** Parses a REST amount ("12.50") in a currency; must be positive. */
export function parsePositiveAmount(text: string, currency: string, field = '/body/amount'): bigint {
  try {
    exponentOf(currency);
    const minor = parseAmount(text, currency);
    if (minor <= 0n) throw new MoneyFormatError('not positive');
    return minor;
  } catch (error) {
    if (!(error instanceof MoneyFormatError)) throw error;
    throw platformErrors('VALIDATION_FAILED', { errors: [{ field, code: 'AMOUNT_INVALID', message: `Expected a positive amount in ${currency} with at most ${safeExponent(currency)} decimals.` }] });
  }
}

const safeExponent = (currency: string): number => {
  try {
    return exponentOf(currency);
  } catch {
    return 2;
  }
};

/** A refused ledger outcome as a domain error at the REST edge. */
export function outcomeError(outcome: Outcome & { ok: false }) {
  // A refusal the REST catalogue has no code for is reported as such, never as another one.
  const known = outcome.code in fail.catalogue;
  const code = (known ? outcome.code : 'LEDGER_REFUSED') as WalletErrorCode;
  const currency = outcome.currency;
  // Outcomes carry minor units; the API speaks decimal strings ("12.50").
  const balances = outcome.balances && currency ? Object.fromEntries(Object.entries(outcome.balances).map(([w, v]) => [w, formatAmount(BigInt(v), currency)])) : undefined;
  return fail(code, { detail: known ? outcome.detail : `${outcome.code}${outcome.detail ? `: ${outcome.detail}` : ''}`, extra: balances ? { balances, currency } : undefined });
}
