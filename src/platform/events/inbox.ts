import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { deleteOlderThan } from '../db/prune.ts';
import type { Consumer } from './bus.ts';
import type { EventEnvelope } from './types.ts';

export type Delivery = 'processed' | 'duplicate';

/** Runs a consumer for one event exactly once in effect: the inbox row and the handler's writes commit together. */
export async function deliver(db: Db, consumer: Consumer, event: EventEnvelope): Promise<Delivery> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('platform.inbox')
      .values({ consumer: consumer.name, event_id: event.id })
      .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
      .returning('event_id')
      .executeTakeFirst();
    if (!inserted) return 'duplicate';
    await consumer.handle(event, trx);
    return 'processed';
  });
}

/** Records an event a consumer gave up on, for an operator to inspect and replay. */
export async function recordDeadLetter(db: Db, consumer: Consumer, event: EventEnvelope, error: unknown, attempts: number, logger: Logger): Promise<void> {
  logger.error({ consumer: consumer.name, eventId: event.id, type: event.type, err: error }, 'event dead-lettered');
  await db
    .insertInto('platform.dead_letters')
    .values({
      consumer: consumer.name,
      event_id: event.id,
      event: JSON.stringify(event),
      error: error instanceof Error ? error.message : String(error),
      attempts,
    })
    .execute();
}

/**
 * Forgets which events the consumers handled before `olderThan`. A redelivery older than
 * that would run its handler again, so the retention must outlast any redelivery (a
 * relay or broker outage, a dead letter replayed late).
 */
export async function pruneInbox(db: Db, olderThan: Date): Promise<number> {
  return deleteOlderThan(db, 'platform.inbox', 'processed_at', olderThan);
}
