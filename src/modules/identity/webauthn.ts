import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Kysely } from 'kysely';
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import type { RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { Kernel } from '../../platform/module.ts';
import { fail } from './errors.ts';
import type { IdentityTables } from './store.ts';
import {
  countCredentials,
  credentialExists,
  deleteCredential,
  findCredential,
  insertCredential,
  listCredentials,
  peekChallenge,
  putChallenge,
  recordUse,
  takeChallenge,
  type WebAuthnCredentialRecord,
} from './webauthn-store.ts';

// WebAuthn (passkeys and hardware security keys) as a second factor of players, with
// @simplewebauthn/server. The relying party is PUBLIC_URL: its hostname is the RP ID, its
// origin the only origin accepted. User verification (PIN, biometrics) is required at
// registration and at sign-in. Challenges are kept in identity.webauthn_challenges,
// bound to the account (registration) or to the sign-in interaction, single use and
// expiring. A signature counter that does not grow (when the authenticator keeps one)
// means a cloned authenticator: the sign-in is refused and audited.

const RP_NAME = 'Pitboss';
/** How long a ceremony may take, and its challenge live (ms). */
const CEREMONY_MS = 300_000;
/**
 * COSE algorithms accepted: EdDSA, ES256, RS256 (what authenticators use). Named, not
 * left to the library's default, which probes Node's experimental WebCrypto for ML-DSA.
 */
const ALGORITHMS = [-8, -7, -257];
/** Passkeys and security keys one account may have. */
export const MAX_CREDENTIALS = 20;

const base64url = Type.String({ pattern: '^[A-Za-z0-9_-]*$', maxLength: 20_000 });
const credentialId = Type.String({ pattern: '^[A-Za-z0-9_-]+$', minLength: 16, maxLength: 1400 });

/** The fields every PublicKeyCredential has as JSON, whatever the ceremony. */
const credentialFields = {
  id: credentialId,
  rawId: credentialId,
  type: Type.Literal('public-key'),
  authenticatorAttachment: Type.Optional(Type.Union([Type.Enum(['platform', 'cross-platform']), Type.Null()])),
  clientExtensionResults: Type.Record(Type.String(), Type.Unknown()),
};

/** A RegistrationResponseJSON (what `credential.toJSON()` gives after navigator.credentials.create). */
export const RegistrationResponse = Type.Object(
  {
    ...credentialFields,
    response: Type.Object({
      clientDataJSON: base64url,
      attestationObject: base64url,
      authenticatorData: Type.Optional(base64url),
      transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
      publicKeyAlgorithm: Type.Optional(Type.Integer()),
      publicKey: Type.Optional(base64url),
    }),
  },
  { $id: 'WebAuthnRegistrationResponse', description: 'The credential from navigator.credentials.create, as JSON (`credential.toJSON()`): binary fields base64url.' },
);

/** An AuthenticationResponseJSON (navigator.credentials.get's credential as JSON). */
const AuthenticationResponse = Type.Object({
  ...credentialFields,
  response: Type.Object({
    clientDataJSON: base64url,
    authenticatorData: base64url,
    signature: base64url,
    userHandle: Type.Optional(Type.Union([base64url, Type.Null()])),
  }),
});

const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

/** The WebAuthn user handle of an account: its id's 16 bytes, no personal data. */
const userHandle = (accountId: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(accountId.replace(/-/g, ''), 'hex'));

export type AssertionOutcome = 'verified' | 'invalid';

export interface RelyingParty {
  /** PUBLIC_URL's hostname. */
  readonly id: string;
  /** PUBLIC_URL's origin. */
  readonly origin: string;
}

export const relyingPartyOf = (publicUrl: string | undefined): RelyingParty => {
  const url = new URL(publicUrl ?? 'http://localhost:8080');
  return { id: url.hostname, origin: url.origin };
};

export class WebAuthnService {
  readonly #kernel: Kernel;
  readonly #db: Kysely<IdentityTables>;
  readonly #rp: RelyingParty;

  constructor(kernel: Kernel, db: Kysely<IdentityTables>, rp: RelyingParty) {
    this.#kernel = kernel;
    this.#db = db;
    this.#rp = rp;
  }

  async hasCredentials(accountId: string): Promise<boolean> {
    return (await countCredentials(this.#db, accountId)) > 0;
  }

  list(accountId: string): Promise<WebAuthnCredentialRecord[]> {
    return listCredentials(this.#db, accountId);
  }

  /** Starts a registration: options for navigator.credentials.create, the challenge kept for the account. */
  async registrationOptions(accountId: string, label: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await listCredentials(this.#db, accountId);
    if (existing.length >= MAX_CREDENTIALS) throw fail('WEBAUTHN_CREDENTIAL_LIMIT');
    const options = await generateRegistrationOptions({
      rpName: RP_NAME,
      rpID: this.#rp.id,
      userID: userHandle(accountId),
      userName: label,
      userDisplayName: label,
      timeout: CEREMONY_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      supportedAlgorithmIDs: ALGORITHMS,
    });
    await putChallenge(this.#db, { purpose: 'registration', subject: accountId, account_id: accountId, challenge: options.challenge, expires_at: new Date(Date.now() + CEREMONY_MS) });
    return options;
  }

  /**
   * Finishes a registration. A response that fails verification changes nothing (the
   * challenge stays for another try until it expires); a verified one uses the challenge up.
   */
  async register(ctx: RequestContext, accountId: string, response: RegistrationResponseJSON, name: string | undefined): Promise<WebAuthnCredentialRecord> {
    const pending = await peekChallenge(this.#db, 'registration', accountId);
    if (!pending) throw fail('WEBAUTHN_CHALLENGE_INVALID');
    let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: pending.challenge,
        expectedOrigin: this.#rp.origin,
        expectedRPID: this.#rp.id,
        requireUserPresence: true,
        requireUserVerification: true,
        supportedAlgorithmIDs: ALGORITHMS,
      });
    } catch (err) {
      throw fail('WEBAUTHN_RESPONSE_INVALID', { detail: err instanceof Error ? err.message : String(err) });
    }
    if (!verified.verified) throw fail('WEBAUTHN_RESPONSE_INVALID');
    const info = verified.registrationInfo;
    if (await credentialExists(this.#db, info.credential.id)) throw fail('WEBAUTHN_CREDENTIAL_EXISTS');
    const transports = (info.credential.transports ?? response.response.transports ?? []).filter((t) => TRANSPORTS.has(t));
    return this.#kernel.transaction(ctx, async (uow) => {
      const trx = tablesOf<IdentityTables>(uow.trx);
      if (!(await takeChallenge(trx, 'registration', accountId, pending.challenge))) throw fail('WEBAUTHN_CHALLENGE_INVALID');
      if ((await countCredentials(trx, accountId)) >= MAX_CREDENTIALS) throw fail('WEBAUTHN_CREDENTIAL_LIMIT');
      const record = await insertCredential(trx, {
        account_id: accountId,
        credential_id: info.credential.id,
        public_key: info.credential.publicKey,
        counter: info.credential.counter,
        transports,
        device_type: info.credentialDeviceType,
        backed_up: info.credentialBackedUp,
        aaguid: info.aaguid,
        name: name ?? (info.credentialDeviceType === 'multiDevice' ? 'Passkey' : 'Security key'),
      });
      if (!record) throw fail('WEBAUTHN_CREDENTIAL_EXISTS');
      await uow.emit({ type: 'identity.mfa.enrolled', playerId: accountId, payload: { playerId: accountId, method: 'webauthn' } });
      await uow.audit({
        action: 'identity.mfa.enroll',
        target: { type: 'player', id: accountId },
        changes: { method: 'webauthn', credentialId: record.id, name: record.name, deviceType: record.deviceType, aaguid: record.aaguid },
      });
      return record;
    });
  }

  async remove(ctx: RequestContext, accountId: string, credentialId: string): Promise<void> {
    await this.#kernel.transaction(ctx, async (uow) => {
      const removed = await deleteCredential(tablesOf<IdentityTables>(uow.trx), accountId, credentialId);
      if (!removed) throw fail('WEBAUTHN_CREDENTIAL_NOT_FOUND');
      await uow.emit({ type: 'identity.mfa.removed', playerId: accountId, payload: { playerId: accountId, method: 'webauthn' } });
      await uow.audit({ action: 'identity.mfa.remove', target: { type: 'player', id: accountId }, changes: { method: 'webauthn', credentialId: removed.id, name: removed.name } });
    });
  }

  /**
   * Options for navigator.credentials.get at the sign-in's second step, for the account
   * that passed the password; the challenge is bound to the interaction (a new one
   * replaces the last).
   */
  async authenticationOptions(accountId: string, interactionUid: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const credentials = await listCredentials(this.#db, accountId);
    const options = await generateAuthenticationOptions({
      rpID: this.#rp.id,
      allowCredentials: credentials.map((c) => ({ id: c.id, transports: c.transports })),
      userVerification: 'required',
      timeout: CEREMONY_MS,
    });
    await putChallenge(this.#db, { purpose: 'authentication', subject: interactionUid, account_id: accountId, challenge: options.challenge, expires_at: new Date(Date.now() + CEREMONY_MS) });
    return options;
  }

  /**
   * Verifies an assertion posted at the sign-in's second step. The interaction's
   * challenge is used up whatever the outcome. A counter that does not grow is audited.
   */
  async verifyAssertion(ctx: RequestContext, accountId: string, interactionUid: string, posted: string): Promise<AssertionOutcome> {
    const pending = await takeChallenge(this.#db, 'authentication', interactionUid);
    if (!pending || pending.account_id !== accountId) return 'invalid';
    let response: AuthenticationResponseJSON;
    try {
      const parsed: unknown = JSON.parse(posted);
      if (!Value.Check(AuthenticationResponse, parsed)) return 'invalid';
      response = parsed as AuthenticationResponseJSON;
    } catch {
      return 'invalid';
    }
    const { userHandle: handle } = response.response;
    if (handle && handle !== Buffer.from(userHandle(accountId)).toString('base64url')) return 'invalid';
    const credential = await findCredential(this.#db, accountId, response.id);
    if (!credential) return 'invalid';
    let info: Awaited<ReturnType<typeof verifyAuthenticationResponse>>['authenticationInfo'];
    try {
      const verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: pending.challenge,
        expectedOrigin: this.#rp.origin,
        expectedRPID: this.#rp.id,
        // The counter is checked below, where a regression can be told apart and audited.
        credential: { id: credential.id, publicKey: credential.publicKey, counter: 0, transports: credential.transports },
        requireUserVerification: true,
      });
      if (!verified.verified) return 'invalid';
      info = verified.authenticationInfo;
    } catch {
      return 'invalid';
    }
    const stored = credential.counter;
    const presented = info.newCounter;
    if ((presented > 0 || stored > 0) && presented <= stored) {
      await this.#kernel.transaction(ctx, async (uow) => {
        await uow.audit({
          action: 'identity.mfa.webauthn_counter_regressed',
          target: { type: 'player', id: accountId },
          changes: { credentialId: credential.id, storedCounter: stored, presentedCounter: presented },
        });
      });
      this.#kernel.logger.warn({ accountId, credentialId: credential.id, storedCounter: stored, presentedCounter: presented }, 'WebAuthn signature counter did not increase: possibly a cloned authenticator');
      return 'invalid';
    }
    return (await recordUse(this.#db, accountId, credential.id, stored, presented, info.credentialBackedUp)) ? 'verified' : 'invalid';
  }
}
