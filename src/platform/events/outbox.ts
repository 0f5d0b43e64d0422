import { sql, type RawBuilder } from 'kysely';
import { newId } from '../ids.ts';
import { pgArray, type Db, type Trx } from '../db/database.ts';
import type { EventEnvelope, EventType, NewEvent } from './types.ts';

/** Writes events into the outbox inside the caller's transaction: they exist exactly when the state change does. */
export async function writeToOutbox(trx: Trx, events: readonly NewEvent[]): Promise<EventEnvelope[]> {
  if (events.length === 0) return [];
  const now = new Date();
  const envelopes = events.map((e) => envelopeOf(e, now));
  await insertEnvelopes(envelopes, now).execute(trx);
  return envelopes;
}

/** An event as it is written and published: its own id and version, stamped `at`. */
const envelopeOf = (e: NewEvent, at: Date): EventEnvelope => ({
  id: newId(),
  type: e.type,
  version: e.version ?? 1,
  occurredAt: at.toISOString(),
  playerId: e.playerId,
  payload: e.payload,
});

/**
 * The outbox insert as one SQL statement, for a caller that writes a whole batch in one
 * statement (a data-modifying CTE): the events commit exactly when that statement does.
 */
export function outboxInsert(events: readonly NewEvent[], at: Date): RawBuilder<unknown> {
  return insertEnvelopes(events.map((e) => envelopeOf(e, at)), at);
}

/**
 * The one statement that writes events. Its one-time filter gives the transaction its id
 * before the identity default hands out the first seq: a transaction never holds a seq
 * without an id that a snapshot can show running, which is what lets the relay skip the
 * published head of the outbox (OutboxRelay).
 */
function insertEnvelopes(envelopes: readonly EventEnvelope[], at: Date): RawBuilder<unknown> {
  return sql`
    insert into platform.outbox (id, type, version, occurred_at, player_id, payload)
    select i, t, v, ${at.toISOString()}::timestamptz, p, d
    from rows from (unnest(${pgArray(envelopes.map((e) => e.id))}::uuid[]), unnest(${pgArray(envelopes.map((e) => e.type))}::text[]), unnest(${pgArray(envelopes.map((e) => e.version))}::int4[]),
                    unnest(${pgArray(envelopes.map((e) => e.playerId))}::uuid[]), jsonb_array_elements(${JSON.stringify(envelopes.map((e) => e.payload))}::jsonb)) with ordinality as x(i, t, v, p, d, n)
    where pg_current_xact_id() is not null
    order by n`;
}

export interface OutboxRow {
  seq: bigint;
  envelope: EventEnvelope;
}

/** What one read's snapshot showed of the outbox's writers (see OutboxRelay). */
export interface OutboxBounds {
  /** The last seq handed out, read after the snapshot was taken (0 before the first). */
  readonly head: bigint;
  /** Every transaction with a lower id had ended when the snapshot was taken. */
  readonly xmin: bigint;
  /**
   * The next transaction id to be handed out, read after the snapshot was taken: every id
   * handed out before is lower. Not the snapshot's xmax, which is one past the last id to
   * end: a transaction still open can hold that id or a higher one.
   */
  readonly nextXid: bigint;
}

/**
 * The oldest unpublished events from seq `from` on, in seq order, and the bounds of the
 * snapshot they were read in. It walks the primary key from `from` (the relay's floor:
 * what lies between it and the first unpublished event is at most about one pass of
 * published events). Planned at each call, not prepared: a generic plan chosen while the
 * outbox was small could scan the whole table for every read ever after (see
 * markPublished); the relay reads at most once per pass.
 */
export async function readUnpublished(db: Db | Trx, limit: number, from: bigint): Promise<{ rows: OutboxRow[]; bounds: OutboxBounds }> {
  const { rows } = await sql<{
    head: string | null;
    xmin: string;
    next_xid: string;
    seq: bigint | null;
    id: string;
    type: string;
    version: number;
    occurred_at: Date;
    player_id: string | null;
    payload: unknown;
  }>`
    select b.head, b.xmin, b.next_xid, o.seq, o.id, o.type, o.version, o.occurred_at, o.player_id, o.payload
    from (select pg_sequence_last_value(pg_get_serial_sequence('platform.outbox', 'seq')::regclass)::text as head,
                 pg_snapshot_xmin(s)::text as xmin,
                 -- age() counts from the next id to be handed out (this statement has none of its
                 -- own); from the snapshot's xmax, which is at most that, it gives the 64-bit id.
                 (pg_snapshot_xmax(s)::text::int8 + age((pg_snapshot_xmax(s)::text::int8 % 4294967296)::text::xid))::text as next_xid
          from pg_current_snapshot() as s) as b
    left join lateral (
      select seq, id, type, version, occurred_at, player_id, payload from platform.outbox
      where published_at is null and seq >= ${from.toString()}::int8 order by seq limit ${limit}
    ) as o on true
    order by o.seq`.execute(db);
  // Always one row for the bounds; with no unpublished event its event columns are null.
  const first = rows[0]!;
  const events: OutboxRow[] = [];
  for (const r of rows) {
    if (r.seq === null) continue;
    const envelope = { id: r.id, type: r.type as EventType, version: r.version, occurredAt: r.occurred_at.toISOString(), playerId: r.player_id, payload: r.payload as EventEnvelope['payload'] };
    events.push({ seq: r.seq, envelope });
  }
  return { rows: events, bounds: { head: BigInt(first.head ?? 0), xmin: BigInt(first.xmin), nextXid: BigInt(first.next_xid) } };
}

