import { platformErrors, type FieldError } from '../../platform/errors.ts';
import type { Kernel, UnitOfWork } from '../../platform/module.ts';
import { tablesOf } from '../../platform/db/database.ts';
import { hasPermission, type RequestContext } from '../../platform/auth/principal.ts';
import { maskDate, maskEmail, maskPii } from '../../platform/auth/pii.ts';
import { cached } from '../../platform/cache/cache.ts';
import { isCountryCode } from '../../platform/geo.ts';
import { newId } from '../../platform/ids.ts';
import { fail, fieldCodes } from './errors.ts';
import type { PlayerStatus } from './events.ts';
import { dummyPasswordHash, hashPassword, verifyPassword } from './password-hash.ts';
import { checkPassword, PASSWORD_MAX_LENGTH } from './password-policy.ts';
import { emailStateOf, findCredentials, findCredentialsById, markEmailVerified, updateEmail, updatePasswordHash } from './store.ts';
import { findPlayer, findTaken, insertPlayer, listPlayers, lockPlayer, updateStatus, type PlayerFilter, type PlayerRecord, type PlayersTables } from './store.ts';

export interface Registration {
  email: string;
  login: string;
  password: string;
  country: string;
  currency: string;
  dateOfBirth: string;
  trafficSource?: Record<string, string | undefined>;
}

const policyProblems = (player: { login: string; emailNormalized: string }, password: string, field: string): FieldError[] =>
  checkPassword(password, { login: player.login, email: player.emailNormalized }).map((e) => ({ ...e, field }));

export const PERMISSIONS = {
  read: 'players.read',
  manage: 'players.manage',
} as const;

export const normalizeEmail = (email: string): string => email.trim().normalize('NFC').toLowerCase();
export const normalizeLogin = (login: string): string => login.trim().normalize('NFKC').toLowerCase();

const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]{2,}$/;

/** Whole years between an ISO date of birth and today (UTC). */
export function ageOn(dateOfBirth: string, today: Date): number {
  const [y, m, d] = dateOfBirth.split('-').map(Number) as [number, number, number];
  let age = today.getUTCFullYear() - y;
  const beforeBirthday = today.getUTCMonth() + 1 < m || (today.getUTCMonth() + 1 === m && today.getUTCDate() < d);
  if (beforeBirthday) age--;
  return age;
}

