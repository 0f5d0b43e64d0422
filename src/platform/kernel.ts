import type { Logger } from 'pino';
import { appendAudit } from './audit/audit.ts';
import { KeyStore } from './auth/keys.ts';
import type { RequestContext } from './auth/principal.ts';
import { TokenService } from './auth/tokens.ts';
import { AuthPolicy } from './auth/step-up.ts';
import type { Cache } from './cache/cache.ts';
import { oidcIssuer, type Config } from './config.ts';
import type { Database } from './db/database.ts';
import { writeToOutbox } from './events/outbox.ts';
import type { NewEvent } from './events/types.ts';
import type { Kernel, UnitOfWork } from './module.ts';
import { LocalMessageGateway, routedMessages, type MessageGateway, type MessageTables } from './messages/messages.ts';
import { SmtpEmailGateway } from './messages/smtp.ts';
import { TwilioSmsGateway } from './messages/twilio.ts';
import type { Metrics } from './telemetry/metrics.ts';
import { tablesOf } from './db/database.ts';

/** Longest lifetime any token may be issued with; keys stay published this long after retiring. */
export const MAX_TOKEN_TTL_SECONDS = 86_400;

export interface KernelDeps {
  config: Config;
  database: Database;
  cache: Cache;
  logger: Logger;
  metrics: Metrics;
  /** Called after a commit that wrote events (wakes the relay). */
  onEventsCommitted?: () => void;
}

export function createKernel(deps: KernelDeps): Kernel & { setOnEventsCommitted(fn: () => void): void } {
  const keys = new KeyStore(deps.database.db, { rotationDays: deps.config.signingKeyRotationDays, maxTokenTtlSeconds: MAX_TOKEN_TTL_SECONDS });
  const tokens = new TokenService(keys, deps.config.publicUrl ?? 'http://localhost:8080', deps.config.accessTokenTtlSeconds, {
    trustedIssuers: [oidcIssuer(deps.config)],
  });
  const authPolicy = new AuthPolicy({ stepUpMaxAgeSeconds: deps.config.stepUpMaxAgeSeconds });
  const local = new LocalMessageGateway(tablesOf<MessageTables>(deps.database.db));
  const { config } = deps;
  const sms: MessageGateway =
    config.smsGateway === 'twilio'
      ? new TwilioSmsGateway({ baseUrl: config.twilioBaseUrl ?? 'https://api.twilio.com', accountSid: config.twilioAccountSid, authToken: config.twilioAuthToken, from: config.smsFrom })
      : local;
  const email: MessageGateway = config.emailGateway === 'smtp' ? new SmtpEmailGateway({ url: config.smtpUrl!, from: config.emailFrom }) : local;
  const messages = routedMessages({ sms, email });
  let onEvents = deps.onEventsCommitted ?? (() => {});
  const chains = deps.config.auditChains;

  async function transaction<T>(ctx: RequestContext, work: (uow: UnitOfWork) => Promise<T>): Promise<T> {
    let emitted = 0;
    const result = await deps.database.db.transaction().execute(async (trx) => {
      const uow: UnitOfWork = {
        trx,
        emit: async (...events: NewEvent[]) => {
          emitted += events.length;
          await writeToOutbox(trx, events);
        },
        audit: (entry) => appendAudit(trx, ctx, entry, chains),
      };
      return work(uow);
    });
    if (emitted > 0) onEvents();
    return result;
  }

  return {
    config: deps.config,
    database: deps.database,
    cache: deps.cache,
    logger: deps.logger,
    metrics: deps.metrics,
    messages,
    keys,
    tokens,
    authPolicy,
    transaction,
    notifyEventsCommitted: () => onEvents(),
    setOnEventsCommitted(fn) {
      onEvents = fn;
    },
  };
}
