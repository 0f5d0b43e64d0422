import { sql } from 'kysely';
import type { Db } from '../../src/platform/db/database.ts';

/**
 * The outbox as a crash between the bus's confirm and the relay's mark leaves an event:
 * unpublished, and the relay's kept floor (which moves only with the marks) not past it.
 * For tests of redelivery; stop the relay first.
 */
export async function unmarkAsAfterCrash(db: Db, event: { id: string; seq: bigint | string }): Promise<void> {
  await db.updateTable('platform.outbox').set({ published_at: null }).where('id', '=', event.id).execute();
  await sql`update platform.outbox_relay set floor = least(floor, ${event.seq.toString()}::int8)`.execute(db);
}
