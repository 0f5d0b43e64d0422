import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { Consumer, EventBus } from './bus.ts';
import { deliver, recordDeadLetter } from './inbox.ts';
import type { EventEnvelope } from './types.ts';

/**
 * The embedded default: events go straight to this process's consumers. `publish`
 * returns only after every consumer has handled (or dead-lettered) the event, so the
 * relay marks an event published only once it has had its effect: a crash in between
 * redelivers it and the inbox drops the repeat.
 */
export class InProcessBus implements EventBus {
  readonly kind = 'in-process';
  readonly #consumers: Consumer[] = [];
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #maxAttempts: number;

  constructor(db: Db, logger: Logger, maxAttempts: number) {
    this.#db = db;
    this.#logger = logger;
    this.#maxAttempts = maxAttempts;
  }

  async publish(events: readonly EventEnvelope[]): Promise<void> {
    for (const event of events) {
      for (const consumer of this.#consumers) {
        if (consumer.events.includes(event.type)) await this.#deliverWithRetry(consumer, event);
      }
    }
  }

  async #deliverWithRetry(consumer: Consumer, event: EventEnvelope): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await deliver(this.#db, consumer, event);
        return;
      } catch (error) {
        if (attempt >= this.#maxAttempts) {
          await recordDeadLetter(this.#db, consumer, event, error, attempt, this.#logger);
          return;
        }
        this.#logger.warn({ consumer: consumer.name, eventId: event.id, attempt, err: error }, 'consumer failed; retrying');
        await sleep(Math.min(2000, 50 * 2 ** attempt));
      }
    }
  }

  async subscribe(consumers: readonly Consumer[]): Promise<void> {
    this.#consumers.push(...consumers);
  }

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {}
}
