import type { Logger } from 'pino';
import type { Database, LeaderLock } from '../db/database.ts';
import type { EventBus } from './bus.ts';
import { markPublished, readUnpublished, relayFloor } from './outbox.ts';

// One relay publishes at a time across all processes, so events leave in commit order
// (and so in order per player). Others find the lock taken and wait for their turn.
const RELAY_LOCK = 7_344_002;

export interface RelayOptions {
  pollMs: number;
  batchSize?: number;
  /**
   * The least time between the starts of two passes when commits keep waking the relay
   * (ms): under load it then publishes a few larger batches instead of one tiny batch
   * (two statements) per commit. An event waits at most this much longer.
   */
  minIntervalMs?: number;
  logger: Logger;
}

/**
 * Moves committed events from the outbox to the bus. Marks them published only after
 * the bus confirmed them; a failure (broker down, crash) leaves them in the outbox to
 * be sent again, so delivery is at least once and the consumers' inbox makes it once
 * in effect.
 *
 * Reads start at a floor below which every event is published, and walk the primary
 * key from there: no index names published_at, so that a mark is an update in place
 * (HOT), and the floor is kept in platform.outbox_relay, where the next relay to hold
 * the lock finds it. (An index of unpublished events also kept, until VACUUM, an entry
 * for every marked row's old version, which a read from its start stepped over.) The floor may not
 * pass an event that is still to commit, and a later transaction's events can commit
 * first, so it moves only on proof: the previous read saw `head` as the last seq handed
 * out; a writer holds a seq only with a transaction id (insertEnvelopes sees to it), so
 * every writer that held a seq up to `head` had an id below the next id to be handed out
 * as this read saw it, afterwards; once a later snapshot's xmin reaches that id, all of
 * them have ended, and their events, if they committed, are visible to that read. A pass
 * that then publishes everything it saw up to `head` moves the floor past it. (The
 * snapshot's xmax will not do for that id: it is one past the last transaction to end,
 * and a transaction still open can hold it or a higher one while no other ends.)
 */
export class OutboxRelay {
  readonly #database: Database;
  readonly #lock: LeaderLock;
  readonly #bus: EventBus;
  readonly #opts: Required<RelayOptions>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  #failures = 0;
  #lastPass = Number.NEGATIVE_INFINITY;
  /** Every event below this seq is published, or its transaction never committed; read from the table when the lock is taken. */
  #floor: bigint | undefined;
  /** The last seq handed out as the previous read saw it. */
  #head: bigint | undefined;
  /** Once every transaction below `nextXid` has ended, every event up to `upTo` that will ever be visible is. */
  #proof: { upTo: bigint; nextXid: bigint } | undefined;
  published = 0;

  constructor(database: Database, bus: EventBus, options: RelayOptions) {
    this.#database = database;
    this.#lock = database.leaderLock(RELAY_LOCK);
    this.#bus = bus;
    this.#opts = { batchSize: 200, minIntervalMs: 20, ...options };
  }

  start(): void {
    this.#stopped = false;
    this.wake();
  }

  /** Asks for a pass now (called after a commit that wrote events). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const wait = this.#lastPass + this.#opts.minIntervalMs - performance.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => this.wake(), wait);
      this.#timer.unref();
      return;
    }
    this.#lastPass = performance.now();
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#again) {
      // Woken while it ran: the next pass, no sooner than the least interval (wake() waits it out).
      this.#again = false;
      this.wake();
      return;
    }
    const backoff = this.#failures === 0 ? this.#opts.pollMs : Math.min(10_000, 100 * 2 ** Math.min(this.#failures, 7));
    this.#timer = setTimeout(() => this.wake(), backoff);
    this.#timer.unref();
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#stopped) {
        const sent = await this.drainOnce();
        this.#failures = 0;
        if (sent < this.#opts.batchSize) break;
      }
    } catch (error) {
      this.#failures++;
      this.#opts.logger.warn({ err: error, failures: this.#failures }, 'outbox relay could not publish; will retry');
    }
  }

  /**
   * One batch: read, publish, mark. Returns how many events it published. No
   * transaction is held while publishing: in-process consumers need the database too
   * (PGlite has a single connection).
   */
  async drainOnce(): Promise<number> {
    if (!(await this.#lock.held())) {
      // Another relay may publish meanwhile: the floor is read again once this one leads.
      this.#floor = undefined;
      return 0;
    }
    const db = this.#database.db;
    if (this.#floor === undefined) {
      this.#floor = await relayFloor(db);
      this.#head = undefined;
      this.#proof = undefined;
    }
    const floor = this.#floor;
    const { rows, bounds } = await readUnpublished(db, this.#opts.batchSize, floor);
    let settled: bigint | undefined;
    if (this.#proof && bounds.xmin >= this.#proof.nextXid) {
      settled = this.#proof.upTo;
      this.#proof = undefined;
    }
    if (!this.#proof && this.#head !== undefined) this.#proof = { upTo: this.#head, nextXid: bounds.nextXid };
    this.#head = bounds.head;
    let next: bigint | undefined;
    if (settled !== undefined) {
      // A full batch leaves more behind its last row; a short one left nothing unpublished that it could see.
      const last = rows.at(-1)?.seq;
      next = rows.length === this.#opts.batchSize && last !== undefined && last < settled ? last + 1n : settled + 1n;
      if (next <= floor) next = undefined;
    }
    if (rows.length > 0) await this.#bus.publish(rows.map((r) => r.envelope));
    // The marks and the floor they allow, together, only after the bus took the events.
    await markPublished(
      db,
      rows.map((r) => r.seq),
      next,
    );
    this.published += rows.length;
    if (next !== undefined) this.#floor = next;
    return rows.length;
  }

  /** Where reads start: every event below this seq is published (for tests and diagnosis; 0 before the first read). */
  get floor(): bigint {
    return this.#floor ?? 0n;
  }

  /** Stops polling and waits for the batch in flight to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    await this.#lock.release();
  }
}
