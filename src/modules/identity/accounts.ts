import type { PlayerService, PlayerStatus } from '../players/index.ts';

/** Who a token can be issued for, and what the provider may say about them. */
export interface Account {
  readonly id: string;
  readonly kind: 'player';
  /** OpenID Connect claims by name (the provider filters them by the granted scopes). */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Players in these states can sign in: a suspended or self-excluded player must still
 * reach their account (withdraw, read their history); the modules that take bets and
 * payments enforce the status. Blocked and closed accounts cannot sign in at all, and
 * their refresh tokens stop working.
 */
const MAY_SIGN_IN: ReadonlySet<PlayerStatus> = new Set(['active', 'suspended', 'suspended_may_withdraw', 'self_excluded']);

export type PasswordCheck =
  | { readonly outcome: 'signed_in'; readonly accountId: string }
  | { readonly outcome: 'invalid_credentials'; readonly accountId: string | null }
  | { readonly outcome: 'account_not_allowed'; readonly accountId: string };

/** The accounts behind the provider: players today (staff with MFA next). */
export class Accounts {
  readonly #players: PlayerService;

  constructor(players: PlayerService) {
    this.#players = players;
  }

  async find(id: string): Promise<Account | undefined> {
    const player = await this.#players.find(id);
    if (!player || !MAY_SIGN_IN.has(player.status)) return undefined;
    return {
      id: player.id,
      kind: 'player',
      claims: {
        email: player.email,
        // Email verification is not built yet: no address is claimed verified.
        email_verified: false,
        preferred_username: player.login,
        updated_at: Math.floor(Date.parse(player.updatedAt) / 1000),
      },
    };
  }

  async checkPassword(loginOrEmail: string, password: string): Promise<PasswordCheck> {
    const result = await this.#players.verifyCredentials(loginOrEmail, password);
    if (!result) return { outcome: 'invalid_credentials', accountId: null };
    if (!result.passwordValid) return { outcome: 'invalid_credentials', accountId: result.playerId };
    // Only someone who knows the password learns that the account may not sign in.
    if (!MAY_SIGN_IN.has(result.status)) return { outcome: 'account_not_allowed', accountId: result.playerId };
    return { outcome: 'signed_in', accountId: result.playerId };
  }
}