function isRealDate(iso: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (!match) return false;
  const date = new Date(`${iso}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(iso);
}

const cacheKey = (id: string): string => `player:${id}`;

export class PlayerService {
  readonly #kernel: Kernel;

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  get #db() {
    return tablesOf<PlayersTables>(this.#kernel.database.db);
  }

  /** Every semantic problem with a registration at once, so the client can fix all fields in one go. */
  validate(input: Registration, today = new Date()): FieldError[] {
    const { config } = this.#kernel;
    const errors: FieldError[] = [];
    const email = normalizeEmail(input.email);
    if (!EMAIL.test(email)) errors.push({ field: '/body/email', code: fieldCodes.EMAIL_INVALID, message: 'Enter a valid email address.' });
    errors.push(...checkPassword(input.password, { login: normalizeLogin(input.login), email }));
    const country = input.country.toUpperCase();
    if (!isCountryCode(country)) {
      errors.push({ field: '/body/country', code: fieldCodes.COUNTRY_UNKNOWN, message: `"${input.country}" is not an ISO 3166-1 alpha-2 country code.` });
    } else if (config.restrictedCountries.includes(country)) {
      errors.push({ field: '/body/country', code: fieldCodes.COUNTRY_RESTRICTED, message: 'Registration is not available in this country.' });
    }
    const currency = input.currency.toUpperCase();
    if (!config.supportedCurrencies.includes(currency)) {
      errors.push({ field: '/body/currency', code: fieldCodes.CURRENCY_NOT_SUPPORTED, message: `Supported currencies: ${config.supportedCurrencies.join(', ')}.` });
    }
    if (!isRealDate(input.dateOfBirth) || input.dateOfBirth < '1900-01-01') {
      errors.push({ field: '/body/dateOfBirth', code: fieldCodes.DATE_INVALID, message: 'Enter a real date of birth as YYYY-MM-DD.' });
    } else {
      const minimum = config.minAgeByCountry[country] ?? config.minAgeDefault;
      if (ageOn(input.dateOfBirth, today) < minimum) {
        errors.push({ field: '/body/dateOfBirth', code: fieldCodes.UNDER_MINIMUM_AGE, message: `Players must be at least ${minimum} years old.` });
      }
    }
    return errors;
  }

  async register(ctx: RequestContext, input: Registration): Promise<PlayerRecord> {
    const errors = this.validate(input);
    if (errors.length > 0) throw platformErrors('VALIDATION_FAILED', { errors });
    const emailNormalized = normalizeEmail(input.email);
    const loginNormalized = normalizeLogin(input.login);
    // Cheap check first, so a duplicate costs no password hash; the unique constraints
    // still decide races between concurrent registrations.
    const taken = await findTaken(this.#db, emailNormalized, loginNormalized);
    if (taken.email) throw fail('PLAYER_EMAIL_TAKEN');
    if (taken.login) throw fail('PLAYER_LOGIN_TAKEN');
    const passwordHash = await hashPassword(input.password);
    const id = newId();
    const now = new Date();
    const trafficSource = Object.fromEntries(Object.entries(input.trafficSource ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));
    try {
      return await this.#kernel.transaction(ctx, async (uow) => {
        const player = await insertPlayer(tablesOf<PlayersTables>(uow.trx), {
          id,
          email: input.email.trim(),
          email_normalized: emailNormalized,
          login: input.login.trim(),
          login_normalized: loginNormalized,
          password_hash: passwordHash,
          country: input.country.toUpperCase(),
          currency: input.currency.toUpperCase(),
          date_of_birth: input.dateOfBirth,
          status: 'active',
          affiliate_id: trafficSource.affiliateId ?? null,
          traffic_source: trafficSource,
          created_at: now,
          updated_at: now,
        });
        await uow.emit({
          type: 'player.registered',
          playerId: id,
          payload: { playerId: id, country: player.country, currency: player.currency, status: player.status, trafficSource, registeredAt: player.createdAt },
        });
        await uow.audit({
          action: 'player.register',
          target: { type: 'player', id },
          changes: { country: player.country, currency: player.currency, affiliateId: trafficSource.affiliateId ?? null },
        });
        return player;
      });
    } catch (error) {
      const constraint = (error as { code?: string; constraint?: string; message?: string }).code === '23505' ? String((error as { constraint?: string; message?: string }).constraint ?? (error as Error).message) : '';
      if (constraint.includes('players_email_unique')) throw fail('PLAYER_EMAIL_TAKEN');
      if (constraint.includes('players_login_unique')) throw fail('PLAYER_LOGIN_TAKEN');
      throw error;
    }
  }

  /**
   * Checks a sign-in: null when no player has this login or email; otherwise the player,
   * their status and whether the password is theirs. An unknown account costs the same
   * password verification as a known one, so the timing does not tell them apart; the
   * sign-in page must give both failures the same answer.
   */
  async verifyCredentials(loginOrEmail: string, password: string): Promise<{ playerId: string; status: PlayerStatus; passwordValid: boolean } | null> {
    // Longer than any login, email or password the policy accepts: not worth hashing.
    if (loginOrEmail.length > 320 || password.length > 4 * PASSWORD_MAX_LENGTH) return null;
    const found = await findCredentials(this.#db, normalizeEmail(loginOrEmail), normalizeLogin(loginOrEmail));
    const valid = await verifyPassword(found?.passwordHash ?? (await dummyPasswordHash()), password).catch(() => false);
    return found ? { playerId: found.id, status: found.status, passwordValid: valid } : null;
  }

  /** The player record (hot, cached); personal data masked unless the caller may see it. */
  async get(ctx: RequestContext, id: string): Promise<PlayerRecord> {
    const { principal } = ctx;
    const self = principal.kind === 'player' && principal.id === id;
    if (!self && !hasPermission(principal, PERMISSIONS.read)) {
      // A player asking for someone else learns nothing, not even that the id exists.
      if (principal.kind === 'player') throw fail('PLAYER_NOT_FOUND');
      throw platformErrors(principal.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN');
    }
    const player = await this.find(id);
    if (!player) throw fail('PLAYER_NOT_FOUND');
    return this.mask(ctx, player);
  }

  /** Read-through cache of the player record; invalidated by the players' own events. */
  find(id: string): Promise<PlayerRecord | undefined> {
    return cached(this.#kernel.cache, cacheKey(id), this.#kernel.config.cacheTtlSeconds, () => findPlayer(this.#db, id));
  }

  async invalidate(id: string): Promise<void> {
    await this.#kernel.cache.del(cacheKey(id));
  }

  async list(ctx: RequestContext, filter: Omit<PlayerFilter, 'emailNormalized' | 'loginNormalized'> & { email?: string; login?: string }): Promise<PlayerRecord[]> {
    if (!hasPermission(ctx.principal, PERMISSIONS.read)) throw platformErrors('FORBIDDEN');
    const rows = await listPlayers(tablesOf<PlayersTables>(this.#kernel.database.read), {
      ...filter,
      emailNormalized: filter.email ? normalizeEmail(filter.email) : undefined,
      loginNormalized: filter.login ? normalizeLogin(filter.login) : undefined,
    });
    return rows.map((p) => this.mask(ctx, p));
  }

  async changeStatus(ctx: RequestContext, id: string, to: PlayerStatus, reason: string): Promise<PlayerRecord> {
    if (!hasPermission(ctx.principal, PERMISSIONS.manage)) throw platformErrors('FORBIDDEN');
    const player = await this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<PlayersTables>(uow.trx);
      const current = await lockPlayer(db, id);
      if (!current) throw fail('PLAYER_NOT_FOUND');
      if (current.status === to) throw fail('PLAYER_STATUS_UNCHANGED');
      const updated = (await updateStatus(db, id, to))!;
      await uow.emit({ type: 'player.status_changed', playerId: id, payload: { playerId: id, from: current.status, to, reason } });
      await uow.audit({ action: 'player.status.change', target: { type: 'player', id }, changes: { from: current.status, to, reason } });
      return updated;
    });
    // The event invalidates every process's cache; this process need not wait for it.
    await this.invalidate(id);
    return this.mask(ctx, player);
  }

  /**
   * Records that the player proved they read mail at `email` (the identity module's
   * verification link). Only for the player's current address: a link for an address
   * they have since changed verifies nothing. Audited and emitted once.
   */
  async markEmailVerified(ctx: RequestContext, id: string, email: string): Promise<'verified' | 'already_verified' | 'email_changed' | 'not_found'> {
    const at = new Date();
    const outcome = await this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<PlayersTables>(uow.trx);
      const updated = await markEmailVerified(db, id, normalizeEmail(email), at);
      if (!updated) {
        const current = await emailStateOf(db, id);
        if (!current) return 'not_found' as const;
        return current.email_normalized !== normalizeEmail(email) ? ('email_changed' as const) : ('already_verified' as const);
      }
      await uow.emit({ type: 'player.email_verified', playerId: id, payload: { playerId: id, verifiedAt: at.toISOString() } });
      await uow.audit({ action: 'player.email.verify', target: { type: 'player', id }, changes: { emailVerified: true } });
      return 'verified' as const;
    });
    if (outcome === 'verified') await this.invalidate(id);
    return outcome;
  }

  mask(ctx: RequestContext, player: PlayerRecord): PlayerRecord {
    return maskPii(player, { email: maskEmail, dateOfBirth: maskDate }, ctx.principal, player.id);
  }

  // Passwords and email for the identity module (password change and reset, email change).

  /**
   * A signed-in player's password change, checked on one read of their credentials:
   * whether `current` is their password (a missing account costs the same verification
   * and does not match), and if it is, what the policy says of `next` as field errors at
   * `field` (empty: acceptable).
   */
  async checkPasswordChange(id: string, current: string, next: string, field: string): Promise<{ matches: false } | { matches: true; problems: FieldError[] }> {
    if (current.length > 4 * PASSWORD_MAX_LENGTH) return { matches: false };
    const found = await findCredentialsById(this.#db, id);
    const valid = await verifyPassword(found?.passwordHash ?? (await dummyPasswordHash()), current).catch(() => false);
    if (!valid || !found) return { matches: false };
    return { matches: true, problems: policyProblems(found, next, field) };
  }

  /** What the password policy says of a new password for this player, as field errors at `field`. */
  async newPasswordProblems(id: string, password: string, field: string): Promise<FieldError[]> {
    const found = await findCredentialsById(this.#db, id);
    if (!found) throw fail('PLAYER_NOT_FOUND');
    return policyProblems(found, password, field);
  }

  /**
   * Sets a new password (hashed here) inside the caller's transaction, so that the
   * caller's other changes (identity ending the player's sessions) commit with it. The
   * caller has checked the policy (newPasswordProblems).
   */
  async setPassword(uow: UnitOfWork, id: string, password: string): Promise<void> {
    const hash = await hashPassword(password);
    if (!(await updatePasswordHash(tablesOf<PlayersTables>(uow.trx), id, hash))) throw fail('PLAYER_NOT_FOUND');
  }

  /** The player an email or login names (a password reset request), or undefined. */
  async findByLoginOrEmail(loginOrEmail: string): Promise<{ id: string; status: PlayerStatus } | undefined> {
    if (loginOrEmail.length > 320) return undefined;
    const found = await findCredentials(this.#db, normalizeEmail(loginOrEmail), normalizeLogin(loginOrEmail));
    return found ? { id: found.id, status: found.status } : undefined;
  }

  /**
   * Changes a player's email address (the player themselves, after a step-up at the
   * edge); it must be valid and not another player's. Emits player.email_changed (no
   * address in it), which invalidates the cached record everywhere.
   */
  async changeEmail(ctx: RequestContext, id: string, email: string): Promise<PlayerRecord> {
    const normalized = normalizeEmail(email);
    if (!EMAIL.test(normalized)) throw platformErrors('VALIDATION_FAILED', { errors: [{ field: '/body/email', code: fieldCodes.EMAIL_INVALID, message: 'Enter a valid email address.' }] });
    try {
      const player = await this.#kernel.transaction(ctx, async (uow) => {
        const db = tablesOf<PlayersTables>(uow.trx);
        const current = await lockPlayer(db, id);
        if (!current) throw fail('PLAYER_NOT_FOUND');
        if (normalizeEmail(current.email) === normalized) throw fail('PLAYER_EMAIL_UNCHANGED');
        const taken = await findTaken(db, normalized, '');
        if (taken.email) throw fail('PLAYER_EMAIL_TAKEN');
        const updated = (await updateEmail(db, id, email.trim(), normalized))!;
        await uow.emit({ type: 'player.email_changed', playerId: id, payload: { playerId: id } });
        await uow.audit({ action: 'player.email.change', target: { type: 'player', id }, changes: { email: { from: maskEmail(current.email), to: maskEmail(updated.email) } } });
        return updated;
      });
      await this.invalidate(id);
      return player;
    } catch (error) {
      const code = (error as { code?: string }).code;
      const detail = String((error as { constraint?: string }).constraint ?? (error as Error).message);
      if (code === '23505' && detail.includes('players_email_unique')) throw fail('PLAYER_EMAIL_TAKEN');
      throw error;
    }
  }
}
