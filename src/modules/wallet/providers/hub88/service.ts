import { isUuid } from '../../../../platform/ids.ts';
import { bet, idempotency, win } from '../../operations.ts';
import type { WalletService } from '../../service.ts';
import { playerAccounts } from '../../store.ts';
import type { CommandResult, LedgerCommand, Outcome, Plan } from '../../types.ts';
import { hub88ToMinor, minorToHub88, statusOfOutcome, type BalanceRequest, type BetRequest, type Hub88Reply, type InfoRequest, type RollbackRequest, type WinRequest } from './protocol.ts';

export const PROVIDER = 'hub88';

type GameSession = NonNullable<Awaited<ReturnType<WalletService['findGameSession']>>>;

/**
 * Hub88's calls as wallet operations. Everything that can be checked from the request
 * (token, user, currency, amount) is checked before the ledger sees it, and such a
 * refusal writes nothing. Refusals that depend on state that changes (an expired
 * session, a blocked player) are the transaction's answer: they go through the ledger,
 * which stores them under the transaction_uuid, so a retry gets the same answer, as a
 * retry of an accepted bet does.
 */
export class Hub88Wallet {
  readonly #wallet: WalletService;
  readonly #now: () => number;

  constructor(wallet: WalletService, now: () => number = Date.now) {
    this.#wallet = wallet;
    this.#now = now;
  }

  /** user/info: the player behind `user` (our player id). Disabled players are reported as such. */
  async userInfo(r: InfoRequest): Promise<Hub88Reply> {
    const base = { user: r.user, request_uuid: r.request_uuid };
    const profile = isUuid(r.user) ? await this.#wallet.profile(r.user) : undefined;
    if (!profile) return { ...base, status: 'RS_ERROR_UNKNOWN' };
    if (await this.#wallet.gate(profile.id, 'bet')) return { ...base, status: 'RS_ERROR_USER_DISABLED' };
    return { ...base, status: 'RS_OK' };
  }

  async balance(r: BalanceRequest): Promise<Hub88Reply> {
    const base = { user: r.user, request_uuid: r.request_uuid };
    const found = await this.#session(r.token, r.user);
    if (!found.ok) return { ...base, status: found.status };
    const session = found.session;
    if (this.#expired(session)) return { ...base, status: 'RS_ERROR_TOKEN_EXPIRED' };
    return { ...base, status: 'RS_OK', currency: session.currency, balance: await this.#balance(session) };
  }

  async bet(r: BetRequest): Promise<Hub88Reply> {
    const checked = await this.#money(r);
    if (!checked.ok) return checked.reply;
    const { session, amount } = checked;
    const request = { kind: 'bet', user: r.user, currency: r.currency, amount: r.amount.toString(), round: r.round, game: r.game_code };
    // Checked before the ledger, answered through it (see the class comment).
    const refusal = this.#expired(session) ? { code: 'GAME_SESSION_EXPIRED', detail: 'the game session has expired' } : await this.#gate(session.player_id);
    const input = { playerId: session.player_id, currency: session.currency, amount, provider: PROVIDER, externalRef: r.transaction_uuid, roundId: r.round, gameCode: r.game_code, request };
    const result = refusal
      ? await this.#wallet.submit(refusing(bet({ ...input, idempotency: idempotency(PROVIDER, input.externalRef, request), spendOrder: this.#wallet.spendOrder }), refusal))
      : await this.#wallet.placeBet(input);
    return this.#answer(result, session, r);
  }

  /** Wins are credited whatever the session's age or the player's status; the bet they name must exist and stand. */
  async win(r: WinRequest): Promise<Hub88Reply> {
    const checked = await this.#money(r);
    if (!checked.ok) return checked.reply;
    const { session, amount } = checked;
    const betRef = r.reference_transaction_uuid;
    const request = { kind: 'win', user: r.user, currency: r.currency, amount: r.amount.toString(), round: r.round, game: r.game_code, reference: betRef };
    const command = win({
      playerId: session.player_id,
      currency: session.currency,
      amount,
      provider: PROVIDER,
      externalRef: r.transaction_uuid,
      betRef,
      roundId: r.round,
      idempotency: idempotency(PROVIDER, r.transaction_uuid, request),
      spendOrder: this.#wallet.spendOrder,
    });
    const result = await this.#wallet.submit(betRef === null ? command : requiringBet(command, session.player_id, betRef));
    return this.#answer(result, session, r);
  }

  /**
   * Refunds the bet exactly as it was paid. A rollback of a bet we never saw is RS_OK
   * (Hub88: "if you can't find the transaction to roll back, respond RS_OK"); the ledger
   * records it and refuses the bet if it arrives later.
   */
  async rollback(r: RollbackRequest): Promise<Hub88Reply> {
    const base = { user: r.user, request_uuid: r.request_uuid };
    const found = await this.#session(r.token, r.user);
    if (!found.ok) return { ...base, status: found.status };
    const session = found.session;
    const request = { kind: 'rollback', user: r.user, round: r.round, game: r.game_code, reference: r.reference_transaction_uuid };
    const result = await this.#wallet.rollbackBet({
      playerId: session.player_id,
      currency: session.currency,
      provider: PROVIDER,
      externalRef: r.transaction_uuid,
      betRef: r.reference_transaction_uuid,
      roundId: r.round,
      request,
    });
    return this.#answer(result, session, r);
  }

  // ---------------------------------------------------------------------------------------

  /** The token's session, which must belong to `user`. */
  async #session(token: string, user: string): Promise<{ ok: true; session: GameSession } | { ok: false; status: 'RS_ERROR_INVALID_TOKEN' }> {
    const session = await this.#wallet.findGameSession(token);
    // A token presented for another user is as unknown as one never issued.
    if (!session || session.player_id !== user) return { ok: false, status: 'RS_ERROR_INVALID_TOKEN' };
    return { ok: true, session: { ...session, currency: session.currency.trim() } };
  }

