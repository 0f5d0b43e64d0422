import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isUuidV7, newId } from './ids.ts';

test('newId gives distinct UUIDv7s that sort in the order they were made', () => {
  const ids = Array.from({ length: 20_000 }, () => newId());
  assert.ok(ids.every(isUuidV7), 'every id is a valid UUIDv7');
  assert.equal(new Set(ids).size, ids.length, 'no id repeats, across several refills of the random pool');
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `id ${i} sorts after id ${i - 1}`);
  // The random tail differs between ids made in the same millisecond (not a plain counter).
  const tails = new Set(ids.map((id) => id.slice(-12)));
  assert.ok(tails.size > ids.length * 0.99);
  const ms = parseInt(ids.at(-1)!.replace(/-/g, '').slice(0, 12), 16);
  assert.ok(Math.abs(ms - Date.now()) < 5_000, 'the time field is the current time in ms');
});
