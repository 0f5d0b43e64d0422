import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { generateSecret, generateURI, verify } from 'otplib';
import { renderSVG } from 'uqr';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import { sha256Hex } from '../../platform/hash.ts';
import type { Kernel } from '../../platform/module.ts';
import { fail } from './errors.ts';
import type { IdentityTables } from './store.ts';

// TOTP (RFC 6238) as a second factor of players: SHA-1, 6 digits, 30-second steps (what
// every authenticator app reads from an otpauth URI), one step of clock drift either
// way, and no code used twice: the last accepted time step is remembered and only a
// later one is accepted (one conditional UPDATE, so two requests racing with one code
// cannot both win). Ten single-use recovery codes, 80 random bits each, stored as
// SHA-256 hashes (at that entropy a slow hash adds nothing).

const ISSUER = 'Pitboss';
const PERIOD = 30;
/** One step either way, in seconds (otplib counts the tolerance in seconds). */
const TOLERANCE = PERIOD;
const RECOVERY_CODES = 10;
const RECOVERY_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

export interface TotpEnrolment {
  /** Base32, for typing into an app that cannot scan. */
  readonly secret: string;
  readonly otpauthUri: string;
  /** The otpauth URI as a QR code (SVG). */
  readonly qrSvg: string;
}

export type SecondFactor = 'otp' | 'recovery_code';

const hashCode = (code: string): string => sha256Hex(code);
/** Recovery codes are read back by people: case, spaces and dashes do not matter. */
const normaliseRecovery = (code: string): string => code.toUpperCase().replace(/[\s-]/g, '');

function recoveryCode(): string {
  const bytes = randomBytes(16);
  let out = '';
  for (const byte of bytes) out += RECOVERY_ALPHABET[byte % RECOVERY_ALPHABET.length];
  return out.match(/.{4}/g)!.join('-');
}

export class TotpService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #now: () => number;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>, now: () => number = Date.now) {
    this.#kernel = kernel;
    this.#db = db;
    this.#now = now;
  }

  async isEnabled(accountId: string): Promise<boolean> {
    const row = await this.#db.selectFrom('identity.totp_factors').select('confirmed_at').where('account_id', '=', accountId).executeTakeFirst();
    return row?.confirmed_at != null;
  }

  /** Starts (or restarts) an enrolment: a new secret, not used at sign-in until confirmed. */
  async begin(accountId: string, label: string): Promise<TotpEnrolment> {
    if (await this.isEnabled(accountId)) throw fail('MFA_TOTP_ALREADY_ENABLED');
    const secret = generateSecret({ length: 20 });
    await this.#db
      .insertInto('identity.totp_factors')
      .values({ account_id: accountId, secret, confirmed_at: null, last_step: null, created_at: new Date() })
      .onConflict((oc) => oc.column('account_id').doUpdateSet({ secret, confirmed_at: null, last_step: null, created_at: new Date() }))
      .execute();
    const otpauthUri = generateURI({ issuer: ISSUER, label, secret, period: PERIOD, digits: 6, algorithm: 'sha1' });
    return { secret, otpauthUri, qrSvg: renderSVG(otpauthUri) };
  }

  /** Confirms an enrolment with a first code; returns the recovery codes (shown once). */
  async confirm(ctx: RequestContext, accountId: string, code: string, kind: 'player' | 'staff' = 'player'): Promise<string[]> {
    const row = await this.#db.selectFrom('identity.totp_factors').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!row) throw fail('MFA_TOTP_NOT_STARTED');
    if (row.confirmed_at) throw fail('MFA_TOTP_ALREADY_ENABLED');
    const step = await this.#check(row.secret, code, null);
    if (step === undefined) throw fail('MFA_CODE_INVALID');
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    await this.#kernel.transaction(ctx, async (uow) => {
      const trx = tablesOf<IdentityTables>(uow.trx);
      const done = await trx
        .updateTable('identity.totp_factors')
        .set({ confirmed_at: new Date(), last_step: step })
        .where('account_id', '=', accountId)
        .where('secret', '=', row.secret)
        .where('confirmed_at', 'is', null)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) !== 1) throw fail('MFA_TOTP_NOT_STARTED');
      await trx.deleteFrom('identity.recovery_codes').where('account_id', '=', accountId).execute();
      await trx
        .insertInto('identity.recovery_codes')
        .values(codes.map((c) => ({ account_id: accountId, code_hash: hashCode(normaliseRecovery(c)), used_at: null })))
        .execute();
      await uow.emit({ type: 'identity.mfa.enrolled', playerId: kind === 'player' ? accountId : null, payload: { playerId: accountId, method: 'totp' } });
      await uow.audit({ action: 'identity.mfa.enroll', target: { type: kind, id: accountId }, changes: { method: 'totp', recoveryCodes: RECOVERY_CODES } });
    });
    return codes;
  }

  /** The time step a code is valid for (within one step of now, after `after`), if any. */
  async #check(secret: string, code: string, after: number | null): Promise<number | undefined> {
    if (!/^\d{6}$/.test(code)) return undefined;
    const result = await verify({
      secret,
      token: code,
      period: PERIOD,
      epoch: Math.floor(this.#now() / 1000),
      epochTolerance: TOLERANCE,
      ...(after === null ? {} : { afterTimeStep: after }),
    });
    return result.valid && 'timeStep' in result ? result.timeStep : undefined;
  }

  /**
   * Checks a second factor at sign-in: a TOTP code (each time step once) or an unused
   * recovery code (then used up). Returns which one passed, or undefined.
   */
  async verify(accountId: string, input: string): Promise<SecondFactor | undefined> {
    const code = input.trim().replace(/\s/g, '');
    const row = await this.#db.selectFrom('identity.totp_factors').selectAll().where('account_id', '=', accountId).executeTakeFirst();
    if (!row?.confirmed_at) return undefined;
    if (/^\d{6}$/.test(code)) {
      const last = row.last_step === null ? null : Number(row.last_step);
      const step = await this.#check(row.secret, code, last);
      if (step === undefined) return undefined;
      const done = await this.#db
        .updateTable('identity.totp_factors')
        .set({ last_step: step })
        .where('account_id', '=', accountId)
        .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', step)]))
        .executeTakeFirst();
      return Number(done.numUpdatedRows) === 1 ? 'otp' : undefined;
    }
    const used = await this.#db
      .updateTable('identity.recovery_codes')
      .set({ used_at: sql<Date>`now()` })
      .where('account_id', '=', accountId)
      .where('code_hash', '=', hashCode(normaliseRecovery(code)))
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(used.numUpdatedRows) === 1 ? 'recovery_code' : undefined;
  }

  async recoveryCodesLeft(accountId: string): Promise<number> {
    const row = await this.#db
      .selectFrom('identity.recovery_codes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('account_id', '=', accountId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
