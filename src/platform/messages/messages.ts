import type { Kysely } from 'kysely';
import { newId } from '../ids.ts';

/**
 * Messages Pitboss sends to people outside it: one-time codes by SMS, verification and
 * password-reset links by email. Gateways are adapters over outside systems (an SMS API,
 * a mail server); the local gateway keeps every message in platform.local_messages,
 * where tests and the back office read them, so development needs no outside account.
 */
export type MessageChannel = 'sms' | 'email';

export interface OutgoingMessage {
  readonly channel: MessageChannel;
  /** E.164 phone number for SMS, an email address for email. */
  readonly to: string;
  /** Email only. */
  readonly subject?: string;
  readonly text: string;
  /** Why it is sent (`mfa.sms_code`, `email.verification`, `password.reset`, ...): for the record, never shown. */
  readonly purpose: string;
  /** The player (or staff member) it is about, when there is one. */
  readonly accountId?: string | null;
}

export interface SentMessage {
  /** The gateway's id of the message (the local gateway's row id). */
  readonly gatewayMessageId: string;
  readonly gateway: string;
}

/** One channel's adapter. `send` resolves when the gateway accepted the message, and throws when it did not. */
export interface MessageGateway {
  readonly name: string;
  send(message: OutgoingMessage): Promise<SentMessage>;
}

/** What modules call: routes each message to its channel's gateway. */
export interface Messages {
  send(message: OutgoingMessage): Promise<SentMessage>;
}

export interface LocalMessagesTable {
  id: string;
  channel: MessageChannel;
  recipient: string;
  subject: string | null;
  body: string;
  purpose: string;
  account_id: string | null;
  created_at: Date;
}

export interface MessageTables {
  'platform.local_messages': LocalMessagesTable;
}

/** Development and test gateway: writes the message to platform.local_messages. */
export class LocalMessageGateway implements MessageGateway {
  readonly name = 'local';
  readonly #db: Kysely<MessageTables>;

  constructor(db: Kysely<MessageTables>) {
    this.#db = db;
  }

  async send(message: OutgoingMessage): Promise<SentMessage> {
    const id = newId();
    await this.#db
      .insertInto('platform.local_messages')
      .values({
        id,
        channel: message.channel,
        recipient: message.to,
        subject: message.subject ?? null,
        body: message.text,
        purpose: message.purpose,
        account_id: message.accountId ?? null,
        created_at: new Date(),
      })
      .execute();
    return { gatewayMessageId: id, gateway: this.name };
  }
}

/** The messages written by the local gateway, newest first (tests, the back office). */
export async function localMessages(
  db: Kysely<MessageTables>,
  filter: { recipient?: string; channel?: MessageChannel; limit?: number } = {},
): Promise<LocalMessagesTable[]> {
  let query = db.selectFrom('platform.local_messages').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit ?? 50);
  if (filter.recipient !== undefined) query = query.where('recipient', '=', filter.recipient);
  if (filter.channel !== undefined) query = query.where('channel', '=', filter.channel);
  return query.execute();
}

export function routedMessages(gateways: Readonly<Record<MessageChannel, MessageGateway>>): Messages {
  return { send: (message) => gateways[message.channel].send(message) };
}
