import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { sql } from 'kysely';
import { pino } from 'pino';
import { createRuntime, type Runtime } from '../../app/runtime.ts';
import { createTestDatabase, testConfig, type TestDatabase } from '../../../test/support/databases.ts';
import { AMQP_URL, serviceSkip } from '../../../test/support/services.ts';
import { unmarkAsAfterCrash } from '../../../test/support/outbox.ts';
import { startTcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy.ts';
import { systemContext } from '../auth/principal.ts';
import type { Db, Trx } from '../db/database.ts';
import type { createKernel } from '../kernel.ts';
import { AmqpBus, deadLetterQueueName, queueName, requeueDeadLetters } from './amqp-bus.ts';
import type { Consumer } from './bus.ts';
import { OutboxRelay } from './relay.ts';
import type { EventEnvelope, NewEvent } from './types.ts';

const MAX_ATTEMPTS = 3;
const ctx = systemContext('amqp-test');
const skip = (await serviceSkip('rabbitmq')) || (await serviceSkip('postgres'));

/** Polls `probe` until it returns a value that is not undefined, or fails with `what` after the deadline. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const statusChanged = (playerId: string, reason: string): NewEvent<'player.status_changed'> => ({
  type: 'player.status_changed',
  playerId,
  payload: { playerId, from: 'active', to: 'blocked', reason },
});

const registered = (playerId: string): NewEvent<'player.registered'> => ({
  type: 'player.registered',
  playerId,
  payload: { playerId, country: 'DE', currency: 'EUR', status: 'active', trafficSource: {}, registeredAt: new Date().toISOString() },
});

interface LogRecord {
  level: number;
  msg: string;
}

// The RabbitMQ bus against the real broker and PostgreSQL, reached through a TCP proxy
// the tests can cut: an outage loses no committed event, a duplicate publish has one
// effect, a consumer that always fails ends in <queue>.dlq, and each player's events
// are handled in order (through a burst, a retry and a dropped connection).
describe('RabbitMQ event bus against the real broker', { skip }, () => {
  // Unique per run: queues are durable and named after consumers, so runs must not meet.
  const runId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const exchange = `pitboss.test.${runId}`;
  const logs: LogRecord[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) });

  let proxy: TcpProxy;
  let testDb: TestDatabase;
  let runtime: Runtime;
  let bus: AmqpBus;
  let relay: OutboxRelay;
  let db: Db;
  let admin: ChannelModel;
  let adminChannel: Channel;
  /** Every copy of a status-changed event the broker routed, by message id, seen on a queue of our own. */
  const published = new Map<string, number>();
  const effectCalls = new Map<string, number>();
  const failingCalls = new Map<string, number>();

  const effects: Consumer = {
    name: `test-${runId}.effects`,
    events: ['player.status_changed'],
    async handle(event: EventEnvelope, trx: Trx) {
      const call = (effectCalls.get(event.id) ?? 0) + 1;
      effectCalls.set(event.id, call);
      const { reason } = event.payload as { reason: string };
      // A transient failure (a deadlock, a lost connection): the first attempt fails.
      if (reason.startsWith('flaky') && call === 1) throw new Error(`transient failure on ${event.id}`);
      // Slow enough that a connection can drop while a burst is being handled.
      if (reason.startsWith('slow')) await sleep(8);
      await sql`insert into public.test_effects (event_id, player_id, reason) values (${event.id}, ${event.playerId}, ${reason})`.execute(trx);
    },
  };
  /** Set once "the bug" of the failing consumer is fixed: it then handles events. */
  let failingFixed = false;
  const failing: Consumer = {
    name: `test-${runId}.failing`,
    events: ['player.registered'],
    async handle(event: EventEnvelope) {
      failingCalls.set(event.id, (failingCalls.get(event.id) ?? 0) + 1);
      if (failingFixed) return;
      throw new Error(`cannot handle ${event.id}`);
    },
  };

  const effectsOf = async (playerId: string): Promise<{ event_id: string; reason: string }[]> =>
    (await sql<{ event_id: string; reason: string }>`select event_id, reason from public.test_effects where player_id = ${playerId} order by id`.execute(db)).rows;
  const outboxOf = (playerId: string) =>
    db.selectFrom('platform.outbox').select(['seq', 'id', 'published_at']).where('player_id', '=', playerId).orderBy('seq').execute();
  const emit = (...events: NewEvent[]) => runtime.kernel.transaction(ctx, (uow) => uow.emit(...events));

  /** The relay as a process starts it: from the beginning of the outbox. */
  const newRelay = () => new OutboxRelay(runtime.database, bus, { pollMs: runtime.config.outboxPollMs, logger });

  /**
   * Commits a fresh event and waits until the effects consumer has handled it. The relay
   * publishes in outbox order and the consumer handles its queue in order, so everything
   * published before it has been through the consumer by then.
   */
  async function settle(): Promise<void> {
    const marker = randomUUID();
    await emit(statusChanged(marker, 'marker'));
    await waitFor('a marker event to be handled', async () => ((await effectsOf(marker)).length > 0 ? true : undefined), 20_000);
  }

  before(async () => {
    proxy = await startTcpProxy(new URL(AMQP_URL).hostname, Number(new URL(AMQP_URL).port || 5672));
    testDb = await createTestDatabase('postgres');
    runtime = await createRuntime(
      testConfig(testDb, { AMQP_URL: proxy.url(AMQP_URL), AMQP_EXCHANGE: exchange, CONSUMER_MAX_ATTEMPTS: String(MAX_ATTEMPTS), OUTBOX_POLL_MS: '50' }),
      { logger },
    );
    db = runtime.database.db;
    await sql`create table public.test_effects (id bigint generated always as identity primary key, event_id uuid not null, player_id uuid not null, reason text not null)`.execute(db);

    const { config } = runtime;
    assert.ok(config.amqpUrl, 'AMQP_URL did not reach the config');
    bus = new AmqpBus(db, logger, { url: config.amqpUrl, exchange: config.amqpExchange, maxAttempts: config.consumerMaxAttempts });
    await bus.start();
    await bus.subscribe([effects, failing]);

    // Straight to the broker, not through the proxy: inspection and clean-up.
    admin = await connect(AMQP_URL);
    adminChannel = await admin.createChannel();
    const observer = await adminChannel.assertQueue('', { exclusive: true, autoDelete: true });
    await adminChannel.bindQueue(observer.queue, exchange, 'player.status_changed');
    await adminChannel.consume(
      observer.queue,
      (m) => {
        if (m?.properties.messageId) published.set(String(m.properties.messageId), (published.get(String(m.properties.messageId)) ?? 0) + 1);
      },
      { noAck: true },
    );

    relay = newRelay();
    (runtime.kernel as ReturnType<typeof createKernel>).setOnEventsCommitted(() => relay.wake());
    relay.start();
  });

  after(async () => {
    await relay?.stop();
    await bus?.close();
    await proxy?.close();
    if (adminChannel) {
      for (const consumer of [effects, failing]) {
        await adminChannel.deleteQueue(queueName(consumer.name));
        await adminChannel.deleteQueue(deadLetterQueueName(consumer.name));
      }
      await adminChannel.deleteExchange(exchange);
      await adminChannel.deleteExchange(`${exchange}.dlx`);
    }
    await admin?.close();
    await runtime?.close();
    await testDb?.drop();
  });

  it('keeps an event committed while the broker is unreachable, and delivers it once after the connection returns', async (t) => {
    await waitFor('the bus to be connected', () => (bus.healthy() ? true : undefined));
    const relayFailures = () => logs.filter((l) => l.msg.startsWith('outbox relay could not publish')).length;
    const failuresBefore = relayFailures();

    await proxy.cut();
    t.after(() => proxy.restore()); // so a failure here does not leave the later tests without a broker
    await waitFor('the bus to notice the lost connection', () => (bus.healthy() ? undefined : true));

    const playerId = randomUUID();
    await emit(statusChanged(playerId, 'during-outage'));
    await waitFor('the relay to fail to publish', () => (relayFailures() > failuresBefore ? true : undefined));
    const [row] = await outboxOf(playerId);
    assert.ok(row, 'the committed event is not in the outbox');
    assert.equal(row.published_at, null, 'an event was marked published while the broker was unreachable');
    assert.equal((await effectsOf(playerId)).length, 0);

    const acceptedBefore = proxy.accepted;
    await proxy.restore();
    await waitFor('the event to be handled after the broker came back', async () => ((await effectsOf(playerId)).length > 0 ? true : undefined), 25_000);
    assert.ok(proxy.accepted > acceptedBefore, 'the bus did not reconnect through the proxy');
    assert.ok(bus.healthy());
    // The consumer may handle it before the relay has its confirm and marks it.
    await waitFor('the relay to mark the event published', async () => ((await outboxOf(playerId))[0]?.published_at ? true : undefined));

    await settle();
    assert.equal((await effectsOf(playerId)).length, 1, 'the event had more than one effect');
    const inbox = await db.selectFrom('platform.inbox').select('event_id').where('consumer', '=', effects.name).where('event_id', '=', row.id).execute();
    assert.equal(inbox.length, 1);
  });

  it('consumes a duplicate publish of the same event once in effect (inbox)', async () => {
    const playerId = randomUUID();
    await emit(statusChanged(playerId, 'twice'));
    await waitFor('the event to be handled', async () => ((await effectsOf(playerId)).length > 0 ? true : undefined));
    const [row] = await waitFor('the event to be marked published', async () => {
      const rows = await outboxOf(playerId);
      return rows[0]?.published_at ? rows : undefined;
    });
    assert.equal(published.get(row!.id), 1);

    // A crash between the broker's confirm and the mark: the event is unpublished, the
    // floor (which moves only with the marks) is not past it, and the next process's relay
    // sends it again.
    await relay.stop();
    await unmarkAsAfterCrash(db, row!);
    relay = newRelay();
    relay.start();
    await settle();
    assert.notEqual((await outboxOf(playerId))[0]!.published_at, null);
    await waitFor('the broker to route the second copy', () => (published.get(row!.id) === 2 ? true : undefined));

    assert.equal((await effectsOf(playerId)).length, 1, 'the duplicate had a second effect');
    assert.equal(effectCalls.get(row!.id), 1, 'the inbox let the duplicate reach the handler');
    const queue = await adminChannel.checkQueue(queueName(effects.name));
    assert.equal(queue.messageCount, 0, 'the duplicate was left in the queue');
  });

  // Regression: with failures nack-requeued against x-delivery-limit = maxAttempts, the handler ran maxAttempts + 1 times.
  it('moves the message of a consumer that always fails to <queue>.dlq after CONSUMER_MAX_ATTEMPTS', async () => {
    const playerId = randomUUID();
    await emit(registered(playerId));
    const [row] = await outboxOf(playerId);
    const dlq = deadLetterQueueName(failing.name);
    await waitFor(
      `a message in ${dlq}`,
      async () => ((await adminChannel.checkQueue(dlq)).messageCount > 0 ? true : undefined),
      20_000,
    );
    assert.equal(failingCalls.get(row!.id), MAX_ATTEMPTS, `the consumer was tried ${failingCalls.get(row!.id)} times, not CONSUMER_MAX_ATTEMPTS`);
    assert.equal((await adminChannel.checkQueue(queueName(failing.name))).messageCount, 0);

    const message = await adminChannel.get(dlq, { noAck: true });
    assert.ok(message, 'the dead-letter queue is empty');
    assert.equal(message.properties.messageId, row!.id);
    assert.equal((JSON.parse(message.content.toString('utf8')) as EventEnvelope).id, row!.id);
    // Dead-lettered by the broker from the consumer's own queue.
    const deaths = message.properties.headers?.['x-death'] as { queue: string }[] | undefined;
    assert.equal(deaths?.[0]?.queue, queueName(failing.name));
    assert.equal((await adminChannel.checkQueue(dlq)).messageCount, 0);
    assert.notEqual((await outboxOf(playerId))[0]!.published_at, null);
  });

  it('moves dead letters back to the consumer’s queue once the cause is fixed: handled once, the dead-letter queue empty', async () => {
    const playerId = randomUUID();
    await emit(registered(playerId));
    const id = (await outboxOf(playerId))[0]!.id;
    const dlq = deadLetterQueueName(failing.name);
    await waitFor(`a message in ${dlq}`, async () => ((await adminChannel.checkQueue(dlq)).messageCount > 0 ? true : undefined), 20_000);
    assert.equal(failingCalls.get(id), MAX_ATTEMPTS);

    failingFixed = true;
    try {
      assert.equal(await requeueDeadLetters(AMQP_URL, failing.name), 1);
      await waitFor('the event to be handled from its queue', () => (failingCalls.get(id) === MAX_ATTEMPTS + 1 ? true : undefined));
      const inbox = await db.selectFrom('platform.inbox').select('event_id').where('consumer', '=', failing.name).where('event_id', '=', id).execute();
      assert.equal(inbox.length, 1, 'handled through the inbox');
      assert.equal((await adminChannel.checkQueue(dlq)).messageCount, 0);
      assert.equal(await requeueDeadLetters(AMQP_URL, failing.name), 0);
    } finally {
      failingFixed = false;
    }
  });

  // Regression: a nack-requeued event came back after the ones the consumer had prefetched, so the player's later events overtook it.
  it('keeps a player’s order when handling one event fails once (no overtaking on retry)', async () => {
    const playerId = randomUUID();
    const reasons = ['t0', 'flaky-1', 't2', 't3', 't4'];
    await emit(...reasons.map((r) => statusChanged(playerId, r)));
    await waitFor('all five events to be handled', async () => ((await effectsOf(playerId)).length >= reasons.length ? true : undefined), 15_000);
    const [flaky] = (await outboxOf(playerId)).slice(1, 2);
    assert.equal(effectCalls.get(flaky!.id), 2, 'the flaky event was not retried exactly once');
    assert.deepEqual(
      (await effectsOf(playerId)).map((e) => e.reason),
      reasons,
      'a later event of the player overtook the one being retried',
    );
  });

  it('keeps each player’s order through a burst of 200 events over 5 players', async () => {
    const players = Array.from({ length: 5 }, () => randomUUID());
    const perPlayer = 40;
    // Each player's events commit one after another; the players run concurrently.
    await Promise.all(
      players.map(async (playerId) => {
        for (let n = 0; n < perPlayer; n++) await emit(statusChanged(playerId, String(n)));
      }),
    );
    const total = async () =>
      Number((await sql<{ n: bigint }>`select count(*)::int8 as n from public.test_effects where player_id in (${sql.join(players)})`.execute(db)).rows[0]!.n);
    await waitFor('all 200 events to be handled', async () => ((await total()) >= players.length * perPlayer ? true : undefined), 30_000);
    await settle();
    assert.equal(await total(), players.length * perPlayer, 'some events had more than one effect');
    for (const playerId of players) {
      assert.deepEqual(
        (await effectsOf(playerId)).map((e) => Number(e.reason)),
        Array.from({ length: perPlayer }, (_, n) => n),
        `events of player ${playerId} were handled out of order`,
      );
    }
  });

  it('loses nothing, repeats no effect and keeps order when the connection drops in the middle of a burst', async (t) => {
    const players = Array.from({ length: 4 }, () => randomUUID());
    const perPlayer = 25;
    const expected = players.length * perPlayer;
    const total = async () =>
      Number((await sql<{ n: bigint }>`select count(*)::int8 as n from public.test_effects where player_id in (${sql.join(players)})`.execute(db)).rows[0]!.n);
    const burst = Promise.all(
      players.map(async (playerId) => {
        for (let n = 0; n < perPlayer; n++) await emit(statusChanged(playerId, `slow-${n}`));
      }),
    );
    await waitFor('the consumer to be part-way through the burst', async () => ((await total()) >= 15 ? true : undefined));
    await proxy.cut();
    t.after(() => proxy.restore());
    const handledAtCut = await total();
    assert.ok(handledAtCut < expected, `the burst was over before the cut (${handledAtCut} handled); the test proves nothing`);
    await waitFor('the bus to notice the lost connection', () => (bus.healthy() ? undefined : true));
    await burst;
    await proxy.restore();

    await waitFor(`all ${expected} events to be handled`, async () => ((await total()) >= expected ? true : undefined), 30_000);
    await settle();
    assert.equal(await total(), expected, 'an event had more than one effect');
    for (const playerId of players) {
      assert.deepEqual(
        (await effectsOf(playerId)).map((e) => e.reason),
        Array.from({ length: perPlayer }, (_, n) => `slow-${n}`),
        `events of player ${playerId} were lost or handled out of order`,
      );
    }
    const unpublished = await db.selectFrom('platform.outbox').select('id').where('player_id', 'in', players).where('published_at', 'is', null).execute();
    assert.equal(unpublished.length, 0);
  });
});
