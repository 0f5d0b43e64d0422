import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canSeePii, maskDate, maskEmail, maskPii, maskText, PII_PERMISSION } from './pii.ts';
import { actorOf, anonymous, hasPermission, systemContext, type Principal } from './principal.ts';

const PLAYER = '01900000-0000-7000-8000-00000000000a';
const OTHER_PLAYER = '01900000-0000-7000-8000-00000000000b';
const staff = (...permissions: string[]): Principal => ({ kind: 'staff', id: 'staff-1', permissions: new Set(permissions) });
const service = (...permissions: string[]): Principal => ({ kind: 'service', id: 'kyc-vendor', permissions: new Set(permissions) });
const player = (id: string): Principal => ({ kind: 'player', id });

describe('PII masking helpers', () => {
  it('maskEmail keeps the first letters and the top-level domain only', () => {
    assert.equal(maskEmail('alice.smith@example.org'), 'a***@e***.org');
    assert.equal(maskEmail('b@mail.co.uk'), 'b***@m***.uk');
    assert.equal(maskEmail('x@localhost'), 'x***@l***');
    assert.equal(maskEmail('odd@'), 'o***@***');
    // Not an email at all: masked as text, never returned as it was.
    assert.equal(maskEmail('no-at-sign'), 'n******n');
    assert.equal(maskEmail('@leading.org'), '@******g');
  });

  it('maskText keeps the ends, hides at most six characters, and hides short values entirely', () => {
    assert.equal(maskText(''), '');
    assert.equal(maskText('a'), '*');
    assert.equal(maskText('ab'), '**');
    assert.equal(maskText('abc'), 'a*c');
    assert.equal(maskText('Smith'), 'S***h');
    assert.equal(maskText('+49 170 1234567'), '+******7', 'the length of a long value is not revealed');
  });

  it('maskDate keeps the year only', () => {
    assert.equal(maskDate('1985-07-04'), '1985-**-**');
  });

  it('maskPii: the subject and pii.read holders see everything; anyone else sees the listed fields masked', () => {
    const record = { id: PLAYER, email: 'alice.smith@example.org', lastName: 'Smith', dateOfBirth: '1985-07-04', country: 'DE', phone: null as string | null };
    const fields = { email: maskEmail, lastName: maskText, dateOfBirth: maskDate, phone: maskText };
    const masked = { ...record, email: 'a***@e***.org', lastName: 'S***h', dateOfBirth: '1985-**-**' };

    assert.equal(maskPii(record, fields, player(PLAYER), PLAYER), record, 'the player themself');
    assert.equal(maskPii(record, fields, staff(PII_PERMISSION), PLAYER), record);
    assert.equal(maskPii(record, fields, staff('*'), PLAYER), record, 'admin');
    assert.equal(maskPii(record, fields, service(PII_PERMISSION), PLAYER), record);
    assert.equal(maskPii(record, fields, systemContext('cli').principal, PLAYER), record);

    for (const who of [player(OTHER_PLAYER), staff('players.read'), service(), anonymous]) {
      const result = maskPii(record, fields, who, PLAYER);
      assert.deepEqual(result, masked, `${who.kind} sees PII masked`);
      assert.notEqual(result, record, 'a copy: the original record is untouched');
    }
    assert.equal(record.email, 'alice.smith@example.org');
    // Without a subject no player may see it (it is nobody's own record).
    assert.deepEqual(maskPii(record, fields, player(PLAYER), null), masked);
  });

  it('canSeePii follows the same rules', () => {
    assert.equal(canSeePii(player(PLAYER), PLAYER), true);
    assert.equal(canSeePii(player(PLAYER), OTHER_PLAYER), false);
    assert.equal(canSeePii(player(PLAYER), null), false);
    assert.equal(canSeePii(staff(), PLAYER), false);
    assert.equal(canSeePii(staff(PII_PERMISSION), PLAYER), true);
    assert.equal(canSeePii(anonymous, PLAYER), false);
  });
});

describe('hasPermission', () => {
  it('staff and services need the exact permission or `*`; players and anonymous callers have none; system has all', () => {
    assert.equal(hasPermission(staff('players.read'), 'players.read'), true);
    assert.equal(hasPermission(staff('players.read'), 'players.write'), false);
    assert.equal(hasPermission(staff('players.read'), 'players'), false, 'no prefix matching');
    assert.equal(hasPermission(staff('players.*'), 'players.read'), false, 'only the bare `*` is a wildcard');
    assert.equal(hasPermission(staff('*'), 'wallets.adjust'), true);
    assert.equal(hasPermission(staff(), 'players.read'), false);
    assert.equal(hasPermission(service('players.read'), 'players.read'), true);
    assert.equal(hasPermission(service('*'), 'players.read'), true);
    assert.equal(hasPermission(player(PLAYER), 'players.read'), false);
    assert.equal(hasPermission(anonymous, 'players.read'), false);
    assert.equal(hasPermission(systemContext('cli').principal, 'anything'), true);
  });

  it('actorOf names who acted, for the audit log', () => {
    assert.deepEqual(actorOf(anonymous), { type: 'anonymous', id: null });
    assert.deepEqual(actorOf(player(PLAYER)), { type: 'player', id: PLAYER });
    assert.deepEqual(actorOf(systemContext('seed').principal), { type: 'system', id: 'seed' });
  });
});
