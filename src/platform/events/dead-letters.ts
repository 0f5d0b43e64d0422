import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { Consumer } from './bus.ts';
import { deliver } from './inbox.ts';
import type { EventEnvelope } from './types.ts';

export interface DeadLetter {
  id: string;
  consumer: string;
  eventId: string;
  type: string;
  attempts: number;
  error: string;
  failedAt: string;
}

export interface ReplayResult {
  id: string;
  consumer: string;
  eventId: string;
  /** processed: the handler ran; duplicate: the inbox says it had run already; failed: it failed again (kept); unknown-consumer: no such consumer here (kept). */
  outcome: 'processed' | 'duplicate' | 'failed' | 'unknown-consumer';
  error?: string;
}

/** Which dead letters: some ids, one consumer's, or all of them. */
export type DeadLetterSelection = { ids: readonly string[] } | { consumer: string } | { all: true };

async function selected(db: Db, selection: DeadLetterSelection) {
  if ('ids' in selection && selection.ids.length === 0) return [];
  let q = db.selectFrom('platform.dead_letters').select(['id', 'consumer', 'event_id', 'event', 'attempts', 'error', 'failed_at']).orderBy('id');
  if ('ids' in selection) q = q.where('id', 'in', selection.ids.map((id) => BigInt(id)));
  else if ('consumer' in selection) q = q.where('consumer', '=', selection.consumer);
  return q.execute();
}

/** Events the in-process bus gave up on (`platform.dead_letters`), oldest first. */
export async function listDeadLetters(db: Db, selection: DeadLetterSelection = { all: true }): Promise<DeadLetter[]> {
  const rows = await selected(db, selection);
  return rows.map((r) => ({
    id: String(r.id),
    consumer: r.consumer,
    eventId: r.event_id,
    type: (r.event as EventEnvelope).type,
    attempts: r.attempts,
    error: r.error,
    failedAt: new Date(r.failed_at).toISOString(),
  }));
}

/**
 * Hands dead-lettered events to their consumers again, once each, after the cause was
 * fixed. The inbox keeps it to one effect: an event that was handled after all counts as
 * a duplicate. A dead letter goes once its event is handled; one that fails again stays,
 * with the new error and one more attempt.
 */
export async function replayDeadLetters(db: Db, consumers: readonly Consumer[], selection: DeadLetterSelection, logger: Logger): Promise<ReplayResult[]> {
  const byName = new Map(consumers.map((c) => [c.name, c]));
  const results: ReplayResult[] = [];
  for (const letter of await selected(db, selection)) {
    const base = { id: String(letter.id), consumer: letter.consumer, eventId: letter.event_id };
    const consumer = byName.get(letter.consumer);
    if (!consumer) {
      results.push({ ...base, outcome: 'unknown-consumer' });
      continue;
    }
    try {
      const outcome = await deliver(db, consumer, letter.event as EventEnvelope);
      await db.deleteFrom('platform.dead_letters').where('id', '=', letter.id).execute();
      logger.info({ ...base, outcome }, 'dead letter replayed');
      results.push({ ...base, outcome });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await db
        .updateTable('platform.dead_letters')
        .set((eb) => ({ attempts: eb('attempts', '+', 1), error: message, failed_at: new Date() }))
        .where('id', '=', letter.id)
        .execute();
      logger.warn({ ...base, err: error }, 'dead letter failed again');
      results.push({ ...base, outcome: 'failed', error: message });
    }
  }
  return results;
}
