import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createRuntime, type Runtime } from '../../app/runtime.ts';
import { createTestDatabase, databaseKinds, testConfig, type TestDatabase } from '../../../test/support/databases.ts';
import { unmarkAsAfterCrash } from '../../../test/support/outbox.ts';
import { systemContext } from '../auth/principal.ts';
import type { Db, Trx } from '../db/database.ts';
import type { createKernel } from '../kernel.ts';
import type { Consumer } from './bus.ts';
import { InProcessBus } from './in-process-bus.ts';
import { listDeadLetters, replayDeadLetters } from './dead-letters.ts';
import { deliver, pruneInbox } from './inbox.ts';
import { pruneOutbox, relayFloor, writeToOutbox } from './outbox.ts';
import { OutboxRelay } from './relay.ts';
import type { EventEnvelope, NewEvent } from './types.ts';

const MAX_ATTEMPTS = 3;
const ctx = systemContext('events-test');

/** Polls `probe` until it returns a value that is not undefined, or fails with `what` after the deadline. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** One status change per call; `reason` carries the test's own sequence number and instructions for the consumer. */
const statusChanged = (playerId: string, reason: string): NewEvent<'player.status_changed'> => ({
  type: 'player.status_changed',
  playerId,
  payload: { playerId, from: 'active', to: 'blocked', reason },
});

interface Effect {
  event_id: string;
  player_id: string;
  reason: string;
}

async function effectsOf(db: Db, playerId: string): Promise<Effect[]> {
  const r = await sql<Effect>`select event_id, player_id, reason from public.test_effects where player_id = ${playerId} order by id`.execute(db);
  return r.rows;
}

/** Stops what a suite started, last first (any of them missing if its `before` failed early). */
async function stopAll(relay: OutboxRelay | undefined, bus: InProcessBus | undefined, runtime: Runtime | undefined, testDb: TestDatabase | undefined): Promise<void> {
  await relay?.stop();
  await bus?.close();
  await runtime?.close();
  await testDb?.drop();
}

