import { Type } from 'typebox';
import type { Config } from '../../platform/config.ts';
import { tablesOf, type Db } from '../../platform/db/database.ts';
import { requirePermission } from '../../platform/http/auth.ts';
import { problems } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { localMessages, type MessageChannel, type MessageTables } from '../../platform/messages/messages.ts';
import { fail } from './errors.ts';

export const LOCAL_MESSAGES_PERMISSION = 'identity.local_messages.read';

const LocalMessage = Type.Object({
  id: Type.String({ format: 'uuid' }),
  channel: Type.Enum(['sms', 'email']),
  recipient: Type.String(),
  subject: Type.Union([Type.String(), Type.Null()]),
  body: Type.String(),
  purpose: Type.String(),
  accountId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

/** The channels whose gateway is the local one (the others' messages never reach the table). */
export function localChannels(config: Pick<Config, 'smsGateway' | 'emailGateway'>): MessageChannel[] {
  const channels: MessageChannel[] = [];
  if (config.smsGateway === 'local') channels.push('sms');
  if (config.emailGateway === 'local') channels.push('email');
  return channels;
}

/**
 * What the local gateway "sent" (SMS codes, email links), for staff testing a deployment
 * without a real SMS or mail account. Only while a channel uses the local gateway: with
 * real gateways for both channels the route answers 404 LOCAL_MESSAGES_OFF.
 */
export function localMessageRoutes(config: Config, db: Db) {
  const channels = localChannels(config);
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/v1/identity/local-messages',
      {
        preHandler: requirePermission(LOCAL_MESSAGES_PERMISSION),
        schema: {
          tags: ['identity'],
          summary: `Messages kept by the local SMS/email gateway, newest first (staff with ${LOCAL_MESSAGES_PERMISSION}; only while a channel uses the local gateway).`,
          description: 'They hold one-time codes and verification links: for development and test deployments. 404 LOCAL_MESSAGES_OFF when SMS_GATEWAY and EMAIL_GATEWAY are both real gateways.',
          security: [{ bearer: [] }],
          querystring: Type.Object(
            {
              recipient: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: 'An E.164 phone number or an email address, exactly as sent.' })),
              channel: Type.Optional(Type.Enum(['sms', 'email'])),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ items: Type.Array(LocalMessage) }), ...problems(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const { recipient, channel, limit } = request.query;
        if (channels.length === 0 || (channel !== undefined && !channels.includes(channel))) throw fail('LOCAL_MESSAGES_OFF');
        const rows = await localMessages(tablesOf<MessageTables>(db), { recipient, channel: channel ?? (channels.length === 1 ? channels[0] : undefined), limit: limit ?? 50 });
        return reply.header('cache-control', 'no-store').send({
          items: rows.map((r) => ({
            id: r.id,
            channel: r.channel,
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            purpose: r.purpose,
            accountId: r.account_id,
            createdAt: r.created_at.toISOString(),
          })),
        });
      },
    );
  };
}
