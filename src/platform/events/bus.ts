import type { Trx } from '../db/database.ts';
import type { EventEnvelope, EventType } from './types.ts';

/**
 * A consumer of events, declared by a module. `handle` runs inside a transaction that
 * also records the event in the inbox, so a redelivered event is skipped: effects in
 * the database happen once. Effects outside it (cache deletes) must be idempotent.
 */
export interface Consumer {
  /** Stable name: the queue is named after it, and the inbox keys on it. */
  readonly name: string;
  readonly events: readonly EventType[];
  handle(event: EventEnvelope, trx: Trx): Promise<void>;
}

/** Where the outbox relay hands events, and where consumers are attached. */
export interface EventBus {
  readonly kind: 'in-process' | 'amqp';
  /** Resolves only once every event is durably accepted (broker confirms, or consumed in-process). */
  publish(events: readonly EventEnvelope[]): Promise<void>;
  subscribe(consumers: readonly Consumer[]): Promise<void>;
  /** True while connected (always true in-process). */
  healthy(): boolean;
  close(): Promise<void>;
}