async function outboxOf(db: Db, playerId: string) {
  return db.selectFrom('platform.outbox').select(['seq', 'id', 'published_at']).where('player_id', '=', playerId).orderBy('seq').execute();
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`transactional outbox, relay and inbox (${kind})`, { skip }, () => {
    let testDb: TestDatabase;
    let runtime: Runtime;
    let relay: OutboxRelay;
    let bus: InProcessBus;
    let db: Db;
    /** How many times the consumer's handler ran, by event id (inbox duplicates never reach it). */
    const calls = new Map<string, number>();
    /** While set, events whose reason starts with "until-fixed" fail (a bug an operator then fixes). */
    let broken = true;
    /** This suite's relay as a process starts it: from the floor kept in the database. */
    const newRelay = () => new OutboxRelay(runtime.database, bus, { pollMs: runtime.config.outboxPollMs, logger: runtime.logger });

    // Writes one effect row per event in the inbox's transaction; reasons starting with
    // "poison" always throw, so a poisoned event can never be handled.
    const recorder: Consumer = {
      name: 'test.recorder',
      events: ['player.status_changed'],
      async handle(event: EventEnvelope, trx: Trx) {
        const call = (calls.get(event.id) ?? 0) + 1;
        calls.set(event.id, call);
        const { reason } = event.payload as { reason: string };
        if (reason.startsWith('poison')) throw new Error(`poisoned event ${event.id}`);
        if (reason.startsWith('until-fixed') && broken) throw new Error(`not fixed yet: ${event.id}`);
        if (reason.startsWith('flaky') && call === 1) throw new Error(`transient failure on ${event.id}`);
        await sql`insert into public.test_effects (event_id, player_id, reason) values (${event.id}, ${event.playerId}, ${reason})`.execute(trx);
      },
    };

    before(async () => {
      testDb = await createTestDatabase(kind);
      runtime = await createRuntime(testConfig(testDb, { CONSUMER_MAX_ATTEMPTS: String(MAX_ATTEMPTS), OUTBOX_POLL_MS: '50' }));
      db = runtime.database.db;
      await sql`create table public.test_effects (id bigint generated always as identity primary key, event_id uuid not null, player_id uuid not null, reason text not null)`.execute(db);
      bus = new InProcessBus(db, runtime.logger, runtime.config.consumerMaxAttempts);
      await bus.subscribe([recorder]);
      relay = newRelay();
      (runtime.kernel as ReturnType<typeof createKernel>).setOnEventsCommitted(() => relay.wake());
      relay.start();
    });

    after(() => stopAll(relay, bus, runtime, testDb));

    /** Emits one event for the player and waits until the relay has marked it published. */
    const emitPublished = async (playerId: string, reason: string) => {
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(statusChanged(playerId, reason)));
      const [row] = await waitFor('the event to be published', async () => {
        const rows = await outboxOf(db, playerId);
        return rows[0]?.published_at ? rows : undefined;
      });
      return row!;
    };

    it('writes events to the outbox only when the transaction commits', async () => {
      const committed = randomUUID();
      const rolledBack = randomUUID();
      await runtime.kernel.transaction(ctx, async (uow) => {
        await uow.emit(statusChanged(committed, 'c1'), statusChanged(committed, 'c2'));
      });
      await assert.rejects(
        runtime.kernel.transaction(ctx, async (uow) => {
          await uow.emit(statusChanged(rolledBack, 'r1'));
          // The row is there inside the transaction...
          const inside = await uow.trx.selectFrom('platform.outbox').select('id').where('player_id', '=', rolledBack).execute();
          assert.equal(inside.length, 1);
          throw new Error('bet rejected');
        }),
        /bet rejected/,
      );
      // ...and gone with the rollback.
      assert.equal((await outboxOf(db, rolledBack)).length, 0);
      assert.equal((await outboxOf(db, committed)).length, 2);

      // The committed events are delivered; a later event proves the relay has passed the
      // point where the rolled-back one would have been, and nothing of it arrived.
      const marker = randomUUID();
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(statusChanged(marker, 'm')));
      await waitFor('the marker event to be handled', async () => ((await effectsOf(db, marker)).length === 1 ? true : undefined));
      assert.deepEqual(
        (await effectsOf(db, committed)).map((e) => e.reason),
        ['c1', 'c2'],
      );
      assert.equal((await effectsOf(db, rolledBack)).length, 0);
    });

    it('delivers to the consumer in commit order, per player and overall', async () => {
      const players = [randomUUID(), randomUUID(), randomUUID()];
      const expected: { playerId: string; reason: string }[] = [];
      // Interleaved transactions, some with several events, one of them rolled back.
      for (let round = 0; round < 6; round++) {
        for (const [p, playerId] of players.entries()) {
          const events = Array.from({ length: 1 + ((round + p) % 3) }, (_, i) => statusChanged(playerId, `r${round}.${i}`));
          if (round === 3 && p === 1) {
            await assert.rejects(
              runtime.kernel.transaction(ctx, async (uow) => {
                await uow.emit(...events);
                throw new Error('rolled back');
              }),
            );
            continue;
          }
          await runtime.kernel.transaction(ctx, (uow) => uow.emit(...events));
          for (const e of events) expected.push({ playerId, reason: (e.payload as { reason: string }).reason });
        }
      }
      const last = expected.at(-1)!;
      await waitFor('the last event to be handled', async () =>
        (await effectsOf(db, last.playerId)).some((e) => e.reason === last.reason) ? true : undefined,
      );
      for (const playerId of players) {
        assert.deepEqual(
          (await effectsOf(db, playerId)).map((e) => e.reason),
          expected.filter((e) => e.playerId === playerId).map((e) => e.reason),
          `events of player ${playerId} out of order or missing`,
        );
      }
      const all = await sql<{ player_id: string; reason: string }>`
        select player_id, reason from public.test_effects where player_id in (${sql.join(players)}) order by id`.execute(db);
      assert.deepEqual(
        all.rows.map((r) => `${r.player_id}/${r.reason}`),
        expected.map((e) => `${e.playerId}/${e.reason}`),
        'events were not handled in commit order',
      );
      // The outbox is drained in seq order, and everything is marked published.
      const rows = (await Promise.all(players.map((p) => outboxOf(db, p)))).flat();
      assert.ok(rows.every((r) => r.published_at !== null));
    });

    it('has effect once when the same event is delivered twice (crash between publish and mark)', async () => {
      const playerId = randomUUID();
      const row = await emitPublished(playerId, 'once');
      assert.equal((await effectsOf(db, playerId)).length, 1);
      assert.equal(calls.get(row.id), 1);

      // As if the process died after the bus took the event but before it was marked: the
      // event is unpublished, and the floor, which moves only with the marks, is not past it.
      await relay.stop();
      await unmarkAsAfterCrash(db, row);
      relay = newRelay();
      relay.start();
      await waitFor('the relay to publish the event again', async () => ((await outboxOf(db, playerId))[0]?.published_at ? true : undefined));
      assert.ok(relay.published > 0, 'the relay did not publish the event a second time');

      assert.equal((await effectsOf(db, playerId)).length, 1, 'the redelivered event had a second effect');
      assert.equal(calls.get(row.id), 1, 'the inbox let the duplicate reach the handler');
      const inbox = await db.selectFrom('platform.inbox').select('event_id').where('consumer', '=', recorder.name).where('event_id', '=', row.id).execute();
      assert.equal(inbox.length, 1);

      // deliver() itself says so.
      const event: EventEnvelope = { id: row.id, type: 'player.status_changed', version: 1, occurredAt: new Date().toISOString(), playerId, payload: { playerId, from: 'active', to: 'blocked', reason: 'once' } };
      assert.equal(await deliver(db, recorder, event), 'duplicate');
      assert.equal((await effectsOf(db, playerId)).length, 1);
    });

    it("publishes an event again at an operator's request (platform.publish_again): a copy with a new seq, handled once in effect", async () => {
      const playerId = randomUUID();
      const row = await emitPublished(playerId, 'again');
      const before = relay.published;
      const copied = await sql<{ n: number }>`select platform.publish_again(array[${row.id}]::uuid[]) as n`.execute(db);
      assert.equal(copied.rows[0]!.n, 1);
      const rows = await waitFor('the copy to be published', async () => {
        const all = await outboxOf(db, playerId);
        return all.length === 2 && all.every((r) => r.published_at) ? all : undefined;
      });
      assert.equal(rows[1]!.id, row.id, 'the copy keeps the event id');
      assert.ok(rows[1]!.seq > row.seq);
      assert.ok(relay.published > before, 'the relay published the copy');
      assert.equal(calls.get(row.id), 1, 'the inbox kept the copy from the handler');
      assert.equal((await effectsOf(db, playerId)).length, 1);
      // Asked again, it copies the event once more (the latest copy), not once per copy.
      assert.equal((await sql<{ n: number }>`select platform.publish_again(array[${row.id}]::uuid[]) as n`.execute(db)).rows[0]!.n, 1);
      // The floor the relay keeps in the database passes them all, for the next relay to start from.
      await waitFor('the kept floor to pass the copies', async () => ((await relayFloor(db)) > BigInt((await outboxOf(db, playerId)).at(-1)!.seq) ? true : undefined));
    });

    it('retries a failed event in place: a later event of the player does not overtake it', async () => {
      const playerId = randomUUID();
      const reasons = ['t0', 'flaky-1', 't2', 't3'];
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(...reasons.map((r) => statusChanged(playerId, r))));
      await waitFor('all events to be handled', async () => ((await effectsOf(db, playerId)).length >= reasons.length ? true : undefined));
      const flaky = (await outboxOf(db, playerId))[1]!;
      assert.equal(calls.get(flaky.id), 2, 'the flaky event was not retried exactly once');
      assert.deepEqual(
        (await effectsOf(db, playerId)).map((e) => e.reason),
        reasons,
      );
    });

    it('replays dead letters once their cause is fixed: handled once, removed; a failure keeps them; a handled event counts as a duplicate', async () => {
      const playerId = randomUUID();
      const [event] = await runtime.kernel.transaction(ctx, async (uow) => {
        await uow.emit(statusChanged(playerId, 'until-fixed'));
        return uow.trx.selectFrom('platform.outbox').select(['id']).where('player_id', '=', playerId).execute();
      });
      const mine = async () => (await listDeadLetters(db, { consumer: recorder.name })).filter((l) => l.eventId === event!.id);
      const [letter] = await waitFor('the dead letter', async () => ((await mine()).length > 0 ? mine() : undefined));
      assert.equal(letter!.attempts, MAX_ATTEMPTS);
      assert.equal(letter!.type, 'player.status_changed');

      // Still broken: it fails again and stays, one attempt more.
      const [again] = await replayDeadLetters(db, [recorder], { ids: [letter!.id] }, runtime.logger);
      assert.equal(again!.outcome, 'failed');
      assert.match(again!.error!, /not fixed yet/);
      assert.equal((await mine())[0]!.attempts, MAX_ATTEMPTS + 1);
      assert.equal((await effectsOf(db, playerId)).length, 0);

      // A consumer this process does not run: kept.
      const [elsewhere] = await replayDeadLetters(db, [], { ids: [letter!.id] }, runtime.logger);
      assert.equal(elsewhere!.outcome, 'unknown-consumer');
      assert.equal((await mine()).length, 1);

      broken = false;
      const [fixed] = await replayDeadLetters(db, [recorder], { ids: [letter!.id] }, runtime.logger);
      assert.equal(fixed!.outcome, 'processed');
      assert.deepEqual((await effectsOf(db, playerId)).map((e) => e.reason), ['until-fixed']);
      assert.deepEqual(await mine(), []);
      assert.deepEqual(await replayDeadLetters(db, [recorder], { ids: [letter!.id] }, runtime.logger), []);

      // A dead letter whose event was handled after all (say, replayed from a copy): a duplicate, removed, no second effect.
      const handled = (await sql<{ event_id: string }>`select event_id from public.test_effects where player_id = ${playerId}`.execute(db)).rows[0]!.event_id;
      const envelope: EventEnvelope = { id: handled, type: 'player.status_changed', version: 1, occurredAt: new Date().toISOString(), playerId, payload: { playerId, from: 'active', to: 'blocked', reason: 'until-fixed' } };
      const { id } = await db
        .insertInto('platform.dead_letters')
        .values({ consumer: recorder.name, event_id: handled, event: JSON.stringify(envelope), error: 'copy', attempts: 1 })
        .returning('id')
        .executeTakeFirstOrThrow();
      const [copy] = await replayDeadLetters(db, [recorder], { ids: [String(id)] }, runtime.logger);
      assert.equal(copy!.outcome, 'duplicate');
      assert.equal((await effectsOf(db, playerId)).length, 1);
      assert.equal(calls.get(handled), MAX_ATTEMPTS + 2, 'the handler ran for the duplicate');
    });

    it('forgets handled events past the inbox retention, and only those', async () => {
      const consumer = `test.prune.${randomUUID()}`;
      const old = [randomUUID(), randomUUID()];
      const recent = randomUUID();
      const day = 86_400_000;
      await db
        .insertInto('platform.inbox')
        .values([...old.map((event_id) => ({ consumer, event_id, processed_at: new Date(Date.now() - 40 * day) })), { consumer, event_id: recent, processed_at: new Date(Date.now() - day) }])
        .execute();
      assert.ok((await pruneInbox(db, new Date(Date.now() - 30 * day))) >= 2);
      const left = await db.selectFrom('platform.inbox').select('event_id').where('consumer', '=', consumer).execute();
      assert.deepEqual(left.map((r) => r.event_id), [recent]);
    });

    it('dead-letters an event the consumer always fails on, after CONSUMER_MAX_ATTEMPTS, and goes on with later events', async () => {
      const playerId = randomUUID();
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(statusChanged(playerId, 'poison'), statusChanged(playerId, 'after-1')));
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(statusChanged(playerId, 'after-2')));
      const [poisoned] = await outboxOf(db, playerId);

      const letters = await waitFor('the dead letter', async () => {
        const rows = await db.selectFrom('platform.dead_letters').selectAll().where('event_id', '=', poisoned!.id).execute();
        return rows.length > 0 ? rows : undefined;
      });
      assert.equal(letters.length, 1);
      assert.equal(letters[0]!.consumer, recorder.name);
      assert.equal(letters[0]!.attempts, MAX_ATTEMPTS);
      assert.match(letters[0]!.error, /poisoned event/);
      assert.equal((letters[0]!.event as { id: string }).id, poisoned!.id);
      assert.equal(calls.get(poisoned!.id), MAX_ATTEMPTS);

      await waitFor('the later events to be handled', async () => ((await effectsOf(db, playerId)).length === 2 ? true : undefined));
      assert.deepEqual(
        (await effectsOf(db, playerId)).map((e) => e.reason),
        ['after-1', 'after-2'],
      );
      assert.ok((await outboxOf(db, playerId)).every((r) => r.published_at !== null), 'the relay is stuck on the poisoned event');
      // A failed attempt leaves no inbox row, so an operator's replay would run the handler again.
      const inbox = await db.selectFrom('platform.inbox').select('event_id').where('event_id', '=', poisoned!.id).execute();
      assert.equal(inbox.length, 0);
    });
  });
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`outbox retention (${kind})`, { skip }, () => {
    let testDb: TestDatabase;
    let runtime: Runtime;
    before(async () => {
      testDb = await createTestDatabase(kind);
      runtime = await createRuntime(testConfig(testDb));
    });
    after(async () => {
      await runtime?.close();
      await testDb?.drop();
    });

    it('deletes published events past the retention from the head, in chunks, and stops at the first newer or unpublished one', async () => {
      const db = runtime.database.db;
      const hour = 3_600_000;
      const at = (hoursAgo: number | null) => (hoursAgo === null ? null : new Date(Date.now() - hoursAgo * hour));
      // Oldest first: five past the retention, then one not yet published, one past the
      // retention behind it, then recent ones.
      const ages = [300, 290, 280, 270, 260, null, 250, 10, 5];
      const row = (age: number | null, i: number) => ({
        id: randomUUID(),
        type: 'player.status_changed',
        version: 1,
        occurred_at: new Date(),
        player_id: null,
        payload: JSON.stringify({ i }),
        published_at: at(age),
      });
      await db.deleteFrom('platform.outbox').execute();
      await db.insertInto('platform.outbox').values(ages.map(row)).execute();
      const left = async () => (await db.selectFrom('platform.outbox').select('payload').orderBy('seq').execute()).map((r) => (r.payload as { i: number }).i);

      // Chunks of two: the first five go over three statements; the unpublished one stops it.
      assert.equal(await pruneOutbox(db, at(168)!, 2), 5);
      assert.deepEqual(await left(), [5, 6, 7, 8]);
      assert.equal(await pruneOutbox(db, at(168)!, 2), 0, 'nothing passes an unpublished event');

      // Once it is published, the old one behind it goes too; the recent ones stay.
      await db.updateTable('platform.outbox').set({ published_at: at(200) }).where('published_at', 'is', null).execute();
      assert.equal(await pruneOutbox(db, at(168)!, 2), 2);
      assert.deepEqual(await left(), [7, 8]);
      assert.equal(await pruneOutbox(db, at(1)!), 2, 'a shorter retention takes the rest');
      assert.deepEqual(await left(), []);
    });

    it('keeps an old event that is marked unpublished while the prune waits for its row', { skip: kind !== 'postgres' ? 'needs two connections' : false }, async () => {
      const db = runtime.database.db;
      await db.deleteFrom('platform.outbox').execute();
      const old = new Date(Date.now() - 300 * 3_600_000);
      const ids = [randomUUID(), randomUUID()];
      await db
        .insertInto('platform.outbox')
        .values(ids.map((id) => ({ id, type: 'player.status_changed', version: 1, occurred_at: new Date(), player_id: null, payload: JSON.stringify({}), published_at: old })))
        .execute();
      let prune: Promise<number> | undefined;
      await db.transaction().execute(async (trx) => {
        // An operator marks the first event for publishing again; the prune starts meanwhile
        // and blocks on that row until this commits.
        await trx.updateTable('platform.outbox').set({ published_at: null }).where('id', '=', ids[0]!).execute();
        prune = pruneOutbox(db, new Date(Date.now() - 168 * 3_600_000));
        await new Promise((r) => setTimeout(r, 300));
      });
      await prune;
      const left = await db.selectFrom('platform.outbox').select(['id', 'published_at']).execute();
      assert.deepEqual(left, [{ id: ids[0], published_at: null }]);
    });
  });
}

