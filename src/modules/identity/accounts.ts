import type { StaffService } from '../backoffice/index.ts';
import type { PlayerService, PlayerStatus } from '../players/index.ts';

/**
 * Players and staff sign in through the same provider. Their ids are UUIDs, unique across
 * both, so a session or token names its account by id alone; at the sign-in form the
 * client decides which kind it serves (a staff client's form checks staff emails only).
 */
export type AccountKind = 'player' | 'staff';

/** Who a token can be issued for, and what the provider may say about them. */
export interface Account {
  readonly id: string;
  readonly kind: AccountKind;
  /** A staff member's permissions (their roles'), read when the account is looked up. */
  readonly permissions?: readonly string[];
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
  | { readonly outcome: 'signed_in'; readonly accountId: string; readonly kind?: AccountKind }
  | { readonly outcome: 'invalid_credentials'; readonly accountId: string | null; readonly kind?: AccountKind }
  | { readonly outcome: 'account_not_allowed'; readonly accountId: string; readonly kind?: AccountKind };

/** The accounts behind the provider: players and staff (active staff only; their MFA is mandatory). */
export class Accounts {
  readonly #players: PlayerService;
  readonly #staff: StaffService | undefined;

  constructor(players: PlayerService, staff?: StaffService) {
    this.#players = players;
    this.#staff = staff;
  }

  async find(id: string): Promise<Account | undefined> {
    const player = await this.#players.find(id);
    if (!player) return this.#findStaff(id);
    if (!MAY_SIGN_IN.has(player.status)) return undefined;
    return {
      id: player.id,
      kind: 'player',
      claims: {
        email: player.email,
        // True once the player opened the link emailed to this address (email-verification.ts).
        email_verified: player.emailVerified === true,
        preferred_username: player.login,
        updated_at: Math.floor(Date.parse(player.updatedAt) / 1000),
      },
    };
  }

  /** A disabled staff member is no account: no sign-in, and their refresh tokens stop working. */
  async #findStaff(id: string): Promise<Account | undefined> {
    const staff = await this.#staff?.find(id);
    if (!staff || staff.status !== 'active') return undefined;
    return {
      id: staff.id,
      kind: 'staff',
      permissions: staff.permissions,
      claims: { email: staff.email, email_verified: false, preferred_username: staff.email, name: staff.displayName },
    };
  }

  /** A staff sign-in: their email and password. */
  async checkStaffPassword(email: string, password: string): Promise<PasswordCheck> {
    const result = await this.#staff?.verifyCredentials(email, password);
    if (!result) return { outcome: 'invalid_credentials', accountId: null, kind: 'staff' };
    if (!result.passwordValid) return { outcome: 'invalid_credentials', accountId: result.staffId, kind: 'staff' };
    if (result.status !== 'active') return { outcome: 'account_not_allowed', accountId: result.staffId, kind: 'staff' };
    return { outcome: 'signed_in', accountId: result.staffId, kind: 'staff' };
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
