import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type RecoveringChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { Consumer, EventBus } from './bus.ts';
import { deliver } from './inbox.ts';
import type { EventEnvelope } from './types.ts';

export interface AmqpBusOptions {
  url: string;
  exchange: string;
  /** Attempts at one message before it goes to the consumer's dead-letter queue. */
  maxAttempts: number;
  prefetch?: number;
}

export const queueName = (consumer: string): string => `pitboss.${consumer}`;
export const deadLetterQueueName = (consumer: string): string => `pitboss.${consumer}.dlq`;

/**
 * RabbitMQ transport. Publishing uses a confirm channel and resolves only when the
 * broker has confirmed every message (persistent, to a durable topic exchange). Each
 * consumer has a durable quorum queue; a message that fails `maxAttempts` times is
 * rejected and dead-lettered to `<queue>.dlq` by the broker, as is one returned
 * unsettled more than `maxAttempts` times (x-delivery-limit). The connection
 * recovers by itself with backoff and re-declares everything on reconnect; a publish
 * while it is down fails, and the relay keeps the events in the outbox and retries.
 */
export class AmqpBus implements EventBus {
  readonly kind = 'amqp';
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #opts: Required<AmqpBusOptions>;
  readonly #consumers: Consumer[] = [];
  #model: RecoveringChannelModel | undefined;
  #publisher: ConfirmChannel | undefined;
  #subscriber: Channel | undefined;
  #closing = false;

  constructor(db: Db, logger: Logger, options: AmqpBusOptions) {
    this.#db = db;
    this.#logger = logger;
    this.#opts = { prefetch: 50, ...options };
  }

  get deadLetterExchange(): string {
    return `${this.#opts.exchange}.dlx`;
  }

  async start(): Promise<void> {
    this.#model = await connect(this.#opts.url, {
      recovery: {
        initialDelay: 100,
        maxDelay: 5000,
        initialMaxRetries: 20,
        setup: async (model: ChannelModel) => this.#setup(model),
      },
    });
    this.#model.on('disconnect', (err: Error) => {
      this.#publisher = undefined;
      this.#subscriber = undefined;
      if (!this.#closing) this.#logger.warn({ err }, 'RabbitMQ connection lost; reconnecting');
    });
    this.#model.on('error', (err: Error) => this.#logger.warn({ err }, 'RabbitMQ connection error'));
  }

  async #setup(model: ChannelModel): Promise<void> {
    const publisher = await model.createConfirmChannel();
    publisher.on('error', () => {});
    await publisher.assertExchange(this.#opts.exchange, 'topic', { durable: true });
    await publisher.assertExchange(this.deadLetterExchange, 'direct', { durable: true });
    const subscriber = await model.createChannel();
    subscriber.on('error', () => {});
    await subscriber.prefetch(this.#opts.prefetch);
    for (const consumer of this.#consumers) await this.#attach(subscriber, consumer);
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#logger.info({ consumers: this.#consumers.map((c) => c.name) }, 'RabbitMQ connected');
  }

  async #attach(channel: Channel, consumer: Consumer): Promise<void> {
    const queue = queueName(consumer.name);
    const dlq = deadLetterQueueName(consumer.name);
    await channel.assertQueue(dlq, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await channel.bindQueue(dlq, this.deadLetterExchange, queue);
    await channel.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        // One consumer at a time per queue (the others stand by), so events stay in
        // order per player even when several processes subscribe.
        'x-single-active-consumer': true,
        // Failures are retried and rejected by #handle; this guards against a message
        // whose deliveries keep ending unsettled (it crashes the consumer process).
        'x-delivery-limit': this.#opts.maxAttempts,
        'x-dead-letter-exchange': this.deadLetterExchange,
        'x-dead-letter-routing-key': queue,
      },
    });
    for (const type of consumer.events) await channel.bindQueue(queue, this.#opts.exchange, type);
    // Messages are handled one after another in delivery order: the relay publishes in
    // commit order, so each player's events are handled in the order they happened.
    let open = true;
    channel.once('close', () => {
      open = false;
    });
    let chain: Promise<void> = Promise.resolve();
    await channel.consume(queue, (message) => {
      if (!message) return;
      chain = chain
        .then(() => this.#handle(channel, consumer, message, () => open))
        .catch((err: unknown) => this.#logger.error({ err, consumer: consumer.name }, 'consumer chain failed'));
    });
  }

  /**
   * A failing event is retried here, in place, not requeued: a requeued message comes
   * back after the ones this consumer already holds, so the player's later events
   * would overtake it. After `maxAttempts` it is rejected without requeue and the
   * broker dead-letters it to `<queue>.dlq`. Once the channel is gone the message is
   * left alone: the broker redelivers it on the new channel (the inbox drops repeats).
   */
  async #handle(channel: Channel, consumer: Consumer, message: ConsumeMessage, open: () => boolean): Promise<void> {
    const settle = (how: () => void): void => {
      try {
        how();
      } catch {
        // The channel closed meanwhile; the broker redelivers the unsettled message.
      }
    };
    let event: EventEnvelope;
    try {
      event = JSON.parse(message.content.toString('utf8')) as EventEnvelope;
    } catch (error) {
      this.#logger.error({ err: error, consumer: consumer.name }, 'unparseable message dead-lettered');
      settle(() => channel.reject(message, false));
      return;
    }
    for (let attempt = 1; open(); attempt++) {
      try {
        await deliver(this.#db, consumer, event);
      } catch (error) {
        if (attempt >= this.#opts.maxAttempts) {
          this.#logger.error({ err: error, consumer: consumer.name, eventId: event.id, type: event.type, attempts: attempt }, 'event dead-lettered');
          settle(() => channel.reject(message, false));
          return;
        }
        this.#logger.warn({ err: error, consumer: consumer.name, eventId: event.id, attempt }, 'consumer failed; retrying');
        await sleep(Math.min(2000, 50 * 2 ** attempt));
        continue;
      }
      settle(() => channel.ack(message));
      return;
    }
  }

  async publish(events: readonly EventEnvelope[]): Promise<void> {
    const channel = this.#publisher;
    if (!channel) throw new Error('RabbitMQ is not connected');
    for (const event of events) {
      channel.publish(this.#opts.exchange, event.type, Buffer.from(JSON.stringify(event)), {
        persistent: true,
        contentType: 'application/json',
        messageId: event.id,
        type: event.type,
        timestamp: Math.floor(Date.parse(event.occurredAt) / 1000),
        headers: event.playerId ? { 'x-player-id': event.playerId } : {},
      });
    }
    await channel.waitForConfirms();
  }

  async subscribe(consumers: readonly Consumer[]): Promise<void> {
    this.#consumers.push(...consumers);
    const channel = this.#subscriber;
    if (channel) for (const consumer of consumers) await this.#attach(channel, consumer);
  }

  healthy(): boolean {
    return this.#publisher !== undefined;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#model?.close().catch(() => {});
  }
}

