import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { REDIS_URL, serviceSkip } from '../../../test/support/services.ts';
import { cached, MemoryCache, RedisCache, type Cache } from './cache.ts';

// Keys of this run only, so parallel runs against one Redis never see each other.
const PREFIX = `pitboss-test:${process.pid}:${randomBytes(4).toString('hex')}:`;

/** A port nothing listens on: bound once to learn a free number, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const backends: { name: string; skip: string | false; make: () => Cache }[] = [
  { name: 'MemoryCache', skip: false, make: () => new MemoryCache(1000) },
  { name: 'RedisCache', skip: await serviceSkip('redis'), make: () => new RedisCache(REDIS_URL, PREFIX) },
];

// First, so the dead client's lingering disconnect timer overlaps the TTL waits below.
describe('RedisCache specifics', { skip: backends[1]!.skip }, () => {
  it('keys live under the prefix, so two prefixes never collide', async () => {
    const a = new RedisCache(REDIS_URL, `${PREFIX}a:`);
    const b = new RedisCache(REDIS_URL, `${PREFIX}b:`);
    try {
      await a.set('same', 'from a', 60);
      assert.equal(await b.get('same'), undefined);
      assert.equal(await a.client.get(`${PREFIX}a:same`), 'from a');
      const ttl = await a.client.ttl(`${PREFIX}a:same`);
      assert.ok(ttl > 0 && ttl <= 60, `EX ttl set, got ${ttl}`);
      await a.del('same');
    } finally {
      await a.close();
      await b.close();
    }
  });

  // Regression: with the offline queue and no command timeout, each command waited for
  // the next reconnect attempt, whose back-off grows to 2 s: reads stalled for seconds.
  it('a Redis outage does not fail cached() reads, nor stall them: they fall back to the loader', async () => {
    const down = new RedisCache(`redis://127.0.0.1:${await closedPort()}/0`, PREFIX);
    try {
      await assert.rejects(down.get('x'), 'a plain get fails while Redis is away');
      let loads = 0;
      const started = performance.now();
      for (let i = 0; i < 2; i++) {
        const value = await cached(down, 'player:outage', 60, async () => ({ loads: ++loads }));
        assert.deepEqual(value, { loads: i + 1 }, 'every read is served by the loader');
      }
      // Each read waits at most one command timeout for the get and one for the set.
      const ms = performance.now() - started;
      assert.ok(ms < 3000, `two reads took ${Math.round(ms)} ms during the outage`);
    } finally {
      await down.close();
    }
  });
});

for (const { name, skip, make } of backends) {
  describe(`cache behaviour (${name})`, { skip }, () => {
    let cache: Cache;
    before(async () => {
      cache = make();
      await cache.ping();
    });
    after(async () => {
      await cache?.close();
    });

    it('get returns what set stored; a missing key is undefined', async () => {
      assert.equal(await cache.get('missing'), undefined);
      await cache.set('a', 'alpha', 60);
      assert.equal(await cache.get('a'), 'alpha');
      await cache.set('a', 'beta', 60);
      assert.equal(await cache.get('a'), 'beta', 'set overwrites');
    });

    it('del removes one or several keys, and tolerates none or unknown ones', async () => {
      await cache.set('d1', '1', 60);
      await cache.set('d2', '2', 60);
      await cache.set('d3', '3', 60);
      await cache.del('d1', 'd2', 'never-set');
      await cache.del();
      assert.equal(await cache.get('d1'), undefined);
      assert.equal(await cache.get('d2'), undefined);
      assert.equal(await cache.get('d3'), '3');
    });

    it('an entry expires after its TTL', async () => {
      await cache.set('short', 'soon gone', 1);
      await cache.set('long', 'stays', 60);
      assert.equal(await cache.get('short'), 'soon gone');
      await sleep(1150);
      assert.equal(await cache.get('short'), undefined);
      assert.equal(await cache.get('long'), 'stays');
    });

    it('cached(): a miss loads and stores, later reads hit without loading', async () => {
      let loads = 0;
      const load = async () => {
        loads++;
        return { id: 'p-1', balance: '12.50', tags: ['vip'] };
      };
      const first = await cached(cache, 'player:p-1', 60, load);
      const second = await cached(cache, 'player:p-1', 60, load);
      const third = await cached(cache, 'player:p-1', 60, load);
      assert.equal(loads, 1);
      assert.deepEqual(first, { id: 'p-1', balance: '12.50', tags: ['vip'] });
      assert.deepEqual(second, first);
      assert.deepEqual(third, first);
      assert.equal(await cache.get('player:p-1'), JSON.stringify(first), 'stored as JSON under the key');
    });

    it('cached(): an undefined load is not stored (the next read loads again); del forces a reload', async () => {
      let loads = 0;
      const none = async () => {
        loads++;
        return undefined;
      };
      assert.equal(await cached(cache, 'player:none', 60, none), undefined);
      assert.equal(await cached(cache, 'player:none', 60, none), undefined);
      assert.equal(loads, 2);

      let version = 0;
      const load = async () => ({ version: ++version });
      assert.deepEqual(await cached(cache, 'player:v', 60, load), { version: 1 });
      assert.deepEqual(await cached(cache, 'player:v', 60, load), { version: 1 });
      await cache.del('player:v');
      assert.deepEqual(await cached(cache, 'player:v', 60, load), { version: 2 });
    });

    it('cached(): a loader error propagates and nothing is stored', async () => {
      await assert.rejects(
        cached(cache, 'player:boom', 60, async () => {
          throw new Error('database down');
        }),
        /database down/,
      );
      assert.equal(await cache.get('player:boom'), undefined);
    });
  });
}
