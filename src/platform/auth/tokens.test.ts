import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, decodeProtectedHeader, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import { createTestDatabase, databaseKinds, testConfig, type TestDatabase } from '../../../test/support/databases.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { DomainError } from '../errors.ts';
import { platformMigrations } from '../migrations/index.ts';
import { KeyStore } from './keys.ts';
import { hasPermission } from './principal.ts';
import { ACCESS_TOKEN_AUDIENCE, TokenService } from './tokens.ts';

const ISSUER = 'https://pitboss.test';
const STAFF_ID = '01900000-0000-7000-8000-000000000001';
const PLAYER_ID = '01900000-0000-7000-8000-000000000002';
const now = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Any defect must surface as UNAUTHENTICATED (401), never as another error. */
async function assertUnauthenticated(attempt: Promise<unknown>, detail: RegExp): Promise<void> {
  await assert.rejects(attempt, (error: unknown) => {
    assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
    assert.equal(error.code, 'UNAUTHENTICATED');
    assert.equal(error.status, 401);
    assert.match(error.message, detail);
    return true;
  });
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`access tokens and signing keys (${kind})`, { skip }, () => {
    let testDb: TestDatabase;
    let database: Database;
    let keys: KeyStore;
    let tokens: TokenService;

    before(async () => {
      testDb = await createTestDatabase(kind);
      database = await openDatabase(testConfig(testDb));
      await migrate(database.db, [platformMigrations]);
      keys = new KeyStore(database.db, { rotationDays: 30, maxTokenTtlSeconds: 86_400 });
      tokens = new TokenService(keys, ISSUER, 900);
    });
    after(async () => {
      await database?.close();
      await testDb?.drop();
    });

    /** A token signed with the store's real current key, with claims chosen by the test. */
    async function forge(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
      const key = await keys.signingKey();
      return new SignJWT({ kind: 'staff', perm: ['*'], ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt', ...header })
        .sign(key.privateKey);
    }
    const valid = (over: JWTPayload = {}): JWTPayload => ({ iss: ISSUER, aud: ACCESS_TOKEN_AUDIENCE, sub: STAFF_ID, iat: now(), nbf: now(), exp: now() + 600, ...over });

    it('issues ES256 tokens that verify into the right principal: player, staff with permissions, service', async () => {
      const player = await tokens.issue({ kind: 'player', id: PLAYER_ID });
      assert.deepEqual(await tokens.verify(player.token), { kind: 'player', id: PLAYER_ID });

      const staff = await tokens.issue({ kind: 'staff', id: STAFF_ID, permissions: ['players.read', 'pii.read'] }, 120);
      const staffPrincipal = await tokens.verify(staff.token);
      assert.deepEqual(staffPrincipal, { kind: 'staff', id: STAFF_ID, permissions: new Set(['players.read', 'pii.read']) });
      assert.equal(hasPermission(staffPrincipal, 'players.read'), true);
      assert.equal(hasPermission(staffPrincipal, 'players.write'), false);

      const service = await tokens.issue({ kind: 'service', id: 'payments-gateway', permissions: ['*'] });
      const servicePrincipal = await tokens.verify(service.token);
      assert.deepEqual(servicePrincipal, { kind: 'service', id: 'payments-gateway', permissions: new Set(['*']) });
      assert.equal(hasPermission(servicePrincipal, 'anything.at.all'), true);

      const header = decodeProtectedHeader(staff.token);
      assert.deepEqual(header, { alg: 'ES256', kid: (await keys.signingKey()).kid, typ: 'at+jwt' });
      const claims = decodeJwt(staff.token);
      assert.equal(claims.iss, ISSUER);
      assert.equal(claims.aud, ACCESS_TOKEN_AUDIENCE);
      assert.equal(claims.exp! - claims.iat!, 120);
      assert.equal(staff.expiresAt.getTime(), claims.exp! * 1000);
      assert.equal(decodeJwt(player.token).exp! - decodeJwt(player.token).iat!, 900, 'the default lifetime');
      assert.equal(decodeJwt(player.token).perm, undefined, 'player tokens carry no permissions');
    });

    it('refuses an unsigned `alg: none` token, with or without a real kid', async () => {
      const unsecured = new UnsecuredJWT({ kind: 'staff', perm: ['*'] }).setIssuer(ISSUER).setAudience(ACCESS_TOKEN_AUDIENCE).setSubject(STAFF_ID).setIssuedAt().setExpirationTime('5m').encode();
      await assertUnauthenticated(tokens.verify(unsecured), /algorithm none/);
      const kid = (await keys.signingKey()).kid;
      const withKid = `${b64url({ alg: 'none', kid })}.${b64url({ kind: 'staff', perm: ['*'], ...valid() })}.`;
      await assertUnauthenticated(tokens.verify(withKid), /algorithm none/);
    });

    it('refuses HS256 tokens keyed with the public key (algorithm confusion)', async () => {
      const { kid } = await keys.signingKey();
      const jwk = (await keys.jwks()).keys.find((k) => k.kid === kid)!;
      const publicKey = (await keys.publicKey(kid))!;
      const secrets = [new TextEncoder().encode(JSON.stringify(jwk)), new TextEncoder().encode(await exportSPKI(publicKey))];
      for (const secret of secrets) {
        const token = await new SignJWT({ kind: 'staff', perm: ['*'], ...valid() }).setProtectedHeader({ alg: 'HS256', kid }).sign(secret);
        await assertUnauthenticated(tokens.verify(token), /algorithm HS256/);
      }
    });

    it('refuses expired tokens, and tokens not valid yet beyond the clock tolerance', async () => {
      await assertUnauthenticated(tokens.verify(await forge(valid({ iat: now() - 120, nbf: now() - 120, exp: now() - 60 }))), /expired/);
      await assertUnauthenticated(tokens.verify(await forge(valid({ nbf: now() + 60 }))), /nbf claim/);
      // Within the 5 s tolerance both ways: a little clock skew between machines is fine.
      assert.equal((await tokens.verify(await forge(valid({ nbf: now() + 2 })))).kind, 'staff');
      assert.equal((await tokens.verify(await forge(valid({ exp: now() - 2 })))).kind, 'staff');
    });

    it('a token verified before is refused once it expires (verified tokens are remembered only until then)', async () => {
      const exp = now() - 3;
      const token = await forge(valid({ exp }));
      assert.equal((await tokens.verify(token)).kind, 'staff', 'within the clock tolerance');
      assert.equal((await tokens.verify(token)).kind, 'staff', 'again, as remembered');
      await sleep((exp + 5) * 1000 - Date.now() + 150);
      await assertUnauthenticated(tokens.verify(token), /expired/);
    });

    it('refuses a wrong issuer, a wrong audience, and missing required claims', async () => {
      await assertUnauthenticated(tokens.verify(await forge(valid({ iss: 'https://evil.test' }))), /iss claim/);
      await assertUnauthenticated(tokens.verify(await forge(valid({ aud: 'another-api' }))), /aud claim/);
      const { sub: _sub, ...noSub } = valid();
      await assertUnauthenticated(tokens.verify(await forge(noSub)), /sub claim/);
    });

    it('refuses an unknown kid, a missing kid, and a foreign key posing under a real kid', async () => {
      const foreign = await generateKeyPair('ES256');
      const claims = { kind: 'staff', perm: ['*'], ...valid() };
      const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'not-a-key-of-ours' }).sign(foreign.privateKey);
      await assertUnauthenticated(tokens.verify(unknownKid), /unknown or expired key/);
      const noKid = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(foreign.privateKey);
      await assertUnauthenticated(tokens.verify(noKid), /no key id/);
      const posing = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: (await keys.signingKey()).kid }).sign(foreign.privateKey);
      await assertUnauthenticated(tokens.verify(posing), /signature is not valid/);
    });

    it('refuses a tampered payload (a staff member granting themself `*`) and garbage', async () => {
      const { token } = await tokens.issue({ kind: 'staff', id: STAFF_ID, permissions: ['players.read'] });
      const [header, payload, signature] = token.split('.');
      const elevated = { ...(JSON.parse(Buffer.from(payload!, 'base64url').toString()) as JWTPayload), perm: ['*'] };
      await assertUnauthenticated(tokens.verify(`${header}.${b64url(elevated)}.${signature}`), /signature is not valid/);
      await assertUnauthenticated(tokens.verify(`${header}.${payload}.${signature!.slice(0, -4)}AAAA`), /signature is not valid/);
      await assertUnauthenticated(tokens.verify('not.a.jwt'), /malformed/);
      await assertUnauthenticated(tokens.verify(''), /malformed/);
    });

    it('refuses a correctly signed token that names no known principal kind (no one becomes `system`)', async () => {
      await assertUnauthenticated(tokens.verify(await forge(valid({ kind: 'system' }))), /no known principal kind/);
      await assertUnauthenticated(tokens.verify(await forge(valid({ kind: undefined }))), /no known principal kind/);
    });

    it('rotation: after retireCurrent new tokens use a new kid, old tokens still verify, JWKS publishes both', async () => {
      const old = await tokens.issue({ kind: 'staff', id: STAFF_ID, permissions: ['players.read'] });
      const oldKid = decodeProtectedHeader(old.token).kid!;
      await keys.retireCurrent();
      const fresh = await tokens.issue({ kind: 'staff', id: STAFF_ID, permissions: ['players.read'] });
      const newKid = decodeProtectedHeader(fresh.token).kid!;
      assert.notEqual(newKid, oldKid);
      assert.equal((await tokens.verify(old.token)).kind, 'staff');
      assert.equal((await tokens.verify(fresh.token)).kind, 'staff');

      const jwks = await keys.jwks();
      const kids = jwks.keys.map((k) => k.kid);
      assert.ok(kids.includes(oldKid) && kids.includes(newKid), `JWKS has ${kids.join(', ')}`);
      for (const jwk of jwks.keys) {
        assert.equal(jwk.d, undefined, 'no private part is ever published');
        assert.equal(jwk.alg, 'ES256');
        assert.equal(jwk.use, 'sig');
      }
      // Another process reads the same keys from the database: it signs with the new key
      // and accepts the old key's tokens.
      const otherProcess = new TokenService(new KeyStore(database.db, { rotationDays: 30, maxTokenTtlSeconds: 86_400 }), ISSUER, 900);
      assert.equal(decodeProtectedHeader((await otherProcess.issue({ kind: 'player', id: PLAYER_ID })).token).kid, newKid);
      assert.equal((await otherProcess.verify(old.token)).kind, 'staff');
    });

    // Regression: the public-key cache kept a key forever and the JWKS cache for 10 s,
    // so a process that had once verified a key went on accepting it after its expiry.
    it('a key past its expires_at leaves the JWKS and its tokens are refused, even by a process that cached it', async () => {
      // A key this store has never seen verify anything, so its cache learns the short expiry.
      await keys.retireCurrent();
      const doomed = await tokens.issue({ kind: 'staff', id: STAFF_ID, permissions: ['*'] }, 900);
      const doomedKid = decodeProtectedHeader(doomed.token).kid!;
      await keys.retireCurrent();
      // The end of its publication, brought close instead of waited for.
      const { expires_at: expiresAt } = await database.db
        .updateTable('platform.signing_keys')
        .set({ expires_at: new Date(Date.now() + 2000) })
        .where('kid', '=', doomedKid)
        .returning('expires_at')
        .executeTakeFirstOrThrow();
      assert.equal((await tokens.verify(doomed.token)).kind, 'staff', 'still valid until the key expires');
      assert.ok((await keys.jwks()).keys.some((k) => k.kid === doomedKid));
      const successor = await tokens.issue({ kind: 'player', id: PLAYER_ID });
      const successorKid = decodeProtectedHeader(successor.token).kid!;

      await sleep(expiresAt.getTime() - Date.now() + 100);
      await assertUnauthenticated(tokens.verify(doomed.token), /unknown or expired key/);
      const kids = (await keys.jwks()).keys.map((k) => k.kid);
      assert.ok(!kids.includes(doomedKid), 'the expired key left the JWKS');
      assert.ok(kids.includes(successorKid));
      assert.equal((await tokens.verify(successor.token)).kind, 'player', 'the successor is unaffected');
      const otherProcess = new TokenService(new KeyStore(database.db, { rotationDays: 30, maxTokenTtlSeconds: 86_400 }), ISSUER, 900);
      await assertUnauthenticated(otherProcess.verify(doomed.token), /unknown or expired key/);
    });
  });
}