  /** Token, user, currency and amount of a bet or win; nothing here touches the ledger. */
  async #money(r: BetRequest | WinRequest): Promise<{ ok: true; session: GameSession; amount: bigint } | { ok: false; reply: Hub88Reply }> {
    const base = { user: r.user, request_uuid: r.request_uuid };
    const found = await this.#session(r.token, r.user);
    if (!found.ok) return { ok: false, reply: { ...base, status: found.status } };
    const session = found.session;
    const current = async (): Promise<Omit<Hub88Reply, 'status'>> => ({ ...base, currency: session.currency, balance: await this.#balance(session) });
    if (r.currency !== session.currency) return { ok: false, reply: { ...(await current()), status: 'RS_ERROR_WRONG_CURRENCY' } };
    const amount = hub88ToMinor(r.amount, session.currency);
    if (amount === null) return { ok: false, reply: { ...(await current()), status: 'RS_ERROR_WRONG_TYPES' } };
    return { ok: true, session, amount };
  }

  #expired(session: GameSession): boolean {
    return session.expires_at.getTime() <= this.#now();
  }

  async #gate(playerId: string): Promise<{ code: string; detail: string } | null> {
    const reason = await this.#wallet.gate(playerId, 'bet');
    return reason ? { code: 'PLAYER_BLOCKED', detail: reason } : null;
  }

  /** What a bet can spend: every wallet in the bet spend order (real and bonus by default). */
  #playable(balances: Readonly<Record<string, string>>, currency: string): bigint {
    const minor = this.#wallet.spendOrder.reduce((sum, name) => sum + BigInt(balances[name] ?? '0'), 0n);
    return minorToHub88(minor, currency);
  }

  async #balance(session: GameSession): Promise<bigint> {
    const rows = await playerAccounts(this.#wallet.db, session.player_id);
    const balances: Record<string, string> = {};
    for (const row of rows) if (row.currency.trim() === session.currency) balances[row.name] = String(row.balance);
    return this.#playable(balances, session.currency);
  }

  /** The answer built from the ledger's outcome alone, so a replay (stored outcome) answers byte for byte the same. */
  async #answer(result: CommandResult, session: GameSession, r: { user: string; request_uuid: string }): Promise<Hub88Reply> {
    const o: Outcome = result.outcome;
    const base = { user: r.user, request_uuid: r.request_uuid, currency: session.currency };
    if (o.ok) return { ...base, status: 'RS_OK', balance: this.#playable(o.balances, session.currency) };
    // A key reused with another payload stores nothing, so its balance is read now.
    const balance = o.balances ? this.#playable(o.balances, session.currency) : await this.#balance(session);
    return { ...base, status: statusOfOutcome(o.code), balance };
  }
}

/** The same command (same key, same request hash), answered with a refusal if it is new. */
function refusing(command: LedgerCommand, refusal: { code: string; detail: string }): LedgerCommand {
  return { playerId: command.playerId, currency: command.currency, idempotency: command.idempotency, accounts: command.accounts, refs: command.refs, plan: (): Plan => ({ ok: false, ...refusal }) };
}

/** A win that pays only if the bet it names is in the ledger, is a bet, and was not rolled back (checked under the ledger's locks). */
function requiringBet(command: LedgerCommand, playerId: string, betRef: string): LedgerCommand {
  return {
    playerId: command.playerId,
    currency: command.currency,
    idempotency: command.idempotency,
    accounts: command.accounts,
    refs: command.refs,
    plan(ctx): Plan {
      const betTx = ctx.byRef(playerId, PROVIDER, betRef);
      if (!betTx || betTx.type !== 'bet') return { ok: false, code: 'TRANSACTION_NOT_FOUND', detail: `no bet ${betRef}` };
      if (ctx.referencing(playerId, betTx.id).some((t) => t.type === 'rollback')) return { ok: false, code: 'TRANSACTION_NOT_FOUND', detail: `bet ${betRef} was rolled back` };
      return command.plan(ctx);
    },
  };
}
