import type { Kysely } from 'kysely';
import { generateURI } from 'otplib';
import { renderSVG } from 'uqr';
import type { IdentityTables } from './store.ts';
import type { TotpEnrolment, TotpService } from './totp.ts';

/**
 * The authenticator app being enrolled on the sign-in page: the unconfirmed secret already
 * started in this sign-in (so a wrong first code shows the same QR code again), or a new one.
 */
export async function totpEnrolmentFor(db: Kysely<IdentityTables>, totp: TotpService, accountId: string, label: string, restart: boolean): Promise<TotpEnrolment> {
  if (!restart) {
    const row = await db.selectFrom('identity.totp_factors').select(['secret', 'confirmed_at']).where('account_id', '=', accountId).executeTakeFirst();
    if (row && row.confirmed_at === null) {
      // The same URI totp.ts gives (issuer, label, SHA-1, 6 digits, 30 s).
      const otpauthUri = generateURI({ issuer: 'Pitboss', label, secret: row.secret, period: 30, digits: 6, algorithm: 'sha1' });
      return { secret: row.secret, otpauthUri, qrSvg: renderSVG(otpauthUri) };
    }
  }
  return totp.begin(accountId, label);
}