/** Headers the broker adds when it dead-letters a message; the message goes back without them. */
const BROKER_HEADERS = /^x-(death|first-death-|last-death-|delivery-count)/;

/**
 * Moves the messages of a consumer's dead-letter queue back to its queue, once the cause
 * is fixed. Each is published again with a publisher confirm and only then removed from
 * the dead-letter queue, so a crash in between leaves a copy in both, and the consumer's
 * inbox drops the repeat. Returns how many it moved (none when the queues do not exist).
 */
export async function requeueDeadLetters(url: string, consumerName: string): Promise<number> {
  const model = await connect(url);
  try {
    const channel = await model.createConfirmChannel();
    const queue = queueName(consumerName);
    const dlq = deadLetterQueueName(consumerName);
    channel.on('error', () => {});
    try {
      await channel.checkQueue(queue);
      await channel.checkQueue(dlq);
    } catch (error) {
      // The consumer never subscribed to this broker: it has nothing dead-lettered here.
      if ((error as { code?: number }).code === 404) return 0;
      throw error;
    }
    let moved = 0;
    for (;;) {
      const message = await channel.get(dlq, { noAck: false });
      if (!message) return moved;
      const p = message.properties;
      const headers = Object.fromEntries(Object.entries((p.headers ?? {}) as Record<string, unknown>).filter(([name]) => !BROKER_HEADERS.test(name)));
      channel.sendToQueue(queue, message.content, { persistent: true, contentType: p.contentType as string | undefined, messageId: p.messageId as string | undefined, type: p.type as string | undefined, timestamp: p.timestamp as number | undefined, headers });
      await channel.waitForConfirms();
      channel.ack(message);
      moved++;
    }
  } finally {
    await model.close();
  }
}