/**
 * Marks events published. Planned at each call, not prepared: a prepared statement's
 * cached generic plan is chosen once, with the table as it was then, and one chosen while
 * the outbox was small scanned the whole table for every mark ever after, testing each
 * row against the array (12% of all CPU under wallet load in one profile, growing with
 * the table). Planned with the array in hand it takes the primary key. The relay marks at
 * most once per pass (OutboxRelay's minIntervalMs), so planning costs little.
 */
export async function markPublished(db: Db, seqs: readonly bigint[], floor?: bigint): Promise<void> {
  if (seqs.length === 0 && floor === undefined) return;
  // Committed without waiting for the WAL flush (synchronous_commit off for this
  // transaction alone): a mark lost in a crash only publishes its events again, which
  // the consumers' inbox absorbs, and the next durable commit flushes it anyway. Waiting
  // put an fsync of its own beside every ledger batch's (about a third of the relay's
  // time in PostgreSQL went to IO:WALSync under wallet load). Hence a Db, never a
  // caller's transaction, which the setting would commit without the flush as a whole.
  // The floor moves in the same transaction as the marks that allow it (a mark, and so
  // a floor, lost in a crash is only a step back: the relay reads from the floor it finds).
  // Both updates are HOT: no index names published_at or the floor.
  const moved = floor === undefined ? sql`` : sql`, moved as (update platform.outbox_relay set floor = ${floor.toString()}::int8 from async where floor < ${floor.toString()}::int8)`;
  await sql`
    with async as (select set_config('synchronous_commit', 'off', true))${moved}
    update platform.outbox set published_at = now() from async where seq = any(${pgArray(seqs)}::int8[])`.execute(db);
}

/** Where the relay's reads start: every event below it is published (kept by markPublished). */
export async function relayFloor(db: Db): Promise<bigint> {
  const { rows } = await sql<{ floor: string }>`select floor::text from platform.outbox_relay`.execute(db);
  return BigInt(rows[0]?.floor ?? 0);
}

/** Events waiting to be published: the backlog metric reads it. */
export async function outboxBacklog(db: Db): Promise<number> {
  // From the relay's floor, by the primary key: below it everything is published.
  const { rows } = await sql<{ n: string }>`
    select count(*)::text as n from platform.outbox where seq >= (select floor from platform.outbox_relay) and published_at is null`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/**
 * Deletes published events older than `olderThan`, oldest first, a chunk at a time. It
 * walks the primary key from the head of the table and stops at the first event that is
 * newer or not yet published (events are published in about the order they were
 * written), so it reads only what it deletes plus one chunk: no index on published_at,
 * which every mark would have to update at wallet rates, and no scan of the whole table.
 * Returns how many it deleted.
 */
export async function pruneOutbox(db: Db, olderThan: Date, chunk = 10_000): Promise<number> {
  const cutoff = olderThan.toISOString();
  let total = 0;
  let after = 0n;
  for (;;) {
    const { rows } = await sql<{ deleted: number; stopped: boolean; last: bigint | null; seen: number }>`
      with head as (
        select seq, coalesce(published_at < ${cutoff}::timestamptz, false) as old
        from platform.outbox where seq > ${after.toString()}::int8 order by seq limit ${chunk}
      ),
      gone as (
        -- published_at again here: if the relay or an operator changes a row while this
        -- waits for its lock, PostgreSQL re-checks the DELETE's own condition, not head's.
        delete from platform.outbox
        where seq in (select seq from head where old and seq < all (select seq from head where not old))
          and published_at < ${cutoff}::timestamptz
        returning 1
      )
      select (select count(*) from gone)::int4 as deleted, exists (select 1 from head where not old) as stopped,
             (select max(seq) from head) as last, (select count(*) from head)::int4 as seen`.execute(db);
    const r = rows[0]!;
    total += r.deleted;
    if (r.stopped || r.seen < chunk) return total;
    after = BigInt(r.last!);
  }
}