for (const { kind, skip } of await databaseKinds()) {
  describe(`outbox relay floor (${kind})`, { skip: skip || (kind !== 'postgres' ? 'needs two connections' : false) }, () => {
    let testDb: TestDatabase;
    let runtime: Runtime;
    let relay: OutboxRelay;
    let bus: InProcessBus;
    const handled = new Set<string>();
    const recorder: Consumer = {
      name: 'test.floor',
      events: ['player.status_changed'],
      async handle(event: EventEnvelope) {
        handled.add(event.id);
      },
    };

    before(async () => {
      testDb = await createTestDatabase(kind);
      runtime = await createRuntime(testConfig(testDb));
      bus = new InProcessBus(runtime.database.db, runtime.logger, MAX_ATTEMPTS);
      await bus.subscribe([recorder]);
      relay = new OutboxRelay(runtime.database, bus, { pollMs: 20, minIntervalMs: 0, logger: runtime.logger });
      relay.start();
    });
    after(() => stopAll(relay, bus, runtime, testDb));

    const emit = async (reason: string): Promise<string> => {
      const playerId = randomUUID();
      await runtime.kernel.transaction(ctx, (uow) => uow.emit(statusChanged(playerId, reason)));
      return (await outboxOf(runtime.database.db, playerId))[0]!.id;
    };
    const published = (id: string) => waitFor(`event ${id} to be handled`, async () => (handled.has(id) ? true : undefined));

    it('never passes an event whose transaction is still open, publishes it once it commits, and then reads past it', async () => {
      const db = runtime.database.db;
      await published(await emit('before'));
      let release = (): void => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      let lateSeq = 0n;
      let lateId = '';
      // A transaction takes its seq, then stays open while later ones commit and are published.
      const late = db.transaction().execute(async (trx) => {
        const lateEvent = statusChanged(randomUUID(), 'late');
        const [envelope] = await writeToOutbox(trx, [lateEvent]);
        lateId = envelope!.id;
        lateSeq = (await trx.selectFrom('platform.outbox').select('seq').where('id', '=', lateId).executeTakeFirstOrThrow()).seq;
        await held;
      });
      try {
        await waitFor('the late transaction to take its seq', async () => (lateSeq > 0n ? true : undefined));
        // Relay passes while no transaction ends: their snapshots' xmax is then at or below the
        // open transaction's id, so a proof bounded by xmax would pass it (CI caught that once).
        await sleep(150);
        const after = [];
        for (let i = 0; i < 5; i++) after.push(await emit(`after-${i}`));
        for (const id of after) await published(id);
        await sleep(300); // many relay passes, each free to move the floor
        assert.ok(relay.floor <= lateSeq, `the floor (${relay.floor}) passed the open transaction's seq ${lateSeq}`);
        assert.equal(handled.has(lateId), false);
      } finally {
        release();
        await late;
      }
      await published(lateId);
      // With the late one ended, the floor moves past everything published.
      const last = await emit('last');
      await published(last);
      const lastSeq = (await db.selectFrom('platform.outbox').select('seq').where('id', '=', last).executeTakeFirstOrThrow()).seq;
      await waitFor('the floor to pass the last event', async () => (relay.floor > lastSeq ? true : undefined));
    });
  });
}
