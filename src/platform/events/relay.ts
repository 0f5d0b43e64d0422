import type { Logger } from 'pino';
import type { Database, LeaderLock } from '../db/database.ts';
import type { EventBus } from './bus.ts';
import { markPublished, readUnpublished } from './outbox.ts';

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
    if (!(await this.#lock.held())) return 0;
    const db = this.#database.db;
    const rows = await readUnpublished(db, this.#opts.batchSize);
    if (rows.length === 0) return 0;
    await this.#bus.publish(rows.map((r) => r.envelope));
    await markPublished(db, rows.map((r) => r.seq));
    this.published += rows.length;
    return rows.length;
  }

  /** Stops polling and waits for the batch in flight to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    await this.#lock.release();
  }
}
