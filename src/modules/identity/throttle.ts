import { createHash } from 'node:crypto';
import type { Cache } from '../../platform/cache/cache.ts';

// Brute-force protection of the hosted sign-in page: failure counters per account (the
// login or email as typed, normalised, so an unknown account is counted exactly like a
// known one and the answers stay the same) and per source address, in the platform
// cache (Redis when configured, so every process shares them).
//
// The counters are read and written with the cache's get and set, not an atomic
// increment: two failures of the same account racing in two processes may count once.
// The race loses at most the attempts in flight at the same moment, and every attempt
// after the lock threshold is refused anyway, so it delays the lock by a few attempts at
// most; the progressive delay makes such bursts slow.

export interface ThrottleSettings {
  /** Failures (per account) after which each answer is delayed, doubling each time. */
  readonly delayAfter: number;
  /** The first delay (ms); it doubles with each further failure, up to maxDelayMs. */
  readonly delayMs: number;
  readonly maxDelayMs: number;
  /** Failures of one account within the window that lock it. */
  readonly accountLockThreshold: number;
  /** Failures from one source address within the window that lock it. */
  readonly sourceLockThreshold: number;
  /** How long a lock lasts (seconds). */
  readonly lockSeconds: number;
  /** How long failures are remembered (seconds since the last one). */
  readonly windowSeconds: number;
}

export type LockScope = 'account' | 'source';

export interface Lock {
  readonly scope: LockScope;
  readonly until: Date;
}

interface Counter {
  failures: number;
  /** Epoch ms the lock ends, when locked. */
  lockedUntil?: number;
}

const hash = (value: string): string => createHash('sha256').update(value).digest('base64url');

/** The account counter's key: the login or email as typed, normalised (case and spaces). */
export const accountKey = (loginOrEmail: string): string => `identity:sign-in:account:${hash(loginOrEmail.trim().toLowerCase())}`;
const sourceKey = (sourceIp: string): string => `identity:sign-in:source:${hash(sourceIp)}`;

export class SignInThrottle {
  readonly #cache: Cache;
  readonly #settings: ThrottleSettings;
  readonly #now: () => number;

  constructor(cache: Cache, settings: ThrottleSettings, now: () => number = Date.now) {
    this.#cache = cache;
    this.#settings = settings;
    this.#now = now;
  }

  async #read(key: string): Promise<Counter> {
    try {
      const raw = await this.#cache.get(key);
      if (raw === undefined) return { failures: 0 };
      const parsed = JSON.parse(raw) as Partial<Counter>;
      return { failures: Number(parsed.failures) || 0, lockedUntil: typeof parsed.lockedUntil === 'number' ? parsed.lockedUntil : undefined };
    } catch {
      // A cache outage must not lock everyone out; it turns the protection off until it is back.
      return { failures: 0 };
    }
  }

  #keys(loginOrEmail: string, sourceIp: string | null): { scope: LockScope; key: string; threshold: number }[] {
    const keys: { scope: LockScope; key: string; threshold: number }[] = [{ scope: 'account', key: accountKey(loginOrEmail), threshold: this.#settings.accountLockThreshold }];
    if (sourceIp) keys.push({ scope: 'source', key: sourceKey(sourceIp), threshold: this.#settings.sourceLockThreshold });
    return keys;
  }

  /** The lock in force for this login or email or this source address, if any. */
  async lockOf(loginOrEmail: string, sourceIp: string | null): Promise<Lock | undefined> {
    const now = this.#now();
    for (const { scope, key } of this.#keys(loginOrEmail, sourceIp)) {
      const counter = await this.#read(key);
      if (counter.lockedUntil !== undefined && counter.lockedUntil > now) return { scope, until: new Date(counter.lockedUntil) };
    }
    return undefined;
  }

  /**
   * Counts a failure against the account and the source address. Returns how long to
   * delay the answer (ms), and the locks this failure set (each lock is reported once).
   */
  async recordFailure(loginOrEmail: string, sourceIp: string | null): Promise<{ delayMs: number; locked: (Lock & { failures: number })[] }> {
    const now = this.#now();
    const s = this.#settings;
    const locked: (Lock & { failures: number })[] = [];
    let accountFailures = 0;
    for (const { scope, key, threshold } of this.#keys(loginOrEmail, sourceIp)) {
      const counter = await this.#read(key);
      // An expired lock starts a fresh count.
      if (counter.lockedUntil !== undefined && counter.lockedUntil <= now) {
        counter.failures = 0;
        counter.lockedUntil = undefined;
      }
      counter.failures += 1;
      if (scope === 'account') accountFailures = counter.failures;
      let ttl = s.windowSeconds;
      if (counter.lockedUntil === undefined && counter.failures >= threshold) {
        counter.lockedUntil = now + s.lockSeconds * 1000;
        locked.push({ scope, until: new Date(counter.lockedUntil), failures: counter.failures });
      }
      if (counter.lockedUntil !== undefined) ttl = Math.max(ttl, Math.ceil((counter.lockedUntil - now) / 1000) + 1);
      await this.#cache.set(key, JSON.stringify(counter), ttl).catch(() => {});
    }
    const over = accountFailures - s.delayAfter;
    const delayMs = over <= 0 || locked.length > 0 ? 0 : Math.min(s.maxDelayMs, s.delayMs * 2 ** Math.min(over - 1, 20));
    return { delayMs, locked };
  }

  /** A successful sign-in clears the account's failures (not the source address's). */
  async recordSuccess(loginOrEmail: string): Promise<void> {
    await this.#cache.del(accountKey(loginOrEmail)).catch(() => {});
  }
}
