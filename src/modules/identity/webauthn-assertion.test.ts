import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../../test/support/app.ts';
import { databaseKinds } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { IdentityTables } from './store.ts';
import { insertCredential } from './webauthn-store.ts';
import { relyingPartyOf, WebAuthnService } from './webauthn.ts';

// The assertion check of the sign-in's passkey step, without a browser: a software
// authenticator (a P-256 key made here) signs what a real one would, so the test sets
// the counter, the flags, the origin and the RP ID that Chromium's virtual
// authenticator does not let a test choose.

const PUBLIC_URL = 'https://casino.test';
const ORIGIN = 'https://casino.test';
const RP_ID = 'casino.test';
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest();
const b64u = (data: Buffer) => data.toString('base64url');

/** Flags of authenticator data: user present, user verified. */
const UP = 0x01;
const UV = 0x04;

class SoftKey {
  readonly id = b64u(randomBytes(32));
  readonly #privateKey: KeyObject;
  readonly cose: Uint8Array;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    // COSE_Key (RFC 9053) as CBOR: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
    this.cose = new Uint8Array(
      Buffer.concat([
        Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]),
        Buffer.from(jwk.x!, 'base64url'),
        Buffer.from([0x22, 0x58, 0x20]),
        Buffer.from(jwk.y!, 'base64url'),
      ]),
    );
  }

  /** An assertion (AuthenticationResponseJSON, as the page's script posts it). */
  assert(challenge: string, counter: number, options: { flags?: number; origin?: string; rpId?: string; type?: string } = {}): string {
    const clientDataJSON = Buffer.from(JSON.stringify({ type: options.type ?? 'webauthn.get', challenge, origin: options.origin ?? ORIGIN, crossOrigin: false }));
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    const authenticatorData = Buffer.concat([sha256(options.rpId ?? RP_ID), Buffer.from([options.flags ?? UP | UV]), count]);
    const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), this.#privateKey);
    return JSON.stringify({
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authenticatorData), signature: b64u(signature) },
    });
  }
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`the passkey step's assertion check (${kind})`, { skip }, () => {
    let app: TestApp;
    let service: WebAuthnService;
    const ctx = systemContext('test');
    const db = () => tablesOf<IdentityTables>(app.server.runtime.database.db);

    /** A player id with a software key registered at `counter`. */
    async function enrolled(counter: number): Promise<{ accountId: string; key: SoftKey }> {
      const accountId = randomUUID();
      const key = new SoftKey();
      await insertCredential(db(), {
        account_id: accountId,
        credential_id: key.id,
        public_key: key.cose,
        counter,
        transports: ['usb'],
        device_type: 'singleDevice',
        backed_up: false,
        aaguid: '00000000-0000-0000-0000-000000000000',
        name: 'Soft key',
      });
      return { accountId, key };
    }

    /** A new sign-in interaction's challenge for the account. */
    async function challenge(accountId: string): Promise<{ uid: string; challenge: string }> {
      const uid = randomUUID();
      const options = await service.authenticationOptions(accountId, uid);
      assert.equal(options.rpId, RP_ID);
      assert.equal(options.userVerification, 'required');
      return { uid, challenge: options.challenge };
    }

    const counterOf = async (credentialId: string) =>
      Number((await db().selectFrom('identity.webauthn_credentials').select('counter').where('credential_id', '=', credentialId).executeTakeFirstOrThrow()).counter);

    before(async () => {
      app = await startTestApp(kind, { PUBLIC_URL });
      service = new WebAuthnService(app.server.runtime.kernel, db(), relyingPartyOf(PUBLIC_URL));
    });
    after(async () => app?.close());

    it('a key that keeps no counter (0 every time, as synced passkeys do) is accepted every time', async () => {
      const { accountId, key } = await enrolled(0);
      for (let i = 0; i < 3; i++) {
        const { uid, challenge: c } = await challenge(accountId);
        assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, 0)), 'verified');
      }
      assert.equal(await counterOf(key.id), 0);
    });

    it('a counter that does not grow is refused and audited; one that grows is accepted and kept', async () => {
      const { accountId, key } = await enrolled(5);
      for (const stale of [5, 3, 0]) {
        const { uid, challenge: c } = await challenge(accountId);
        assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, stale)), 'invalid', `counter ${stale}`);
      }
      const audit = await sql<{ changes: unknown }>`select changes from platform.audit_log where action = 'identity.mfa.webauthn_counter_regressed' and target_id = ${accountId} order by at`.execute(app.server.runtime.database.db);
      assert.deepEqual(
        audit.rows.map((r) => r.changes),
        [5, 3, 0].map((presented) => ({ credentialId: key.id, storedCounter: 5, presentedCounter: presented })),
      );
      assert.equal(await counterOf(key.id), 5);
      const { uid, challenge: c } = await challenge(accountId);
      assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, 9)), 'verified');
      assert.equal(await counterOf(key.id), 9);
      const used = await db().selectFrom('identity.webauthn_credentials').select('last_used_at').where('credential_id', '=', key.id).executeTakeFirstOrThrow();
      assert.ok(used.last_used_at);
    });

    it('refused: no user verification, another origin, RP ID or ceremony, a bad signature, an unknown key, another account\'s challenge, a used challenge, malformed input', async () => {
      const { accountId, key } = await enrolled(1);
      const other = await enrolled(1);
      const stranger = new SoftKey();
      const cases: [string, (c: string) => string][] = [
        ['user present, not verified', (c) => key.assert(c, 2, { flags: UP })],
        ['another origin', (c) => key.assert(c, 2, { origin: 'https://evil.test' })],
        ['another RP ID', (c) => key.assert(c, 2, { rpId: 'evil.test' })],
        ['a registration ceremony', (c) => key.assert(c, 2, { type: 'webauthn.create' })],
        ['another challenge', () => key.assert(b64u(randomBytes(32)), 2)],
        ['a key not registered', (c) => stranger.assert(c, 2)],
        ['another key signing for this credential', (c) => JSON.stringify({ ...JSON.parse(stranger.assert(c, 2)), id: key.id, rawId: key.id })],
        ['not JSON', () => '{"id":'],
        ['not an assertion', () => JSON.stringify({ id: key.id })],
      ];
      for (const [name, make] of cases) {
        const { uid, challenge: c } = await challenge(accountId);
        assert.equal(await service.verifyAssertion(ctx, accountId, uid, make(c)), 'invalid', name);
        // Whatever the outcome, the challenge is used up: the right assertion fails after.
        assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, 2)), 'invalid', `${name}: challenge reused`);
      }
      // The challenge of another account's sign-in.
      const theirs = await challenge(other.accountId);
      assert.equal(await service.verifyAssertion(ctx, accountId, theirs.uid, key.assert(theirs.challenge, 2)), 'invalid');
      assert.equal(await counterOf(key.id), 1, 'nothing was accepted');

      const { uid, challenge: c } = await challenge(accountId);
      assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, 2)), 'verified');
      assert.equal(await service.verifyAssertion(ctx, accountId, uid, key.assert(c, 3)), 'invalid', 'a challenge answers once');
    });
  });
}
