import type { Logger } from 'pino';
import type { Cache } from './cache/cache.ts';
import type { Config } from './config.ts';
import type { Database, Trx } from './db/database.ts';
import type { Migration } from './db/migrate.ts';
import type { ErrorCatalogue } from './errors.ts';
import type { Consumer } from './events/bus.ts';
import type { EventCatalogue, NewEvent } from './events/types.ts';
import type { AuditEntry } from './audit/audit.ts';
import type { RequestContext } from './auth/principal.ts';
import type { KeyStore } from './auth/keys.ts';
import type { TokenService } from './auth/tokens.ts';
import type { AuthPolicy } from './auth/step-up.ts';
import type { Metrics } from './telemetry/metrics.ts';
import type { HttpApp } from './http/types.ts';
import type { Messages } from './messages/messages.ts';

/** What a service does inside one database transaction: write, emit events, audit. */
export interface UnitOfWork {
  readonly trx: Trx;
  /** Queues events into the outbox in this transaction. */
  emit(...events: NewEvent[]): Promise<void>;
  /** Appends an audit entry in this transaction. */
  audit(entry: AuditEntry): Promise<void>;
}

/** The platform services every module receives. It knows no module. */
export interface Kernel {
  readonly config: Config;
  readonly database: Database;
  readonly cache: Cache;
  readonly logger: Logger;
  readonly keys: KeyStore;
  readonly tokens: TokenService;
  /** Step-up and session hooks the HTTP edge consults (registered by the identity module). */
  readonly authPolicy: AuthPolicy;
  readonly metrics: Metrics;
  /** Outgoing SMS and email, each channel through its configured gateway. */
  readonly messages: Messages;
  /**
   * The one transaction helper: runs `work` in a transaction; its events and audit
   * entries commit with it, and the relay is woken after the commit.
   */
  transaction<T>(ctx: RequestContext, work: (uow: UnitOfWork) => Promise<T>): Promise<T>;
  /** For modules that write the outbox in their own transactions (the ledger's batches): wakes the relay. */
  notifyEventsCommitted(): void;
}

export interface ModuleInstance<Api> {
  /** The module's public interface, what other modules and the CLI may call. */
  readonly api: Api;
  readonly routes?: (app: HttpApp) => Promise<void>;
  readonly consumers?: readonly Consumer[];
  /** Background work (schedules) to start when the module runs in a server. */
  readonly start?: () => Promise<void>;
  readonly stop?: () => Promise<void>;
}

/**
 * Everything a module adds, declared in one place (its index.ts): name, migrations,
 * error codes, events, permissions, and how to build it from the kernel.
 */
export interface ModuleDefinition<Api = unknown> {
  readonly name: string;
  readonly description: string;
  readonly migrations: readonly Migration[];
  readonly errors: ErrorCatalogue;
  readonly events: EventCatalogue;
  /** Permission name -> what it allows. */
  readonly permissions: Readonly<Record<string, string>>;
  /** Builds the module; `use` gives another module's public interface (its index.ts's definition). */
  create(kernel: Kernel, use: <Other>(module: ModuleDefinition<Other>) => Other): ModuleInstance<Api>;
}

export const defineModule = <Api>(definition: ModuleDefinition<Api>): ModuleDefinition<Api> => definition;
